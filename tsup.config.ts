import { defineConfig } from 'tsup';

export default defineConfig({
  entry: {
    index: 'src/index.ts',
    'cli/konnectivity-server': 'src/cli/konnectivity-server.ts',
    'cli/konnectivity-agent': 'src/cli/konnectivity-agent.ts',
  },
  format: ['esm', 'cjs'],
  dts: { entry: { index: 'src/index.ts' } },
  target: 'node20',
  platform: 'node',
  sourcemap: true,
  clean: true,
  splitting: false,
  // import.meta.url in the CJS build (the lazy require of `ws`).
  shims: true,
});
