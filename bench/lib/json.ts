/**
 * The run as JSON, every figure with its unit: a number's unit is the suffix of its key, or of the nearest key
 * above it that has one (`cpuSecPerGiB: { server, agent }`), and the document lists the suffixes under `units`.
 * A few keys hold plain counts (`conns`, `errors`, ...). bench/README.md documents the same table.
 */
import type { MicroResult } from '../micro.js';
import { findDial, findRate, goCounterpart, type CpuPerGiB, type RefDial, type RefIdle, type RefRate, type RunResults } from './results.js';
import { verdictText, type TargetCheck } from './targets.js';

/** Key suffix -> unit. Longest suffixes first, so `dialsPerSec` is not read as seconds. */
export const UNIT_SUFFIXES: ReadonlyArray<readonly [string, string]> = [
  ['KiBPerConn', 'KiB (1024 bytes) of RSS growth per connection'],
  ['SecPerGiB', 'CPU seconds (user + system) per GiB (2^30 bytes) moved'],
  ['NsPerOp', 'nanoseconds per operation'],
  ['PerSec', 'per second (dials, cycles)'],
  ['Ratio', 'a ratio (1 = equal)'],
  ['Bytes', 'bytes'],
  ['MBps', '10^6 bytes per second'],
  ['MiB', 'MiB (2^20 bytes)'],
  ['Sec', 'seconds'],
  ['Ms', 'milliseconds'],
];

/** Keys whose numbers are plain counts or indices, without a unit. */
export const COUNT_KEYS: ReadonlySet<string> = new Set([
  'schema', 'conns', 'dialers', 'opened', 'requested', 'errors', 'cycles', 'repeats', 'idleConns', 'issue', 'soft', 'hard', 'loadavg', 'loadavgStart',
]);

/** The unit of a key, from its suffix (undefined when it has none). */
export function unitOf(key: string): string | undefined {
  return UNIT_SUFFIXES.find(([suffix]) => key.endsWith(suffix))?.[1];
}

/** Paths (`a.b[2].c`) of numbers in `doc` that have neither a unit nor a count key above them. */
export function numbersWithoutUnit(doc: unknown): string[] {
  const bad: string[] = [];
  const walk = (v: unknown, path: string, unitKnown: boolean) => {
    if (typeof v === 'number') {
      if (!unitKnown) bad.push(path);
    } else if (Array.isArray(v)) {
      v.forEach((x, i) => walk(x, `${path}[${i}]`, unitKnown));
    } else if (v && typeof v === 'object') {
      for (const [k, x] of Object.entries(v)) walk(x, path ? `${path}.${k}` : k, unitKnown || unitOf(k) !== undefined || COUNT_KEYS.has(k));
    }
  };
  walk(doc, '', false);
  return bad;
}

const MBps = (bps: number | undefined) => (bps === undefined ? undefined : round(bps / 1e6));
const KiB = (b: number | undefined) => (b === undefined ? undefined : round(b / 1024));
const MiB = (b: number | undefined) => (b === undefined ? undefined : round(b / 1024 ** 2));
const ratioOf = (x: number | undefined, base: number | undefined) => (x !== undefined && base ? round(x / base) : undefined);
/** Five significant digits: a readable document, more precision than any figure here has. */
function round(v: number): number {
  return Number.isFinite(v) ? Number(v.toPrecision(5)) : v;
}
const cpu = (c: CpuPerGiB | undefined) =>
  c && { server: c.server === undefined ? undefined : round(c.server), agent: c.agent === undefined ? undefined : round(c.agent), client: c.client === undefined ? undefined : round(c.client) };

function refRate(r: RefRate, list: readonly RefRate[]) {
  const raw = findRate(list, 'raw', 'raw', r.dir, r.conns)?.rate;
  const go = r.stack === 'go' || r.stack === 'raw' ? undefined : findRate(list, goCounterpart(r.path), 'go', r.dir, r.conns)?.rate;
  return {
    path: r.path, stack: r.stack, dir: r.dir, conns: r.conns,
    MBps: MBps(r.rate), samplesMBps: r.samples.map((s) => MBps(s)!),
    vsRawRatio: r.stack === 'raw' ? undefined : ratioOf(r.rate, raw), vsGoRatio: ratioOf(r.rate, go),
    cpuSecPerGiB: r.cpu && { server: round(r.cpu.server), agent: round(r.cpu.agent), total: round(r.cpu.server + r.cpu.agent) },
    errors: r.errors, error: r.error,
  };
}

function refDial(d: RefDial, list: readonly RefDial[]) {
  const raw = findDial(list, 'raw', 'raw', d.dialers)?.rate;
  const go = d.stack === 'go' || d.stack === 'raw' ? undefined : findDial(list, goCounterpart(d.path), 'go', d.dialers)?.rate;
  return {
    path: d.path, stack: d.stack, dialers: d.dialers, cycles: d.cycles,
    dialsPerSec: round(d.rate), samplesDialsPerSec: d.samples.map((s) => round(s)),
    p50Ms: round(d.p50Ms), p99Ms: round(d.p99Ms),
    vsRawRatio: d.stack === 'raw' ? undefined : ratioOf(d.rate, raw), vsGoRatio: ratioOf(d.rate, go),
    cpuPerDialMs: d.cpuMs && { server: round(d.cpuMs.server), agent: round(d.cpuMs.agent), total: round(d.cpuMs.server + d.cpuMs.agent) },
    errors: d.errors, error: d.error,
  };
}

