/**
 * The proxy server: registers agent streams, routes dials from frontends to agents and relays their connections
 * (PROTOCOL.md §2.3, server role), with the improvements of §11: a frontend's DIAL_CLS reaches the agent, pending
 * dials fail at once when their agent stream dies, and one slow connection never stalls the others.
 *
 * Transports hand it agent streams (`acceptAgent`) and frontend streams (`acceptFrontend`); `dial()` is the
 * programmatic frontend. HTTP-CONNECT frontends are built on `dial()`.
 */
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'eventemitter3';
import { abortError } from '../protocol/abort.js';
import { checkNumber } from '../protocol/options.js';
import { ErrorCode, KonnectivityError } from '../protocol/errors.js';
import { parseAgentIdentifiers, type AgentIdentifiers } from '../protocol/identifiers.js';
import { randomDialID } from '../protocol/ids.js';
import {
  PacketType,
  closeDial,
  closeRequest,
  connectIDOf,
  dialRequest,
  randomOf,
  type DialResponsePacket,
  type Packet,
} from '../protocol/packet.js';
import {
  metadataValue,
  type IncomingPacketStream,
  type Metadata,
  type PacketStream,
} from '../transport/packet-stream.js';
import { Tunnel, tallyPacket, type TunnelConnection } from '../tunnel/tunnel.js';
import { TunnelSocket } from '../tunnel/tunnel-socket.js';
import { attachStream, closeStream, whenClosed } from '../tunnel/stream-lifecycle.js';
import { WINDOW_METADATA_KEY, offeredWindow, validBufferBytes } from '../tunnel/flow.js';
import { AgentRegistry, type AgentStrategy, parseStrategies } from './agent-registry.js';
import { FrontendSession } from './frontend-session.js';

export interface AgentAuthContext {
  agentID: string;
  identifiers: AgentIdentifiers;
  metadata: Metadata;
  remoteAddress: string;
  peerCommonName?: string | undefined;
}

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
  /** Check an agent before it is accepted; throw (ideally ERR_UNAUTHENTICATED) to refuse it. */
  authenticateAgent?: (ctx: AgentAuthContext) => void | Promise<void>;
}

export interface AgentInfo {
  agentID: string;
  identifiers: AgentIdentifiers;
  remoteAddress: string;
  draining: boolean;
  connections: number;
}

export type FrontendKind = 'grpc' | 'programmatic';
export type DialFailureKind =
  | 'no_agent'
  | 'error_response'
  | 'unrecognized_response'
  | 'send_rsp'
  | 'backend_close'
  | 'backend_dial_timeout'
  | 'frontend_close'
  | 'shutting_down';

export interface ProxyServerEvents {
  agentConnected: [info: AgentInfo];
  agentDisconnected: [info: AgentInfo, err: Error | undefined];
  agentDraining: [info: AgentInfo];
  /** `dialID` is the dial's `random`; `connectionID` the agent's connectID. */
  dialSucceeded: [
    event: { address: string; agentID: string; frontend: FrontendKind; durationMs: number; dialID: bigint; connectionID: bigint },
  ];
  dialFailed: [
    event: { address: string; frontend: FrontendKind; reason: DialFailureKind; error: KonnectivityError; dialID: bigint },
  ];
  connectionClosed: [event: { agentID: string; connectID: bigint; bytesFromAgent: number; bytesToAgent: number }];
}

type Segment = 'fromAgent' | 'toAgent' | 'fromFrontend' | 'toFrontend';

export interface ServerStats {
  pendingDials: number;
  establishedConnections: number;
  /** Packets by segment and type name. */
  packets: Record<Segment, Record<string, number>>;
}

/** One agent stream. */
export class AgentBackend {
  draining = false;
  /** Per-connection streams (yamux) opened for dials on this agent. */
  readonly subTunnels = new Set<Tunnel>();
  tunnel!: Tunnel;
  constructor(
    readonly agentID: string,
    readonly identifiers: AgentIdentifiers,
    readonly stream: PacketStream,
  ) {}

  get info(): AgentInfo {
    return {
      agentID: this.agentID,
      identifiers: this.identifiers,
      remoteAddress: this.stream.remoteAddress,
      draining: this.draining,
      connections: this.tunnel.connections.size + this.subTunnels.size,
    };
  }
}

