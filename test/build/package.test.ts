/**
 * The package as users get it. One tsup build (the project's own tsup.config.ts) into a temp package, `npm pack`,
 * and the tarball installed into a temp consumer project with `npm ci --offline`: its lockfile is derived from ours,
 * so the dependencies come from the npm cache that our own `npm ci` filled, and no network is needed. Then the
 * consumer uses the package by name, the way users do: every entry point with ESM `import` and CJS `require`,
 * TypeScript consumers of both kinds type-checked with `--strict` and nothing but `@types/node` beside the package,
 * and a server, an agent and a target run end to end through the subpaths.
 */
import { execFile } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { README_SNIPPET_OUTPUT, readmeFirstSnippet } from '../docs/readme-snippet.js';
import { closedPort } from '../helpers/sockets.js';

const run = promisify(execFile);
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const NAME = 'konnectivity-ts';

interface Manifest {
  name: string;
  version: string;
  main: string;
  module?: string;
  types: string;
  bin?: string | Record<string, string>;
  files: string[];
  exports: Record<string, string | Record<string, Record<string, string>>>;
  typesVersions?: Record<string, Record<string, string[]>>;
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
}
const manifest = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as Manifest;
/** The entry points: `.` and the subpaths (`./client`, `./transport/grpc`, ...). */
const ENTRY_POINTS = Object.keys(manifest.exports).filter((k) => k !== './package.json');
const SUBPATHS = ENTRY_POINTS.filter((e) => e !== '.');
/** Third-party packages that only some entry points may load (what a bare import costs is mostly these). */
const HEAVY = ['ws', 'yaml', 'prom-client'];

let temp: string;
/** The temp package: what package.json's "files" names (and npm adds), with a fresh dist/. */
let pkg: string;
/** The consumer project, with the tarball installed. */
let consumer: string;
/** What `npm pack` put in the tarball. */
let packed: string[];
/** The examples (folders of examples/ with an index.ts), copied into the consumer as examples/<name>.mts. */
const EXAMPLES = readdirSync(join(ROOT, 'examples'), { withFileTypes: true })
  .filter((d) => d.isDirectory() && existsSync(join(ROOT, 'examples', d.name, 'index.ts')))
  .map((d) => d.name);
/** Generous: the machine is small and shared, and these tsc runs check @types/node too. */
const TSC_TIMEOUT_MS = 240_000;
const PROCESSES_TIMEOUT_MS = 240_000;

/** Run `node file` in the consumer and parse the JSON it prints. */
async function node<T>(file: string, source: string): Promise<T> {
  writeFileSync(join(consumer, file), source);
  const { stdout } = await run(process.execPath, [file], { cwd: consumer, timeout: 120_000 });
  return JSON.parse(stdout) as T;
}

/** The same probe as ESM and as CJS: `body` sees `load(specifier)`, `isEsm`, and prints with `out(value)`. */
async function both<T>(name: string, body: string): Promise<{ esm: T; cjs: T }> {
  const esm = await node<T>(
    `${name}.mjs`,
    `import { createRequire } from 'node:module';\nconst require = createRequire(import.meta.url);\nconst isEsm = true;\nconst load = (s, o) => import(s, o);\nconst out = (v) => console.log(JSON.stringify(v));\n${body}\n`,
  );
  const cjs = await node<T>(
    `${name}.cjs`,
    `const isEsm = false;\nconst load = async (s) => require(s);\nconst out = (v) => console.log(JSON.stringify(v));\n(async () => {\n${body}\n})();\n`,
  );
  return { esm, cjs };
}

/**
 * package.json and package-lock.json of a consumer that depends on the tarball (and on `devDependencies` of ours,
 * e.g. @types/node), locked to the versions our lockfile has: the closure of those dependencies, copied entry by
 * entry at the same tree paths.
 */
