/**
 * The proxy server's metrics: every family the reference server exports (`konnectivity_network_proxy_server_*`,
 * HELP texts verbatim, typos included), plus ours under `konnectivity_ts_server_*`.
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { ErrorCode } from '../protocol/errors.js';
import {
  DEFAULT_BUCKETS_SECONDS,
  LATENCY_BUCKETS_SECONDS,
  listen,
  metricName,
  metricsHandlerInstrumentation,
  newRegistry,
  onceClosed,
  servedStreamErrorCode,
  streamFamilies,
  tsMetricName,
  type CloseEmitter,
  type InstrumentOptions,
  type MetricsEventSource,
  type PacketCounts,
} from './metric-families.js';

/** Reasons of `server_dial_failure_count`, as the reference names them. Others go to `konnectivity_ts_server_dial_refusals_total`. */
export const SERVER_DIAL_FAILURE_REASONS = [
  'no_agent',
  'error_response',
  'unrecognized_response',
  'send_rsp',
  'backend_close',
  'backend_dial_timeout',
  'frontend_close',
] as const;

/**
 * Why a listener refused a connection, for `konnectivity_ts_server_connection_refusals_total{reason}`: the gRPC
 * listeners' own reasons (`connectionRefused`), and `bad_request` (an HTTP-CONNECT request or a yamux handshake
 * that breaks the protocol) and `other` for the rest.
 */
export type ConnectionRefusalReason = 'tls' | 'client_certificate' | 'handshake_timeout' | 'too_many_connections' | 'bad_request' | 'other';

/**
 * The refusal reason of an error a yamux listener (`onError`) or the HTTP-CONNECT frontend (`clientError`)
 * reported: by its code (ours, Node's TLS and HTTP parser codes), the handshake deadlines by their wording.
 */
export function connectionRefusalReason(err: unknown): ConnectionRefusalReason {
  const e = err as { code?: unknown; message?: unknown; library?: unknown } | undefined;
  const code = typeof e?.code === 'string' ? e.code : '';
  const message = typeof e?.message === 'string' ? e.message : '';
  if (code === ErrorCode.LIMIT_EXCEEDED) return 'too_many_connections';
  if (code === ErrorCode.UNAUTHENTICATED) return 'client_certificate';
  if (code === 'ERR_TLS_HANDSHAKE_TIMEOUT' || code === 'ERR_HTTP_REQUEST_TIMEOUT' || /timed out|within \d+ ms/.test(message)) return 'handshake_timeout';
  if (code.startsWith('ERR_SSL_') || e?.library === 'SSL routines' || /\bTLS\b/.test(message)) return 'tls';
  if (code.startsWith('HPE_') || code === ErrorCode.PROTOCOL || code === ErrorCode.MALFORMED_PACKET || code === ErrorCode.MESSAGE_TOO_LARGE) return 'bad_request';
  return 'other';
}

/** What the server metrics read from a ProxyServer. */
export interface ServerMetricsSource extends MetricsEventSource {
  /** Distinct agents connected now. */
  readonly agentCount: number;
  /** The connected agents (their identifiers, for `ready_backends{proxy_strategy}`). */
  agents(): ReadonlyArray<{ readonly identifiers?: { ipv4?: readonly string[]; ipv6?: readonly string[]; host?: readonly string[]; defaultRoute?: boolean } }>;
  /** Pending dials, established connections and packet counts. */
  readonly stats: { readonly pendingDials: number; readonly establishedConnections: number; readonly packets?: PacketCounts };
}

/** Options of {@link instrumentServer}. */
export interface ServerInstrumentOptions extends InstrumentOptions {
  /** The `--proxy-strategies` list, for `ready_backends{proxy_strategy}` (default `['default']`). */
  strategies?: readonly string[];
  /** The per-connection buffer and credit window limit, for `konnectivity_ts_server_connection_buffer_bytes`. */
  connectionBufferBytes?: number;
}

/** A gRPC stream the metrics follow: its close (and error), whether it is paused, and (frontends) its writes. */
export interface TrackedStream extends CloseEmitter {
  /** True while the stream does not read (a connection on it has a full buffer). */
  readonly isPaused?: boolean;
  /** The stream's write, timed for `frontend_write_duration_seconds`. */
  write?(packet: never): boolean;
}

/** What the lease GC metrics read from a lease controller (`ServerLeaseController` fits). */
export interface LeaseGcSource extends MetricsEventSource {}

