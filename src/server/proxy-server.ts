/**
 * The proxy server (PROTOCOL.md §2.3, server role), with the improvements of §11: a frontend's DIAL_CLS reaches the
 * agent, pending dials fail at once when their agent stream dies, and one slow connection never stalls the others.
 *
 * This is the facade: options, agent admission, the frontends it serves, stats and shutdown. The work is done by
 * its parts: `AgentBackend` (one agent stream), `Dials` (routing and the pending table), the frontends in
 * `frontends/` (which see only the DialBroker) and `auth/`.
 *
 * Transports hand it agent streams (`acceptAgent`) and frontend streams (`acceptFrontend`); `dial()` is the
 * programmatic frontend. HTTP-CONNECT frontends are built on `openConnection()` (or any dialer's `dial()`).
 */
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { ErrorCode, KonnectivityError } from '../protocol/errors.js';
import { parseAgentIdentifiers } from '../protocol/identifiers.js';
import { checkNumber } from '../protocol/options.js';
import { DEFAULT_MAX_PENDING_DIALS_PER_AGENT, DEFAULT_MAX_PENDING_DIALS_PER_FRONTEND } from '../transport/limits.js';
import { rejectBadGrace, startGrace, type CloseOptions } from '../transport/grace.js';
import { metadataValue, type IncomingPacketStream, type Metadata, type PacketStream } from '../transport/packet-stream.js';
import { acceptCreditOffer, validBufferBytes } from '../tunnel/flow.js';
import { HALF_CLOSE_METADATA, offersHalfClose } from '../tunnel/half-close.js';
import { PacketCounts } from '../tunnel/packet-counts.js';
import { attachStream, closeStream, whenClosed } from '../tunnel/stream-lifecycle.js';
import { resolveSocketTimeouts, type TunnelSocket } from '../tunnel/tunnel-socket.js';
import { AgentBackend, type AgentBackendEvents, type AgentBackendHost, type AgentInfo } from './agent-backend.js';
import { AgentRegistry, type AgentStrategy, parseStrategies } from './agent-registry.js';
import { checkAgent, type AgentAuthenticator } from './auth/agent-auth.js';
import { AGENT_CERTIFICATE_BINDINGS, checkCertificateBinding, type AgentCertificateBinding } from './auth/certificate-binding.js';
import { Dials, shuttingDown, type DialEvents, type DialHandle, type FrontendKind } from './dials.js';
import { GrpcFrontendSession } from './frontends/grpc/session.js';
import { ProgrammaticFrontend, type OpenCallbacks, type ProgrammaticDialOptions } from './frontends/programmatic.js';

/**
 * Options of {@link ProxyServer}: identity, agent selection, dial timeouts (ms), buffers (bytes), extensions and
 * authentication.
 */