/** A dial waiting for its DIAL_RSP. */
interface PendingDial {
  random: bigint;
  address: string;
  backend: AgentBackend;
  via: Tunnel;
  frontend: FrontendKind;
  startedAt: number;
  timer: NodeJS.Timeout | undefined;
  succeed(connection: TunnelConnection): void;
  fail(err: KonnectivityError): void;
}

/** What `beginDial` gives a frontend: a way to give up. */
export interface DialHandle {
  readonly agentID: string;
  /** Give up (the frontend went away or sent DIAL_CLS): forget the dial and tell the agent. */
  cancel(): void;
}

const DEFAULT_DIAL_TIMEOUT_MS = 30_000;

export class ProxyServer extends EventEmitter<ProxyServerEvents> {
  readonly serverID: string;
  readonly serverCount: number;
  readonly strategies: readonly AgentStrategy[];
  private readonly dialTimeoutMs: number;
  private readonly backendDialTimeoutMs: number;
  private readonly bufferBytes: number;
  private readonly credits: boolean;
  private readonly authenticate: ProxyServerOptions['authenticateAgent'];
  private readonly registry = new AgentRegistry<AgentBackend>();
  private readonly pending = new Map<bigint, PendingDial>();
  private readonly sockets = new Set<TunnelSocket>();
  private readonly frontends = new Set<FrontendSession>();
  private established = 0;
  private state: 'open' | 'closing' | 'closed' = 'open';
  private readonly packetCounts: Record<Segment, Record<string, number>> = {
    fromAgent: {},
    toAgent: {},
    fromFrontend: {},
    toFrontend: {},
  };

  constructor(options: ProxyServerOptions = {}) {
    super();
    this.serverID = options.serverID ?? randomUUID();
    if (this.serverID === '') throw new KonnectivityError(ErrorCode.INVALID_OPTION, 'serverID must not be empty');
    this.serverCount = checkNumber('serverCount', options.serverCount ?? 1, { integer: true, min: 1 });
    const s = options.strategies ?? ['default'];
    this.strategies = typeof s === 'string' ? parseStrategies(s) : parseStrategies(s.join(','));
    this.dialTimeoutMs = checkNumber('dialTimeoutMs', options.dialTimeoutMs ?? DEFAULT_DIAL_TIMEOUT_MS, { above: 0 });
    this.backendDialTimeoutMs = checkNumber('backendDialTimeoutMs', options.backendDialTimeoutMs ?? 0, { min: 0 });
    this.bufferBytes = validBufferBytes(options.connectionBufferBytes, 'connectionBufferBytes');
    this.credits = options.credits ?? true;
    this.authenticate = options.authenticateAgent;
  }

  /** At least one agent is connected (readiness). */
  get ready(): boolean {
    return this.registry.size > 0;
  }
  /** Distinct agentIDs with at least one live stream. */
  get agentCount(): number {
    return this.registry.size;
  }
  agents(): AgentInfo[] {
    return this.registry.backends().map((b) => b.info);
  }
  get stats(): ServerStats {
    const copy = (r: Record<string, number>): Record<string, number> => ({ ...r });
    return {
      pendingDials: this.pending.size,
      establishedConnections: this.established,
      packets: {
        fromAgent: copy(this.packetCounts.fromAgent),
        toAgent: copy(this.packetCounts.toAgent),
        fromFrontend: copy(this.packetCounts.fromFrontend),
        toFrontend: copy(this.packetCounts.toFrontend),
      },
    };
  }

  // ---- agents ----

