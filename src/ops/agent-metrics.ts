/**
 * The agent's metrics: every family the reference agent exports (`konnectivity_network_proxy_agent_*`, HELP texts
 * verbatim), plus ours under `konnectivity_ts_agent_*`.
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import {
  AGENT_LATENCY_BUCKETS_SECONDS,
  listen,
  metricName,
  metricsHandlerInstrumentation,
  newRegistry,
  streamErrorCode,
  streamFamilies,
  tsMetricName,
  type InstrumentOptions,
  type MetricsEventSource,
  type PacketCounts,
} from './metric-families.js';

/** What the agent metrics read from an Agent. */
export interface AgentMetricsSource extends MetricsEventSource {
  /** The open tunnels: each server's count and the connections it carries. */
  readonly tunnels: ReadonlyArray<{ readonly serverCount: number; readonly connectionCount: number }>;
  /** Packet counts by direction and type. */
  readonly stats?: { readonly packets?: PacketCounts };
}

/** Options of {@link instrumentAgent}. */
export interface AgentInstrumentOptions extends InstrumentOptions {
  /** The server count in use (the HA client set's); default: the largest `servercount` of the open tunnels. */
  knownServerCount?: () => number;
  /** The per-connection buffer and credit window limit, for `konnectivity_ts_agent_connection_buffer_bytes`. */
  connectionBufferBytes?: number;
}

/** The handle {@link instrumentAgent} returns. */
export interface AgentInstrumentation {
  /** The prom-client registry that holds the agent's metrics. */
  readonly registry: Registry;
  /**
   * Feed the tunnel families from an HA client set's events: a tunnel that fails counts in
   * `server_connection_failure_count{direction="from_server"}` and `stream_errors_total`; failed attempts and
   * duplicates in ours. Returns the detach function.
   */
  trackClientSet(set: MetricsEventSource): () => void;
  /** Feed the lease families from a lease counter's events; returns the detach function. */
  trackLeaseCounter(counter: MetricsEventSource): () => void;
  /** Stop listening to the agent's events (the registry keeps its values). */
  detach(): void;
}

/** The agent's `endpoint_dial_failure_total` reason: `timeout` for a timed-out dial, `unknown` otherwise. */
export function endpointDialFailureReason(error: unknown): 'timeout' | 'unknown' {
  const e = error as { code?: unknown; message?: unknown } | string | undefined;
  if (typeof e === 'object' && (e?.code === 'ERR_DIAL_TIMEOUT' || e?.code === 'ETIMEDOUT')) return 'timeout';
  // The engine reports the Go-form error text (`dial tcp …: i/o timeout`).
  const text = typeof e === 'string' ? e : typeof e?.message === 'string' ? e.message : '';
  return /timeout|deadline exceeded/i.test(text) ? 'timeout' : 'unknown';
}

/**
 * Register the agent families in `registry` (a new one by default) and feed them from `agent`: the reference's
 * `dial_duration_seconds`, `server_connection_failure_count{direction}`, `endpoint_dial_failure_total{reason}`,
 * `open_server_connections`, `known_server_count`, `open_endpoint_connections`, `stream_packets_total`,
 * `stream_errors_total`, `lease_lists_total`, `lease_watches_total`, `lease_list_latency_seconds`, plus ours:
 * `konnectivity_ts_agent_connection_buffer_bytes`, `_tunnel_failures_total{code}`, `_duplicate_tunnels_total`,
 * `_dial_refusals_total{reason}`.
 */
