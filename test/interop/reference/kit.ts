/**
 * The Go reference peer kit (../shared/peer, installed into `.peer/` by its install.sh) as a test fixture: start the
 * real proxy-server and proxy-agent, or ours, with the same flags; a loopback target; konnbench (the reference's
 * konnectivity-client) and our own client through any frontend; readiness, health and metrics of every process.
 * Every process a fixture starts is stopped after the test (or the file), pass or fail.
 *
 *   const fx = useKit();                                   // hooks: stop everything after each test
 *   const target = await fx.target();
 *   const server = await fx.server('ts', { frontend: 'grpc-uds' });
 *   const agent = await fx.agent('go', { server });
 *   await server.waitReady();
 *   expect((await fx.konnbench(server, target, ['-test', 'smoke'])).ok).toBe(true);
 *
 * Without the kit, {@link describeKit} skips (one line on stderr says how to get it); with
 * KONNECTIVITY_REQUIRE_INTEROP=1 importing this module fails instead.
 */
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import type { Duplex } from 'node:stream';
import { afterAll, afterEach, beforeAll, beforeEach, describe } from 'vitest';
import type { KonnbenchResult as KonnbenchLine } from '../../../bench/lib/konnbench.js';
import { GrpcProxyClient } from '../../../src/client/grpc-client.js';
import { connectViaHttpProxy } from '../../../src/client/http-connect.js';
import { TunnelSocket } from '../../../src/tunnel/tunnel-socket.js';
import { expectNoLeaks, snapshotResources, type ResourceSnapshot } from '../../helpers/leaks.js';
import { ROOT, findShared } from '../../helpers/shared.js';
import { httpGet, startProcess, startProgram, type Program } from '../../integration/cli/processes.js';
import { parsePrometheusText } from '../../integration/ops/prom-text.js';

// ---- the kit ------------------------------------------------------------------------------------------------

/** An installed kit: the four binaries and the test PKI. */
export interface PeerKit {
  dir: string;
  bin: { proxyServer: string; proxyAgent: string; konnbench: string; target: string };
  /** PEM files: `server` has SAN IP:127.0.0.1 and DNS:localhost; `agent` and `client` are client certificates. */
  certs: Record<'ca' | 'serverCert' | 'serverKey' | 'agentCert' | 'agentKey' | 'clientCert' | 'clientKey', string>;
}

const REQUIRED = process.env['KONNECTIVITY_REQUIRE_INTEROP'] === '1';

function locateKit(): { kit: PeerKit | undefined; missing: string | undefined } {
  const dir = process.env['KONNECTIVITY_PEER_DIR'] ?? join(ROOT, '.peer');
  const b = (f: string): string => join(dir, 'bin', f);
  const c = (f: string): string => join(dir, 'certs', f);
  const kit: PeerKit = {
    dir,
    bin: { proxyServer: b('proxy-server'), proxyAgent: b('proxy-agent'), konnbench: b('konnbench'), target: b('target') },
    certs: {
      ca: c('ca.crt'),
      serverCert: c('server.crt'),
      serverKey: c('server.key'),
      agentCert: c('agent.crt'),
      agentKey: c('agent.key'),
      clientCert: c('client.crt'),
      clientKey: c('client.key'),
    },
  };
  if ([...Object.values(kit.bin), ...Object.values(kit.certs)].every((f) => existsSync(f))) return { kit, missing: undefined };
  const shared = findShared('peer', process.env['KONNECTIVITY_PEER_KIT']);
  const how = shared
    ? `run ${relative(ROOT, join(shared, 'install.sh'))} .peer`
    : 'get shared/peer (the Go reference peer kit) beside this checkout and run ../shared/peer/install.sh .peer';
  const where = dir.startsWith(`${ROOT}/`) ? relative(ROOT, dir) : dir;
  return { kit: undefined, missing: `the Go reference peer kit is not installed in ${where}/: ${how}` };
}

