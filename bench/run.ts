/**
 * The benchmark runner: `npm run bench [-- options]`. Starts the client, server, agent and target each in its own
 * process (as in a deployment, all on loopback), runs every scenario over every path that exists in this checkout
 * and over raw TCP in the same run, and prints medians with the ratio to raw TCP. With the Go peer kit installed
 * it first runs the konnbench section: our programs against the Go reference's, both driven by the same Go
 * client. Then it checks the targets of issues 15 and 16 and writes JSON and an SVG chart. See bench/README.md.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BUILD_ENV, buildPackage } from './lib/build.js';
import { availability, cliPrograms, loadErrors, loadLib } from './lib/engine.js';
import { RoleProcess, type ProcessStats } from './lib/ipc.js';
import { toJson } from './lib/json.js';
import { findPeerKit } from './lib/konnbench.js';
import { nofileOf, raiseNofile } from './lib/procfs.js';
import { formatReport } from './lib/report.js';
import { emptyReference, type CpuPerGiB, type PathResult, type RefPathName, type RefResults, type RunResults } from './lib/results.js';
import { median } from './lib/stats.js';
import { chartOf, renderChart } from './lib/svg.js';
import { checkTargets, DEFAULT_TARGET_OPTIONS } from './lib/targets.js';
import type { BulkResult, DialRateResult } from './lib/workloads.js';
import { collectRxTrace, RX_TRACE_ENV } from './lib/rx-trace.js';
import { runMicro } from './micro.js';
import { runReference } from './reference.js';

// ---- options ---------------------------------------------------------------------------------------------------

const SCENARIOS = ['bulk', 'dial', 'idle', 'slow', 'latency', 'micro'] as const;
type Scenario = (typeof SCENARIOS)[number];

interface Options {
  quick: boolean;
  scenarios: Scenario[];
  paths: string[] | undefined;
  json: string;
  /** Bytes per bulk case, over all its connections. */
  bulkBytes: number;
  conns: number[];
  repeats: number;
  dialMs: number;
  idleConns: number;
  /** What the stalled reader's sender tries to push. */
  slowBytes: number;
  latencyBytes: number;
  latencyDelayMs: number;
  microMs: number;
  /** Bytes per konnbench bulk case (one connection). */
  refBytes: number;
  /** Also hold as many idle connections as the open-files limit allows, through each konnbench-section stack. */
  idleMax: boolean;
  cpuProf: boolean;
  /** Run src/ through tsx instead of the package built for the run (bench/lib/build.ts). */
  fromSource: boolean;
  verbose: boolean;
}

const USAGE = `usage: npm run bench -- [options]
  --quick                 small sizes, one repeat (about a minute and a half with the Go rows)
  --scenario=a,b          ${SCENARIOS.join(', ')} (default: all)
  --path=a,b              path names (default: all that exist); see bench/README.md
  --json=file             where the JSON goes (default bench/results/latest.json); the SVG chart goes beside it
  --bytes=64M             bytes per bulk case            --conns=1,8,64    connections per bulk case (quick: 1,8)
  --ref-bytes=256M        bytes per konnbench bulk case (one connection)
  --repeats=3             repeats per case (median)      --dial-ms=1000    duration of each dial-rate run
  --idle=10000            idle connections               --slow-bytes=1G   what the stalled reader's sender pushes
  --idle-max              also idle connections up to the open-files limit (20,000 at most), konnbench section
  --latency-bytes=64M     bytes per long-link case       --delay-ms=10     relay delay each way
  --micro-ms=300          time per micro-benchmark       --cpu-prof        profile each scenario in each role
  --from-source           run src/ through tsx instead of the package built for the run
  --verbose               log more and why a path is n/a`;

function parseSize(v: string): number {
  const m = /^(\d+(?:\.\d+)?)([kKmMgG]?)i?[bB]?$/.exec(v);
  if (!m) throw new Error(`bad size ${v}`);
  const mult = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g'];
  return Math.round(Number(m[1]) * mult);
}