export interface ProxyServerOptions {
  /** Sent to agents as `serverid` (default: a random UUID). */
  serverID?: string;
  /** Sent to agents as `servercount` (default 1). */
  serverCount?: number;
  /** Agent selection, tried in order (default `['default']`). A comma-separated string is accepted too. */
  strategies?: readonly AgentStrategy[] | string;
  /** How long `dial()` waits for the agent's DIAL_RSP (default 30000). */
  dialTimeoutMs?: number;
  /** How long a gRPC frontend's dial waits for DIAL_RSP; 0 = no limit, as in the reference (default 0). */
  backendDialTimeoutMs?: number;
  /** Per-connection buffer and credit window (default 1 MiB). */
  connectionBufferBytes?: number;
  /** Accept the agents' offer of the credit regime (default true). */
  credits?: boolean;
  /**
   * Accept the agents' and clients' offer of half-close (default true): `end()` on a TunnelSocket, a gRPC client's
   * HALF_CLOSE and an HTTP-CONNECT client's FIN then reach the endpoint as its EOF. Go peers never offer it.
   */
  halfClose?: boolean;
  /** Check an agent before it is accepted; throw (ideally ERR_UNAUTHENTICATED) to refuse it. */
  authenticateAgent?: AgentAuthenticator;
  /**
   * Dials one frontend connection (one HTTP/2 connection of the gRPC frontend, whatever its number of calls) may
   * have waiting for their DIAL_RSP; past it a new dial gets a DIAL_RSP error (ERR_LIMIT_EXCEEDED). Default 256.
   */
  maxPendingDialsPerFrontend?: number;
  /**
   * Dials waiting for their DIAL_RSP on one agent tunnel; a full agent is passed over for another that fits the
   * dial, and the dial is refused (ERR_LIMIT_EXCEEDED: 503 on HTTP-CONNECT) when every one is full. Default 1024.
   */
  maxPendingDialsPerAgent?: number;
  /**
   * Refuse an agent whose claims do not match its client certificate's names (CN, DNS and IP SANs): its agent ID
   * (`'agentID'`) or its host and IP identifiers (`'identifiers'`). Needs mTLS on the agent listener. Default: off,
   * as the reference (any valid agent certificate may use any agent ID).
   */
  agentCertificateBinding?: AgentCertificateBinding;
  /**
   * How long a connection the frontend has left (a `dial()` socket's `end()` or `destroy()`, a gRPC frontend that
   * went away) waits for the agent's CLOSE_RSP before it is dropped, and how long an ended frontend stream waits
   * for the frontend's end, in ms (default 10000, the reference client's CloseTimeout).
   */
  closeTimeoutMs?: number;
  /**
   * After a `dial()` socket's `end()`, how long it waits with nothing from the endpoint before it closes the
   * connection (CLOSE_REQ), in ms; every byte received starts the wait again (default 300000). A `dial()` call's own
   * `halfCloseTimeoutMs` overrides it.
   */
  halfCloseTimeoutMs?: number;
}

/** An agent stream the server refused, for logs and metrics. */
export interface AgentRefusal {
  /** The agent ID it claimed, if it sent one. */
  agentID: string | undefined;
  /** Where the agent's connection came from. */
  remoteAddress: string;
  /** What the agent was told (ERR_UNAUTHENTICATED, ERR_PROTOCOL, ERR_SHUTTING_DOWN, ...). */
  error: KonnectivityError;
}

/** Events of a {@link ProxyServer} (a node:events EventEmitter with this map): agents, dials and connections. */
export interface ProxyServerEvents extends DialEvents, AgentBackendEvents {
  /** An agent stream refused: bad metadata, failed authentication, a certificate that does not match, shutdown. */
  agentRefused: [refusal: AgentRefusal];
  /** An agent stream was accepted and registered. */
  agentConnected: [info: AgentInfo];
  /** An agent stream ended; `err` is why, if it failed. */
  agentDisconnected: [info: AgentInfo, err: Error | undefined];
}

const SEGMENTS = ['fromAgent', 'toAgent', 'fromFrontend', 'toFrontend'] as const;
type Segment = (typeof SEGMENTS)[number];

/** What `server.stats` tells. */
export interface ServerStats {
  /** Dials waiting for their agent's DIAL_RSP. */
  pendingDials: number;
  /** Connections handed to frontends and not ended yet. */
  establishedConnections: number;
  /** Packets by segment and type name. */
  packets: Record<Segment, Record<string, number>>;
}

const DEFAULT_DIAL_TIMEOUT_MS = 30_000;
/** How long `close()` lets open connections finish by default. */
export const DEFAULT_SERVER_CLOSE_GRACE_MS = 5000;

/**
 * The proxy server (PROTOCOL.md §2.3): takes agent streams (`acceptAgent`) and frontend streams (`acceptFrontend`),
 * routes each dial to an agent, and dials programmatically (`dial()`, a TunnelSocket). See the module comment for its
 * parts.
 */