const located = locateKit();
/** The installed kit, or undefined (then {@link kitMissing} says why and how to install it). */
export const kit: PeerKit | undefined = located.kit;
/** Why the kit cannot be used, with the command that installs it; undefined when it is installed. */
export const kitMissing: string | undefined = located.missing;
if (kitMissing && REQUIRED) throw new Error(`KONNECTIVITY_REQUIRE_INTEROP=1 but ${kitMissing}`);

/** The kit, or a throw (for code that only runs when {@link describeKit} did not skip). */
function theKit(): PeerKit {
  if (!kit) throw new Error(kitMissing);
  return kit;
}

/**
 * `describe`, skipped when the kit is missing. The reason is printed once per test run (not once per file), so a
 * fresh clone's `npm test` shows one line saying how to get the kit.
 */
export function describeKit(name: string, fn: () => void): void {
  if (kitMissing) noteSkipOnce();
  describe.skipIf(kitMissing !== undefined)(name, fn);
}

function noteSkipOnce(): void {
  // Test files run in forked workers of one vitest process: the first to create the marker prints the line.
  const marker = join(tmpdir(), `konnectivity-ts-reference-skip-${process.ppid}`);
  try {
    closeSync(openSync(marker, 'wx'));
  } catch {
    return;
  }
  process.stderr.write(`SKIPPED test/interop/reference: ${kitMissing}\n`);
}

// ---- processes ----------------------------------------------------------------------------------------------

/** Which implementation: the Go reference or konnectivity-ts. */
export type Impl = 'go' | 'ts';

/** The four frontends: gRPC or HTTP-CONNECT, over a Unix socket (plaintext) or TCP with mTLS. */
export type Frontend = 'grpc-uds' | 'http-connect-uds' | 'grpc-mtls' | 'http-connect-mtls';
export const FRONTENDS: readonly Frontend[] = ['grpc-uds', 'http-connect-uds', 'grpc-mtls', 'http-connect-mtls'];

/**
 * A TCP port free on 127.0.0.1 right now, for programs that cannot listen on port 0 and say which port they got.
 * The Go server refuses ports above 49151 ("please do not try to use ephemeral port"), and the kernel hands out
 * ports from 32768 for port 0 and outgoing connections, so this picks at random below both.
 */
export async function freePort(): Promise<number> {
  for (;;) {
    const port = 20_000 + Math.floor(Math.random() * 12_768);
    const s = net.createServer();
    const ok = await new Promise<boolean>((resolve) => {
      s.once('error', () => resolve(false));
      s.listen(port, '127.0.0.1', () => resolve(true));
    });
    if (ok) await new Promise<void>((resolve) => s.close(() => resolve()));
    if (ok) return port;
  }
}

/** HTTP GET status and body. */
export interface HttpAnswer {
  status: number;
  body: string;
}

/** A running proxy server, Go or ours. */
export interface ServerProcess {
  readonly impl: Impl;
  readonly frontend: Frontend;
  readonly serverID: string;
  readonly program: Program;
  /** Agent, health and admin ports; `frontend` for the mTLS frontends. */
  readonly ports: { agent: number; health: number; admin: number; frontend?: number };
  /** The frontend's Unix socket, for the UDS frontends. */
  readonly uds?: string;
  /** GET a path on the health (default) or admin port. */
  get(path: string, on?: 'health' | 'admin'): Promise<HttpAnswer>;
  /** Resolve once /readyz answers 200 (an agent is connected). */
  waitReady(timeoutMs?: number): Promise<void>;
  /** The admin port's /metrics, parsed (`name{labels}` -> value). */
  metrics(): Promise<Map<string, number>>;
  /** konnbench's flags that reach this server's frontend. */
  konnbenchArgs(): string[];
  /** Our client through the frontend: a connection to `target` (a TunnelSocket or a net.Socket). */
  dial(target: string): Promise<Duplex>;
  /** SIGTERM and wait for the exit. */
  stop(): Promise<number | NodeJS.Signals>;
  /** SIGKILL and wait for the exit. */
  kill(): Promise<void>;
}

