/**
 * The printed report: one table per scenario, each with a legend under it, the konnbench section (ours against
 * the Go reference and raw TCP) first, then the Node-client paths, then the targets of issues 15 and 16.
 */
import { formatMicro } from '../micro.js';
import { kib, mb, mib, ms, perSec, ratio, sec, table, times, withLegend } from './format.js';
import {
  findDial,
  findRate,
  REF_PATH_LABELS,
  REF_STACK_LABELS,
  type RefDial,
  type RefPathName,
  type RefRate,
  type RefResults,
  type RunResults,
} from './results.js';
import { summarise, verdictText, type TargetCheck } from './targets.js';

/** What the report says about how the figures were taken. */
export interface ReportContext {
  repeats: number;
  delayMs: number;
  bulkBytes: number;
  refBytes: number;
  latencyBytes: number;
  dialMs: number;
  /** Our processes ran src/ through tsx (`--from-source`) instead of the package built for the run. */
  fromSource?: boolean;
}

const size = (b: number) => (b >= 1024 ** 3 ? `${b / 1024 ** 3} GiB` : b >= 1024 ** 2 ? `${b / 1024 ** 2} MiB` : `${b / 1024} KiB`);
const errs = (n: number | undefined) => (n ? ` (${n} err)` : '');
const REF_PATHS: RefPathName[] = ['grpcfe', 'connect', 'connect-yamux'];
const ourCode = (c: ReportContext) => (c.fromSource ? 'src/cli through tsx, --from-source' : 'the package built for the run, not transformed by tsx');