function writeConsumerProject(dir: string, tarball: string, devDependencies: string[]): void {
  type Entry = { dependencies?: Record<string, string>; dev?: boolean; devOptional?: boolean; peer?: boolean } & Record<string, unknown>;
  const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, Entry> };
  // Where Node would find `name` from the package at tree path `from`: its own node_modules, then its parents'.
  const locate = (from: string, name: string): string => {
    for (let at = from; ; at = at.includes('/node_modules/') ? at.slice(0, at.lastIndexOf('/node_modules/')) : '') {
      const key = `${at ? `${at}/` : ''}node_modules/${name}`;
      if (lock.packages[key]) return key;
      if (!at) throw new Error(`package-lock.json has no ${name} for ${from || 'the root'}`);
    }
  };
  const packages: Record<string, Entry> = {};
  const add = (key: string, dev: boolean): void => {
    if (packages[key] && (dev || !packages[key].dev)) return;
    const { dev: _d, devOptional: _o, peer: _p, ...entry } = lock.packages[key]!;
    packages[key] = dev ? { ...entry, dev: true } : entry;
    for (const dep of Object.keys(entry.dependencies ?? {})) add(locate(key, dep), dev);
  };
  for (const dep of Object.keys(manifest.dependencies)) add(locate('', dep), false);
  for (const dep of devDependencies) add(locate('', dep), true);
  const dependencies = { [NAME]: `file:${tarball}` };
  const dev = Object.fromEntries(devDependencies.map((d) => [d, manifest.devDependencies[d]!]));
  const project = { name: 'consumer', version: '1.0.0', private: true, dependencies, devDependencies: dev };
  const self = { version: manifest.version, resolved: `file:${tarball}`, dependencies: manifest.dependencies };
  const lockfile = {
    name: 'consumer',
    version: '1.0.0',
    lockfileVersion: 3,
    requires: true,
    packages: { '': { name: 'consumer', version: '1.0.0', dependencies, devDependencies: dev }, [`node_modules/${NAME}`]: self, ...packages },
  };
  writeFileSync(join(dir, 'package.json'), JSON.stringify(project, null, 2));
  writeFileSync(join(dir, 'package-lock.json'), JSON.stringify(lockfile, null, 2));
}

beforeAll(async () => {
  temp = mkdtempSync(join(tmpdir(), 'konnectivity-build-'));
  pkg = join(temp, 'pkg');
  consumer = join(temp, 'consumer');
  mkdirSync(pkg);
  mkdirSync(consumer);
  for (const file of manifest.files) {
    if (file !== 'dist') cpSync(join(ROOT, file), join(pkg, file), { recursive: true });
  }
  // And what npm adds by itself.
  for (const file of ['package.json', 'LICENSE']) copyFileSync(join(ROOT, file), join(pkg, file));
  // Build with the project's config, but into the temp package so the working tree's dist/ is never touched.
  await run(join(ROOT, 'node_modules', '.bin', 'tsup'), ['--out-dir', join(pkg, 'dist')], { cwd: ROOT, timeout: 400_000 });
  const { stdout } = await run('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', temp], { cwd: pkg, timeout: 60_000 });
  const [info] = JSON.parse(stdout) as Array<{ filename: string; files: Array<{ path: string }> }>;
  packed = info!.files.map((f) => f.path);
  writeConsumerProject(consumer, join(temp, info!.filename), ['@types/node']);
  await run('npm', ['ci', '--offline', '--ignore-scripts', '--no-audit', '--no-fund'], { cwd: consumer, timeout: 120_000 });
  // As a user who copied them into a project of their own. .mts: they are ES modules (top-level await), and the
  // consumer's package.json has no "type".
  mkdirSync(join(consumer, 'examples'));
  for (const name of EXAMPLES) copyFileSync(join(ROOT, 'examples', name, 'index.ts'), join(consumer, 'examples', `${name}.mts`));
}, 600_000);

afterAll(() => {
  if (temp) rmSync(temp, { recursive: true, force: true });
});

/** The entry points the layout calls for: the root, each folder of src/ but cli/, and each transport adapter. */
function layoutEntryPoints(): string[] {
  const folders = (dir: string): string[] =>
    readdirSync(join(ROOT, 'src', dir), { withFileTypes: true })
      .filter((d) => d.isDirectory() && existsSync(join(ROOT, 'src', dir, d.name, 'index.ts')))
      .map((d) => (dir ? `${dir}/${d.name}` : d.name));
  return ['.', ...[...folders(''), ...folders('transport')].filter((f) => f !== 'cli').map((f) => `./${f}`)];
}