/** A running agent, Go or ours. */
export interface AgentProcess {
  readonly impl: Impl;
  readonly agentID: string;
  readonly program: Program;
  readonly ports: { health: number; admin: number };
  /** GET a path on the health (default) or admin port. */
  get(path: string, on?: 'health' | 'admin'): Promise<HttpAnswer>;
  /** The health port's /metrics, parsed. */
  metrics(): Promise<Map<string, number>>;
  /** `konnectivity_network_proxy_agent_open_server_connections`: how many tunnels the agent holds. */
  openServerConnections(): Promise<number>;
  /** `konnectivity_network_proxy_agent_open_endpoint_connections`: connections it carries now. */
  openEndpointConnections(): Promise<number>;
  /** Resolve once the agent holds `count` tunnels (by its metrics). */
  waitServerConnections(count: number, timeoutMs?: number): Promise<void>;
  /**
   * The first SIGTERM: the agent will send DRAIN and keeps serving. Resolves once the agent has taken the signal:
   * ours has sent DRAIN by then; the Go agent sends it on each tunnel when the next packet from that server arrives.
   */
  drain(): Promise<void>;
  /** SIGTERM until it exits (the second one stops an agent); resolves with the exit code. */
  stop(): Promise<number | NodeJS.Signals>;
  /** SIGKILL and wait for the exit. */
  kill(): Promise<void>;
}

/** Options of a server. */
export interface ServerOptions {
  frontend: Frontend;
  serverID?: string;
  serverCount?: number;
  /** A fixed agent port (a restarted server keeps its port); default: a free one. */
  agentPort?: number;
  /** Log verbosity (`-v`); default 2 for ours, 0 for Go (whose -v 4 logs every packet). */
  v?: number;
  /** More flags, appended. */
  args?: readonly string[];
}

/** Options of an agent. */
export interface AgentOptions {
  /** Where to connect: a server of this fixture or a host:port (a load balancer). */
  server: ServerProcess | { host: string; port: number };
  agentID?: string;
  /** `--agent-identifiers`, e.g. `ipv4=127.0.0.1`. */
  identifiers?: string;
  /** Log verbosity (`-v`); default 2 (agents and tunnels; the Go agent's drain line is at 2, per packet at 4). */
  v?: number;
  args?: readonly string[];
}

/** The line a konnbench run prints (the bench reads the same line), and konnbench's exit code. */
export interface KonnbenchResult extends KonnbenchLine {
  exitCode: number | NodeJS.Signals;
}

/** The loopback target (the kit's `target` program: ops U, D, P, E, see the kit's README). */
export interface TargetProcess {
  readonly address: string;
  readonly program: Program;
}

const GO_START_ATTEMPTS = 3;
let sequence = 0;

/** What one fixture started; `stopAll` ends it all. */
class Fixture {
  readonly dir = mkdtempSync(join(tmpdir(), 'kts-ref-'));
  private readonly programs: Program[] = [];
  private readonly clients = new Set<GrpcProxyClient>();
  private readonly cleanups: Array<() => unknown> = [];

  /** Run `fn` when the fixture stops (before its processes are killed), e.g. to close a load balancer. */
  defer(fn: () => unknown): void {
    this.cleanups.push(fn);
  }

  async stopAll(): Promise<void> {
    for (const fn of this.cleanups.splice(0).reverse()) await fn();
    for (const c of this.clients) c.destroy();
    this.clients.clear();
    await Promise.all(this.programs.splice(0).map((p) => p.kill()));
    rmSync(this.dir, { recursive: true, force: true });
  }

  private track(p: Program): Program {
    this.programs.push(p);
    return p;
  }

  /** Start the kit's target on a port it picks. */
  async target(): Promise<TargetProcess> {
    const program = this.track(startProcess('target', theKit().bin.target, ['-listen', '127.0.0.1:0']));
    const line = await program.waitFor(/target listening on/);
    return { address: /(127\.0\.0\.1:\d+)/.exec(line)![1]!, program };
  }