  /**
   * Take an agent stream: check `agentid` (exactly one), authenticate, accept with `serverid`/`servercount` (and
   * the credit window when the agent offered one), register. Refused streams get a clear error.
   */
  async acceptAgent(incoming: IncomingPacketStream): Promise<void> {
    if (this.state !== 'open') {
      incoming.reject(new KonnectivityError(ErrorCode.SHUTTING_DOWN, 'proxy server is shutting down'));
      return;
    }
    const ids = incoming.metadata['agentid'];
    if (!ids || ids.length !== 1 || ids[0] === '') {
      incoming.reject(
        new KonnectivityError(ErrorCode.PROTOCOL, `expected exactly one agentid in the request metadata, got ${ids?.length ?? 0}`),
      );
      return;
    }
    const agentID = ids[0]!;
    const identifiers = parseAgentIdentifiers(metadataValue(incoming.metadata, 'agentidentifiers'));
    if (this.authenticate) {
      try {
        await this.authenticate({
          agentID,
          identifiers,
          metadata: incoming.metadata,
          remoteAddress: incoming.remoteAddress,
          peerCommonName: incoming.peerCommonName,
        });
      } catch (err) {
        incoming.reject(
          err instanceof KonnectivityError
            ? err
            : new KonnectivityError(ErrorCode.UNAUTHENTICATED, `agent ${agentID} refused: ${(err as Error).message}`, { cause: err }),
        );
        return;
      }
      if (this.state !== 'open') {
        incoming.reject(new KonnectivityError(ErrorCode.SHUTTING_DOWN, 'proxy server is shutting down'));
        return;
      }
    }
    // Credit both ways is bounded by the smaller of the two buffers.
    const offered = this.credits ? offeredWindow(incoming.metadata) : undefined;
    const window = offered === undefined ? undefined : Math.min(offered, this.bufferBytes);
    const response: Record<string, string[]> = { serverid: [this.serverID], servercount: [String(this.serverCount)] };
    if (window !== undefined) response[WINDOW_METADATA_KEY] = [String(window)];
    const stream = incoming.accept(response);
    const backend = new AgentBackend(agentID, identifiers, stream);
    backend.tunnel = this.agentTunnel(backend, stream, window);
    attachStream(stream, { onClose: (err) => this.agentGone(backend, err) });
    if (stream.closed) return;
    this.registry.add(backend);
    this.emit('agentConnected', backend.info);
  }

  private agentTunnel(backend: AgentBackend, stream: PacketStream, windowBytes: number | undefined): Tunnel {
    const t: Tunnel = new Tunnel(stream, {
      windowBytes,
      bufferBytes: this.bufferBytes,
      onPacket: (p) => this.onAgentPacket(p, backend, t),
      onCount: (dir, p) => this.count(dir === 'sent' ? 'toAgent' : 'fromAgent', p),
    });
    return t;
  }

  private onAgentPacket(p: Packet, backend: AgentBackend, via: Tunnel): void {
    switch (p.type) {
      case PacketType.DIAL_RSP: {
        const rsp = (p as DialResponsePacket).dialResponse;
        const random = rsp?.random ?? 0n;
        const connectID = rsp?.connectID ?? 0n;
        const pd = this.pending.get(random);
        if (!pd || pd.via !== via) {
          // Too late (the frontend gave up) or never ours: make sure the agent does not keep the connection.
          if (connectID !== 0n && !rsp?.error) via.send(closeRequest(connectID));
          return;
        }
        this.settle(pd);
        if (rsp?.error) {
          pd.fail(new KonnectivityError(ErrorCode.DIAL_FAILED, rsp.error, { reason: 'endpoint' }));
        } else if (connectID === 0n || via.connections.has(connectID)) {
          pd.fail(new KonnectivityError(ErrorCode.PROTOCOL, `agent answered the dial with an invalid connectID ${connectID}`));
          if (connectID !== 0n) via.send(closeRequest(connectID));
        } else {
          pd.succeed(via.open(connectID));
        }
        return;
      }
      case PacketType.DIAL_CLS: {
        const pd = this.pending.get(randomOf(p));
        if (pd && pd.via === via) {
          this.settle(pd);
          pd.fail(new KonnectivityError(ErrorCode.DIAL_CLOSED, 'dial closed', { reason: 'dialclosed' }));
        }
        return;
      }
      case PacketType.DATA: {
        // Known connections are routed by the tunnel.
        const id = connectIDOf(p);
        if (id !== 0n) via.send(closeRequest(id));
        return;
      }
      case PacketType.CLOSE_RSP: {
        const rsp = (p as { closeResponse?: { connectID: bigint; error: string } }).closeResponse;
        via.peerClosed(rsp?.connectID ?? 0n, rsp?.error ?? '');
        if (via !== backend.tunnel) closeStream(via.stream);
        return;
      }
      case PacketType.DRAIN:
        if (!backend.draining) {
          backend.draining = true;
          this.emit('agentDraining', backend.info);
        }
        return;
      default:
        // DIAL_REQ and CLOSE_REQ from an agent, and unknown types, are ignored as the reference does.
        return;
    }
  }

  private agentGone(backend: AgentBackend, err: Error | undefined): void {
    this.registry.remove(backend);
    const reason = new KonnectivityError(
      ErrorCode.TUNNEL_CLOSED,
      `agent ${backend.agentID} tunnel closed${err ? `: ${err.message}` : ''}`,
      { reason: 'tunnelclosed', ...(err ? { cause: err } : {}) },
    );
    for (const pd of [...this.pending.values()]) {
      if (pd.backend !== backend) continue;
      this.settle(pd);
      pd.fail(reason);
    }
    for (const t of backend.subTunnels) t.stream.destroy(reason);
    backend.tunnel.clear(reason);
    this.emit('agentDisconnected', backend.info, err);
  }