describe('package.json', () => {
  it('has one entry point per folder of src/ and per transport, ESM and CJS, types first in every condition', () => {
    const missing = layoutEntryPoints().filter((e) => !ENTRY_POINTS.includes(e));
    const stale = ENTRY_POINTS.filter((e) => !layoutEntryPoints().includes(e));
    // The build (tsup.config.ts) and typesVersions follow "exports"; a new src/<folder>/index.ts needs a line there.
    expect({ missing, stale }, 'package.json "exports" and "typesVersions" vs the folders of src/').toEqual({ missing: [], stale: [] });
    for (const entry of ENTRY_POINTS) {
      const conditions = manifest.exports[entry] as Record<string, Record<string, string>>;
      expect(Object.keys(conditions), entry).toEqual(['import', 'require']);
      for (const kind of ['import', 'require'] as const) {
        expect(Object.keys(conditions[kind]!), `exports["${entry}"].${kind}`).toEqual(['types', 'default']);
      }
    }
  });

  it('points TypeScript without "exports" support (moduleResolution node10) at each subpath\'s types', () => {
    const mapped = manifest.typesVersions?.['*'] ?? {};
    for (const entry of SUBPATHS) {
      const types = (manifest.exports[entry] as Record<string, Record<string, string>>).import!.types!;
      expect(mapped[entry.slice(2)], entry).toEqual([types]);
    }
  });

  it('needs no gRPC library at run time (grpc-js is a test peer only)', () => {
    expect(Object.keys(manifest.dependencies)).not.toContain('@grpc/grpc-js');
  });
});