  /** Start a proxy server (Go or ours) with the given frontend, an mTLS agent leg and loopback-only listeners. */
  async server(impl: Impl, o: ServerOptions): Promise<ServerProcess> {
    const k = theKit();
    const serverID = o.serverID ?? `${impl}-server-${++sequence}`;
    const mode = o.frontend.startsWith('grpc') ? 'grpc' : 'http-connect';
    const uds = o.frontend.endsWith('-uds') ? join(this.dir, `${serverID}.sock`) : undefined;
    const common = (ports: { agent: number; health: number; admin: number; frontend: number }): string[] => [
      `--mode=${mode}`,
      ...(uds
        ? [`--uds-name=${uds}`, '--delete-existing-uds-file', '--server-port=0']
        : [`--server-port=${ports.frontend}`, '--server-bind-address=127.0.0.1', `--server-cert=${k.certs.serverCert}`, `--server-key=${k.certs.serverKey}`, `--server-ca-cert=${k.certs.ca}`]),
      `--cluster-cert=${k.certs.serverCert}`,
      `--cluster-key=${k.certs.serverKey}`,
      `--cluster-ca-cert=${k.certs.ca}`,
      `--agent-port=${ports.agent}`,
      '--agent-bind-address=127.0.0.1',
      `--health-port=${ports.health}`,
      '--health-bind-address=127.0.0.1',
      `--admin-port=${ports.admin}`,
      '--admin-bind-address=127.0.0.1',
      `--server-id=${serverID}`,
      `--server-count=${o.serverCount ?? 1}`,
      `--v=${o.v ?? (impl === 'go' ? 0 : 2)}`,
      ...(o.args ?? []),
    ];
    let program: Program;
    let ports: { agent: number; health: number; admin: number; frontend?: number };
    if (impl === 'ts') {
      program = this.track(startProgram('konnectivity-server', common({ agent: o.agentPort ?? 0, health: 0, admin: 0, frontend: 0 })));
      const p = await program.ports([`frontend-${mode}`, 'agent', 'health', 'admin']);
      ports = { agent: p['agent']!, health: p['health']!, admin: p['admin']!, ...(uds ? {} : { frontend: p[`frontend-${mode}`]! }) };
    } else {
      ({ program, ports } = await this.startGo(`proxy-server ${serverID}`, k.bin.proxyServer, async () => {
        const picked = { agent: o.agentPort ?? (await freePort()), health: await freePort(), admin: await freePort(), frontend: uds ? 0 : await freePort() };
        return { args: common(picked), ports: uds ? { agent: picked.agent, health: picked.health, admin: picked.admin } : picked, probe: picked.health };
      }));
    }
    return this.serverHandle(impl, o.frontend, serverID, program, ports, uds);
  }

  /** Start an agent (Go or ours) with mTLS to `o.server`. */
  async agent(impl: Impl, o: AgentOptions): Promise<AgentProcess> {
    const k = theKit();
    const agentID = o.agentID ?? `${impl}-agent-${++sequence}`;
    const to = 'serverID' in o.server ? { host: '127.0.0.1', port: o.server.ports.agent } : o.server;
    const common = (health: number, admin: number): string[] => [
      `--proxy-server-host=${to.host}`,
      `--proxy-server-port=${to.port}`,
      `--ca-cert=${k.certs.ca}`,
      `--agent-cert=${k.certs.agentCert}`,
      `--agent-key=${k.certs.agentKey}`,
      `--agent-id=${agentID}`,
      ...(o.identifiers ? [`--agent-identifiers=${o.identifiers}`] : []),
      '--health-server-host=127.0.0.1',
      `--health-server-port=${health}`,
      '--admin-bind-address=127.0.0.1',
      `--admin-server-port=${admin}`,
      // Reconnect fast after a server restart (the defaults back off to 10 s).
      '--sync-interval=100ms',
      '--sync-interval-cap=1s',
      `--v=${o.v ?? 2}`,
      ...(o.args ?? []),
    ];
    let program: Program;
    let ports: { health: number; admin: number };
    if (impl === 'ts') {
      program = this.track(startProgram('konnectivity-agent', common(0, 0)));
      const p = await program.ports(['health', 'admin']);
      ports = { health: p['health']!, admin: p['admin']! };
    } else {
      ({ program, ports } = await this.startGo(`proxy-agent ${agentID}`, k.bin.proxyAgent, async () => {
        const picked = { health: await freePort(), admin: await freePort() };
        return { args: common(picked.health, picked.admin), ports: picked, probe: picked.health };
      }));
    }
    return agentHandle(impl, agentID, program, ports);
  }