function refIdle(i: RefIdle) {
  return {
    path: i.path, stack: i.stack, requested: i.requested, opened: i.opened, durationSec: round(i.seconds),
    rssKiBPerConn: { server: KiB(i.serverBytesPerConn), agent: KiB(i.agentBytesPerConn) },
    nofileLimit: i.nofile, error: i.error,
  };
}

function micro(m: MicroResult) {
  return { name: m.name, payloadBytes: m.bytesPerOp, oursNsPerOp: round(m.oursNsPerOp), protobufjsNsPerOp: m.protobufjsNsPerOp === undefined ? undefined : round(m.protobufjsNsPerOp), vsProtobufjsRatio: m.speedup === undefined ? undefined : round(m.speedup) };
}

/** The JSON document of a run (`options` as the runner parsed them; their keys carry units too). */
export function toJson(res: RunResults, options: Record<string, unknown>, targets: readonly TargetCheck[]): unknown {
  const raw = res.paths.find((p) => p.name === 'raw' && p.status === 'ok');
  const rawLong = res.latency.find((p) => p.name === 'raw' && p.status === 'ok');
  const ref = res.reference;
  const doc = {
    schema: 2,
    units: Object.fromEntries(UNIT_SUFFIXES),
    meta: { date: res.meta.date, node: res.meta.node, cpus: res.meta.cpus, loadavgStart: res.meta.loadavgStart, loadavg: res.meta.loadavg, durationSec: round(res.meta.seconds) },
    options,
    paths: res.paths.map((p) => ({
      name: p.name, label: p.label, status: p.status, note: p.note,
      bulk: p.bulk?.map((c) => {
        const base = raw?.bulk?.find((b) => b.dir === c.dir && b.conns === c.conns)?.rate;
        return {
          dir: c.dir, conns: c.conns, MBps: MBps(c.rate), samplesMBps: c.samples.map((s) => MBps(s)!),
          vsRawRatio: p === raw ? undefined : ratioOf(c.rate, base), verified: c.verified, cpuSecPerGiB: cpu(c.cpuPerGiB),
        };
      }),
      cpuSecPerGiB: cpu(p.cpuPerGiB),
      dial: p.dial?.map((d) => ({
        dialers: d.dialers, dialsPerSec: round(d.rate), samplesDialsPerSec: d.samples.map((s) => round(s)),
        vsRawRatio: p === raw ? undefined : ratioOf(d.rate, raw?.dial?.find((x) => x.dialers === d.dialers)?.rate),
        p50Ms: round(d.p50Ms), p99Ms: round(d.p99Ms), errors: d.errors,
      })),
      idle: p.idle && {
        requested: p.idle.requested, opened: p.idle.opened, durationSec: round(p.idle.seconds), error: p.idle.error,
        rssKiBPerConn: { server: KiB(p.idle.serverBytesPerConn), agent: KiB(p.idle.agentBytesPerConn), client: KiB(p.idle.clientBytesPerConn), target: KiB(p.idle.targetBytesPerConn) },
      },
      slow: p.slow && {
        pushedMiB: MiB(p.slow.pushedBytes), heldInPathMiB: MiB(p.slow.heldBytes),
        heapGrowthMiB: { server: MiB(p.slow.serverHeldDelta), agent: MiB(p.slow.agentHeldDelta) },
        peakRssGrowthMiB: { server: MiB(p.slow.serverPeakRssDelta), agent: MiB(p.slow.agentPeakRssDelta) },
        otherConnMBps: MBps(p.slow.otherRate), otherVerified: p.slow.otherVerified,
        otherVsUnstalledRatio: ratioOf(p.slow.otherRate, p.bulk?.find((c) => c.dir === 'down' && c.conns === 1)?.rate),
      },
    })),
    longLink: res.latency.map((p) => ({
      name: p.name, label: p.label, status: p.status, note: p.note,
      cases: p.latency?.map((c) => ({
        dir: 'down', conns: c.conns, MBps: MBps(c.rate), samplesMBps: c.samples.map((s) => MBps(s)!), verified: c.verified,
        vsRawRatio: p === rawLong ? undefined : ratioOf(c.rate, rawLong?.latency?.find((b) => b.conns === c.conns)?.rate),
      })),
    })),
    reference: {
      status: ref.status, note: ref.note,
      bulk: ref.bulk.map((r) => refRate(r, ref.bulk)),
      dial: ref.dial.map((d) => refDial(d, ref.dial)),
      longLink: ref.longLink.map((r) => refRate(r, ref.longLink)),
      idle: ref.idle.map(refIdle),
      idleMax: ref.idleMax.map(refIdle),
      failures: ref.failures,
    },
    targets: targets.map((t) => ({ ...t, shortBy: undefined, shortByRatio: t.shortBy === undefined || !Number.isFinite(t.shortBy) ? undefined : round(t.shortBy), verdict: verdictText(t) })),
    micro: res.micro?.map(micro),
  };
  // Drop undefined members (JSON.stringify would too) so the document is what the caller sees.
  return JSON.parse(JSON.stringify(doc));
}