export function instrumentAgent(agent: AgentMetricsSource, registry?: Registry, options: AgentInstrumentOptions = {}): AgentInstrumentation {
  const reg = newRegistry(registry, options);
  metricsHandlerInstrumentation(reg);
  const name = (m: string): string => metricName('agent', m);
  const tsName = (m: string): string => tsMetricName('agent', m);

  const dialDuration = new Histogram({
    name: name('dial_duration_seconds'),
    help: 'Latency of dial to the remote endpoint in seconds',
    buckets: [...AGENT_LATENCY_BUCKETS_SECONDS],
    registers: [reg],
  });
  const serverFailures = new Counter({
    name: name('server_connection_failure_count'),
    help: 'Count of failures to send to or receive from the proxy server, labeled by the direction (from_server or to_server). DEPRECATED, please use stream_events_error_total',
    labelNames: ['direction'],
    registers: [reg],
  });
  const dialFailures = new Counter({
    name: name('endpoint_dial_failure_total'),
    help: 'Number of failures dialing the remote endpoint, by reason (example: timeout).',
    labelNames: ['reason'],
    registers: [reg],
  });
  new Gauge({
    name: name('open_server_connections'),
    help: 'Current number of open server connections.',
    registers: [reg],
    collect() {
      this.set(agent.tunnels.length);
    },
  });
  new Gauge({
    name: name('known_server_count'),
    help: 'Current number of servers agent is trying to connect to.',
    registers: [reg],
    collect() {
      this.set(options.knownServerCount ? options.knownServerCount() : Math.max(0, ...agent.tunnels.map((t) => t.serverCount)));
    },
  });
  new Gauge({
    name: name('open_endpoint_connections'),
    help: 'Current number of open endpoint connections.',
    registers: [reg],
    collect() {
      this.set(agent.tunnels.reduce((n, t) => n + t.connectionCount, 0));
    },
  });
  const streamErrors = streamFamilies(reg, 'agent', () => agent.stats?.packets);
  const leaseLists = new Counter({
    name: name('lease_lists_total'),
    help: 'Count of server lease list calls made by the agent to the k8s apiserver, labeled by HTTP response code and reason',
    labelNames: ['http_response_code', 'reason'],
    registers: [reg],
  });
  const leaseWatches = new Counter({
    name: name('lease_watches_total'),
    help: 'Count of server lease watch calls made by the agent to the k8s apiserver, labeled by HTTP response code and reason',
    labelNames: ['http_response_code', 'reason'],
    registers: [reg],
  });
  const leaseListLatency = new Histogram({
    name: name('lease_list_latency_seconds'),
    help: 'Latency of server lease listing in seconds',
    labelNames: ['http_response_code'],
    buckets: [...AGENT_LATENCY_BUCKETS_SECONDS],
    registers: [reg],
  });
  if (options.connectionBufferBytes !== undefined) {
    new Gauge({ name: tsName('connection_buffer_bytes'), help: 'The per-connection buffer and credit window limit, in bytes.', registers: [reg] }).set(
      options.connectionBufferBytes,
    );
  }
  const tunnelFailures = new Counter({
    name: tsName('tunnel_failures_total'),
    help: 'Attempts to open a tunnel that failed, by error code (ERR_UNAUTHENTICATED: the server refused us; ERR_TUNNEL_CLOSED: unreachable).',
    labelNames: ['code'],
    registers: [reg],
  });
  const dialRefusals = new Counter({
    name: tsName('dial_refusals_total'),
    help: 'Dials the agent refused before dialing the endpoint, by reason (too_many_pending_dials); not endpoint dial failures.',
    labelNames: ['reason'],
    registers: [reg],
  });
  const duplicates = new Counter({
    name: tsName('duplicate_tunnels_total'),
    help: 'Tunnels that reached a server already connected and were closed at once.',
    registers: [reg],
  });

  const detach = listen(agent, {
    connectionOpened: (e: { durationMs?: number }) => {
      if (typeof e?.durationMs === 'number') dialDuration.observe(e.durationMs / 1000);
    },
    dialFailed: (e: { error?: unknown; refused?: string }) => {
      if (e?.refused) dialRefusals.inc({ reason: e.refused });
      else dialFailures.inc({ reason: endpointDialFailureReason(e?.error) });
    },
  });
  return {
    registry: reg,
    trackClientSet(set) {
      return listen(set, {
        tunnelRemoved: (_t: unknown, err: unknown) => {
          if (!err) return;
          // As the reference: a receive that failed (the stream broke), seen from the server's side (to_agent).
          serverFailures.inc({ direction: 'from_server' });
          streamErrors.inc({ segment: 'to_agent', code: streamErrorCode(err), packet_type: 'Unknown' });
        },
        connectFailed: (err: unknown) => {
          const code = (err as { code?: unknown } | undefined)?.code;
          tunnelFailures.inc({ code: typeof code === 'string' && code !== '' ? code : 'unknown' });
        },
        duplicate: () => duplicates.inc(),
      });
    },
    trackLeaseCounter(counter) {
      return listen(counter, {
        call: (c: { call: 'list' | 'watch'; status: number; reason: string; durationMs: number }) => {
          if (!c || c.status === 0) return;
          const code = String(c.status);
          if (c.call === 'list') {
            leaseLists.inc({ http_response_code: code, reason: c.reason });
            leaseListLatency.observe({ http_response_code: code }, c.durationMs / 1000);
          } else leaseWatches.inc({ http_response_code: code, reason: c.reason });
        },
      });
    },
    detach,
  };
}
