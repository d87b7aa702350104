/**
 * Prometheus metrics with the reference's names (namespace `konnectivity_network_proxy`, PROTOCOL.md §6.4), in a
 * Registry per server or agent instance: never prom-client's global registry, so two servers in one process do
 * not collide.
 *
 * Counters and histograms are fed by the engine's events; gauges (pending dials, established connections, ready
 * backends, packet counts) are read from the engine's live state at scrape time, so they can never drift.
 * The sources are typed structurally (what we read), so the functions work with the engine classes and with fakes.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** The reference's metric namespace. */
export const METRICS_NAMESPACE = 'konnectivity_network_proxy';

/** The reference's latency buckets, in seconds (1 µs .. 12.5 s). */
export const LATENCY_BUCKETS_SECONDS: readonly number[] = [0.000001, 0.00001, 0.0001, 0.005, 0.025, 0.1, 0.5, 2.5, 12.5];

/** Reasons of `server_dial_failure_count`, as the reference names them. */
export const SERVER_DIAL_FAILURE_REASONS = [
  'no_agent',
  'error_response',
  'unrecognized_response',
  'send_rsp',
  'backend_close',
  'backend_dial_timeout',
  'frontend_close',
] as const;

/** Packet counts by direction then packet type name (`DIAL_REQ`, `DATA`, ...), as the engine keeps them. */
export type PacketCounts = Readonly<Record<string, Readonly<Record<string, number>>>>;

