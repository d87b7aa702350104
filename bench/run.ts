/**
 * The benchmark runner: `npm run bench [-- options]`. Starts the client, server, agent and target each in its own
 * process (as in a deployment, all on loopback), runs every scenario over every path that exists in this checkout
 * and over raw TCP in the same run, and prints medians with the ratio to raw TCP. See bench/README.md.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, resolve } from 'node:path';
import { availability, loadErrors, loadLib } from './lib/engine.js';
import { RoleProcess, type ProcessStats } from './lib/ipc.js';
import { median } from './lib/stats.js';
import type { BulkResult, DialRateResult } from './lib/workloads.js';
import { formatMicro, runMicro, table, type MicroResult } from './micro.js';

// ---- options ---------------------------------------------------------------------------------------------------

const SCENARIOS = ['bulk', 'dial', 'idle', 'slow', 'latency', 'micro'] as const;
type Scenario = (typeof SCENARIOS)[number];

interface Options {
  quick: boolean;
  scenarios: Scenario[];
  paths: string[] | undefined;
  json: string | undefined;
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
  cpuProf: boolean;
  verbose: boolean;
}

const USAGE = `usage: npm run bench -- [options]
  --quick                 small sizes, one repeat (< 60 s)
  --scenario=a,b          ${SCENARIOS.join(', ')} (default: all)
  --path=a,b              path names (default: all that exist); see bench/README.md
  --json=file             also write the results as JSON
  --bytes=64M             bytes per bulk case            --conns=1,8,64    connections per bulk case
  --repeats=3             repeats per case (median)      --dial-ms=1000    duration of each dial-rate run
  --idle=10000            idle connections               --slow-bytes=1G   what the stalled reader's sender pushes
  --latency-bytes=16M     bytes per long-link case       --delay-ms=10     relay delay each way
  --micro-ms=300          time per micro-benchmark       --cpu-prof        profile each scenario in each role
  --verbose               log progress and why a path is n/a`;

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
    json: undefined,
    bulkBytes: quick ? 8 << 20 : 64 << 20,
    conns: [1, 8, 64],
    repeats: quick ? 1 : 3,
    dialMs: quick ? 200 : 1000,
    idleConns: quick ? 300 : 10_000,
    slowBytes: quick ? 128 << 20 : 1 << 30,
    latencyBytes: quick ? 4 << 20 : 16 << 20,
    latencyDelayMs: 10,
    microMs: quick ? 60 : 300,
    cpuProf: false,
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
      case '--cpu-prof': o.cpuProf = true; break;
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
  leg?: 'memory' | 'grpc' | 'yamux';
  needs: Need[];
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
  }
}

async function stopPath(t: Topology): Promise<void> {
  await Promise.all(t.all.map((r) => r.stop()));
}

// ---- scenarios -------------------------------------------------------------------------------------------------

const GiB = 1024 ** 3;
const cpuSeconds = (a: ProcessStats, b: ProcessStats) => (b.cpu.user + b.cpu.system - a.cpu.user - a.cpu.system) / 1e6;

/** CPU seconds per GiB moved, per role, over a measured section. */
interface CpuPerGiB {
  server?: number;
  agent?: number;
  client?: number;
}

interface BulkCase {
  dir: 'up' | 'down';
  conns: number;
  /** Median bytes/s over the repeats. */
  rate: number;
  samples: number[];
  verified: boolean;
  cpuPerGiB: CpuPerGiB;
}

interface PathResult {
  name: string;
  label: string;
  status: 'ok' | 'n/a' | 'failed';
  note?: string;
  bulk?: BulkCase[];
  dial?: Array<{ dialers: number; rate: number; p50Ms: number; p99Ms: number; errors: number; samples: number[] }>;
  idle?: { opened: number; seconds: number; serverBytesPerConn?: number; agentBytesPerConn?: number; targetBytesPerConn?: number; clientBytesPerConn?: number };
  slow?: {
    pushedBytes: number;
    /** Bytes the stalled connection holds between the target's socket buffer and the stalled reader. */
    heldBytes: number;
    /**
     * Growth of what the JS side holds (heap + external buffers) with the stalled connection settled, before the
     * other connection runs. RSS is too coarse here: the allocator returns memory from earlier scenarios late.
     */
    serverHeldDelta?: number;
    agentHeldDelta?: number;
    /** Peak RSS growth over the whole scenario, the other connection's transfer included. */
    serverPeakRssDelta?: number;
    agentPeakRssDelta?: number;
    otherRate: number;
    otherVerified: boolean;
  };
  latency?: Array<{ conns: number; rate: number; samples: number[]; verified: boolean }>;
  /** CPU seconds per GiB over all bulk cases. */
  cpuPerGiB?: CpuPerGiB;
}

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

async function runBulk(t: Topology, r: PathResult): Promise<void> {
  r.bulk = [];
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
      log(r.name, `bulk ${dir} x${conns}`, (median(samples) / 1e6).toFixed(0), 'MB/s', verified ? '' : 'CHECKSUM MISMATCH');
    }
  }
  r.cpuPerGiB = cpuPer(first, await statsOf(t), totalBytes);
}

