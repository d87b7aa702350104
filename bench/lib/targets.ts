/**
 * The targets of issues 15 (dials and idle connections) and 16 (throughput), checked against one run's results.
 * Pure: results in, verdicts out. Every figure compared is from the same run (ratios to Go and to raw TCP), except
 * the two absolute goals the issues set for this kind of machine (2,000 dials/s, KiB per idle connection).
 */
import { mb, perSec, kib, mib } from './format.js';
import {
  findDial,
  findRate,
  goCounterpart,
  REF_PATH_LABELS,
  REF_STACK_LABELS,
  type PathResult,
  type RefPathName,
  type RunResults,
} from './results.js';

/** One target checked on one case. */
export interface TargetCheck {
  issue: 15 | 16;
  /** The target, in short. */
  target: string;
  /** Which case of it: path, direction, connections. */
  case: string;
  goal: string;
  measured: string;
  status: 'met' | 'missed' | 'n/a';
  /**
   * For a missed target, how far off it is, as a factor above 1: goal / measured for an at-least goal,
   * measured / goal for an at-most goal (Infinity when nothing was measured, e.g. every run failed).
   */
  shortBy?: number;
  /** Why a check is n/a, or what to keep in mind. */
  note?: string;
}

/** What the checks need to know beyond the results. */
export interface TargetOptions {
  /** The connection count the idle targets are set at. */
  idleAt: number;
  /** The per-connection window a stalled reader may hold (the engine's default credit window). */
  stalledLimitBytes: number;
}

export const DEFAULT_TARGET_OPTIONS: TargetOptions = { idleAt: 10_000, stalledLimitBytes: 1024 * 1024 };

type Verdict = Pick<TargetCheck, 'status' | 'shortBy' | 'note'>;


/** `value >= goal`? */
export function atLeast(value: number | undefined, goal: number): Verdict {
  if (value === undefined || Number.isNaN(value)) return { status: 'n/a', note: 'not measured' };
  if (value >= goal) return { status: 'met' };
  return { status: 'missed', shortBy: value > 0 ? goal / value : Infinity };
}

/** `value <= goal`? */
export function atMost(value: number | undefined, goal: number): Verdict {
  if (value === undefined || Number.isNaN(value)) return { status: 'n/a', note: 'not measured' };
  if (value <= goal) return { status: 'met' };
  return { status: 'missed', shortBy: goal > 0 ? value / goal : Infinity };
}

/** The verdict as printed: `met`, `missed by 2.31x`, `n/a (why)`. */
export function verdictText(c: Pick<TargetCheck, 'status' | 'shortBy' | 'note'>): string {
  if (c.status === 'met') return 'met';
  if (c.status === 'n/a') return `n/a${c.note ? ` (${c.note})` : ''}`;
  return c.shortBy === undefined || !Number.isFinite(c.shortBy) ? 'missed (nothing measured)' : `missed by ${c.shortBy.toFixed(2)}x`;
}

const x = (v: number | undefined) => (v === undefined || !Number.isFinite(v) ? '-' : `${v.toFixed(2)}x`);
const dirs = ['up', 'down'] as const;