  // ---- dials ----

  /**
   * Start a dial for a frontend: pick an agent, register the pending dial, send DIAL_REQ. Returns an error
   * (without throwing) when it cannot start; otherwise exactly one of `succeed`/`fail` follows, unless cancelled.
   * @internal
   */
  beginDial(
    request: { address: string; random: bigint; protocol?: string },
    frontend: FrontendKind,
    timeoutMs: number,
    callbacks: { succeed(connection: TunnelConnection, agentID: string): void; fail(err: KonnectivityError): void },
  ): DialHandle | KonnectivityError {
    const { address, random } = request;
    const refuse = (err: KonnectivityError, reason: DialFailureKind): KonnectivityError => {
      this.emit('dialFailed', { address, frontend, reason, error: err, dialID: random });
      return err;
    };
    if (this.state !== 'open') {
      return refuse(new KonnectivityError(ErrorCode.SHUTTING_DOWN, 'proxy server is shutting down'), 'shutting_down');
    }
    if (this.pending.has(random)) {
      return refuse(new KonnectivityError(ErrorCode.PROTOCOL, `dial ID ${random} is already pending`), 'send_rsp');
    }
    const backend = this.registry.pick(address, this.strategies);
    if (!backend) {
      return refuse(new KonnectivityError(ErrorCode.NO_AGENT, 'No agent available', { reason: 'endpoint' }), 'no_agent');
    }
    const via = this.tunnelForDial(backend);
    const pd: PendingDial = {
      random,
      address,
      backend,
      via,
      frontend,
      startedAt: performance.now(),
      timer: undefined,
      succeed: (connection) => {
        this.established++;
        this.emit('dialSucceeded', {
          address,
          agentID: backend.agentID,
          frontend,
          durationMs: performance.now() - pd.startedAt,
          dialID: random,
          connectionID: connection.connectID,
        });
        callbacks.succeed(connection, backend.agentID);
      },
      fail: (err) => {
        this.emit('dialFailed', { address, frontend, reason: failureKind(err), error: err, dialID: random });
        if (via !== backend.tunnel) closeStream(via.stream);
        callbacks.fail(err);
      },
    };
    if (timeoutMs > 0) {
      pd.timer = setTimeout(() => {
        if (this.pending.get(random) !== pd) return;
        this.settle(pd);
        via.send(closeDial(random));
        pd.fail(new KonnectivityError(ErrorCode.DIAL_TIMEOUT, 'timed out waiting for backend dial', { reason: 'timeout' }));
      }, timeoutMs).unref();
    }
    this.pending.set(random, pd);
    via.send(dialRequest(address, random, request.protocol ?? 'tcp'));
    return {
      agentID: backend.agentID,
      cancel: () => {
        if (this.pending.get(random) !== pd) return;
        this.settle(pd);
        // The reference drops the dial silently (issue #404); the agent must hear of it.
        via.send(closeDial(random));
        this.emit('dialFailed', {
          address,
          frontend,
          reason: 'frontend_close',
          error: abortError('dial cancelled by the frontend'),
          dialID: random,
        });
        if (via !== backend.tunnel) closeStream(via.stream);
      },
    };
  }

  /** @internal A frontend's established connection ended. */
  connectionEnded(agentID: string, connection: TunnelConnection): void {
    this.established--;
    this.emit('connectionClosed', {
      agentID,
      connectID: connection.connectID,
      bytesFromAgent: connection.bytesReceived,
      bytesToAgent: connection.bytesSent,
    });
  }

  /** @internal */
  count(segment: Segment, p: Packet): void {
    tallyPacket(this.packetCounts[segment], p);
  }