function refSection(ref: RefResults, c: ReportContext): string[] {
  const out: string[] = [];
  if (ref.bulk.length) {
    const rows = [[`konnbench bulk, 1 connection, ${size(c.refBytes)}`, 'ours', 'Go', 'ours/Go', 'raw TCP', 'ours/raw', 'Go/raw', 'CPU s/GiB: ours (server+agent)', 'Go', 'ours/Go']];
    for (const path of REF_PATHS) {
      for (const dir of ['up', 'down'] as const) {
        const ts = findRate(ref.bulk, path, 'ts', dir);
        const go = findRate(ref.bulk, path, 'go', dir);
        if (!ts && !go) continue;
        const raw = findRate(ref.bulk, 'raw', 'raw', dir)?.rate;
        const cpu = (r: RefRate | undefined) => (r?.cpu ? r.cpu.server + r.cpu.agent : undefined);
        const cpuCell = (r: RefRate | undefined) => (r?.cpu ? `${sec(cpu(r))} (${r.cpu.server.toFixed(1)}+${r.cpu.agent.toFixed(1)})` : '-');
        rows.push([
          `${REF_PATH_LABELS[path]}, ${dir}`,
          `${mb(ts?.rate)}${errs(ts?.errors)}`, go ? `${mb(go.rate)}${errs(go.errors)}` : '-', times(ts?.rate, go?.rate) || '-',
          mb(raw), times(ts?.rate, raw) || '-', times(go?.rate, raw) || '-',
          cpuCell(ts), cpuCell(go), times(cpu(ts), cpu(go)) || '-',
        ]);
      }
    }
    if (rows.length > 1) {
      out.push(withLegend(table(rows), [
        ['ours', `the konnectivity-ts programs (${ourCode(c)}), server and agent as separate processes; median MB/s (10^6 bytes/s) of ${c.repeats} konnbench runs`],
        ['Go', 'the reference v0.31.4 proxy-server and proxy-agent with the same flags, frontend on a Unix socket, agent leg TLS with the peer kit\'s certificates; the same konnbench client'],
        ['raw TCP', 'konnbench -mode direct straight to the same target (Go to Go over loopback): the baseline of this section'],
        ['ours/Go, ours/raw, Go/raw', 'ratios of the medians (above 1: the first is faster)'],
        ['CPU s/GiB', 'user + system seconds of the server and the agent (/proc/<pid>/stat utime + stime, before and after the runs) per GiB moved, as server+agent'],
        ['HTTP-CONNECT, yamux leg', 'our yamux agent leg over TLS (--agent-transport=yamux); the Go reference has no yamux leg'],
      ]));
    }
  }
  if (ref.dial.length) {
    const rows = [['konnbench rr: dial + 64 B echo + close', 'ours', 'p50', 'p99', 'CPU ms/dial', 'Go', 'p50', 'p99', 'CPU ms/dial', 'ours/Go', 'raw TCP', 'ours/raw']];
    const cpuCell = (d: RefDial | undefined) => (d?.cpuMs ? `${(d.cpuMs.server + d.cpuMs.agent).toFixed(2)} (${d.cpuMs.server.toFixed(2)}+${d.cpuMs.agent.toFixed(2)})` : '-');
    for (const path of REF_PATHS) {
      for (const dialers of [1, 8]) {
        const ts = findDial(ref.dial, path, 'ts', dialers);
        const go = findDial(ref.dial, path, 'go', dialers);
        if (!ts && !go) continue;
        const raw = findDial(ref.dial, 'raw', 'raw', dialers)?.rate;
        rows.push([
          `${REF_PATH_LABELS[path]}, ${dialers} dialer${dialers > 1 ? 's' : ''}`,
          `${perSec(ts?.rate)}${errs(ts?.errors)}`, ms(ts?.p50Ms), ms(ts?.p99Ms), cpuCell(ts),
          go ? `${perSec(go.rate)}${errs(go.errors)}` : '-', ms(go?.p50Ms), ms(go?.p99Ms), cpuCell(go),
          times(ts?.rate, go?.rate) || '-', perSec(raw), times(ts?.rate, raw) || '-',
        ]);
      }
    }
    out.push(withLegend(table(rows), [
      ['ours, Go', `dials per second of konnbench -test rr (each dialer: dial, echo 64 bytes, close, and in gRPC mode wait for the tunnel to finish), median of ${c.repeats} runs, each about ${c.dialMs} ms (its cycle count set from the rate at the end of a warm-up of up to 6,000 cycles or 15 s); ours: ${ourCode(c)}`],
      ['p50, p99', 'latency of one whole cycle in the median run'],
      ['CPU ms/dial', 'user + system CPU of the server and the agent (/proc/<pid>/stat) over the measured runs per cycle, as total (server+agent): what a dial costs, less sensitive to the load than the rate'],
      ['raw TCP', 'konnbench -mode direct: a TCP connect to the target, same cycle'],
      ['err', 'cycles that failed (konnbench reports the first error; see the JSON)'],
    ]));
  }
  if (ref.longLink.length) {
    const cases = [['up', 1], ['up', 8], ['down', 1], ['down', 8]] as const;
    const rows = [[`long link (+${c.delayMs} ms each way on the agent leg), HTTP-CONNECT, ${size(c.latencyBytes)}`, ...cases.map(([d, n]) => `${d} x${n}`)]];
    const lines: Array<[string, RefRate['path'], RefRate['stack']]> = [
      ['raw TCP through the relay', 'raw', 'raw'],
      [REF_STACK_LABELS.go, 'connect', 'go'],
      [`${REF_STACK_LABELS.ts}, gRPC leg`, 'connect', 'ts'],
      [`${REF_STACK_LABELS.ts}, yamux leg`, 'connect-yamux', 'ts'],
      [REF_STACK_LABELS['go-server+ts-agent'], 'connect', 'go-server+ts-agent'],
      [REF_STACK_LABELS['ts-server+go-agent'], 'connect', 'ts-server+go-agent'],
    ];
    for (const [label, path, stack] of lines) {
      if (!ref.longLink.some((r) => r.path === path && r.stack === stack)) continue;
      rows.push([label, ...cases.map(([dir, conns]) => {
        const r = findRate(ref.longLink, path, stack, dir, conns);
        if (!r) return '-';
        const raw = findRate(ref.longLink, 'raw', 'raw', dir, conns)?.rate;
        const go = findRate(ref.longLink, 'connect', 'go', dir, conns)?.rate;
        const vs = [stack !== 'raw' && times(r.rate, raw) ? `${times(r.rate, raw)} raw` : '', stack !== 'raw' && stack !== 'go' && times(r.rate, go) ? `${times(r.rate, go)} Go` : ''].filter(Boolean);
        return `${mb(r.rate)}${vs.length ? ` (${vs.join(', ')})` : ''}${errs(r.errors)}`;
      })]);
    }
    out.push(withLegend(table(rows), [
      ['long link', `the agent's TLS connection goes through bench/roles/relay.ts, which holds every chunk ${c.delayMs} ms each way (${2 * c.delayMs} ms round trip) and lets 64 MiB wait per direction, so only the application's windows show`],
      ['x1, x8', `konnbench bulk over 1 or 8 connections, ${size(c.latencyBytes)} in all; median MB/s of ${c.repeats} runs`],
      ['raw', 'the ratio to konnbench -mode direct through the same relay'],
      ['Go', 'the ratio to the Go server with the Go agent on the same link'],
      ['Go server + our agent, our server + Go agent', 'mixed pairs: the Go peer on the other end of the agent leg'],
    ]));
  }
  if (ref.idle.length || ref.idleMax.length) {
    const rows = [['idle connections: RSS growth per connection', 'open', 'ours: server', 'agent', 'Go: server', 'agent', 'ours/Go: server', 'agent']];
    for (const list of [ref.idle, ref.idleMax]) {
      for (const path of REF_PATHS) {
        const ts = list.find((i) => i.path === path && i.stack === 'ts');
        const go = list.find((i) => i.path === path && i.stack === 'go');
        if (!ts && !go) continue;
        const open = [ts, go].filter(Boolean).map((i) => `${i!.opened}${i!.opened < i!.requested ? `/${i!.requested}` : ''}`).join(' / ');
        rows.push([
          `${REF_PATH_LABELS[path]}${list === ref.idleMax ? ' (--idle-max)' : ''}`, open,
          kib(ts?.serverBytesPerConn), kib(ts?.agentBytesPerConn), kib(go?.serverBytesPerConn), kib(go?.agentBytesPerConn),
          times(ts?.serverBytesPerConn, go?.serverBytesPerConn) || '-', times(ts?.agentBytesPerConn, go?.agentBytesPerConn) || '-',
        ]);
      }
    }
    const stops = [...ref.idle, ...ref.idleMax].filter((i) => i.error).map((i) => `${REF_PATH_LABELS[i.path]}, ${REF_STACK_LABELS[i.stack]}: stopped ${i.error}`);
    const lim = [...ref.idleMax, ...ref.idle].find((i) => i.nofile)?.nofile;
    out.push(withLegend(table(rows) + (stops.length ? `\n${stops.join('\n')}` : ''), [
      ['open', 'idle connections held (ours / Go), each confirmed end to end, by the bench\'s Node client over the frontend\'s Unix socket (gRPC frontend: one HTTP/2 connection per dial, as kube-apiserver); "n/m": stopped early'],
      ['server, agent', 'RSS growth (/proc/<pid>/status VmRSS) per connection, each process garbage-collected first (Node: gc(); Go: /debug/pprof/heap?gc=1), measured the same way for both'],
      ['--idle-max', `as many connections as the open-files limit allows (20,000 at most${lim ? `; limit here soft ${lim.soft}, hard ${lim.hard}` : ''}), ${'the soft limit raised to the hard one'}`],
    ]));
  }
  return out;
}

