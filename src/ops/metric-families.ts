/**
 * What the server and agent metrics share. Prometheus metrics with the reference's families (namespace `konnectivity_network_proxy`, PROTOCOL.md §6.4):
 * the same names, HELP texts, types, label names and buckets as the v0.31.4 binaries export (read off their
 * `/metrics`, typos included), so dashboards, alerts and conformance checks keep working. Each server or agent
 * instance has its own Registry (never prom-client's global one), so two in one process do not collide.
 *
 * Families with no Go counterpart (per-connection credit, limits, refusals) are under `konnectivity_ts_`, so a
 * reader can tell ours from the reference's. The process families are Go's `process_*` (prom-client's, plus the
 * three it lacks); `go_*` have no meaning here and Node's `nodejs_*` stand beside them.
 *
 * Counters and histograms are fed by the engine's events; gauges are read from the engine's live state at scrape
 * time, so they never drift. Sources are typed structurally, so the functions work with the engine and with fakes.
 */
import { readFileSync } from 'node:fs';
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';

/** The reference's metric namespace. */
export const METRICS_NAMESPACE = 'konnectivity_network_proxy';
/** Our own families' namespace. */
export const TS_METRICS_NAMESPACE = 'konnectivity_ts';

/** The server's latency buckets, in seconds (1 µs .. 12.5 s). */
export const LATENCY_BUCKETS_SECONDS: readonly number[] = [0.000001, 0.00001, 0.0001, 0.005, 0.025, 0.1, 0.5, 2.5, 12.5];
/** The agent's latency buckets, in seconds (5 ms .. 30 s). */
export const AGENT_LATENCY_BUCKETS_SECONDS: readonly number[] = [0.005, 0.025, 0.1, 0.5, 2.5, 10, 30];
/** Prometheus' default buckets, which the server's lease GC histograms use. */
export const DEFAULT_BUCKETS_SECONDS: readonly number[] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** Packet counts by direction then packet type name (`DIAL_REQ`, `DATA`, ...), as the engine keeps them. */
export type PacketCounts = Readonly<Record<string, Readonly<Record<string, number>>>>;

/** Something with Node-style `on`/`off`. */
export interface MetricsEventSource {
  // `any` so typed emitters (EventEmitter<T>) and plain ones both fit.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  /** Add a listener. */
  on(event: any, listener: (...args: any[]) => void): unknown;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  /** Remove a listener. */
  off(event: any, listener: (...args: any[]) => void): unknown;
}

/** Anything that emits 'close' once, with its error if it failed (a PacketStream, a socket). */
export interface CloseEmitter {
  /** Listen for the one 'close' (with the error that ended the stream, if any). */
  once(event: 'close', listener: (err?: unknown) => void): unknown;
}

/** Options shared by both instrumentations. */
export interface InstrumentOptions {
  /** Also export the process families (Go's `process_*`) and Node's runtime ones (`nodejs_*`). Default false. */
  defaultMetrics?: boolean;
  /**
   * With `defaultMetrics`: how often `nodejs_eventloop_lag_*` samples the event loop's delay, in ms (default
   * {@link EVENT_LOOP_SAMPLE_MS}). Each sample is a timer that wakes the process, busy or idle.
   */
  eventLoopSampleMs?: number;
}

/**
 * The default event-loop delay sampling period. prom-client's own (10 ms) wakes an idle server or agent 100 times a
 * second; at 100 ms a stall of 100 ms or more is always seen, and a scrape interval still holds hundreds of samples.
 */
export const EVENT_LOOP_SAMPLE_MS = 100;

const SEGMENTS: Readonly<Record<string, string>> = {
  fromFrontend: 'from_client',
  toFrontend: 'to_client',
  fromClient: 'from_client',
  toClient: 'to_client',
  fromAgent: 'from_agent',
  toAgent: 'to_agent',
  // The agent names segments from the server's side too: what it receives goes to_agent.
  fromServer: 'to_agent',
  toServer: 'from_agent',
};