async function runDial(t: Topology, r: PathResult): Promise<void> {
  r.dial = [];
  for (const dialers of [1, 8]) {
    const runs: DialRateResult[] = [];
    for (let i = 0; i < opts.repeats; i++) {
      runs.push(await t.workload.call<DialRateResult>('dialRate', { dialers, durationMs: opts.dialMs }, 120_000));
    }
    const mid = runs.slice().sort((a, b) => a.rate - b.rate)[runs.length >> 1]!;
    r.dial.push({ dialers, rate: mid.rate, p50Ms: mid.p50Ms, p99Ms: mid.p99Ms, errors: mid.errors, samples: runs.map((x) => x.rate) });
    log(r.name, `dial x${dialers}`, mid.rate.toFixed(0), '/s', mid.errors ? `${mid.errors} errors` : '');
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
  const res = await t.workload.call<{ opened: number; seconds: number }>('openIdle', { n }, 600_000);
  const after = await Promise.all(Object.values(roles).map(gcStats));
  const per = (i: number) => (before[i] && after[i] ? (after[i]!.rss - before[i]!.rss) / res.opened : undefined);
  r.idle = { ...res, serverBytesPerConn: per(0), agentBytesPerConn: per(1), targetBytesPerConn: per(2), clientBytesPerConn: per(3) };
  await t.workload.call('closeIdle');
  await waitFor(async () => (await target.call<number>('connections')) === 0, 30_000);
  log(r.name, 'idle', r.idle);
}

/** What the JS side of a process holds: heap and buffers outside it. */
const held = (s: ProcessStats) => s.heapUsed + s.external;

async function runSlow(t: Topology, target: RoleProcess, r: PathResult): Promise<void> {
  // Let the previous scenario's closed connections finish tearing down, so their memory is not counted here.
  await new Promise((res) => setTimeout(res, 1000));
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
  log(r.name, 'slow', r.slow);
}

async function runLatency(t: Topology, r: PathResult): Promise<void> {
  r.latency = [];
  for (const conns of [1, 8]) {
    const samples: number[] = [];
    let verified = true;
    for (let i = 0; i < opts.repeats; i++) {
      const res = await t.workload.call<BulkResult>('bulk', { dir: 'down', conns, bytes: opts.latencyBytes }, 300_000);
      samples.push(res.rate);
      verified &&= res.verified;
    }
    r.latency.push({ conns, rate: median(samples), samples, verified });
    log(r.name, `long link x${conns}`, (median(samples) / 1e6).toFixed(1), 'MB/s');
  }
}

// ---- report ----------------------------------------------------------------------------------------------------

const mb = (bps: number) => `${(bps / 1e6).toFixed(bps < 1e7 ? 1 : 0)} MB/s`;
const ratio = (x: number | undefined, base: number | undefined) =>
  x === undefined || base === undefined || !base ? '' : ` (${(x / base).toFixed(2)}x)`;
const kib = (b: number | undefined) => (b === undefined ? '-' : `${(b / 1024).toFixed(1)} KiB`);
const mib = (b: number | undefined) => (b === undefined ? '-' : `${(b / 1024 ** 2).toFixed(1)} MiB`);
const sec = (s: number | undefined) => (s === undefined ? '-' : s.toFixed(2));

function report(results: PathResult[], latency: PathResult[], micro: MicroResult[] | undefined): string {
  const out: string[] = [];
  const raw = results.find((r) => r.name === 'raw');
  const na = results.filter((r) => r.status !== 'ok');
  const ok = results.filter((r) => r.status === 'ok');

  if (ok.some((r) => r.bulk)) {
    const cases = (raw?.bulk ?? ok.find((r) => r.bulk)!.bulk!).map((c) => `${c.dir} x${c.conns}`);
    const rows = [['bulk (32 KiB writes, every byte checked)', ...cases, 'CPU s/GiB server', 'agent', 'client']];
    for (const r of ok) {
      if (!r.bulk) continue;
      rows.push([
        r.label,
        ...r.bulk.map((c, i) => `${mb(c.rate)}${r === raw ? '' : ratio(c.rate, raw?.bulk?.[i]?.rate)}${c.verified ? '' : ' BAD'}`),
        sec(r.cpuPerGiB?.server),
        sec(r.cpuPerGiB?.agent),
        sec(r.cpuPerGiB?.client),
      ]);
    }
    out.push(table(rows));
  }
  if (ok.some((r) => r.dial)) {
    const rows = [['dial + 64 B echo + close', '1 dialer', 'p50', 'p99', '8 dialers', 'p50', 'p99']];
    for (const r of ok) {
      if (!r.dial) continue;
      const cells = r.dial.flatMap((d, i) => [
        `${d.rate.toFixed(0)}/s${r === raw ? '' : ratio(d.rate, raw?.dial?.[i]?.rate)}${d.errors ? ` (${d.errors} err)` : ''}`,
        `${d.p50Ms.toFixed(2)} ms`,
        `${d.p99Ms.toFixed(2)} ms`,
      ]);
      rows.push([r.label, ...cells]);
    }
    out.push(table(rows));
  }
  if (ok.some((r) => r.idle)) {
    const rows = [['RSS per idle connection', 'open', 'server', 'agent', 'client', 'target']];
    for (const r of ok) {
      if (!r.idle) continue;
      const i = r.idle;
      rows.push([r.label, String(i.opened), kib(i.serverBytesPerConn), kib(i.agentBytesPerConn), kib(i.clientBytesPerConn), kib(i.targetBytesPerConn)]);
    }
    out.push(table(rows));
  }
  if (ok.some((r) => r.slow)) {
    const rows = [['stalled reader', 'pushed', 'held in path', 'server +heap', 'agent +heap', 'peak +RSS: server', 'agent', 'other conn', 'vs unstalled']];
    for (const r of ok) {
      if (!r.slow) continue;
      const s = r.slow;
      const unstalled = r.bulk?.find((c) => c.dir === 'down' && c.conns === 1)?.rate;
      rows.push([
        r.label,
        mib(s.pushedBytes),
        mib(s.heldBytes),
        mib(s.serverHeldDelta),
        mib(s.agentHeldDelta),
        mib(s.serverPeakRssDelta),
        mib(s.agentPeakRssDelta),
        `${mb(s.otherRate)}${s.otherVerified ? '' : ' BAD'}`,
        unstalled ? `${(s.otherRate / unstalled).toFixed(2)}x` : '-',
      ]);
    }
    out.push(table(rows));
  }
  const latOk = latency.filter((r) => r.status === 'ok' && r.latency);
  if (latOk.length) {
    const rawL = latOk.find((r) => r.name === 'raw');
    const rows = [[`long link (+${opts.latencyDelayMs} ms each way), download`, '1 conn', '8 conns']];
    for (const r of latOk) {
      rows.push([r.label, ...r.latency!.map((c, i) => `${mb(c.rate)}${r === rawL ? '' : ratio(c.rate, rawL?.latency?.[i]?.rate)}${c.verified ? '' : ' BAD'}`)]);
    }
    out.push(table(rows));
  }
  if (micro) out.push(formatMicro(micro));
  const notRun = [...na, ...latency.filter((x) => x.status === 'failed')];
  if (notRun.length) out.push(notRun.map((r) => `${r.label}: ${r.status}${r.note ? ` (${r.note})` : ''}`).join('\n'));
  return out.join('\n\n');
}

// ---- main ------------------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  opts = parseOptions(process.argv.slice(2));
  const started = Date.now();
  const lib = await loadLib();
  const avail = availability(lib);
  log('available:', avail, loadErrors);
  const selected = PATHS.filter((p) => !opts.paths || opts.paths.includes(p.name) || p.name === 'raw');
  const unknown = (opts.paths ?? []).filter((n) => !PATHS.some((p) => p.name === n));
  if (unknown.length) throw new Error(`unknown path ${unknown.join(', ')}; known: ${PATHS.map((p) => p.name).join(', ')}`);
  const has = (s: Scenario) => opts.scenarios.includes(s);

  const target = new RoleProcess('target', {});
  const { port: targetPort } = (await target.ready) as { port: number };

  const results: PathResult[] = [];
  const latency: PathResult[] = [];
  try {
    for (const p of selected) {
      const r: PathResult = { name: p.name, label: p.label, status: 'ok' };
      results.push(r);
      const missing = p.needs.filter((n) => !avail[n]);
      if (missing.length) {
        Object.assign(r, { status: 'n/a', note: `not built: ${missing.join(', ')}` });
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
        console.error(`[bench] ${p.name} failed:`, err);
      } finally {
        if (t) await stopPath(t);
      }
    }
  } finally {
    await target.stop();
  }
  const micro = has('micro') ? await timed('micro', async () => runMicro({ ms: opts.microMs, repeats: opts.quick ? 1 : 3 })) : undefined;
  if (opts.cpuProf) console.error(`[bench] CPU profiles in ${PROFILE_DIR}`);

  const meta = {
    date: new Date().toISOString(),
    node: process.version,
    cpus: `${os.cpus().length} x ${os.cpus()[0]?.model ?? '?'}`,
    loadavg: os.loadavg(),
    seconds: (Date.now() - started) / 1000,
  };
  console.log(`konnectivity-ts benchmarks, ${meta.date}, Node ${meta.node}, ${meta.cpus}, load ${meta.loadavg.map((x) => x.toFixed(1)).join(' ')}`);
  console.log(`medians of ${opts.repeats}; ratios are to raw TCP in this run; ${meta.seconds.toFixed(0)} s\n`);
  console.log(report(results, latency, micro));
  if (opts.json) {
    const file = resolve(opts.json);
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, `${JSON.stringify({ meta, options: opts, paths: results, latency, micro }, null, 2)}\n`);
    console.log(`\nJSON: ${file}`);
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  },
);