function parseOptions(argv: string[]): Options {
  const quick = argv.includes('--quick');
  const o: Options = {
    quick,
    scenarios: [...SCENARIOS],
    paths: undefined,
    json: 'bench/results/latest.json',
    bulkBytes: quick ? 8 << 20 : 64 << 20,
    conns: quick ? [1, 8] : [1, 8, 64],
    repeats: quick ? 1 : 3,
    dialMs: quick ? 200 : 1000,
    idleConns: quick ? 300 : 10_000,
    slowBytes: quick ? 128 << 20 : 1 << 30,
    latencyBytes: quick ? 4 << 20 : 64 << 20,
    latencyDelayMs: 10,
    microMs: quick ? 60 : 300,
    refBytes: quick ? 16 << 20 : 256 << 20,
    idleMax: false,
    cpuProf: false,
    fromSource: false,
    verbose: false,
  };
  for (const a of argv) {
    const [k, v = ''] = a.split(/=(.*)/s, 2) as [string, string?];
    const list = () => v.split(',').filter(Boolean);
    switch (k) {
      case '--quick': break;
      case '--scenario': case '--scenarios': {
        const bad = list().filter((s) => !SCENARIOS.includes(s as Scenario));
        if (bad.length) throw new Error(`unknown scenario ${bad.join(', ')}`);
        o.scenarios = list() as Scenario[];
        break;
      }
      case '--path': case '--paths': o.paths = list(); break;
      case '--json': o.json = v; break;
      case '--bytes': o.bulkBytes = parseSize(v); break;
      case '--conns': o.conns = list().map(Number); break;
      case '--repeats': o.repeats = Math.max(1, Number(v)); break;
      case '--dial-ms': o.dialMs = Number(v); break;
      case '--idle': o.idleConns = Number(v); break;
      case '--slow-bytes': o.slowBytes = parseSize(v); break;
      case '--latency-bytes': o.latencyBytes = parseSize(v); break;
      case '--delay-ms': o.latencyDelayMs = Number(v); break;
      case '--micro-ms': o.microMs = Number(v); break;
      case '--ref-bytes': o.refBytes = parseSize(v); break;
      case '--idle-max': o.idleMax = true; break;
      case '--cpu-prof': o.cpuProf = true; break;
      case '--from-source': o.fromSource = true; break;
      case '--verbose': o.verbose = true; break;
      case '--help': case '-h': console.log(USAGE); process.exit(0);
      // eslint-disable-next-line no-fallthrough
      default: throw new Error(`unknown option ${a}\n${USAGE}`);
    }
  }
  return o;
}

// ---- paths -----------------------------------------------------------------------------------------------------

type Need = keyof ReturnType<typeof availability>;
interface PathDef {
  name: string;
  label: string;
  frontend: 'raw' | 'programmatic' | 'http-connect' | 'grpc' | 'grpc-shared';
  leg?: 'memory' | 'grpc' | 'yamux' | 'yamux-tls';
  needs: Need[];
  /** Runs only when named in --path (kept out of the default run's time budget). */
  onRequest?: true;
}