function nodeSection(res: RunResults, c: ReportContext): string[] {
  const out: string[] = [];
  const results = res.paths;
  const raw = results.find((r) => r.name === 'raw');
  const ok = results.filter((r) => r.status === 'ok');
  if (ok.some((r) => r.bulk)) {
    const cases = (raw?.bulk ?? ok.find((r) => r.bulk)!.bulk!).map((k) => `${k.dir} x${k.conns}`);
    const rows = [[`bulk, Node client (${size(c.bulkBytes)}, 32 KiB writes, every byte checked)`, ...cases, 'CPU s/GiB server', 'agent', 'client']];
    for (const r of ok) {
      if (!r.bulk) continue;
      rows.push([
        r.label,
        ...r.bulk.map((k, i) => `${mb(k.rate)}${r === raw ? '' : ratio(k.rate, raw?.bulk?.[i]?.rate)}${k.verified ? '' : ' BAD'}`),
        sec(r.cpuPerGiB?.server), sec(r.cpuPerGiB?.agent), sec(r.cpuPerGiB?.client),
      ]);
    }
    out.push(withLegend(table(rows), [
      ['up xN, down xN', `--bytes split over N connections, upload or download; median MB/s (10^6 bytes/s) of ${c.repeats}, from the first byte to the last; (1.23x) is the ratio to raw TCP`],
      ['BAD', 'a byte arrived wrong (every byte is compared with a known pattern)'],
      ['CPU s/GiB', 'process.cpuUsage() (user + system) of each process over all bulk cases per GiB moved; for dial() paths the server column also holds the client side, for the in-memory leg also the agent'],
    ]));
  }
  if (ok.some((r) => r.dial)) {
    const rows = [['dial + 64 B echo + close, Node client', '1 dialer', 'p50', 'p99', '8 dialers', 'p50', 'p99']];
    for (const r of ok) {
      if (!r.dial) continue;
      rows.push([r.label, ...r.dial.flatMap((d, i) => [
        `${perSec(d.rate)}${r === raw ? '' : ratio(d.rate, raw?.dial?.[i]?.rate)}${d.errors ? ` (${d.errors} err)` : ''}`, ms(d.p50Ms), ms(d.p99Ms),
      ])]);
    }
    out.push(withLegend(table(rows), [
      ['N dialers', `N loops that each dial, send 64 bytes, wait for the echo and close, for ${c.dialMs} ms after a warm-up of 2 s (quick: 0.2 s); dials per second of the median run, (0.5x) the ratio to raw TCP`],
      ['p50, p99', 'latency of one whole round'],
    ]));
  }
  if (ok.some((r) => r.idle)) {
    const rows = [['RSS per idle connection, Node client', 'open', 'server', 'agent', 'client', 'target']];
    for (const r of ok) {
      if (!r.idle) continue;
      const i = r.idle;
      rows.push([r.label, `${i.opened}${i.opened < i.requested ? `/${i.requested}` : ''}`, kib(i.serverBytesPerConn), kib(i.agentBytesPerConn), kib(i.clientBytesPerConn), kib(i.targetBytesPerConn)]);
    }
    out.push(withLegend(table(rows), [
      ['open', 'connections opened and confirmed end to end, then left idle'],
      ['server, agent, client, target', 'RSS growth of each process after a forced GC, per connection (raw TCP: what a bare Node socket costs)'],
    ]));
  }
  if (ok.some((r) => r.slow)) {
    const rows = [['stalled reader', 'pushed', 'held in path', 'server +heap', 'agent +heap', 'peak +RSS: server', 'agent', 'other conn', 'vs unstalled']];
    for (const r of ok) {
      if (!r.slow) continue;
      const s = r.slow;
      const unstalled = r.bulk?.find((k) => k.dir === 'down' && k.conns === 1)?.rate;
      rows.push([
        r.label, mib(s.pushedBytes), mib(s.heldBytes), mib(s.serverHeldDelta), mib(s.agentHeldDelta), mib(s.serverPeakRssDelta), mib(s.agentPeakRssDelta),
        `${mb(s.otherRate)}${s.otherVerified ? '' : ' BAD'}`, unstalled ? `${(s.otherRate / unstalled).toFixed(2)}x` : '-',
      ]);
    }
    out.push(withLegend(table(rows), [
      ['pushed', 'what the target got written towards a client that never reads (it respects backpressure)'],
      ['held in path', 'pushed minus what still waits in the target\'s socket: what sits between the target and the stalled client, kernel buffers included (the raw row shows the kernel\'s share)'],
      ['+heap', 'growth of what the server\'s and the agent\'s JS holds (V8 heap + external buffers) once the stall has settled, after a GC: the stalled connection\'s cost'],
      ['peak +RSS', 'peak RSS growth over the whole scenario, the other connection\'s transfer included'],
      ['other conn', 'a download of --bytes on another connection of the same tunnel while the stall lasts'],
      ['vs unstalled', 'that rate over the 1-connection download of the bulk scenario (1.00x: the stall costs the other connection nothing)'],
    ]));
  }
  const latOk = res.latency.filter((r) => r.status === 'ok' && r.latency);
  if (latOk.length) {
    const rawL = latOk.find((r) => r.name === 'raw');
    const rows = [[`long link (+${c.delayMs} ms each way), Node client, download`, '1 conn', '8 conns']];
    for (const r of latOk) rows.push([r.label, ...r.latency!.map((k, i) => `${mb(k.rate)}${r === rawL ? '' : ratio(k.rate, rawL?.latency?.[i]?.rate)}${k.verified ? '' : ' BAD'}`)]);
    out.push(withLegend(table(rows), [
      ['long link', `the agent-to-server hop (the client-to-target hop for raw TCP) goes through the relay, ${c.delayMs} ms each way; ${size(c.latencyBytes)} over 1 or 8 connections; (0.5x) the ratio to raw TCP through the same relay`],
    ]));
  }
  return out;
}

