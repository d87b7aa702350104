/**
 * What a benchmark run measures, in the units it measures them (bytes, bytes per second, seconds). The printed
 * tables (report.ts), the JSON (json.ts, which converts to the documented units), the SVG chart (svg.ts) and the
 * target checks (targets.ts) all read these types; the runner fills them.
 */
import type { MicroResult } from '../micro.js';

/** CPU seconds (user + system) per GiB moved, per process. */
export interface CpuPerGiB {
  server?: number;
  agent?: number;
  client?: number;
}

/** One bulk case of a Node-client path. */
export interface BulkCase {
  dir: 'up' | 'down';
  conns: number;
  /** Median bytes/s over the repeats. */
  rate: number;
  /** Bytes/s of each repeat. */
  samples: number[];
  verified: boolean;
  cpuPerGiB: CpuPerGiB;
}

/** One dial-rate case (dial + 64-byte echo + close in a loop). */
export interface DialCase {
  dialers: number;
  /** Dials per second, median run. */
  rate: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
  /** Dials per second of each run. */
  samples: number[];
}

/** Idle connections held open, and what each costs. */
export interface IdleResult {
  /** Connections asked for. */
  requested: number;
  opened: number;
  seconds: number;
  /** RSS growth per connection, in bytes, of each process that was measured. */
  serverBytesPerConn?: number;
  agentBytesPerConn?: number;
  targetBytesPerConn?: number;
  clientBytesPerConn?: number;
  /** Why fewer than `requested` were opened. */
  error?: string;
}

/** The stalled-reader scenario. */
export interface SlowResult {
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
  /** Bytes/s of the other connection on the same tunnel. */
  otherRate: number;
  otherVerified: boolean;
}

/** One long-link case (downloads through the delaying relay). */
export interface LongLinkCase {
  conns: number;
  /** Median bytes/s. */
  rate: number;
  samples: number[];
  verified: boolean;
}

/** One Node-client path (bench/roles): raw TCP, `dial()` or a frontend, over one agent leg. */
export interface PathResult {
  name: string;
  label: string;
  status: 'ok' | 'n/a' | 'failed';
  note?: string;
  bulk?: BulkCase[];
  dial?: DialCase[];
  idle?: IdleResult;
  slow?: SlowResult;
  latency?: LongLinkCase[];
  /** CPU seconds per GiB over all bulk cases. */
  cpuPerGiB?: CpuPerGiB;
}

// ---- side by side with the Go reference (konnbench-driven) ----------------------------------------------------

/** Who implements a process: konnectivity-ts or the Go reference v0.31.4. */
export type Impl = 'ts' | 'go';

/** A frontend path of the reference section: the frontend on a Unix socket, and the agent leg (always TLS). */
export type RefPathName = 'grpcfe' | 'connect' | 'connect-yamux';

/**
 * Which implementation runs the server and which the agent. `raw` is konnbench straight to the target (the
 * baseline); the mixed pairs run on the long link only.
 */
export type RefStack = 'raw' | 'ts' | 'go' | 'go-server+ts-agent' | 'ts-server+go-agent';

/** A konnbench bulk transfer (loopback or long link). */
export interface RefRate {
  path: RefPathName | 'raw';
  stack: RefStack;
  dir: 'up' | 'down';
  conns: number;
  /** Median bytes/s over the repeats (0 when every repeat failed). */
  rate: number;
  samples: number[];
  errors: number;
  /** konnbench's first error, if any. */
  error?: string;
  /** CPU seconds per GiB moved, from /proc/<pid>/stat (utime + stime) before and after the runs. */
  cpu?: { server: number; agent: number };
}

/** A konnbench `-test rr` run: dial, 64-byte echo, close. */
export interface RefDial {
  path: RefPathName | 'raw';
  stack: RefStack;
  dialers: number;
  /** Dials per second, median run. */
  rate: number;
  p50Ms: number;
  p99Ms: number;
  /** Cycles per run. */
  cycles: number;
  samples: number[];
  errors: number;
  error?: string;
  /** CPU milliseconds per dial of the server and the agent (/proc/<pid>/stat utime + stime over the runs). */
  cpuMs?: { server: number; agent: number };
}

/** Idle connections through a reference-section stack (held by the Node client over the Unix socket). */
export interface RefIdle extends IdleResult {
  path: RefPathName;
  stack: RefStack;
  /** The open-files limit the processes ran with. */
  nofile?: { soft: number; hard: number };
}

/** Everything the reference section measured. */
export interface RefResults {
  /** `skipped`: the peer kit is not installed; `ok` also when single cases failed (see `failures`). */
  status: 'ok' | 'skipped';
  note?: string;
  bulk: RefRate[];
  dial: RefDial[];
  longLink: RefRate[];
  idle: RefIdle[];
  /** `--idle-max` only: as many idle connections as the open-files limit allows. */
  idleMax: RefIdle[];
  failures: Array<{ what: string; error: string }>;
}

/** About the run: when, where, how busy the machine was. */
export interface RunMeta {
  date: string;
  node: string;
  cpus: string;
  /** 1, 5 and 15 minute load averages at the end of the run. */
  loadavg: number[];
  /** The 1-minute load average at the start of the run. */
  loadavgStart: number[];
  seconds: number;
}

/** One whole run. */
export interface RunResults {
  meta: RunMeta;
  paths: PathResult[];
  /** The long-link scenario of the Node-client paths. */
  latency: PathResult[];
  reference: RefResults;
  micro?: MicroResult[];
}

/** An empty reference section (nothing run yet). */
export function emptyReference(status: RefResults['status'], note?: string): RefResults {
  return { status, ...(note ? { note } : {}), bulk: [], dial: [], longLink: [], idle: [], idleMax: [], failures: [] };
}

/** How the reference section's paths and stacks are named in tables, the chart and the target checks. */
export const REF_PATH_LABELS: Record<RefPathName | 'raw', string> = {
  raw: 'raw TCP',
  grpcfe: 'gRPC frontend',
  connect: 'HTTP-CONNECT',
  'connect-yamux': 'HTTP-CONNECT, yamux leg',
};
export const REF_STACK_LABELS: Record<RefStack, string> = {
  raw: 'raw TCP (konnbench direct)',
  ts: 'konnectivity-ts',
  go: 'Go v0.31.4',
  'go-server+ts-agent': 'Go server + our agent',
  'ts-server+go-agent': 'our server + Go agent',
};

/** The bulk or long-link case of `stack` on `path` (the loopback rows have one connection). */
export function findRate(list: readonly RefRate[], path: RefRate['path'], stack: RefStack, dir: 'up' | 'down', conns = 1): RefRate | undefined {
  return list.find((x) => x.path === path && x.stack === stack && x.dir === dir && x.conns === conns);
}

/** The dial-rate case of `stack` on `path`. */
export function findDial(list: readonly RefDial[], path: RefDial['path'], stack: RefStack, dialers: number): RefDial | undefined {
  return list.find((x) => x.path === path && x.stack === stack && x.dialers === dialers);
}

/**
 * What a konnectivity-ts row is compared with: the Go stack on the same path (the Go reference has no yamux leg,
 * so the yamux rows compare with Go's HTTP-CONNECT over gRPC); the mixed pairs compare with Go to Go.
 */
export function goCounterpart(path: RefRate['path']): RefRate['path'] {
  return path === 'connect-yamux' ? 'connect' : path;
}
