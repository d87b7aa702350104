/**
 * The built package works for both kinds of consumer. One tsup build (the project's own tsup.config.ts) into a temp
 * package that has the project's package.json, then child processes that load it by name, the way users do:
 * ESM `import`, CJS `require`, and TypeScript type resolution through the `exports` map.
 */
import { execFile } from 'node:child_process';
import {
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const NAME = 'konnectivity-ts';
/** Names every build must expose, from both entry points. */
const REQUIRED = ['encodePacket', 'decodePacket', 'createMemoryPair', 'KonnectivityError'];

let temp: string;
/** The temp package: the project's package.json, its dist/, and the project's node_modules for dependencies. */
let pkg: string;
/** A consumer project with node_modules/konnectivity-ts linked to the temp package. */
let consumer: string;

/** Run `node file` in the consumer and parse the JSON it prints. */
async function node<T>(file: string, source: string): Promise<T> {
  writeFileSync(join(consumer, file), source);
  const { stdout } = await run(process.execPath, [file], { cwd: consumer, timeout: 20_000 });
  return JSON.parse(stdout) as T;
}

beforeAll(async () => {
  temp = mkdtempSync(join(tmpdir(), 'konnectivity-build-'));
  pkg = join(temp, 'pkg');
  consumer = join(temp, 'consumer');
  mkdirSync(pkg);
  mkdirSync(join(consumer, 'node_modules'), { recursive: true });
  // What package.json's "files" names, so `npm pack` sees the tree a publish would.
  for (const file of ['package.json', 'README.md', 'CHANGELOG.md']) copyFileSync(join(ROOT, file), join(pkg, file));
  cpSync(join(ROOT, 'proto'), join(pkg, 'proto'), { recursive: true });
  symlinkSync(join(ROOT, 'node_modules'), join(pkg, 'node_modules'), 'dir');
  symlinkSync(pkg, join(consumer, 'node_modules', NAME), 'dir');
  writeFileSync(join(consumer, 'package.json'), JSON.stringify({ name: 'consumer', private: true }));
  // Build with the project's config, but into the temp package so the working tree's dist/ is never touched.
  await run(join(ROOT, 'node_modules', '.bin', 'tsup'), ['--out-dir', join(pkg, 'dist')], {
    cwd: ROOT,
    timeout: 120_000,
  });
}, 150_000);

afterAll(() => {
  if (temp) rmSync(temp, { recursive: true, force: true });
});

describe('the built package', () => {
  it('emits ESM, CJS and type declarations for both', () => {
    for (const file of ['index.js', 'index.cjs', 'index.d.ts', 'index.d.cts']) {
      expect(existsSync(join(pkg, 'dist', file)), `dist/${file}`).toBe(true);
    }
    expect(readFileSync(join(pkg, 'dist', 'index.d.ts'), 'utf8')).toMatch(/KonnectivityError/);
  });

  it('package.json points at files the build emits, types first in every condition', () => {
    const manifest = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
      main: string;
      module?: string;
      types: string;
      bin?: string | Record<string, string>;
      exports: Record<string, unknown>;
    };
    for (const field of [manifest.main, manifest.module, manifest.types]) {
      if (field) expect(existsSync(join(pkg, field)), field).toBe(true);
    }
    // Command-line entry points, when the package declares them, must be built and start with a shebang.
    const bins = typeof manifest.bin === 'string' ? [manifest.bin] : Object.values(manifest.bin ?? {});
    for (const bin of bins) {
      expect(existsSync(join(pkg, bin)), `bin ${bin}`).toBe(true);
      expect(readFileSync(join(pkg, bin), 'utf8').startsWith('#!'), `bin ${bin} starts with #!`).toBe(true);
    }
    const root = manifest.exports['.'] as Record<string, Record<string, string>>;
    for (const condition of ['import', 'require'] as const) {
      const entry = root[condition]!;
      expect(Object.keys(entry)[0], `exports["."].${condition}: types must come first`).toBe('types');
      for (const target of Object.values(entry)) expect(existsSync(join(pkg, target)), target).toBe(true);
    }
  });

  it('npm pack ships the builds, their types, the proto schema and the docs', async () => {
    const args = ['pack', '--dry-run', '--json', '--ignore-scripts'];
    const { stdout } = await run('npm', args, { cwd: pkg, timeout: 30_000 });
    const files = (JSON.parse(stdout) as Array<{ files: Array<{ path: string }> }>)[0]!.files.map((f) => f.path);
    const wanted = ['index.js', 'index.cjs', 'index.d.ts', 'index.d.cts'].map((f) => `dist/${f}`);
    for (const file of [...wanted, 'proto/konnectivity.proto', 'README.md', 'CHANGELOG.md']) {
      expect(files, file).toContain(file);
    }
  });

  it('loads with ESM import and CJS require by package name, with the same exports', async () => {
    // The same probe for both module systems; only the line that loads the package differs.
    const probe = (load: string): string => `${load}
const back = k.decodePacket(k.encodePacket(k.dataPacket(7n, new Uint8Array([1, 2, 3]))));
const err = new k.KonnectivityError(k.ErrorCode.PROTOCOL, 'x');
const [a, b] = k.createMemoryPair();
a.destroy();
b.destroy();
console.log(JSON.stringify({
  keys: Object.keys(k),
  roundTrip: String(back.data.connectID) + ':' + [...back.data.data].join(','),
  code: err instanceof Error ? err.code : 'not an Error',
}));
`;
    type Probe = { keys: string[]; roundTrip: string; code: string };
    const esm = await node<Probe>('esm.mjs', probe(`import * as k from '${NAME}';`));
    const cjs = await node<Probe>('cjs.cjs', probe(`const k = require('${NAME}');`));
    for (const result of [esm, cjs]) {
      for (const name of REQUIRED) expect(result.keys).toContain(name);
      expect(result.roundTrip).toBe('7:1,2,3');
      expect(result.code).toBe('ERR_PROTOCOL');
    }
    expect([...cjs.keys].sort()).toEqual([...esm.keys].sort());
  });

  it('exposes only the exports map: deep imports are refused, package.json is allowed', async () => {
    const result = await node<{ deep: string; manifest: string }>(
      'deep.cjs',
      `let deep = 'loaded';
try { require('${NAME}/dist/index.cjs'); } catch (e) { deep = e.code; }
console.log(JSON.stringify({ deep, manifest: require('${NAME}/package.json').name }));
`,
    );
    expect(result.deep).toBe('ERR_PACKAGE_PATH_NOT_EXPORTED');
    expect(result.manifest).toBe(NAME);
  });

  it('resolves types by package name for ESM and CJS TypeScript consumers', async () => {
    const use = `
const e: KonnectivityError = new KonnectivityError(ErrorCode.PROTOCOL, 'x');
const bytes: Uint8Array = encodePacket(dataPacket(1n, new Uint8Array(1)));
const p: Packet = decodePacket(bytes);
const pair: [PacketStream, PacketStream] = createMemoryPair();
export { e, p, pair };
`;
    const names = [
      'KonnectivityError',
      'ErrorCode',
      'encodePacket',
      'decodePacket',
      'dataPacket',
      'createMemoryPair',
      'type Packet',
      'type PacketStream',
    ].join(', ');
    writeFileSync(join(consumer, 'esm.mts'), `import { ${names} } from '${NAME}';\n${use}`);
    writeFileSync(join(consumer, 'cjs.cts'), `import { ${names} } from '${NAME}';\n${use}`);
    const args = [
      '--noEmit',
      '--skipLibCheck',
      '--strict',
      '--module',
      'nodenext',
      '--moduleResolution',
      'nodenext',
      '--target',
      'es2022',
      '--types',
      'node',
      '--typeRoots',
      join(ROOT, 'node_modules', '@types'),
      'esm.mts',
      'cjs.cts',
    ];
    const result = await run(join(ROOT, 'node_modules', '.bin', 'tsc'), args, { cwd: consumer, timeout: 60_000 }).then(
      () => '',
      (err: { stdout?: string; message: string }) => err.stdout || err.message,
    );
    expect(result).toBe('');
  });
});