describe('the packed tarball', () => {
  it('holds every entry point\'s ESM, CJS and types, the command-line programs, the proto schema and the docs', () => {
    const targets = ENTRY_POINTS.flatMap((e) => Object.values(manifest.exports[e] as Record<string, Record<string, string>>).flatMap(Object.values));
    const bins = typeof manifest.bin === 'string' ? [manifest.bin] : Object.values(manifest.bin ?? {});
    const fields = [manifest.main, manifest.module, manifest.types].filter((f): f is string => !!f);
    for (const file of [...targets, ...bins, ...fields, 'proto/konnectivity.proto', 'README.md', 'CHANGELOG.md', 'LICENSE', 'package.json']) {
      expect(packed, file).toContain(file.replace(/^\.\//, ''));
    }
    for (const bin of bins) expect(readFileSync(join(pkg, bin), 'utf8').startsWith('#!'), `bin ${bin} starts with #!`).toBe(true);
    expect(packed.filter((f) => /^(src|test|examples|bench)\//.test(f))).toEqual([]);
  });

  it('publishes no @internal members and no third-party types the consumer must install (ws)', () => {
    const dts = packed.filter((f) => /\.d\.c?ts$/.test(f)).map((f) => readFileSync(join(pkg, f), 'utf8'));
    expect(dts.length).toBeGreaterThan(ENTRY_POINTS.length);
    const all = dts.join('\n');
    expect(all).not.toMatch(/@internal/);
    // Bare imports of the declarations: node built-ins and the dependencies that ship their own types.
    const imported = new Set([...all.matchAll(/from '([^'.][^']*)'/g)].map((m) => m[1]!));
    const allowed = (s: string): boolean => s.startsWith('node:') || s === 'prom-client';
    expect([...imported].filter((s) => !allowed(s))).toEqual([]);
  });

  it('installs into a project with its runtime dependencies only', () => {
    const installed = join(consumer, 'node_modules');
    expect(existsSync(join(installed, NAME, 'dist', 'index.js'))).toBe(true);
    for (const dep of Object.keys(manifest.dependencies)) expect(existsSync(join(installed, dep)), dep).toBe(true);
    for (const absent of ['@grpc/grpc-js', '@types/ws', 'protobufjs', 'typescript']) {
      expect(existsSync(join(installed, absent)), absent).toBe(false);
    }
  });
});

// Each test starts Node processes (or tsc); generous limits, since the machine is small and shared.
describe('the installed package, by name', { timeout: PROCESSES_TIMEOUT_MS }, () => {
  it('loads every entry point with import and require, the same names both ways; the root has every name', async () => {
    const { esm, cjs } = await both<Record<string, string[]>>(
      'names',
      `const names = {};
for (const entry of ${JSON.stringify(ENTRY_POINTS)}) names[entry] = Object.keys(await load('${NAME}' + entry.slice(1))).sort();
out(names);`,
    );
    expect(cjs).toEqual(esm);
    const root = esm['.']!;
    for (const name of ['encodePacket', 'decodePacket', 'createMemoryPair', 'KonnectivityError', 'ProxyServer', 'Agent']) {
      expect(root).toContain(name);
    }
    // The root re-exports every folder's barrel and adds nothing.
    const union = new Set(SUBPATHS.flatMap((e) => esm[e]!));
    expect(root).toEqual([...union].sort());
    for (const entry of SUBPATHS) expect(esm[entry]!.length, entry).toBeGreaterThan(0);
  });

  it('holds one copy of each class and function whichever entry point it comes from, in ESM and in CJS', async () => {
    const { esm, cjs } = await both<{ notSame: string[]; noAgent: [string, boolean, boolean]; closed: [string, boolean] }>(
      'identity',
      `const root = await load('${NAME}');
const notSame = [];
for (const entry of ${JSON.stringify(SUBPATHS)}) {
  const mod = await load('${NAME}' + entry.slice(1));
  for (const [name, value] of Object.entries(mod)) if (root[name] !== value) notSame.push(entry + ':' + name);
}
const { KonnectivityError } = await load('${NAME}/protocol');
const { ProxyServer } = await load('${NAME}/server');
const { dialOverStream } = await load('${NAME}/client');
const { createMemoryPair } = await load('${NAME}/transport/memory');
const server = new ProxyServer({ serverID: 's' });
const e1 = await server.dial('127.0.0.1:9').catch((e) => e);
const [a, b] = createMemoryPair();
b.destroy();
const e2 = await dialOverStream(a, '127.0.0.1:9').catch((e) => e);
await server.close();
out({
  notSame,
  noAgent: [e1.code, e1 instanceof KonnectivityError, e1 instanceof root.KonnectivityError],
  closed: [e2.code, e2 instanceof KonnectivityError],
});`,
    );
    for (const result of [esm, cjs]) {
      expect(result.notSame).toEqual([]);
      expect(result.noAgent).toEqual(['ERR_NO_AGENT', true, true]);
      expect(result.closed).toEqual(['ERR_TUNNEL_CLOSED', true]);
    }
  });

  it(`a bare import of a subpath loads none of ${HEAVY.join(', ')} (the root and ops may); ws loads when a WebSocket carrier is used`, async () => {
    const refused = await closedPort();
    const { esm, cjs } = await both<{ loaded: Record<string, string[]>; ws: string[] }>(
      'cost',
      `const { execFileSync } = await load('node:child_process');
// A fresh process per entry point: what a bare import (or require) of it loads from node_modules.
const report = 'console.log(JSON.stringify(Object.keys(require.cache)))';
const probe = (s) => (isEsm ? \`import('\${s}').then(() => \${report})\` : \`require('\${s}'); \${report}\`);
const loaded = {};
for (const entry of ${JSON.stringify(ENTRY_POINTS)}) {
  const files = JSON.parse(execFileSync(process.execPath, ['-e', probe('${NAME}' + entry.slice(1))], { encoding: 'utf8' }));
  loaded[entry] = ${JSON.stringify(HEAVY)}.filter((p) => files.some((f) => f.includes('/node_modules/' + p + '/')));
}
const { webSocketCarrier } = await load('${NAME}/transport/yamux');
const err = await webSocketCarrier('ws://127.0.0.1:${refused}')({ signal: new AbortController().signal }).catch((e) => e);
const ws = Object.keys(require.cache).some((f) => f.includes('/node_modules/ws/')) ? ['ws loaded'] : [];
out({ loaded, ws: [...ws, err.code, err.message] });`,
    );
    for (const result of [esm, cjs]) {
      for (const entry of SUBPATHS.filter((e) => e !== './ops')) expect(result.loaded[entry], entry).toEqual([]);
      expect(result.loaded['./ops']).toEqual(['prom-client']);
      expect(result.ws).toEqual(['ws loaded', 'ERR_TUNNEL_CLOSED', expect.stringMatching(/^yamux: WebSocket connect failed: .*ECONNREFUSED/)]);
    }
  });

  it('refuses deep imports (only the exports map), allows package.json', async () => {
    const { esm, cjs } = await both<{ deep: string; manifest: string }>(
      'deep',
      `let deep = 'loaded';
try { await load('${NAME}/dist/index.cjs'); } catch (e) { deep = e.code; }
const json = await load('${NAME}/package.json', { with: { type: 'json' } });
out({ deep, manifest: (json.default ?? json).name });`,
    );
    for (const result of [esm, cjs]) expect(result).toEqual({ deep: 'ERR_PACKAGE_PATH_NOT_EXPORTED', manifest: NAME });
  });

  it('type-checks ESM (.mts), CJS (.cts) and node10 consumers and the copied examples with --strict, with @types/node alone beside it', async () => {
    // Every entry point, and types that must be one and the same whichever entry point names them (a class with
    // private members is nominal: two copies of its declaration would not be assignable to each other).
    const use = `import { once } from 'node:events';
import { ErrorCode, KonnectivityError, dataPacket, decodePacket, encodePacket, type Packet } from '${NAME}/protocol';
import type { Listener, PacketStream, TunnelConnector } from '${NAME}/transport';
import { createMemoryPair, memoryConnector } from '${NAME}/transport/memory';
import { createGrpcServer, grpcAgentConnector, type GrpcServer } from '${NAME}/transport/grpc';
import { createYamuxServer, tcpCarrier, webSocketCarrier, yamuxAgentConnector, type WebSocketCarrierOptions } from '${NAME}/transport/yamux';
import { TunnelSocket } from '${NAME}/tunnel';
import { ProxyServer, createHttpConnectFrontend } from '${NAME}/server';
import { Agent, AgentClientSet, ServerTunnels } from '${NAME}/agent';
import { GrpcProxyClient, dialOverStream } from '${NAME}/client';
import { instrumentServer } from '${NAME}/ops';
import * as root from '${NAME}';

const e: KonnectivityError = new root.KonnectivityError(ErrorCode.PROTOCOL, 'x');
const p: Packet = decodePacket(encodePacket(dataPacket(1n, new Uint8Array(1))));
const pair: [PacketStream, PacketStream] = createMemoryPair();
const server: root.ProxyServer = new ProxyServer({ serverID: 's' });
const agent: Agent = new root.Agent({ agentID: 'a' });
const connector: TunnelConnector = memoryConnector((incoming) => void server.acceptAgent(incoming));
const wsOptions: WebSocketCarrierOptions = { headers: { authorization: 'Bearer x' }, ca: 'PEM', handshakeTimeout: 1000 };
const carriers = [tcpCarrier({ port: 1 }), webSocketCarrier('ws://127.0.0.1:1', wsOptions)];
async function main(): Promise<void> {
  const connected: Promise<unknown[]> = once(server, 'agentConnected');
  await agent.connect(connector);
  await connected;
  const socket: root.TunnelSocket = await server.dial('127.0.0.1:80');
  const viaStream: TunnelSocket = await dialOverStream(pair[0], '127.0.0.1:80');
  const grpc: GrpcServer = await createGrpcServer({ port: 0, agent: (i) => server.acceptAgent(i) });
  const frontend = createHttpConnectFrontend({ server });
  const yamuxServer = createYamuxServer({ onTunnel: (i) => void server.acceptAgent(i) });
  const unbound: Listener[] = [frontend, yamuxServer];
  await Promise.all(unbound.map((l) => l.listen({ port: 0 })));
  const listeners: Listener[] = [grpc, ...unbound];
  // AgentClientSet is the former name of ServerTunnels, the same class.
  const set: ServerTunnels = new AgentClientSet(agent, { connector: grpcAgentConnector({ address: '127.0.0.1:' + grpc.port }) });
  const client = new GrpcProxyClient({ address: '127.0.0.1:1' });
  const yamux = yamuxAgentConnector({ connect: carriers[0]! });
  instrumentServer(server);
  socket.end();
  viaStream.destroy(e);
  await Promise.all(listeners.map((l) => l.close({ graceMs: 0 })));
  void [set, client, yamux, p];
}
export { main };
`;
    writeFileSync(join(consumer, 'esm.mts'), use);
    writeFileSync(join(consumer, 'cjs.cts'), use);
    // Old-style CJS projects (module commonjs resolves like node10 and reads no "exports"): typesVersions.
    writeFileSync(join(consumer, 'node10.ts'), use);
    const tsc = (args: string[]): Promise<string> =>
      run(join(ROOT, 'node_modules', '.bin', 'tsc'), ['--noEmit', '--strict', '--target', 'es2022', '--types', 'node', ...args], {
        cwd: consumer,
        timeout: TSC_TIMEOUT_MS,
      }).then(
        () => '',
        (err: { stdout?: string; message: string }) => err.stdout || err.message,
      );
    // No --skipLibCheck: the published declarations are checked too, and must resolve without @types/ws.
    // The yamux example also imports `ws` itself, whose types a user would add (@types/ws) for it.
    const examples = EXAMPLES.filter((n) => n !== 'yamux').map((n) => `examples/${n}.mts`);
    expect(await tsc(['--module', 'nodenext', '--moduleResolution', 'nodenext', 'esm.mts', 'cjs.cts', ...examples])).toBe('');
    expect(await tsc(['--module', 'commonjs', '--moduleResolution', 'node10', '--esModuleInterop', 'node10.ts'])).toBe('');
  }, 2 * TSC_TIMEOUT_MS);

  it('runs the examples as a user who copied them into a project of their own', async () => {
    expect(EXAMPLES).toContain('quickstart');
    // Through our tsx, from the consumer: no tsconfig "paths" there, so the names resolve to the installed package.
    const tsx = pathToFileURL(join(ROOT, 'node_modules', 'tsx', 'dist', 'loader.mjs')).href;
    for (const name of ['quickstart', 'yamux']) {
      const { stdout, stderr } = await run(process.execPath, ['--import', tsx, `examples/${name}.mts`], { cwd: consumer, timeout: 60_000 });
      expect({ name, stderr, done: /done( in [\d.]+ s)?\n$/.test(stdout) }).toEqual({ name, stderr: '', done: true });
    }
  });

  it("runs the README's first snippet verbatim: it prints the reply through the tunnel", async () => {
    writeFileSync(join(consumer, 'readme.mts'), readmeFirstSnippet(ROOT));
    const tsx = pathToFileURL(join(ROOT, 'node_modules', 'tsx', 'dist', 'loader.mjs')).href;
    const { stdout, stderr } = await run(process.execPath, ['--import', tsx, 'readme.mts'], { cwd: consumer, timeout: 60_000 });
    expect(stderr).toBe('');
    expect(stdout).toMatch(README_SNIPPET_OUTPUT);
  });

  it('runs a server, an agent and a target end to end from the subpaths: http.get and fetch through server.dial()', async () => {
    const { esm, cjs } = await both<{ status: number; body: string; fetched: [number, string]; refused: [string, string] }>(
      'e2e',
      `const http = await load('node:http');
const { ProxyServer } = await load('${NAME}/server');
const { Agent } = await load('${NAME}/agent');
const { memoryConnector } = await load('${NAME}/transport/memory');
const target = http.createServer((req, res) => res.end('hello from behind the tunnel, you asked for ' + req.url));
await new Promise((resolve) => target.listen(0, '127.0.0.1', resolve));
const address = '127.0.0.1:' + target.address().port;
const server = new ProxyServer({ serverID: 'server-1' });
const agent = new Agent({ agentID: 'node-1' });
await agent.connect(memoryConnector((incoming) => void server.acceptAgent(incoming)));
const got = await new Promise((resolve, reject) => {
  const createConnection = (_options, callback) => void server.dial(address).then((s) => callback(null, s), callback);
  http.get('http://' + address + '/through-dial', { agent: false, createConnection }, (res) => {
    let body = '';
    res.setEncoding('utf8').on('data', (s) => (body += s)).on('end', () => resolve({ status: res.statusCode, body }));
  }).on('error', reject);
});
const { createDialDispatcher } = await load('${NAME}/client');
const dispatcher = createDialDispatcher({ dial: (a, o) => server.dial(a, o) });
const res = await fetch('http://' + address + '/through-fetch', { dispatcher });
const fetched = [res.status, await res.text()];
// A port nobody listens on (fetch refuses port 1 itself, as a "bad port").
const closed = http.createServer();
await new Promise((resolve) => closed.listen(0, '127.0.0.1', resolve));
const closedPort = closed.address().port;
await new Promise((resolve) => closed.close(resolve));
const err = await fetch('http://127.0.0.1:' + closedPort + '/', { dispatcher }).catch((e) => e);
await dispatcher.close();
await agent.close();
await server.close();
await new Promise((resolve) => target.close(resolve));
out({ ...got, fetched, refused: [err.message, err.cause.message.replace(':' + closedPort + ':', ':PORT:')] });`,
    );
    for (const result of [esm, cjs]) {
      expect(result.status).toBe(200);
      expect(result.body).toBe('hello from behind the tunnel, you asked for /through-dial');
      expect(result.fetched).toEqual([200, 'hello from behind the tunnel, you asked for /through-fetch']);
      expect(result.refused).toEqual(['fetch failed', 'dial tcp 127.0.0.1:PORT: connect: connection refused']);
    }
  });
});