/** Something with Node-style `on`/`off`. */
export interface MetricsEventSource {
  /** Add a listener. */
  // `any` so typed emitters (EventEmitter<T>) and plain ones both fit.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  on(event: any, listener: (...args: any[]) => void): unknown;
  /** Remove a listener. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  off(event: any, listener: (...args: any[]) => void): unknown;
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

/** What the agent metrics read from an Agent. */
export interface AgentMetricsSource extends MetricsEventSource {
  /** The open tunnels: each server's count and the connections it carries. */
  readonly tunnels: ReadonlyArray<{ readonly serverCount: number; readonly connectionCount: number }>;
  /** Packet counts by direction and type. */
  readonly stats?: { readonly packets?: PacketCounts };
}

/** Options shared by both instrumentations. */
export interface InstrumentOptions {
  /** Also export prom-client's process and Node.js runtime metrics (like Go's process_* and go_*). Default false. */
  defaultMetrics?: boolean;
}

/** Options of {@link instrumentServer}. */
export interface ServerInstrumentOptions extends InstrumentOptions {
  /** The `--proxy-strategies` list, for `ready_backends{proxy_strategy}` (default `['default']`). */
  strategies?: readonly string[];
}

/** Options of {@link instrumentAgent}. */
export interface AgentInstrumentOptions extends InstrumentOptions {
  /** The server count in use (the HA client set's); default: the largest `servercount` of the open tunnels. */
  knownServerCount?: () => number;
}

/** Anything that emits 'close' once (a PacketStream, a socket). */
export interface CloseEmitter {
  /** Listen for the one 'close'. */
  once(event: 'close', listener: () => void): unknown;
}

/** The handle {@link instrumentServer} returns. */
export interface ServerInstrumentation {
  /** The prom-client registry that holds the server's metrics. */
  readonly registry: Registry;
  /** Count an open gRPC stream (`Proxy` frontend or `Connect` agent) until it emits 'close'. */
  trackGrpcStream(serviceMethod: 'Proxy' | 'Connect', stream: CloseEmitter): void;
  /** Count an open HTTP-CONNECT client connection until it emits 'close'. */
  trackHttpConnection(socket: CloseEmitter): void;
  /** The `http_connections` gauge itself, for frontends that report opens and closes as events. */
  readonly httpConnections: { inc(): void; dec(): void };
  /** Stop listening to the server's events (the registry keeps its values). */
  detach(): void;
}

/** The handle {@link instrumentAgent} returns. */
export interface AgentInstrumentation {
  /** The prom-client registry that holds the agent's metrics. */
  readonly registry: Registry;
  /** Stop listening to the agent's events (the registry keeps its values). */
  detach(): void;
}

const SEGMENTS: Readonly<Record<string, string>> = {
  fromFrontend: 'from_client',
  toFrontend: 'to_client',
  fromClient: 'from_client',
  toClient: 'to_client',
  fromAgent: 'from_agent',
  toAgent: 'to_agent',
};

/** The reference's `segment` label for an engine direction key (`fromAgent` -> `from_agent`). */
export function segmentLabel(direction: string): string {
  return SEGMENTS[direction] ?? direction.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

function name(subsystem: string, metric: string): string {
  return `${METRICS_NAMESPACE}_${subsystem}_${metric}`;
}

/** `stream_packets_total{segment,packet_type}`, read from the engine's counts at scrape time. */
function packetsCounter(registry: Registry, subsystem: string, read: () => PacketCounts | undefined): void {
  new Counter({
    name: name(subsystem, 'stream_packets_total'),
    help: 'Count of packets processed, by segment (from_client, to_client, from_agent, to_agent) and packet type.',
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
}

function listen(source: MetricsEventSource, handlers: Record<string, (...args: never[]) => void>): () => void {
  const entries = Object.entries(handlers) as Array<[string, (...args: unknown[]) => void]>;
  for (const [event, fn] of entries) source.on(event, fn);
  let attached = true;
  return () => {
    if (!attached) return;
    attached = false;
    for (const [event, fn] of entries) source.off(event, fn);
  };
}

function newRegistry(registry: Registry | undefined, options: InstrumentOptions): Registry {
  const r = registry ?? new Registry();
  if (options.defaultMetrics) collectDefaultMetrics({ register: r });
  return r;
}

/**
 * Register the server series in `registry` (a new one by default) and feed them from `server`.
 *
 * Series (all `konnectivity_network_proxy_server_*`): `dial_duration_seconds`, `dial_failure_count{reason}`,
 * `pending_backend_dials`, `established_connections`, `ready_backends{proxy_strategy}`,
 * `ready_backend_connections` (deprecated in the reference), `grpc_connections{service_method}`,
 * `http_connections`, `stream_packets_total{segment,packet_type}`.
 */
export function instrumentServer(server: ServerMetricsSource, registry?: Registry, options: ServerInstrumentOptions = {}): ServerInstrumentation {
  const reg = newRegistry(registry, options);
  const strategies = options.strategies ?? ['default'];
  const sub = 'server';

  const dialDuration = new Histogram({
    name: name(sub, 'dial_duration_seconds'),
    help: 'Latency of dial to the remote endpoint in seconds (DIAL_REQ sent to DIAL_RSP received).',
    buckets: [...LATENCY_BUCKETS_SECONDS],
    registers: [reg],
  });
  const dialFailures = new Counter({
    name: name(sub, 'dial_failure_count'),
    help: 'Number of dial failures observed, by reason. Multiple failures can occur for a single dial request.',
    labelNames: ['reason'],
    registers: [reg],
  });
  new Gauge({
    name: name(sub, 'pending_backend_dials'),
    help: 'Current number of pending backend dial requests.',
    registers: [reg],
    collect() {
      this.set(server.stats.pendingDials);
    },
  });
  new Gauge({
    name: name(sub, 'established_connections'),
    help: 'Current number of established end-to-end connections.',
    registers: [reg],
    collect() {
      this.set(server.stats.establishedConnections);
    },
  });
  new Gauge({
    name: name(sub, 'ready_backends'),
    help: 'Number of agents each proxy strategy can route to.',
    labelNames: ['proxy_strategy'],
    registers: [reg],
    collect() {
      const agents = server.agents();
      for (const strategy of strategies) this.set({ proxy_strategy: strategy }, countForStrategy(strategy, agents));
    },
  });
  new Gauge({
    name: name(sub, 'ready_backend_connections'),
    help: 'Number of konnectivity agents connected to the proxy server (deprecated: use ready_backends).',
    registers: [reg],
    collect() {
      this.set(server.agentCount);
    },
  });
  const grpcConnections = new Gauge({
    name: name(sub, 'grpc_connections'),
    help: 'Number of current gRPC streams, by service method (Proxy: frontends, Connect: agents).',
    labelNames: ['service_method'],
    registers: [reg],
  });
  // Both series exist from the start, as a scrape right after start-up expects.
  grpcConnections.set({ service_method: 'Proxy' }, 0);
  grpcConnections.set({ service_method: 'Connect' }, 0);
  const httpConnections = new Gauge({
    name: name(sub, 'http_connections'),
    help: 'Number of current HTTP CONNECT connections.',
    registers: [reg],
  });
  packetsCounter(reg, sub, () => server.stats.packets);

  const detach = listen(server, {
    dialSucceeded: (e: { durationMs?: number }) => {
      if (typeof e?.durationMs === 'number') dialDuration.observe(e.durationMs / 1000);
    },
    dialFailed: (e: { reason?: string }) => {
      dialFailures.inc({ reason: e?.reason ?? 'unknown' });
    },
  });

  const track = (dec: () => void, stream: CloseEmitter): void => {
    let done = false;
    stream.once('close', () => {
      if (done) return;
      done = true;
      dec();
    });
  };
  return {
    registry: reg,
    trackGrpcStream(serviceMethod, stream) {
      grpcConnections.inc({ service_method: serviceMethod });
      track(() => grpcConnections.dec({ service_method: serviceMethod }), stream);
    },
    trackHttpConnection(socket) {
      httpConnections.inc();
      track(() => httpConnections.dec(), socket);
    },
    httpConnections: { inc: () => httpConnections.inc(), dec: () => httpConnections.dec() },
    detach,
  };
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

/** The agent's `endpoint_dial_failure_total` reason: `timeout` for a timed-out dial, `unknown` otherwise. */
export function endpointDialFailureReason(error: unknown): 'timeout' | 'unknown' {
  const e = error as { code?: unknown; message?: unknown } | string | undefined;
  if (typeof e === 'object' && (e?.code === 'ERR_DIAL_TIMEOUT' || e?.code === 'ETIMEDOUT')) return 'timeout';
  // The engine reports the Go-form error text (`dial tcp …: i/o timeout`).
  const text = typeof e === 'string' ? e : typeof e?.message === 'string' ? e.message : '';
  return /timeout|deadline exceeded/i.test(text) ? 'timeout' : 'unknown';
}

/**
 * Register the agent series in `registry` (a new one by default) and feed them from `agent`.
 *
 * Series (all `konnectivity_network_proxy_agent_*`): `dial_duration_seconds` (when the engine reports a duration),
 * `endpoint_dial_failure_total{reason}`, `open_server_connections`, `known_server_count`,
 * `open_endpoint_connections`, `stream_packets_total{segment,packet_type}` (when the engine keeps counts).
 */
export function instrumentAgent(agent: AgentMetricsSource, registry?: Registry, options: AgentInstrumentOptions = {}): AgentInstrumentation {
  const reg = newRegistry(registry, options);
  const sub = 'agent';

  const dialDuration = new Histogram({
    name: name(sub, 'dial_duration_seconds'),
    help: 'Latency of dial to the remote endpoint in seconds.',
    buckets: [...LATENCY_BUCKETS_SECONDS],
    registers: [reg],
  });
  const dialFailures = new Counter({
    name: name(sub, 'endpoint_dial_failure_total'),
    help: 'Number of failures dialing the remote endpoint, by reason (timeout, unknown).',
    labelNames: ['reason'],
    registers: [reg],
  });
  new Gauge({
    name: name(sub, 'open_server_connections'),
    help: 'Current number of open tunnels to proxy servers.',
    registers: [reg],
    collect() {
      this.set(agent.tunnels.length);
    },
  });
  new Gauge({
    name: name(sub, 'known_server_count'),
    help: 'The number of proxy servers the agent tries to hold a tunnel to.',
    registers: [reg],
    collect() {
      this.set(options.knownServerCount ? options.knownServerCount() : Math.max(0, ...agent.tunnels.map((t) => t.serverCount)));
    },
  });
  new Gauge({
    name: name(sub, 'open_endpoint_connections'),
    help: 'Current number of open connections to endpoints.',
    registers: [reg],
    collect() {
      this.set(agent.tunnels.reduce((n, t) => n + t.connectionCount, 0));
    },
  });
  packetsCounter(reg, sub, () => agent.stats?.packets);

  const detach = listen(agent, {
    connectionOpened: (e: { durationMs?: number }) => {
      if (typeof e?.durationMs === 'number') dialDuration.observe(e.durationMs / 1000);
    },
    dialFailed: (e: { error?: unknown }) => {
      dialFailures.inc({ reason: endpointDialFailureReason(e?.error) });
    },
  });
  return { registry: reg, detach };
}