export class ProxyServer extends EventEmitter<ProxyServerEvents> {
  /** Sent to agents as `serverid`. */
  readonly serverID: string;
  /** Sent to agents as `servercount`. */
  readonly serverCount: number;
  /** The agent-selection strategies, tried in order. */
  readonly strategies: readonly AgentStrategy[];
  private readonly backendDialTimeoutMs: number;
  private readonly bufferBytes: number;
  private readonly credits: boolean;
  private readonly halfClose: boolean;
  private readonly authenticate: AgentAuthenticator | undefined;
  private readonly certificateBinding: AgentCertificateBinding | undefined;
  private readonly registry = new AgentRegistry<AgentBackend>();
  private readonly packets = new PacketCounts(SEGMENTS);
  private readonly dials: Dials;
  /** What each agent stream is given of the server. */
  private readonly backendHost: AgentBackendHost;
  private readonly programmatic: ProgrammaticFrontend;
  private readonly frontends = new Set<GrpcFrontendSession>();
  /** Every agent and frontend stream the server holds, so that close() can wait for them. */
  private readonly streams = new Set<PacketStream>();
  private readonly closeTimeoutMs: number;
  private state: 'open' | 'closing' | 'closed' = 'open';
  private closing: Promise<void> | undefined;
  private streamsGone: (() => void) | undefined;
  /** Ends the grace period of a close() in progress. */
  private endGrace: (() => void) | undefined;

  constructor(options: ProxyServerOptions = {}) {
    super();
    this.serverID = options.serverID ?? randomUUID();
    if (this.serverID === '') throw new KonnectivityError(ErrorCode.INVALID_OPTION, 'serverID must not be empty');
    this.serverCount = checkNumber('serverCount', options.serverCount ?? 1, { integer: true, min: 1 });
    const s = options.strategies ?? ['default'];
    this.strategies = typeof s === 'string' ? parseStrategies(s) : parseStrategies(s.join(','));
    const dialTimeoutMs = checkNumber('dialTimeoutMs', options.dialTimeoutMs ?? DEFAULT_DIAL_TIMEOUT_MS, { above: 0 });
    this.backendDialTimeoutMs = checkNumber('backendDialTimeoutMs', options.backendDialTimeoutMs ?? 0, { min: 0 });
    this.bufferBytes = validBufferBytes(options.connectionBufferBytes, 'connectionBufferBytes');
    this.credits = options.credits ?? true;
    this.halfClose = options.halfClose ?? true;
    this.authenticate = options.authenticateAgent;
    const binding = options.agentCertificateBinding;
    if (binding !== undefined && !AGENT_CERTIFICATE_BINDINGS.includes(binding)) {
      throw new KonnectivityError(ErrorCode.INVALID_OPTION, `agentCertificateBinding must be one of ${AGENT_CERTIFICATE_BINDINGS.join(', ')}, got ${JSON.stringify(binding)}`);
    }
    this.certificateBinding = binding;
    const limits = {
      perFrontend: checkNumber('maxPendingDialsPerFrontend', options.maxPendingDialsPerFrontend ?? DEFAULT_MAX_PENDING_DIALS_PER_FRONTEND, { integer: true, min: 1 }),
      perAgent: checkNumber('maxPendingDialsPerAgent', options.maxPendingDialsPerAgent ?? DEFAULT_MAX_PENDING_DIALS_PER_AGENT, { integer: true, min: 1 }),
    };
    const socketTimeouts = resolveSocketTimeouts(options);
    this.closeTimeoutMs = socketTimeouts.closeTimeoutMs;
    this.dials = new Dials({
      events: this,
      limits,
      accepting: () => this.state === 'open',
      pick: (address, accept) => this.registry.pick(address, this.strategies, accept),
      count: (segment, p) => this.packets.count(segment, p),
    });
    this.backendHost = {
      dials: this.dials,
      events: this,
      bufferBytes: this.bufferBytes,
      count: (direction, p) => this.packets.count(direction === 'sent' ? 'toAgent' : 'fromAgent', p),
    };
    this.programmatic = new ProgrammaticFrontend(this.dials, dialTimeoutMs, socketTimeouts);
  }

  /** At least one agent is connected (readiness). */
  get ready(): boolean {
    return this.registry.size > 0;
  }
  /** Distinct agentIDs with at least one live stream. */
  get agentCount(): number {
    return this.registry.size;
  }
  /** The connected agent streams. */
  agents(): AgentInfo[] {
    return this.registry.backends().map((b) => b.info);
  }
  /** Pending dials, established connections, and packets by segment and type. */
  get stats(): ServerStats {
    return {
      pendingDials: this.dials.pendingCount,
      establishedConnections: this.dials.establishedCount,
      packets: this.packets.snapshot(),
    };
  }