/** The handle {@link instrumentServer} returns. */
export interface ServerInstrumentation {
  /** The prom-client registry that holds the server's metrics. */
  readonly registry: Registry;
  /**
   * Follow an open gRPC stream (`Proxy` frontend or `Connect` agent) until it closes: `grpc_connections`, its
   * error in `stream_errors_total`, `full_receive_channels` while it is paused, and for a frontend the time of
   * each write in `frontend_write_duration_seconds`. `creditWindowBytes`: the agent tunnel's agreed credit window
   * (undefined: the reference's flow control), for `konnectivity_ts_server_agent_tunnels`.
   */
  trackGrpcStream(serviceMethod: 'Proxy' | 'Connect', stream: TrackedStream, options?: { creditWindowBytes?: number | undefined }): void;
  /** Count an open HTTP-CONNECT client connection until it emits 'close'. */
  trackHttpConnection(socket: CloseEmitter): void;
  /** The `http_connections` gauge itself, for frontends that report opens and closes as events. */
  readonly httpConnections: { inc(): void; dec(): void };
  /**
   * A connection a listener refused before it carried a tunnel or a request (`listener`: the program's name for
   * it, `agent`, `frontend-grpc`, `frontend-http-connect`).
   */
  connectionRefused(listener: string, reason: string): void;
  /** A CONNECT that did not become a tunnel: the status written, or undefined when the client left first. */
  httpConnectFailed(statusCode: number | undefined): void;
  /** Feed the lease GC families from a lease controller's events; returns the detach function. */
  trackLeaseController(controller: LeaseGcSource): () => void;
  /** Stop listening to the server's events (the registry keeps its values). */
  detach(): void;
}

function countForStrategy(strategy: string, agents: ReturnType<ServerMetricsSource['agents']>): number {
  switch (strategy) {
    case 'destHost':
      return agents.filter((a) => (a.identifiers?.ipv4?.length ?? 0) + (a.identifiers?.ipv6?.length ?? 0) + (a.identifiers?.host?.length ?? 0) > 0).length;
    case 'defaultRoute':
      return agents.filter((a) => a.identifiers?.defaultRoute === true).length;
    default:
      return agents.length;
  }
}