/** Every path, baseline first. The agent leg is what the long-link relay sits on. */
const PATHS: PathDef[] = [
  { name: 'raw', label: 'raw TCP (baseline)', frontend: 'raw', needs: [] },
  { name: 'memory', label: 'dial(), in-memory leg', frontend: 'programmatic', leg: 'memory', needs: ['engine'] },
  { name: 'grpc', label: 'dial(), gRPC leg', frontend: 'programmatic', leg: 'grpc', needs: ['grpcLeg'] },
  { name: 'connect-grpc', label: 'HTTP-CONNECT, gRPC leg', frontend: 'http-connect', leg: 'grpc', needs: ['httpConnect', 'grpcLeg'] },
  { name: 'grpcfe-grpc', label: 'gRPC frontend, gRPC leg', frontend: 'grpc', leg: 'grpc', needs: ['grpcFrontend', 'grpcLeg'] },
  { name: 'grpcfe1-grpc', label: 'gRPC frontend (1 conn), gRPC leg', frontend: 'grpc-shared', leg: 'grpc', needs: ['grpcFrontend', 'grpcLeg'] },
  { name: 'yamux', label: 'dial(), yamux leg', frontend: 'programmatic', leg: 'yamux', needs: ['yamuxLeg'] },
  { name: 'connect-yamux', label: 'HTTP-CONNECT, yamux leg', frontend: 'http-connect', leg: 'yamux', needs: ['httpConnect', 'yamuxLeg'] },
  { name: 'yamux-tls', label: 'dial(), yamux leg over TLS', frontend: 'programmatic', leg: 'yamux-tls', needs: ['yamuxLeg'], onRequest: true },
  { name: 'connect-yamux-tls', label: 'HTTP-CONNECT, yamux leg over TLS', frontend: 'http-connect', leg: 'yamux-tls', needs: ['httpConnect', 'yamuxLeg'], onRequest: true },
];

/** The processes of one path: `workload` runs the client side of every scenario. */
interface Topology {
  path: PathDef;
  workload: RoleProcess;
  server: RoleProcess | undefined;
  agent: RoleProcess | undefined;
  /** The server's listening ports. */
  info: { agentPort?: number; httpConnectPort?: number; grpcFrontendPort?: number };
  all: RoleProcess[];
}

let opts: Options;
const log = (...a: unknown[]) => opts.verbose && console.error('[bench]', ...a);
const startedAt = Date.now();
/** One line on stderr as each case finishes, so a long run shows where it is. */
function progress(line: string): void {
  const s = Math.round((Date.now() - startedAt) / 1000);
  console.error(`[bench ${String(Math.floor(s / 60)).padStart(2)}:${String(s % 60).padStart(2, '0')}] ${line}`);
}
const PROFILE_DIR = resolve('bench/results/profiles');

function spawn(role: string, args: Record<string, unknown>, t: { all: RoleProcess[] }): RoleProcess {
  const p = new RoleProcess(role, args);
  t.all.push(p);
  return p;
}

async function startPath(p: PathDef, targetPort: number): Promise<Topology> {
  const t = { all: [] as RoleProcess[] };
  const targetAddress = `127.0.0.1:${targetPort}`;
  try {
    // Every process starts at once (start-up is mostly module loading); they learn their ports afterwards.
    const frontends = p.frontend === 'programmatic' || p.frontend === 'raw' ? [] : [p.frontend === 'http-connect' ? p.frontend : 'grpc'];
    const server = p.frontend === 'raw' ? undefined : spawn('server', { leg: p.leg, frontends, targetAddress }, t);
    const agent = p.leg && p.leg !== 'memory' ? spawn('agent', {}, t) : undefined;
    const client = p.frontend === 'programmatic' ? undefined : spawn('client', {}, t);
    const [info = {}] = (await Promise.all([server?.ready, agent?.ready, client?.ready])) as unknown as [Topology['info'] | undefined];
    await agent?.call('connect', { leg: p.leg, port: info.agentPort }, 30_000);
    await server?.call('waitReady', {}, 30_000);
    const port = p.frontend === 'raw' ? targetPort : p.frontend === 'http-connect' ? info.httpConnectPort : info.grpcFrontendPort;
    await client?.call('configure', { kind: p.frontend, port, targetAddress });
    return { ...t, path: p, workload: (client ?? server)!, server, agent, info };
  } catch (err) {
    await Promise.all(t.all.map((r) => r.stop(500)));
    throw err;
  }
}

/**
 * Put the delaying relay on the agent-to-server hop (on the client-to-target hop for raw TCP): the agent is
 * replaced by one that connects through the relay. The other processes stay, which saves their start-up.
 */