  /**
   * Programmatic frontend: dial `address` through an agent. Resolves with a net.Socket-like Duplex once the agent
   * has connected; rejects with ERR_NO_AGENT, ERR_DIAL_FAILED (the agent's text), ERR_DIAL_TIMEOUT,
   * ERR_TUNNEL_CLOSED, ERR_ABORTED or ERR_SHUTTING_DOWN.
   */
  dial(address: string, options: { signal?: AbortSignal; timeoutMs?: number } = {}): Promise<TunnelSocket> {
    const { signal } = options;
    if (signal?.aborted) {
      return Promise.reject(abortError('dial aborted', signal));
    }
    return new Promise<TunnelSocket>((resolve, reject) => {
      const onAbort = (): void => {
        if (!(handle instanceof KonnectivityError)) handle.cancel();
        reject(abortError('dial aborted', signal));
      };
      const handle = this.beginDial({ address, random: this.newDialID() }, 'programmatic', options.timeoutMs ?? this.dialTimeoutMs, {
        succeed: (connection, agentID) => {
          signal?.removeEventListener('abort', onAbort);
          const socket = new TunnelSocket(connection, {
            address,
            agentID,
            onClose: (s) => {
              this.sockets.delete(s);
              this.connectionEnded(agentID, connection);
            },
          });
          this.sockets.add(socket);
          resolve(socket);
        },
        fail: (err) => {
          signal?.removeEventListener('abort', onAbort);
          reject(err);
        },
      });
      if (handle instanceof KonnectivityError) {
        reject(handle);
        return;
      }
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** @internal A dial ID not in use (the 63-bit space makes a clash unlikely, not impossible). */
  newDialID(): bigint {
    let id = randomDialID();
    while (this.pending.has(id)) id = randomDialID();
    return id;
  }

  // ---- frontends ----

  /** Serve a frontend stream (gRPC `/ProxyService/Proxy`): one connection per stream, as the reference. */
  acceptFrontend(stream: PacketStream): void {
    if (this.state !== 'open') {
      stream.destroy(new KonnectivityError(ErrorCode.SHUTTING_DOWN, 'proxy server is shutting down'));
      return;
    }
    const session = new FrontendSession(this, stream, this.backendDialTimeoutMs);
    this.frontends.add(session);
    whenClosed(stream, () => this.frontends.delete(session));
  }

  // ---- shutdown ----

  /**
   * Stop taking agents, frontends and dials; wait up to `graceMs` (default 0) for open connections to finish;
   * then close everything. Idempotent.
   */
  async close(options: { graceMs?: number } = {}): Promise<void> {
    if (this.state === 'closed') return;
    this.state = 'closing';
    const deadline = Date.now() + (options.graceMs ?? 0);
    while (this.established > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, Math.min(50, deadline - Date.now())).unref());
    }
    this.shutdown(undefined);
  }

  /** Close everything now. */
  destroy(err?: Error): void {
    this.shutdown(err ?? new KonnectivityError(ErrorCode.SHUTTING_DOWN, 'proxy server destroyed'));
  }

  private shutdown(err: Error | undefined): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    const reason = err ?? new KonnectivityError(ErrorCode.SHUTTING_DOWN, 'proxy server is shutting down');
    for (const s of [...this.sockets]) s.destroy(reason);
    for (const f of [...this.frontends]) f.destroy(reason);
    for (const b of this.registry.backends()) {
      if (err) b.stream.destroy(err);
      else closeStream(b.stream);
    }
  }

  // ---- internals ----

  private tunnelForDial(backend: AgentBackend): Tunnel {
    const provider = backend.stream.substreams;
    if (!provider) return backend.tunnel;
    const sub = provider.open();
    const t: Tunnel = new Tunnel(sub, {
      bufferBytes: this.bufferBytes,
      onPacket: (p) => this.onAgentPacket(p, backend, t),
      onCount: (dir, p) => this.count(dir === 'sent' ? 'toAgent' : 'fromAgent', p),
      halfClose: true,
    });
    backend.subTunnels.add(t);
    attachStream(sub, {
      onClose: (err) => {
        backend.subTunnels.delete(t);
        const reason = new KonnectivityError(ErrorCode.TUNNEL_CLOSED, `agent ${backend.agentID} stream closed`, err ? { cause: err } : {});
        for (const pd of [...this.pending.values()]) {
          if (pd.via !== t) continue;
          this.settle(pd);
          pd.fail(reason);
        }
        t.clear(reason);
      },
    });
    return t;
  }

  private settle(pd: PendingDial): void {
    clearTimeout(pd.timer);
    if (this.pending.get(pd.random) === pd) this.pending.delete(pd.random);
  }
}

function failureKind(err: KonnectivityError): DialFailureKind {
  switch (err.code) {
    case ErrorCode.DIAL_FAILED:
      return 'error_response';
    case ErrorCode.DIAL_TIMEOUT:
      return 'backend_dial_timeout';
    case ErrorCode.PROTOCOL:
      return 'unrecognized_response';
    default:
      return 'backend_close';
  }
}