/** The error code of a refusal (`ERR_UNAUTHENTICATED`), `unknown` without one. */
function codeOf(err: unknown): string {
  const code = (err as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' && code !== '' ? code : 'unknown';
}

/**
 * Register the server families in `registry` (a new one by default) and feed them from `server`: the
 * reference's `dial_duration_seconds`, `frontend_write_duration_seconds`, `grpc_connections{service_method}`,
 * `http_connections`, `ready_backend_connections`, `pending_backend_dials`, `established_connections`,
 * `full_receive_channels{service_method}`, `dial_failure_count{reason}`, the lease GC families
 * (`culled_leases_count`, `lease_delete_latency_seconds`, `lease_delete_total`, `lease_list_latency_seconds`,
 * `lease_list_total`), `stream_packets_total`, `stream_errors_total`, plus `ready_backends{proxy_strategy}`
 * (later reference versions) and ours: `konnectivity_ts_server_agent_tunnels{flow_control}`,
 * `_connection_buffer_bytes`, `_agent_refusals_total{code}` (the server's `agentRefused` events),
 * `_connection_refusals_total{listener,reason}`, `_dial_refusals_total{reason}`, `_http_connect_failures_total{status}`.
 */
export function instrumentServer(server: ServerMetricsSource, registry?: Registry, options: ServerInstrumentOptions = {}): ServerInstrumentation {
  const reg = newRegistry(registry, options);
  metricsHandlerInstrumentation(reg);
  const strategies = options.strategies ?? ['default'];
  const name = (m: string): string => metricName('server', m);
  const tsName = (m: string): string => tsMetricName('server', m);
  const tracked: Record<'Proxy' | 'Connect', Set<TrackedStream>> = { Proxy: new Set(), Connect: new Set() };
  const regimes = new Map<TrackedStream, 'credit' | 'legacy'>();

  const dialDuration = new Histogram({
    name: name('dial_duration_seconds'),
    help: 'Latency of dial to the remote endpoint in seconds',
    buckets: [...LATENCY_BUCKETS_SECONDS],
    registers: [reg],
  });
  const frontendWrite = new Histogram({
    name: name('frontend_write_duration_seconds'),
    help: 'Latency of write to the frontend in seconds',
    buckets: [...LATENCY_BUCKETS_SECONDS],
    registers: [reg],
  });
  const grpcConnections = new Gauge({
    name: name('grpc_connections'),
    help: 'Number of current grpc connections, partitioned by service method.',
    labelNames: ['service_method'],
    registers: [reg],
  });
  // Both series exist from the start, as a scrape right after start-up expects.
  grpcConnections.set({ service_method: 'Proxy' }, 0);
  grpcConnections.set({ service_method: 'Connect' }, 0);
  const httpConnections = new Gauge({ name: name('http_connections'), help: 'Number of current HTTP CONNECT connections', registers: [reg] });
  new Gauge({
    name: name('ready_backend_connections'),
    help: 'Number of konnectivity agent connected to the proxy server',
    registers: [reg],
    collect() {
      this.set(server.agentCount);
    },
  });
  new Gauge({
    name: name('ready_backends'),
    help: 'Number of agents each proxy strategy can route to.',
    labelNames: ['proxy_strategy'],
    registers: [reg],
    collect() {
      const agents = server.agents();
      for (const strategy of strategies) this.set({ proxy_strategy: strategy }, countForStrategy(strategy, agents));
    },
  });
  new Gauge({
    name: name('pending_backend_dials'),
    help: 'Current number of pending backend dial requests',
    registers: [reg],
    collect() {
      this.set(server.stats.pendingDials);
    },
  });
  new Gauge({
    name: name('established_connections'),
    help: 'Current number of established end-to-end connections (post-dial).',
    registers: [reg],
    collect() {
      this.set(server.stats.establishedConnections);
    },
  });
  new Gauge({
    name: name('full_receive_channels'),
    help: 'Number of current connections blocked by a full receive channel, partitioned by service method.',
    labelNames: ['service_method'],
    registers: [reg],
    collect() {
      // Ours: a stream is paused when a connection on it cannot take more (its buffer is full).
      this.reset();
      for (const method of ['Proxy', 'Connect'] as const) {
        let n = 0;
        for (const s of tracked[method]) if (s.isPaused === true) n++;
        if (n > 0) this.set({ service_method: method }, n);
      }
    },
  });
  const dialFailures = new Counter({
    name: name('dial_failure_count'),
    help: 'Number of dial failures observed. Multiple failures can occur for a single dial request.',
    labelNames: ['reason'],
    registers: [reg],
  });
  const culled = new Counter({
    name: name('culled_leases_count'),
    help: 'Count of expired leases that the lease garbage collection controller has culled.',
    registers: [reg],
  });
  const leaseDeleteLatency = new Histogram({
    name: name('lease_delete_latency_seconds'),
    help: 'Latency of lease deletion calls by the garbage collection controller in seconds.',
    labelNames: ['http_status_code'],
    buckets: [...DEFAULT_BUCKETS_SECONDS],
    registers: [reg],
  });
  const leaseDeletes = new Counter({
    name: name('lease_delete_total'),
    help: 'Count of lease delection calls by the garbage collection controller. Labeled by HTTP status code and reason.',
    labelNames: ['http_status_code', 'reason'],
    registers: [reg],
  });
  const leaseListLatency = new Histogram({
    name: name('lease_list_latency_seconds'),
    help: 'Latency of lease list calls by the garbage collection controller in seconds.',
    labelNames: ['http_status_code'],
    buckets: [...DEFAULT_BUCKETS_SECONDS],
    registers: [reg],
  });
  const leaseLists = new Counter({
    name: name('lease_list_total'),
    // Verbatim, "deletion" included: the reference's HELP for the list counter.
    help: 'Count of lease deletion calls by the garbage collection controller. Labeled by HTTP status code and reason.',
    labelNames: ['http_status_code', 'reason'],
    registers: [reg],
  });
  const streamErrors = streamFamilies(reg, 'server', () => server.stats.packets);

  new Gauge({
    name: tsName('agent_tunnels'),
    help: 'Agent tunnels by flow control: credit (per-connection windows, konnectivity-ts agents) or legacy (the reference protocol).',
    labelNames: ['flow_control'],
    registers: [reg],
    collect() {
      let credit = 0;
      for (const r of regimes.values()) if (r === 'credit') credit++;
      this.set({ flow_control: 'credit' }, credit);
      this.set({ flow_control: 'legacy' }, regimes.size - credit);
    },
  });
  if (options.connectionBufferBytes !== undefined) {
    new Gauge({
      name: tsName('connection_buffer_bytes'),
      help: 'The per-connection buffer and credit window limit, in bytes.',
      registers: [reg],
    }).set(options.connectionBufferBytes);
  }
  const agentRefusals = new Counter({
    name: tsName('agent_refusals_total'),
    help: 'Agent tunnels refused at Connect, by error code (ERR_UNAUTHENTICATED, ERR_PROTOCOL, ERR_SHUTTING_DOWN).',
    labelNames: ['code'],
    registers: [reg],
  });
  const dialRefusals = new Counter({
    name: tsName('dial_refusals_total'),
    help: 'Dials refused for a reason the reference has no dial_failure_count reason for (shutting_down, too_many_pending_dials).',
    labelNames: ['reason'],
    registers: [reg],
  });
  const connectionRefusals = new Counter({
    name: tsName('connection_refusals_total'),
    help: 'Connections a listener refused before they carried a tunnel or a request, by listener and reason (tls, client_certificate, handshake_timeout, too_many_connections, bad_request, other).',
    labelNames: ['listener', 'reason'],
    registers: [reg],
  });
  const httpConnectFailures = new Counter({
    name: tsName('http_connect_failures_total'),
    help: 'HTTP CONNECT requests that did not become a tunnel, by the status answered (client_gone: the client left first).',
    labelNames: ['status'],
    registers: [reg],
  });

  const goReasons: ReadonlySet<string> = new Set(SERVER_DIAL_FAILURE_REASONS);
  const detach = listen(server, {
    dialSucceeded: (e: { durationMs?: number }) => {
      if (typeof e?.durationMs === 'number') dialDuration.observe(e.durationMs / 1000);
    },
    dialFailed: (e: { reason?: string }) => {
      const reason = e?.reason ?? 'unknown';
      if (goReasons.has(reason)) dialFailures.inc({ reason });
      else dialRefusals.inc({ reason });
    },
    agentRefused: (r: { error?: unknown }) => agentRefusals.inc({ code: codeOf(r?.error) }),
  });

  return {
    registry: reg,
    trackGrpcStream(serviceMethod, stream, streamOptions = {}) {
      grpcConnections.inc({ service_method: serviceMethod });
      tracked[serviceMethod].add(stream);
      if (serviceMethod === 'Connect') regimes.set(stream, streamOptions.creditWindowBytes === undefined ? 'legacy' : 'credit');
      if (serviceMethod === 'Proxy' && typeof stream.write === 'function') {
        // Go times each Send to the frontend; ours is the write that hands the packet to HTTP/2.
        const write = stream.write.bind(stream) as (packet: never) => boolean;
        stream.write = (packet: never): boolean => {
          const started = performance.now();
          const ok = write(packet);
          frontendWrite.observe((performance.now() - started) / 1000);
          return ok;
        };
      }
      onceClosed(stream, (err) => {
        grpcConnections.dec({ service_method: serviceMethod });
        tracked[serviceMethod].delete(stream);
        regimes.delete(stream);
        if (err) streamErrors.inc({ segment: serviceMethod === 'Proxy' ? 'from_client' : 'from_agent', code: servedStreamErrorCode(err), packet_type: 'Unknown' });
      });
    },
    trackHttpConnection(socket) {
      httpConnections.inc();
      onceClosed(socket, () => httpConnections.dec());
    },
    httpConnections: { inc: () => httpConnections.inc(), dec: () => httpConnections.dec() },
    connectionRefused(listener, reason) {
      connectionRefusals.inc({ listener, reason });
    },
    httpConnectFailed(statusCode) {
      httpConnectFailures.inc({ status: statusCode === undefined ? 'client_gone' : String(statusCode) });
    },
    trackLeaseController(controller) {
      return listen(controller, {
        culled: () => culled.inc(),
        call: (c: { call: 'list' | 'delete'; status: number; reason: string; durationMs: number }) => {
          // As the reference: a call that got no answer from the API (no status) is not recorded.
          if (!c || c.status === 0) return;
          const code = String(c.status);
          if (c.call === 'list') {
            leaseLists.inc({ http_status_code: code, reason: c.reason });
            leaseListLatency.observe({ http_status_code: code }, c.durationMs / 1000);
          } else {
            leaseDeletes.inc({ http_status_code: code, reason: c.reason });
            leaseDeleteLatency.observe({ http_status_code: code }, c.durationMs / 1000);
          }
        },
      });
    },
    detach,
  };
}