/** The reference's `segment` label for an engine direction key (`fromAgent` -> `from_agent`). */
export function segmentLabel(direction: string): string {
  return SEGMENTS[direction] ?? direction.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

/** `konnectivity_network_proxy_<subsystem>_<metric>` */
export function metricName(subsystem: string, metric: string): string {
  return `${METRICS_NAMESPACE}_${subsystem}_${metric}`;
}

/** `konnectivity_ts_<subsystem>_<metric>` */
export function tsMetricName(subsystem: string, metric: string): string {
  return `${TS_METRICS_NAMESPACE}_${subsystem}_${metric}`;
}

/** Go's names of the gRPC codes (`codes.Code.String()`), by wire value. */
const GO_GRPC_CODES = [
  'OK',
  'Canceled',
  'Unknown',
  'InvalidArgument',
  'DeadlineExceeded',
  'NotFound',
  'AlreadyExists',
  'PermissionDenied',
  'ResourceExhausted',
  'FailedPrecondition',
  'Aborted',
  'OutOfRange',
  'Unimplemented',
  'Internal',
  'Unavailable',
  'DataLoss',
  'Unauthenticated',
];
const STATUS_NAMES = ['OK', 'CANCELLED', 'UNKNOWN', 'INVALID_ARGUMENT', 'DEADLINE_EXCEEDED', 'NOT_FOUND', 'ALREADY_EXISTS', 'PERMISSION_DENIED', 'RESOURCE_EXHAUSTED', 'FAILED_PRECONDITION', 'ABORTED', 'OUT_OF_RANGE', 'UNIMPLEMENTED', 'INTERNAL', 'UNAVAILABLE', 'DATA_LOSS', 'UNAUTHENTICATED'];

/**
 * `streamErrorCode` for a stream we serve (a frontend's `Proxy` call, an agent's `Connect`): a peer that resets
 * the stream or drops its connection is `Canceled`, as grpc-go's server sees a client that leaves (its call's
 * context is cancelled), where for a stream we opened it is `Unavailable`.
 */
export function servedStreamErrorCode(err: unknown): string {
  const code = streamErrorCode(err);
  const own = (err as { code?: unknown } | undefined)?.code;
  return code === 'Unavailable' && (own === 'ERR_STREAM_CLOSED' || own === 'ECONNRESET' || own === 'EPIPE') ? 'Canceled' : code;
}

/**
 * The `code` label of `stream_errors_total` for a stream's error, as Go names gRPC codes: a peer's status
 * (`UNAVAILABLE: ...`) keeps its code, a reset with CANCEL (how gRPC clients end a call) is `Canceled`, a lost
 * connection `Unavailable`, and so on; `Unknown` otherwise.
 */
export function streamErrorCode(err: unknown): string {
  const e = err as { code?: unknown; message?: unknown } | undefined;
  const message = typeof e?.message === 'string' ? e.message : '';
  const status = /^([A-Z_]+): /.exec(message);
  const byStatus = status ? STATUS_NAMES.indexOf(status[1]!) : -1;
  if (byStatus >= 0) return GO_GRPC_CODES[byStatus]!;
  if (/HTTP\/2 error code 8\b|ERR_HTTP2_STREAM_CANCEL/.test(message)) return 'Canceled';
  switch (e?.code) {
    case 'ABORT_ERR':
    case 'ERR_ABORTED':
      return 'Canceled';
    case 'ERR_TUNNEL_CLOSED':
    case 'ERR_STREAM_CLOSED':
    case 'ERR_SHUTTING_DOWN':
    case 'ECONNRESET':
    case 'EPIPE':
      return 'Unavailable';
    case 'ERR_UNAUTHENTICATED':
      return 'Unauthenticated';
    case 'ERR_PROTOCOL':
    case 'ERR_MALFORMED_PACKET':
      return 'InvalidArgument';
    case 'ERR_MESSAGE_TOO_LARGE':
      return 'ResourceExhausted';
    case 'ERR_DIAL_TIMEOUT':
      return 'DeadlineExceeded';
    default:
      return 'Unknown';
  }
}

/** The reference's `stream_packets_total{segment,packet_type}` and `stream_errors_total{segment,code,packet_type}`. */
export function streamFamilies(registry: Registry, subsystem: string, read: () => PacketCounts | undefined): Counter<'segment' | 'code' | 'packet_type'> {
  new Counter({
    name: metricName(subsystem, 'stream_packets_total'),
    help: 'Count of packets processed, by segment and packet type (example: from_client, DIAL_REQ)',
    labelNames: ['segment', 'packet_type'],
    registers: [registry],
    collect() {
      const counts = read();
      if (!counts) return;
      this.reset();
      for (const [direction, byType] of Object.entries(counts)) {
        for (const [packetType, n] of Object.entries(byType)) {
          if (n > 0) this.inc({ segment: segmentLabel(direction), packet_type: packetType }, n);
        }
      }
    },
  });
  return new Counter({
    name: metricName(subsystem, 'stream_errors_total'),
    help: 'Count of gRPC stream errors, by segment, grpc Code, packet type. (example: from_agent, Code.Unavailable, DIAL_RSP)',
    labelNames: ['segment', 'code', 'packet_type'],
    registers: [registry],
  });
}

/** Listen to `handlers` on `source`; returns the detach function (idempotent). */
export function listen(source: MetricsEventSource, handlers: Record<string, (...args: never[]) => void>): () => void {
  const entries = Object.entries(handlers) as Array<[string, (...args: unknown[]) => void]>;
  for (const [event, fn] of entries) source.on(event, fn);
  let attached = true;
  return () => {
    if (!attached) return;
    attached = false;
    for (const [event, fn] of entries) source.off(event, fn);
  };
}

/** Call `fn` once when `stream` closes, with its error. */
export function onceClosed(stream: CloseEmitter, fn: (err: unknown) => void): void {
  let done = false;
  stream.once('close', (err?: unknown) => {
    if (done) return;
    done = true;
    fn(err);
  });
}

/** A new registry (or `registry`), with the process families when asked. */
export function newRegistry(registry: Registry | undefined, options: InstrumentOptions): Registry {
  const r = registry ?? new Registry();
  if (options.defaultMetrics) {
    collectDefaultMetrics({ register: r, eventLoopMonitoringPrecision: options.eventLoopSampleMs ?? EVENT_LOOP_SAMPLE_MS });
    processFamilies(r);
  }
  return r;
}

/** The three `process_*` families Go's collector has and prom-client's lacks, from /proc (Linux). */
function processFamilies(registry: Registry): void {
  const netstat = (): { in: number; out: number } | undefined => {
    try {
      // IpExt InOctets/OutOctets of the process's network namespace, as Go's procfs reads them.
      const lines = readFileSync('/proc/self/net/netstat', 'utf8').split('\n').filter((l) => l.startsWith('IpExt:'));
      const names = lines[0]?.split(/\s+/) ?? [];
      const values = lines[1]?.split(/\s+/) ?? [];
      return { in: Number(values[names.indexOf('InOctets')]), out: Number(values[names.indexOf('OutOctets')]) };
    } catch {
      return undefined;
    }
  };
  new Counter({
    name: 'process_network_receive_bytes_total',
    help: 'Number of bytes received by the process over the network.',
    registers: [registry],
    collect() {
      const n = netstat()?.in;
      if (n !== undefined && Number.isFinite(n)) this.reset(), this.inc(n);
    },
  });
  new Counter({
    name: 'process_network_transmit_bytes_total',
    help: 'Number of bytes sent by the process over the network.',
    registers: [registry],
    collect() {
      const n = netstat()?.out;
      if (n !== undefined && Number.isFinite(n)) this.reset(), this.inc(n);
    },
  });
  new Gauge({
    name: 'process_virtual_memory_max_bytes',
    help: 'Maximum amount of virtual memory available in bytes.',
    registers: [registry],
    collect() {
      try {
        const line = readFileSync('/proc/self/limits', 'utf8').split('\n').find((l) => l.startsWith('Max address space'));
        const soft = line?.slice('Max address space'.length).trim().split(/\s+/)[0];
        // Unlimited is the largest uint64, as Go reports it.
        this.set(soft === undefined || soft === 'unlimited' ? 18446744073709551615 : Number(soft));
      } catch {
        this.set(18446744073709551615);
      }
    },
  });
}

/** The `promhttp_*` scrape families of Go's metrics handler, fed by {@link metricsHandlerInstrumentation}. */
export interface ScrapeInstrumentation {
  /** Wrap one scrape: in flight while `produce` runs, counted by status afterwards. */
  scrape(produce: () => Promise<string>): Promise<string>;
}

const scrapes = new WeakMap<Registry, ScrapeInstrumentation>();

/** Go's `promhttp_metric_handler_requests_in_flight` and `_requests_total{code}` for `registry` (once per registry). */
export function metricsHandlerInstrumentation(registry: Registry): ScrapeInstrumentation {
  const known = scrapes.get(registry);
  if (known) return known;
  const inFlight = new Gauge({ name: 'promhttp_metric_handler_requests_in_flight', help: 'Current number of scrapes being served.', registers: [registry] });
  const total = new Counter({
    name: 'promhttp_metric_handler_requests_total',
    help: 'Total number of scrapes by HTTP status code.',
    labelNames: ['code'],
    registers: [registry],
  });
  for (const code of ['200', '500', '503']) total.inc({ code }, 0);
  const inst: ScrapeInstrumentation = {
    async scrape(produce) {
      inFlight.inc();
      try {
        const body = await produce();
        total.inc({ code: '200' });
        return body;
      } catch (err) {
        total.inc({ code: '500' });
        throw err;
      } finally {
        inFlight.dec();
      }
    },
  };
  scrapes.set(registry, inst);
  return inst;
}
