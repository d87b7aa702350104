import { defineConfig } from 'tsup';

/**
 * The package's entry points: the root and one per folder of src/ (the subpaths of package.json's "exports"), each
 * built from that folder's barrel. Keep in step with "exports"; test/build/package.test.ts checks both.
 */
export const ENTRIES = {
  index: 'src/index.ts',
  'protocol/index': 'src/protocol/index.ts',
  'transport/index': 'src/transport/index.ts',
  'transport/grpc/index': 'src/transport/grpc/index.ts',
  'transport/yamux/index': 'src/transport/yamux/index.ts',
  'transport/memory/index': 'src/transport/memory/index.ts',
  'tunnel/index': 'src/tunnel/index.ts',
  'server/index': 'src/server/index.ts',
  'agent/index': 'src/agent/index.ts',
  'client/index': 'src/client/index.ts',
  'ops/index': 'src/ops/index.ts',
};

export default defineConfig({
  entry: {
    ...ENTRIES,
    'cli/konnectivity-server': 'src/cli/konnectivity-server.ts',
    'cli/konnectivity-agent': 'src/cli/konnectivity-agent.ts',
  },
  format: ['esm', 'cjs'],
  // `@internal` members stay out of the published types.
  dts: { entry: ENTRIES, compilerOptions: { stripInternal: true } },
  target: 'node20',
  platform: 'node',
  sourcemap: true,
  clean: true,
  // Shared code goes into chunks that every entry loads, in CJS too: one copy of each class, so `instanceof`
  // holds whichever entry point a value came from.
  splitting: true,
  // import.meta.url in CJS (the lazy require of `ws`).
  shims: true,
});