  /** Run konnbench against `server`'s frontend; resolves with its result line (whatever the exit code). */
  async konnbench(server: ServerProcess, target: TargetProcess, args: readonly string[]): Promise<KonnbenchResult> {
    const program = this.track(
      startProcess('konnbench', theKit().bin.konnbench, [...server.konnbenchArgs(), '-target', target.address, '-timeout', '120s', ...args]),
    );
    const exitCode = await program.exited;
    const line = program.output().split('\n').find((l) => l.startsWith('{'));
    if (!line) throw new Error(`konnbench printed no result (exit ${exitCode}):\n${program.output()}`);
    return { ...(JSON.parse(line) as KonnbenchLine), exitCode };
  }

  /** Register a client so a failed test cannot leave it open. */
  grpcClient(options: ConstructorParameters<typeof GrpcProxyClient>[0]): GrpcProxyClient {
    const c = new GrpcProxyClient(options);
    this.clients.add(c);
    return c;
  }

  /**
   * Start a Go program on ports picked free just before; if it lost a port to another process in between, try
   * again with new ports. Resolves once `probe` (its health port) answers.
   */
  private async startGo<P>(name: string, bin: string, pick: () => Promise<{ args: string[]; ports: P; probe: number }>): Promise<{ program: Program; ports: P }> {
    for (let attempt = 1; ; attempt++) {
      const { args, ports, probe } = await pick();
      const program = this.track(startProcess(name, bin, args));
      // A Go program that lost a port may keep running (its health server only logs the failed listen).
      const lost = (): boolean => /address already in use/.test(program.output());
      try {
        await until(async () => lost() || (await httpGet(probe, '/healthz')).status === 200, `/healthz on port ${probe} to answer 200`, 30_000, program);
        if (!lost()) return { program, ports };
      } catch (err) {
        if (attempt >= GO_START_ATTEMPTS || !lost()) throw err;
      }
      await program.kill();
      if (attempt >= GO_START_ATTEMPTS) throw new Error(`${name} lost a port to another process ${attempt} times:\n${program.output().slice(-4096)}`);
    }
  }

  private serverHandle(impl: Impl, frontend: Frontend, serverID: string, program: Program, ports: ServerProcess['ports'], uds: string | undefined): ServerProcess {
    const k = theKit();
    const get = (path: string, on: 'health' | 'admin' = 'health'): Promise<HttpAnswer> => httpGet(on === 'health' ? ports.health : ports.admin, path);
    const grpc = frontend.startsWith('grpc');
    const tls = { ca: readFileSync(k.certs.ca), cert: readFileSync(k.certs.clientCert), key: readFileSync(k.certs.clientKey), servername: 'localhost' };
    let client: GrpcProxyClient | undefined;
    return {
      impl,
      frontend,
      serverID,
      program,
      ports,
      ...(uds ? { uds } : {}),
      get,
      async waitReady(timeoutMs = 30_000) {
        await untilAnswers(ports.health, '/readyz', 200, timeoutMs, program);
      },
      async metrics() {
        const r = await get('/metrics', 'admin');
        if (r.status !== 200) throw new Error(`${program.name} /metrics answered ${r.status}`);
        return parsePrometheusText(r.body);
      },
      konnbenchArgs: () => [
        '-mode',
        grpc ? 'grpc' : 'http-connect',
        ...(uds ? ['-uds', uds] : ['-addr', `127.0.0.1:${ports.frontend}`, '-ca', k.certs.ca, '-cert', k.certs.clientCert, '-key', k.certs.clientKey]),
      ],
      dial: async (target) => {
        if (grpc) {
          // One reusable HTTP/2 connection per server, a Proxy call per dial (kube-apiserver's newer client).
          client ??= this.grpcClient(uds ? { socketPath: uds } : { address: `127.0.0.1:${ports.frontend}`, tls });
          return client.dial(target);
        }
        return connectViaHttpProxy({ proxy: uds ? { socketPath: uds } : { host: '127.0.0.1', port: ports.frontend! }, ...(uds ? {} : { tls }), target });
      },
      stop: async () => {
        if (!program.done()) program.child.kill('SIGTERM');
        return program.exited;
      },
      kill: () => program.kill(),
    };
  }
}

