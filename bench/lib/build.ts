/**
 * The package as it ships, for the bench: the entry points of package.json's "exports" and the two programs,
 * bundled by tsup with the package's own settings (ESM, node20, shared chunks), without type declarations and
 * source maps, into `bench/results/build/`. Our processes then run that code with plain `node`, as a user runs
 * `dist/`: no tsx transform (esbuild's keepNames wraps every named closure in a `__name()` call, which costs CPU
 * per dial and, as each wrapped closure gets a property dictionary, about 256 bytes per closure and a few KiB per
 * idle connection), and no source-mapped stack traces. `--from-source` runs src/ through tsx instead.
 *
 * Children learn where the build is from {@link BUILD_ENV}, so every role loads the same copy.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';

/** Set to the build directory for every process of a run that uses the built package. */
export const BUILD_ENV = 'KONNECTIVITY_BENCH_BUILD';

/** Build the package into `outDir`; resolves with the time it took, in ms. */
export async function buildPackage(root: string, outDir: string): Promise<number> {
  const t0 = performance.now();
  const manifest = JSON.parse(readFileSync(resolve(root, 'package.json'), 'utf8')) as { exports: Record<string, unknown> };
  const entry: Record<string, string> = {
    'cli/konnectivity-server': resolve(root, 'src/cli/konnectivity-server.ts'),
    'cli/konnectivity-agent': resolve(root, 'src/cli/konnectivity-agent.ts'),
  };
  for (const path of Object.keys(manifest.exports)) {
    if (path === './package.json') continue;
    const name = path === '.' ? 'index' : `${path.slice(2)}/index`;
    entry[name] = resolve(root, path === '.' ? 'src/index.ts' : `src/${path.slice(2)}/index.ts`);
  }
  const { build } = await import('tsup');
  await build({
    config: false,
    entry,
    format: ['esm'],
    dts: false,
    sourcemap: false,
    target: 'node20',
    platform: 'node',
    splitting: true,
    shims: true,
    clean: true,
    outDir,
    silent: true,
  });
  return performance.now() - t0;
}
