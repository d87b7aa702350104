import { readFileSync } from 'node:fs';
import { defineConfig } from 'tsup';

/**
 * The package's entry points, from package.json's "exports": `.` is src/index.ts and `./<folder>` is
 * src/<folder>/index.ts, built to dist/<folder>/index.{js,cjs,d.ts,d.cts}. A new entry point needs only its
 * "exports" and "typesVersions" entries there.
 */
const manifest = JSON.parse(readFileSync(new URL('./package.json', import.meta.url), 'utf8')) as { exports: object };
const ENTRIES = Object.fromEntries(
  Object.keys(manifest.exports)
    .filter((path) => path !== './package.json')
    .map((path) => (path === '.' ? ['index', 'src/index.ts'] : [`${path.slice(2)}/index`, `src/${path.slice(2)}/index.ts`])),
);

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