  // ---- agents ----

  /**
   * Take an agent stream: check `agentid` (exactly one), authenticate, accept with `serverid`/`servercount` (and
   * the credit window when the agent offered one), register. Refused streams get a clear error.
   */
  async acceptAgent(incoming: IncomingPacketStream): Promise<void> {
    const ids = incoming.metadata['agentid'];
    const refuse = (error: KonnectivityError): void => {
      incoming.reject(error);
      this.emit('agentRefused', { agentID: ids?.[0] || undefined, remoteAddress: incoming.remoteAddress, error });
    };
    if (this.state !== 'open') return refuse(shuttingDown());
    if (!ids || ids.length !== 1 || ids[0] === '') {
      return refuse(new KonnectivityError(ErrorCode.PROTOCOL, `expected exactly one agentid in the request metadata, got ${ids?.length ?? 0}`));
    }
    const agentID = ids[0]!;
    const identifiers = parseAgentIdentifiers(metadataValue(incoming.metadata, 'agentidentifiers'));
    if (this.certificateBinding) {
      const certificateNames = incoming.peerCertificateNames ?? [];
      const mismatch = checkCertificateBinding(this.certificateBinding, { agentID, identifiers, certificateNames });
      if (mismatch) return refuse(mismatch);
    }
    if (this.authenticate) {
      const { metadata, remoteAddress, peerCommonName } = incoming;
      const refused = await checkAgent(this.authenticate, { agentID, identifiers, metadata, remoteAddress, peerCommonName });
      if (refused) return refuse(refused);
      if (this.state !== 'open') return refuse(shuttingDown());
    }
    // Credit both ways is bounded by the smaller of the two buffers, chunks by the smaller of the two offers.
    const credit = this.credits ? acceptCreditOffer(incoming.metadata, this.bufferBytes) : undefined;
    const response: Record<string, string[]> = { serverid: [this.serverID], servercount: [String(this.serverCount)], ...credit?.response };
    const halfClose = this.halfClose && offersHalfClose(incoming.metadata);
    if (halfClose) Object.assign(response, HALF_CLOSE_METADATA);
    const stream = incoming.accept(response);
    const backend = new AgentBackend(agentID, identifiers, stream, { terms: credit?.terms, halfClose }, this.backendHost);
    this.hold(stream);
    attachStream(stream, { onClose: (err) => this.agentGone(backend, err) });
    if (stream.closed) return;
    this.registry.add(backend);
    this.emit('agentConnected', backend.info);
  }

  private agentGone(backend: AgentBackend, err: Error | undefined): void {
    this.registry.remove(backend);
    backend.gone(err);
    this.emit('agentDisconnected', backend.info, err);
  }

  // ---- frontends ----

  /**
   * Programmatic frontend: dial `address` through an agent. Resolves with a net.Socket-like Duplex once the agent
   * has connected; rejects with ERR_NO_AGENT, ERR_DIAL_FAILED (the agent's text), ERR_DIAL_TIMEOUT,
   * ERR_TUNNEL_CLOSED, an AbortError (ABORT_ERR) or ERR_SHUTTING_DOWN.
   */
  dial(address: string, options: ProgrammaticDialOptions = {}): Promise<TunnelSocket> {
    return this.programmatic.dial(address, options);
  }

  /**
   * Dial `address` and hand the tunnel connection itself to `callbacks.succeed`, for a frontend that binds a socket
   * straight to it (the HTTP-CONNECT frontend does). Returns the error when the dial cannot start, else a handle to
   * cancel it; `timeoutMs` undefined is the server's `dialTimeoutMs`; `frontend` labels the dial in events and
   * metrics (default `programmatic`).
   */
  openConnection(address: string, timeoutMs: number | undefined, callbacks: OpenCallbacks, frontend?: FrontendKind): DialHandle | KonnectivityError {
    return this.programmatic.open(address, timeoutMs, callbacks, frontend);
  }