function agentHandle(impl: Impl, agentID: string, program: Program, ports: AgentProcess['ports']): AgentProcess {
  const get = (path: string, on: 'health' | 'admin' = 'health'): Promise<HttpAnswer> => httpGet(on === 'health' ? ports.health : ports.admin, path);
  const metrics = async (): Promise<Map<string, number>> => {
    const r = await get('/metrics');
    if (r.status !== 200) throw new Error(`${program.name} /metrics answered ${r.status}`);
    return parsePrometheusText(r.body);
  };
  const gauge = async (name: string): Promise<number> => (await metrics()).get(`konnectivity_network_proxy_agent_${name}`) ?? 0;
  let drained = false;
  return {
    impl,
    agentID,
    program,
    ports,
    get,
    metrics,
    openServerConnections: () => gauge('open_server_connections'),
    openEndpointConnections: () => gauge('open_endpoint_connections'),
    async waitServerConnections(count, timeoutMs = 30_000) {
      await until(async () => (await gauge('open_server_connections')) === count, `${program.name} to hold ${count} tunnel(s)`, timeoutMs, program);
    },
    async drain() {
      drained = true;
      program.child.kill('SIGTERM');
      // Ours sends DRAIN at once. The Go agent only notes the signal: each tunnel sends its DRAIN when the next
      // packet from the server arrives ("drain agent client"), so a test must dial to get it out.
      await program.waitFor(impl === 'go' ? /Received first signal/ : /Draining: DRAIN sent/);
    },
    async stop() {
      if (!drained) await this.drain();
      if (!program.done()) program.child.kill('SIGTERM');
      return program.exited;
    },
    kill: () => program.kill(),
  };
}