async function moveToLongLink(t: Topology, targetPort: number, delayMs: number): Promise<void> {
  const upstreamPort = t.path.frontend === 'raw' ? targetPort : t.info.agentPort!;
  const relay = spawn('relay', { upstreamPort, delayMs }, t);
  if (t.path.frontend === 'raw') {
    const { port } = (await relay.ready) as { port: number };
    await t.workload.call('configure', { kind: 'raw', port, targetAddress: `127.0.0.1:${targetPort}` });
    return;
  }
  const agent = spawn('agent', {}, t);
  const [{ port }] = (await Promise.all([relay.ready, agent.ready, t.agent!.stop()])) as unknown as [{ port: number }];
  await t.server!.call('waitAgents', { count: 0 }, 30_000);
  t.agent = agent;
  await agent.call('connect', { leg: t.path.leg, port }, 30_000);
  await t.server!.call('waitReady', {}, 30_000);
}

/** Run `fn`, logging how long it took (with --verbose). */
async function timed<T>(what: string, fn: () => Promise<T>): Promise<T> {
  const t0 = performance.now();
  try {
    return await fn();
  } finally {
    log(`${what}: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }
}

/** Run one scenario of a path, timed, and with --cpu-prof under the CPU profiler of every role of the path. */
async function scenario<T>(t: Topology, target: RoleProcess, name: string, fn: () => Promise<T>): Promise<T> {
  if (!opts.cpuProf) return timed(`${t.path.name} ${name}`, fn);
  const roles = Object.entries({ server: t.server, agent: t.agent, client: t.workload === t.server ? undefined : t.workload, target });
  const live = roles.filter((e): e is [string, RoleProcess] => e[1] !== undefined);
  await Promise.all(live.map(([, r]) => r.call('profileStart')));
  try {
    return await timed(`${t.path.name} ${name}`, fn);
  } finally {
    await Promise.all(live.map(([role, r]) => r.call('profileStop', { file: resolve(PROFILE_DIR, `${t.path.name}-${name}-${role}.cpuprofile`) })));
    await collectRxTrace(`${t.path.label} ${name}`, live, resolve(PROFILE_DIR, `${t.path.name}-${name}-rx.json`), progress);
  }
}

async function stopPath(t: Topology): Promise<void> {
  await Promise.all(t.all.map((r) => r.stop()));
}

// ---- scenarios -------------------------------------------------------------------------------------------------

const GiB = 1024 ** 3;
const cpuSeconds = (a: ProcessStats, b: ProcessStats) => (b.cpu.user + b.cpu.system - a.cpu.user - a.cpu.system) / 1e6;

async function statsOf(t: Topology): Promise<Record<'server' | 'agent' | 'client', ProcessStats | undefined>> {
  const [server, agent, client] = await Promise.all([
    t.server?.stats(),
    t.agent?.stats(),
    t.workload !== t.server ? t.workload.stats() : undefined,
  ]);
  return { server, agent, client };
}

function cpuPer(a: Awaited<ReturnType<typeof statsOf>>, b: Awaited<ReturnType<typeof statsOf>>, bytes: number): CpuPerGiB {
  const out: CpuPerGiB = {};
  for (const k of ['server', 'agent', 'client'] as const) {
    const x = a[k];
    const y = b[k];
    if (x && y) out[k] = cpuSeconds(x, y) / (bytes / GiB);
  }
  return out;
}

/**
 * Move some data up and down before measuring, not counted: V8 optimizes our code over the first tens of MiB (the
 * first 64 MiB cases cost 2-3x the CPU of later ones, bench/README.md), and a deployed server runs warm.
 */
async function warmUp(t: Topology): Promise<void> {
  const bytes = opts.quick ? 8 << 20 : 64 << 20;
  for (const dir of ['up', 'down'] as const) await t.workload.call<BulkResult>('bulk', { dir, conns: 1, bytes }, 300_000);
}

async function runBulk(t: Topology, r: PathResult): Promise<void> {
  r.bulk = [];
  await warmUp(t);
  let totalBytes = 0;
  const first = await statsOf(t);
  for (const dir of ['up', 'down'] as const) {
    for (const conns of opts.conns) {
      const samples: number[] = [];
      let verified = true;
      const before = await statsOf(t);
      let bytes = 0;
      for (let i = 0; i < opts.repeats; i++) {
        const res = await t.workload.call<BulkResult>('bulk', { dir, conns, bytes: opts.bulkBytes }, 300_000);
        samples.push(res.rate);
        verified &&= res.verified;
        bytes += res.bytes;
      }
      const after = await statsOf(t);
      totalBytes += bytes;
      r.bulk.push({ dir, conns, rate: median(samples), samples, verified, cpuPerGiB: cpuPer(before, after, bytes) });
      progress(`${r.label}: bulk ${dir} x${conns} ${(median(samples) / 1e6).toFixed(0)} MB/s${verified ? '' : ' BAD BYTES'}`);
    }
  }
  r.cpuPerGiB = cpuPer(first, await statsOf(t), totalBytes);
}

async function runDial(t: Topology, r: PathResult): Promise<void> {
  r.dial = [];
  for (const dialers of [1, 8]) {
    // A warm-up first: the JIT reaches its steady state after some thousand dials.
    await t.workload.call<DialRateResult>('dialRate', { dialers, durationMs: opts.quick ? 200 : 2000 }, 120_000);
    const runs: DialRateResult[] = [];
    for (let i = 0; i < opts.repeats; i++) {
      runs.push(await t.workload.call<DialRateResult>('dialRate', { dialers, durationMs: opts.dialMs }, 120_000));
    }
    const mid = runs.slice().sort((a, b) => a.rate - b.rate)[runs.length >> 1]!;
    r.dial.push({ dialers, rate: mid.rate, p50Ms: mid.p50Ms, p99Ms: mid.p99Ms, errors: mid.errors, samples: runs.map((x) => x.rate) });
    progress(`${r.label}: dial x${dialers} ${mid.rate.toFixed(0)}/s, p50 ${mid.p50Ms.toFixed(2)} ms, p99 ${mid.p99Ms.toFixed(2)} ms${mid.errors ? `, ${mid.errors} errors` : ''}`);
  }
}

async function gcStats(p: RoleProcess | undefined): Promise<ProcessStats | undefined> {
  return p ? p.call<ProcessStats>('gc') : undefined;
}

async function waitFor(cond: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (await cond()) return true;
    await new Promise((res) => setTimeout(res, 50));
  }
  return false;
}

async function runIdle(t: Topology, target: RoleProcess, r: PathResult): Promise<void> {
  const n = opts.idleConns;
  const roles = { server: t.server, agent: t.agent, target, client: t.workload !== t.server ? t.workload : undefined };
  const before = await Promise.all(Object.values(roles).map(gcStats));
  const res = await t.workload.call<{ opened: number; seconds: number; error?: string }>('openIdle', { n }, 1_800_000);
  const after = await Promise.all(Object.values(roles).map(gcStats));
  const per = (i: number) => (before[i] && after[i] && res.opened ? (after[i]!.rss - before[i]!.rss) / res.opened : undefined);
  r.idle = { requested: n, ...res, serverBytesPerConn: per(0), agentBytesPerConn: per(1), targetBytesPerConn: per(2), clientBytesPerConn: per(3) };
  await t.workload.call('closeIdle');
  await waitFor(async () => (await target.call<number>('connections')) === 0, 30_000);
  const k = (b: number | undefined) => (b === undefined ? '-' : (b / 1024).toFixed(1));
  progress(`${r.label}: ${res.opened}/${n} idle connections, RSS per connection server ${k(r.idle.serverBytesPerConn)} KiB, agent ${k(r.idle.agentBytesPerConn)} KiB${res.error ? ` (stopped ${res.error})` : ''}`);
}

/** What the JS side of a process holds: heap and buffers outside it. */
const held = (s: ProcessStats) => s.heapUsed + s.external;

async function runSlow(t: Topology, target: RoleProcess, r: PathResult): Promise<void> {
  // Let the previous scenario's closed connections finish tearing down, so their memory is not counted here.
  await new Promise((res) => setTimeout(res, opts.quick ? 300 : 1000));
  await Promise.all([t.server?.call('gc'), t.agent?.call('gc')]);
  const [s0, a0] = await Promise.all([t.server?.call<ProcessStats>('resetPeak'), t.agent?.call<ProcessStats>('resetPeak')]);
  await target.call('resetSlow');
  await t.workload.call('openStalled', { bytes: opts.slowBytes });
  // Wait until the sender is held back (nothing more gets in for half a second) or has pushed everything.
  let last = -1;
  let stableSince = Date.now();
  const deadline = Date.now() + 20_000;
  for (;;) {
    const st = await target.call<{ pushed: number; queued: number }>('slowStatus');
    if (st.pushed !== last) (last = st.pushed), (stableSince = Date.now());
    if (st.pushed >= opts.slowBytes || Date.now() - stableSince > 500 || Date.now() > deadline) break;
    await new Promise((res) => setTimeout(res, 50));
  }
  // What the stalled connection alone costs, once it has settled (after a GC, so garbage does not count).
  const [s1, a1] = await Promise.all([gcStats(t.server), gcStats(t.agent)]);
  const other = await t.workload.call<BulkResult>('bulk', { dir: 'down', conns: 1, bytes: opts.bulkBytes }, 300_000);
  const st = await target.call<{ pushed: number; queued: number }>('slowStatus');
  const [s2, a2] = await Promise.all([t.server?.call<ProcessStats>('stopPeak'), t.agent?.call<ProcessStats>('stopPeak')]);
  r.slow = {
    pushedBytes: st.pushed,
    heldBytes: st.pushed - st.queued,
    serverHeldDelta: s0 && s1 ? held(s1) - held(s0) : undefined,
    agentHeldDelta: a0 && a1 ? held(a1) - held(a0) : undefined,
    serverPeakRssDelta: s0 && s2 ? s2.peakRss - s0.rss : undefined,
    agentPeakRssDelta: a0 && a2 ? a2.peakRss - a0.rss : undefined,
    otherRate: other.rate,
    otherVerified: other.verified,
  };
  await t.workload.call('closeStalled');
  await waitFor(async () => (await target.call<number>('connections')) === 0, 30_000);
  const m = (b: number | undefined) => (b === undefined ? '-' : (b / 1024 ** 2).toFixed(1));
  progress(`${r.label}: stalled reader held ${m(r.slow.heldBytes)} MiB (+heap server ${m(r.slow.serverHeldDelta)}, agent ${m(r.slow.agentHeldDelta)} MiB), other connection ${(other.rate / 1e6).toFixed(0)} MB/s`);
}

async function runLatency(t: Topology, r: PathResult): Promise<void> {
  r.latency = [];
  await warmUp(t);
  for (const conns of [1, 8]) {
    const samples: number[] = [];
    let verified = true;
    for (let i = 0; i < opts.repeats; i++) {
      const res = await t.workload.call<BulkResult>('bulk', { dir: 'down', conns, bytes: opts.latencyBytes }, 300_000);
      samples.push(res.rate);
      verified &&= res.verified;
    }
    r.latency.push({ conns, rate: median(samples), samples, verified });
    progress(`${r.label}: long link down x${conns} ${(median(samples) / 1e6).toFixed(1)} MB/s`);
  }
}

// ---- main ------------------------------------------------------------------------------------------------------

/** The konnbench section's paths, by `--path` name (ours and the Go reference's side by side). */
const REF_PATHS: Array<{ name: string; path: RefPathName }> = [
  { name: 'kb-grpcfe', path: 'grpcfe' },
  { name: 'kb-connect', path: 'connect' },
  { name: 'kb-connect-yamux', path: 'connect-yamux' },
];
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const LOG_DIR = resolve('bench/results/logs');
const BUILD_DIR = resolve(ROOT, 'bench/results/build');

async function runReferenceSection(has: (s: Scenario) => boolean, target: RoleProcess, targetPort: number): Promise<RefResults> {
  const paths = REF_PATHS.filter((p) => !opts.paths || opts.paths.includes(p.name)).map((p) => p.path);
  const scenarios = { bulk: has('bulk'), dial: has('dial'), idle: has('idle'), latency: has('latency') };
  if (!paths.length || !(Object.values(scenarios).some(Boolean) || opts.idleMax)) return emptyReference('skipped', 'not selected (--path, --scenario)');
  const kit = findPeerKit(ROOT);
  if ('missing' in kit) {
    const note = `the Go peer kit is not installed (${kit.missing}): run ../shared/peer/install.sh .peer for the Go rows`;
    progress(`konnbench section skipped: ${note}`);
    return emptyReference('skipped', note);
  }
  const cli = cliPrograms();
  if ('missing' in cli) progress(`konnbench section: our rows n/a (${cli.missing}); Go rows only`);
  rmSync(LOG_DIR, { recursive: true, force: true });
  return runReference(kit, 'missing' in cli ? undefined : cli, {
    ...scenarios,
    paths,
    bytes: opts.refBytes,
    longLinkBytes: opts.latencyBytes,
    delayMs: opts.latencyDelayMs,
    repeats: opts.repeats,
    dialMs: opts.dialMs,
    idleConns: opts.idleConns,
    idleMax: opts.idleMax,
    cpuProf: opts.cpuProf,
    profileDir: PROFILE_DIR,
    logDir: LOG_DIR,
    nodeTargetPort: targetPort,
    nodeTarget: target,
    progress,
  });
}

async function main(): Promise<void> {
  opts = parseOptions(process.argv.slice(2));
  const loadavgStart = os.loadavg();
  // Profiling runs also count how received bytes are framed (bench/lib/rx-trace.ts), in every child process.
  if (opts.cpuProf) process.env[RX_TRACE_ENV] = '1';
  // Children inherit the limit: raise our soft open-files limit to the hard one (idle connections need many).
  raiseNofile(process.pid);
  // Our processes run the package as it ships (see bench/lib/build.ts); raw TCP alone needs none of it.
  if (!opts.fromSource && (!opts.paths || opts.paths.some((n) => n !== 'raw'))) {
    const ms = await buildPackage(ROOT, BUILD_DIR);
    process.env[BUILD_ENV] = BUILD_DIR;
    progress(`built the package (tsup, ESM) into ${relative(process.cwd(), BUILD_DIR)} in ${(ms / 1000).toFixed(1)} s`);
  }
  const lib = await loadLib();
  const avail = availability(lib);
  log('available:', avail, loadErrors, 'open files:', nofileOf('self'));
  const known = [...PATHS.map((p) => p.name), ...REF_PATHS.map((p) => p.name)];
  const unknown = (opts.paths ?? []).filter((n) => !known.includes(n));
  if (unknown.length) throw new Error(`unknown path ${unknown.join(', ')}; known: ${known.join(', ')}`);
  // Raw TCP runs whenever a Node-client path does (it is their baseline).
  const anyNode = !opts.paths || opts.paths.some((n) => PATHS.some((p) => p.name === n));
  const selected = PATHS.filter((p) => (opts.paths ? opts.paths.includes(p.name) : !p.onRequest) || (p.name === 'raw' && anyNode));
  const has = (s: Scenario) => opts.scenarios.includes(s);

  const target = new RoleProcess('target', {});
  const { port: targetPort } = (await target.ready) as { port: number };

  const results: PathResult[] = [];
  const latency: PathResult[] = [];
  let reference: RefResults;
  try {
    reference = await runReferenceSection(has, target, targetPort);
    for (const p of selected) {
      const r: PathResult = { name: p.name, label: p.label, status: 'ok' };
      results.push(r);
      const missing = p.needs.filter((n) => !avail[n]);
      if (missing.length) {
        Object.assign(r, { status: 'n/a', note: `not built: ${missing.join(', ')}` });
        progress(`${p.label}: n/a (${r.note})`);
        continue;
      }
      // The relay sits on the agent leg, so the frontend changes nothing there: one path per leg is enough.
      const longLink = has('latency') && (p.frontend === 'raw' || (p.frontend === 'programmatic' && p.leg !== 'memory'));
      if (!longLink && !(['bulk', 'dial', 'idle', 'slow'] as const).some(has)) continue;
      let t: Topology | undefined;
      const lr: PathResult = { name: p.name, label: p.label, status: 'ok' };
      try {
        log('starting', p.name);
        const top = (t = await timed(`${p.name} start`, () => startPath(p, targetPort)));
        if (has('bulk')) await scenario(top, target, 'bulk', () => runBulk(top, r));
        if (has('dial')) await scenario(top, target, 'dial', () => runDial(top, r));
        if (has('idle')) await scenario(top, target, 'idle', () => runIdle(top, target, r));
        if (has('slow')) await scenario(top, target, 'slow', () => runSlow(top, target, r));
        if (longLink) {
          latency.push(lr);
          await timed(`${p.name} long-link switch`, () => moveToLongLink(top, targetPort, opts.latencyDelayMs));
          await scenario(top, target, 'longlink', () => runLatency(top, lr));
        }
      } catch (err) {
        const failed = { status: 'failed' as const, note: (err as Error).message.split('\n')[0] };
        Object.assign(latency.includes(lr) ? lr : r, failed);
        progress(`${p.label}: FAILED (${failed.note})`);
        log(err);
      } finally {
        if (t) await stopPath(t);
      }
    }
  } finally {
    await target.stop();
  }
  const micro = has('micro') ? await timed('micro', async () => runMicro({ ms: opts.microMs, repeats: opts.quick ? 1 : 3 })) : undefined;
  if (micro) progress(`micro-benchmarks: ${micro.length} cases`);
  if (opts.cpuProf) progress(`CPU profiles in ${PROFILE_DIR}`);

  const run: RunResults = {
    meta: {
      date: new Date().toISOString(),
      node: process.version,
      cpus: `${os.cpus().length} x ${os.cpus()[0]?.model ?? '?'}`,
      loadavg: os.loadavg(),
      loadavgStart,
      seconds: (Date.now() - startedAt) / 1000,
    },
    paths: results,
    latency,
    reference,
    micro,
  };
  const checks = checkTargets(run, DEFAULT_TARGET_OPTIONS);
  const m = run.meta;
  const load = (l: number[]) => l.map((x) => x.toFixed(1)).join(' ');
  console.log(`konnectivity-ts benchmarks, ${m.date}, Node ${m.node}, ${m.cpus}, load average ${load(m.loadavgStart)} at the start, ${load(m.loadavg)} at the end`);
  console.log(`medians of ${opts.repeats}; ratios are to raw TCP (and to the Go reference) in this run; ${m.seconds.toFixed(0)} s\n`);
  console.log(formatReport(run, { repeats: opts.repeats, delayMs: opts.latencyDelayMs, bulkBytes: opts.bulkBytes, refBytes: opts.refBytes, latencyBytes: opts.latencyBytes, dialMs: opts.dialMs, fromSource: opts.fromSource }, checks));
  const file = resolve(opts.json);
  const svg = file.replace(/(\.json)?$/, '.svg');
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, `${JSON.stringify(toJson(run, { ...opts }, checks), null, 2)}\n`);
  writeFileSync(svg, renderChart(chartOf(run)));
  console.log(`\nJSON: ${file}\nSVG chart: ${svg}`);
}

// Ctrl-C ends the run; the 'exit' hook of lib/children.ts takes the Go processes down with it.
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => process.exit(130));

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  },
);