  /**
   * Serve a frontend stream (gRPC `/ProxyService/Proxy`): one connection per stream, as the reference. Returns the
   * response metadata for the transport to send: the confirmation of half-close when the client offered it.
   */
  acceptFrontend(stream: PacketStream): Metadata {
    if (this.state !== 'open') {
      stream.destroy(shuttingDown());
      return {};
    }
    const halfClose = this.halfClose && offersHalfClose(stream.remoteMetadata);
    const session = new GrpcFrontendSession(this.dials, stream, this.backendDialTimeoutMs, halfClose, this.closeTimeoutMs);
    this.frontends.add(session);
    this.hold(stream);
    whenClosed(stream, () => this.frontends.delete(session));
    return halfClose ? HALF_CLOSE_METADATA : {};
  }

  // ---- shutdown ----

  /**
   * Graceful shutdown. At once: agents, frontend streams and dials are refused (ERR_SHUTTING_DOWN; HTTP-CONNECT
   * answers 503). Open connections and dials in progress may finish for `graceMs` (default 5000). As soon as none is
   * left, the agent and frontend streams are ended; whatever is still open at the end of the grace period, or when
   * `signal` aborts, is closed at once: dials in progress fail with ERR_SHUTTING_DOWN, `dial()` sockets end without
   * an error (their readers see EOF), frontends get CLOSE_RSP, and the streams are destroyed. Resolves once every
   * agent and frontend stream has closed. Idempotent.
   */
  close(options: CloseOptions = {}): Promise<void> {
    if (this.closing) return this.closing;
    const bad = rejectBadGrace(options, DEFAULT_SERVER_CLOSE_GRACE_MS);
    if (bad) return bad;
    if (this.state === 'open') this.state = 'closing';
    this.closing = this.closeGracefully(options);
    return this.closing;
  }

  /** Close everything now: dials fail, `dial()` sockets and streams are destroyed with `err` (ERR_SHUTTING_DOWN). */
  destroy(err?: Error): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    const reason = err ?? new KonnectivityError(ErrorCode.SHUTTING_DOWN, 'proxy server destroyed');
    this.dials.failAll(shuttingDown());
    this.programmatic.destroy(reason);
    for (const s of [...this.streams]) s.destroy(reason);
    this.endGrace?.();
  }

  private async closeGracefully(options: CloseOptions): Promise<void> {
    let forced!: () => void;
    const deadline = new Promise<void>((resolve) => (forced = resolve));
    const grace = startGrace(options, DEFAULT_SERVER_CLOSE_GRACE_MS, () => {
      this.closeNow();
      forced();
    });
    this.endGrace = forced;
    // Connections first: the agent streams carry them.
    await Promise.race([this.dials.whenIdle(), deadline]);
    if (this.state === 'closing') this.endStreams();
    await Promise.race([this.whenStreamsClosed(), deadline]);
    grace.cancel();
    // After closeNow() the destroyed streams emit 'close' on the next turn.
    await this.whenStreamsClosed();
    this.state = 'closed';
  }

  /** Nothing is left to wait for: end every stream (each ends on our side and closes once its peer has too). */
  private endStreams(): void {
    for (const f of [...this.frontends]) f.shutdown();
    for (const b of this.registry.backends()) void closeStream(b.stream, { graceMs: this.closeTimeoutMs });
  }

  /** The grace period is over: end what is left without errors to users, and destroy the streams. */
  private closeNow(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.dials.failAll(shuttingDown());
    this.programmatic.endAll(shuttingDown());
    for (const f of [...this.frontends]) f.shutdown();
    for (const s of [...this.streams]) s.destroy(shuttingDown());
  }

  /** Track a stream until its 'close'. */
  private hold(stream: PacketStream): void {
    this.streams.add(stream);
    whenClosed(stream, () => {
      this.streams.delete(stream);
      if (this.streams.size === 0) this.streamsGone?.();
    });
  }

  private whenStreamsClosed(): Promise<void> {
    if (this.streams.size === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const prev = this.streamsGone;
      this.streamsGone = () => {
        this.streamsGone = undefined;
        prev?.();
        resolve();
      };
    });
  }
}