/** Poll `check` every 50 ms until it holds; fails naming `what` (and the program's output) after `timeoutMs`. */
export async function until(check: () => Promise<boolean> | boolean, what: string, timeoutMs = 30_000, program?: Program): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (program?.done()) throw new Error(`${program.name} exited while waiting for ${what}:\n${program.output().slice(-4096)}`);
    try {
      if (await check()) return;
    } catch {
      // Not listening yet: keep polling.
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${program ? `:\n${program.output().slice(-4096)}` : ''}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function untilAnswers(port: number, path: string, status: number, timeoutMs: number, program: Program): Promise<void> {
  await until(async () => (await httpGet(port, path)).status === status, `${path} on port ${port} to answer ${status}`, timeoutMs, program);
}

/**
 * A fixture whose processes (and gRPC clients) are stopped after each test (`'each'`, the default) or after the
 * file's tests in this describe (`'all'`), followed by a leak check of the test process.
 */
export function useKit(scope: 'each' | 'all' = 'each'): Fixture {
  // A proxy to the current fixture, so the object can be taken at definition time and used in the tests.
  let current: Fixture | undefined;
  let before: ResourceSnapshot;
  const [setUp, tearDown] = scope === 'each' ? [beforeEach, afterEach] : [beforeAll, afterAll];
  setUp(() => {
    before = snapshotResources();
    current = new Fixture();
  });
  tearDown(async () => {
    await current?.stopAll();
    current = undefined;
    await expectNoLeaks(before, { timeoutMs: 5000 });
  }, 60_000);
  return new Proxy({} as Fixture, {
    get(_, key) {
      if (!current) throw new Error('the kit fixture is used outside a test');
      const value = Reflect.get(current, key) as unknown;
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(current) : value;
    },
  });
}

export type { Fixture };

// ---- our client's side of the target protocol ---------------------------------------------------------------

/** A request header of the target protocol: one op byte and a uint64 big-endian count. */
export function targetHeader(op: 'U' | 'D' | 'P' | 'E', n: number): Buffer {
  const h = Buffer.alloc(9);
  h.write(op, 0, 'latin1');
  h.writeBigUInt64BE(BigInt(n), 1);
  return h;
}

/** Reads exact byte counts from a Duplex, in the order they arrive; fails if it ends first. */
export class ByteReader {
  private readonly chunks: Buffer[] = [];
  private ended: Error | undefined;
  private wake: (() => void) | undefined;

  constructor(stream: Duplex) {
    stream.on('data', (c: Buffer) => {
      this.chunks.push(c);
      this.wake?.();
    });
    const end = (err: Error): void => {
      this.ended ??= err;
      this.wake?.();
    };
    stream.on('end', () => end(new Error('the connection ended')));
    stream.on('error', (err: Error) => end(err));
    stream.on('close', () => end(new Error('the connection closed')));
  }

  /** Hand the next `n` bytes to `fn`, piece by piece. */
  async consume(n: number, fn: (piece: Buffer) => void): Promise<void> {
    let left = n;
    while (left > 0) {
      const c = this.chunks.shift();
      if (!c) {
        if (this.ended) throw new Error(`${this.ended.message} with ${left} of ${n} bytes still to read`);
        await new Promise<void>((r) => (this.wake = r));
        this.wake = undefined;
        continue;
      }
      const piece = c.length > left ? c.subarray(0, left) : c;
      if (c.length > left) this.chunks.unshift(c.subarray(left));
      left -= piece.length;
      fn(piece);
    }
  }

  /** The next `n` bytes as one Buffer. */
  async read(n: number): Promise<Buffer> {
    const parts: Buffer[] = [];
    await this.consume(n, (p) => parts.push(p));
    return Buffer.concat(parts);
  }
}

async function write(stream: Duplex, data: Buffer): Promise<void> {
  if (!stream.write(data)) await once(stream, 'drain');
}

/**
 * End a connection and wait until it is closed. A TunnelSocket closes as the reference client does (`close()`:
 * CLOSE_REQ, then the CLOSE_RSP), whether or not the peer can hear its half-close; a socket ends with its FIN.
 */
export async function finish(stream: Duplex): Promise<void> {
  if (stream instanceof TunnelSocket) return stream.close();
  const closed = stream.destroyed ? Promise.resolve() : once(stream, 'close').then(() => undefined);
  stream.end();
  await closed;
}

/** `P`: echo `payload` and compare. */
export async function ping(stream: Duplex, reader: ByteReader, payload: Buffer): Promise<void> {
  await write(stream, Buffer.concat([targetHeader('P', payload.length), payload]));
  const got = await reader.read(payload.length);
  if (!got.equals(payload)) throw new Error('P: the echo differs');
}

/** `D`: receive `n` bytes and check every one against the target's pattern (byte p is p % 251). */
export async function down(stream: Duplex, reader: ByteReader, n: number): Promise<void> {
  await write(stream, targetHeader('D', n));
  await expectPattern(reader, n);
}

/** The target's `D` pattern (byte p is p % 251), long enough to compare any 64 KiB piece at any offset in one go. */
const PATTERN = Buffer.from(Array.from({ length: 251 * 264 }, (_, i) => i % 251));

/** Read the `n` bytes of a `D` answer, checking each against the target's pattern. */
export async function expectPattern(reader: ByteReader, n: number): Promise<void> {
  let pos = 0;
  await reader.consume(n, (piece) => {
    for (let off = 0; off < piece.length; off += 65_536) {
      const part = piece.subarray(off, off + 65_536);
      const start = (pos + off) % 251;
      if (!part.equals(PATTERN.subarray(start, start + part.length))) {
        const bad = part.findIndex((v, i) => v !== (pos + off + i) % 251);
        throw new Error(`D: wrong byte at offset ${pos + off + bad}`);
      }
    }
    pos += piece.length;
  });
}

/** `U`: send `n` bytes and wait for the target's `K`. */
export async function up(stream: Duplex, reader: ByteReader, n: number): Promise<void> {
  await write(stream, targetHeader('U', n));
  const block = randomBytes(32 * 1024);
  for (let sent = 0; sent < n; sent += block.length) await write(stream, block.subarray(0, Math.min(block.length, n - sent)));
  const ack = await reader.read(1);
  if (ack.toString('latin1') !== 'K') throw new Error(`U: got ${ack.toString('latin1')} instead of K`);
}

/** A connection of our client with its reader. */
export interface Echo {
  s: Duplex;
  r: ByteReader;
}

/** `n` connections through `server` to the target, each checked with a ping and kept open. */
export async function openEchoes(server: ServerProcess, target: TargetProcess, n: number): Promise<Echo[]> {
  const out: Echo[] = [];
  for (let i = 0; i < n; i++) {
    const s = await server.dial(target.address);
    const r = new ByteReader(s);
    await ping(s, r, Buffer.from(`hello ${i} through ${server.serverID}`));
    out.push({ s, r });
  }
  return out;
}

/** konnbench's `smoke` with our client: on one connection a 100,000-byte echo, 10 MiB down checked, 10 MiB up. */
export async function smokeWith(dial: () => Promise<Duplex>): Promise<void> {
  const s = await dial();
  const reader = new ByteReader(s);
  await ping(s, reader, randomBytes(100_000));
  await down(s, reader, 10 * 1024 * 1024);
  await up(s, reader, 10 * 1024 * 1024);
  await finish(s);
}

/** konnbench's `rr` with our client: `n` cycles by `c` dialers, each dial, a 64-byte echo, close. Resolves with the errors. */
export async function rrWith(dial: () => Promise<Duplex>, n: number, c: number): Promise<{ done: number; errors: string[] }> {
  let next = 0;
  let done = 0;
  const errors: string[] = [];
  await Promise.all(
    Array.from({ length: c }, async () => {
      while (next++ < n) {
        try {
          const s = await dial();
          try {
            await ping(s, new ByteReader(s), randomBytes(64));
          } finally {
            await finish(s);
          }
          done++;
        } catch (err) {
          errors.push((err as Error).message);
        }
      }
    }),
  );
  return { done, errors };
}

/** Echo `bytes` through the target (`E`), sending and receiving at once; resolves with both sha256 digests. */
export async function echoChecksummed(stream: Duplex, bytes: number): Promise<{ sent: string; received: string }> {
  const reader = new ByteReader(stream);
  const received = createHash('sha256');
  const receiving = reader.consume(bytes, (p) => received.update(p));
  await write(stream, targetHeader('E', 0));
  const sent = createHash('sha256');
  const block = randomBytes(64 * 1024);
  for (let n = 0; n < bytes; n += block.length) {
    // A fresh first byte per block, so a block delivered twice or out of order changes the digest.
    block.writeUInt32BE(n, 0);
    const piece = Buffer.from(block.subarray(0, Math.min(block.length, bytes - n)));
    sent.update(piece);
    await write(stream, piece);
  }
  await receiving;
  await finish(stream);
  return { sent: sent.digest('hex'), received: received.digest('hex') };
}