export function checkTargets(res: RunResults, opts: TargetOptions = DEFAULT_TARGET_OPTIONS): TargetCheck[] {
  const out: TargetCheck[] = [];
  const ref = res.reference;
  const refNote = ref.status === 'skipped' ? `konnbench section not run: ${ref.note ?? 'skipped'}` : undefined;
  const push = (c: TargetCheck) => {
    // Without the konnbench section there is nothing to compare; say why rather than "not measured".
    if (c.status === 'n/a' && refNote) c.note = refNote;
    out.push(c);
  };
  const label = (path: RefPathName, extra = '') => `${REF_PATH_LABELS[path]}${extra}`;

  // ---- issue 16: throughput ----
  for (const path of ['grpcfe', 'connect'] as const) {
    for (const dir of dirs) {
      const ts = findRate(ref.bulk, path, 'ts', dir);
      const go = findRate(ref.bulk, path, 'go', dir);
      const r = ts && go && go.rate ? ts.rate / go.rate : undefined;
      push({
        issue: 16, target: 'loopback bulk, 1 connection: at least 3x Go', case: label(path, `, ${dir}`), goal: '>= 3x Go',
        measured: `${x(r)} Go (${mb(ts?.rate)} vs ${mb(go?.rate)})`, ...atLeast(r, 3),
      });
    }
  }
  for (const path of ['connect', 'connect-yamux'] as const) {
    for (const dir of dirs) {
      for (const conns of [1, 8]) {
        const ts = findRate(ref.longLink, path, 'ts', dir, conns);
        const go = findRate(ref.longLink, 'connect', 'go', dir, conns);
        const raw = findRate(ref.longLink, 'raw', 'raw', dir, conns);
        const vsGo = ts && go && go.rate ? ts.rate / go.rate : undefined;
        const vsRaw = ts && raw && raw.rate ? ts.rate / raw.rate : undefined;
        const c = label(path, `, ${dir} x${conns}`);
        push({ issue: 16, target: 'long link: at least Go', case: c, goal: '>= 1x Go', measured: `${x(vsGo)} Go (${mb(ts?.rate)} vs ${mb(go?.rate)})`, ...atLeast(vsGo, 1) });
        push({ issue: 16, target: 'long link: at least 0.5x raw TCP through the relay', case: c, goal: '>= 0.5x raw', measured: `${x(vsRaw)} raw (${mb(ts?.rate)} vs ${mb(raw?.rate)})`, ...atLeast(vsRaw, 0.5) });
      }
    }
  }
  // The Node-client long link (downloads over dial(), one path per agent leg) runs without the peer kit too.
  const rawLong = res.latency.find((p) => p.name === 'raw' && p.status === 'ok');
  for (const p of res.latency) {
    if (p.name === 'raw' || p.status !== 'ok') continue;
    for (const c of p.latency ?? []) {
      const base = rawLong?.latency?.find((b) => b.conns === c.conns);
      const r = base?.rate ? c.rate / base.rate : undefined;
      out.push({
        issue: 16, target: 'long link: at least 0.5x raw TCP through the relay', case: `${p.label} (Node client), down x${c.conns}`,
        goal: '>= 0.5x raw', measured: `${x(r)} raw (${mb(c.rate)} vs ${mb(base?.rate)})`, ...atLeast(r, 0.5),
      });
    }
  }
  for (const stack of ['go-server+ts-agent', 'ts-server+go-agent'] as const) {
    for (const dir of dirs) {
      for (const conns of [1, 8]) {
        const m = findRate(ref.longLink, 'connect', stack, dir, conns);
        const go = findRate(ref.longLink, 'connect', 'go', dir, conns);
        const r = m && go && go.rate ? m.rate / go.rate : undefined;
        push({
          issue: 16, target: 'long link, a Go peer on the other end: never worse than Go to Go', case: `${REF_STACK_LABELS[stack]}, ${dir} x${conns}`,
          goal: '>= 1x Go to Go', measured: `${x(r)} (${mb(m?.rate)} vs ${mb(go?.rate)})`, ...atLeast(r, 1),
        });
      }
    }
  }
  const raw = res.paths.find((p) => p.name === 'raw' && p.status === 'ok');
  for (const name of ['yamux', 'connect-yamux']) {
    const p = res.paths.find((q) => q.name === name && q.status === 'ok');
    for (const c of p?.bulk ?? []) {
      const base = raw?.bulk?.find((b) => b.dir === c.dir && b.conns === c.conns);
      const r = base?.rate ? c.rate / base.rate : undefined;
      out.push({
        issue: 16, target: 'yamux leg between konnectivity-ts peers: at least 0.6x raw TCP (Node to Node)', case: `${p!.label}, ${c.dir} x${c.conns}`,
        goal: '>= 0.6x raw', measured: `${x(r)} raw (${mb(c.rate)} vs ${mb(base?.rate)})`, ...atLeast(r, 0.6),
      });
    }
  }
  for (const path of ['grpcfe', 'connect'] as const) {
    for (const dir of dirs) {
      const ts = findRate(ref.bulk, path, 'ts', dir)?.cpu;
      const go = findRate(ref.bulk, path, 'go', dir)?.cpu;
      const tsSum = ts && ts.server + ts.agent;
      const goSum = go && go.server + go.agent;
      const r = tsSum !== undefined && goSum ? tsSum / goSum : undefined;
      push({
        issue: 16, target: 'server + agent CPU per GiB: at most a third of Go', case: label(path, `, ${dir}`), goal: '<= 0.33x Go',
        measured: `${x(r)} Go (${tsSum?.toFixed(2) ?? '-'} vs ${goSum?.toFixed(2) ?? '-'} s/GiB)`, ...atMost(r, 1 / 3),
      });
    }
  }
  for (const p of res.paths) {
    if (p.status !== 'ok' || !p.slow || p.name === 'raw') continue;
    const held = Math.max(p.slow.serverHeldDelta ?? -Infinity, p.slow.agentHeldDelta ?? -Infinity);
    out.push({
      issue: 16, target: 'stalled reader costs at most its window', case: p.label, goal: `<= ${mib(opts.stalledLimitBytes)}`,
      measured: `${mib(held)} (largest +heap of server and agent)`, ...atMost(Number.isFinite(held) ? held : undefined, opts.stalledLimitBytes),
    });
    const unstalled = p.bulk?.find((c) => c.dir === 'down' && c.conns === 1)?.rate;
    const r = unstalled ? p.slow.otherRate / unstalled : undefined;
    out.push({
      issue: 16, target: 'a stalled reader does not slow another connection', case: p.label, goal: '>= 0.8x unstalled',
      measured: `${x(r)} (${mb(p.slow.otherRate)})`, ...atLeast(r, 0.8), note: 'one transfer each: noisy',
    });
  }

  // ---- issue 15: dials and idle connections ----
  for (const path of ['connect', 'grpcfe', 'connect-yamux'] as const) {
    for (const dialers of [1, 8]) {
      const ts = findDial(ref.dial, path, 'ts', dialers);
      const go = findDial(ref.dial, goCounterpart(path) as RefPathName, 'go', dialers);
      const r = ts && go && go.rate ? ts.rate / go.rate : undefined;
      const c = label(path, `, ${dialers} dialer${dialers > 1 ? 's' : ''}`);
      const vs = path === 'connect-yamux' ? " (Go's HTTP-CONNECT)" : '';
      push({ issue: 15, target: 'dials per second: at least 2x Go', case: c, goal: `>= 2x Go${vs}`, measured: `${x(r)} Go (${perSec(ts?.rate)} vs ${perSec(go?.rate)})`, ...atLeast(r, 2) });
      if (path !== 'grpcfe') {
        push({ issue: 15, target: 'HTTP-CONNECT dials per second: at least 2,000/s', case: c, goal: '>= 2000/s', measured: perSec(ts?.rate), ...atLeast(ts?.rate, 2000) });
      }
      const p99 = ts && go && go.p99Ms ? ts.p99Ms / go.p99Ms : undefined;
      push({
        issue: 15, target: "p99 dial latency no worse than Go's", case: c, goal: `<= 1x Go${vs}`,
        measured: `${ts?.p99Ms.toFixed(2) ?? '-'} vs ${go?.p99Ms.toFixed(2) ?? '-'} ms`, ...atMost(p99, 1),
      });
    }
  }
  const idleRows: Array<{ case: string; opened: number; server?: number; agent?: number }> = [];
  for (const i of ref.idle) if (i.stack === 'ts') idleRows.push({ case: `${REF_PATH_LABELS[i.path]} (konnbench section)`, opened: i.opened, server: i.serverBytesPerConn, agent: i.agentBytesPerConn });
  for (const p of res.paths as PathResult[]) {
    if (p.status !== 'ok' || !p.idle || p.name === 'raw' || p.name === 'memory') continue;
    idleRows.push({ case: p.label, opened: p.idle.opened, server: p.idle.serverBytesPerConn, agent: p.idle.agentBytesPerConn });
  }
  for (const row of idleRows) {
    const note = row.opened < opts.idleAt ? `at ${row.opened} connections, not ${opts.idleAt}: indicative` : undefined;
    for (const [who, value, goal] of [['agent', row.agent, 4096], ['server', row.server, 6144]] as const) {
      const v = atMost(value, goal);
      out.push({
        issue: 15, target: `RSS per idle connection: ${who} at most ${goal / 1024} KiB`, case: row.case, goal: `<= ${goal / 1024} KiB`,
        measured: kib(value), ...v, ...(note && v.status !== 'n/a' ? { note } : {}),
      });
    }
  }
  for (const i of ref.idleMax) {
    if (i.stack !== 'ts') continue;
    const v = atLeast(i.opened, i.requested);
    out.push({
      issue: 15, target: 'idle connections up to the open-files limit (20,000 at most)', case: REF_PATH_LABELS[i.path],
      goal: `>= ${i.requested} (open-files limit ${i.nofile?.hard ?? '?'})`,
      measured: `${i.opened}${i.error ? ` (${i.error})` : ''}`, ...v,
    });
  }
  return out;
}

/** Met, missed and n/a counts per issue. */
export function summarise(checks: readonly TargetCheck[]): Array<{ issue: number; met: number; missed: number; na: number }> {
  const issues = [...new Set(checks.map((c) => c.issue))].sort((a, b) => b - a);
  return issues.map((issue) => {
    const of = checks.filter((c) => c.issue === issue);
    return { issue, met: of.filter((c) => c.status === 'met').length, missed: of.filter((c) => c.status === 'missed').length, na: of.filter((c) => c.status === 'n/a').length };
  });
}