/**
 * The targets of issues 15 and 16: per issue a count line and a table of the cases checked (each target named on
 * its first row), then one line per target for the cases that could not be checked in this run.
 */
export function formatTargets(checks: readonly TargetCheck[]): string {
  if (!checks.length) return '';
  const titles: Record<number, string> = { 16: 'issue 16, throughput', 15: 'issue 15, dials and idle connections' };
  const blocks = summarise(checks).map(({ issue, met, missed, na }) => {
    const of = checks.filter((k) => k.issue === issue);
    const order = [...new Set(of.map((k) => k.target))];
    const head = `targets of ${titles[issue] ?? `issue ${issue}`}: ${met} met, ${missed} missed, ${na} n/a`;
    const rows = [[head, 'case', 'measured', 'goal', 'verdict']];
    const notChecked: string[] = [];
    for (const target of order) {
      const cases = of.filter((k) => k.target === target);
      cases.filter((c) => c.status !== 'n/a').forEach((c, i) => {
        rows.push([i ? '' : c.target, c.case, c.measured, c.goal, verdictText(c) + (c.note ? ` (${c.note})` : '')]);
      });
      const na = cases.filter((c) => c.status === 'n/a');
      const why = [...new Set(na.map((c) => c.note ?? 'not measured'))].join('; ');
      if (na.length) notChecked.push(`  n/a: ${target}: ${na.length} case${na.length > 1 ? 's' : ''} (${why})`);
    }
    return [rows.length > 1 ? table(rows) : head, ...notChecked].join('\n');
  });
  return `${blocks.join('\n\n')}\n  missed by N: how far from the goal, as a factor (goal / measured for "at least", measured / goal for "at most")`;
}

export function formatReport(res: RunResults, c: ReportContext, checks: readonly TargetCheck[]): string {
  const out: string[] = [];
  const ref = res.reference;
  if (ref.status === 'skipped') out.push(`konnbench section (konnectivity-ts against the Go reference): skipped, ${ref.note}`);
  out.push(...refSection(ref, c));
  if (ref.failures.length) out.push(ref.failures.map((f) => `konnbench section: ${f.what}: failed (${f.error})`).join('\n'));
  out.push(...nodeSection(res, c));
  if (res.micro) out.push(formatMicro(res.micro));
  const notRun = [...res.paths.filter((r) => r.status !== 'ok'), ...res.latency.filter((x) => x.status === 'failed')];
  if (notRun.length) out.push(notRun.map((r) => `${r.label}: ${r.status}${r.note ? ` (${r.note})` : ''}`).join('\n'));
  const t = formatTargets(checks);
  if (t) out.push(t);
  return out.join('\n\n');
}
