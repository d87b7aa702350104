/**
 * The agent: opens and serves tunnels to proxy servers (PROTOCOL.md §2.3, agent role). Each tunnel is an
 * {@link AgentTunnel}; the agent holds what they share: its identity and metadata, the dialer, the options, DRAIN,
 * the packet counts and shutdown.
 */
import { EventEmitter } from 'node:events';
import { encodeAgentIdentifiers, type AgentIdentifiers } from '../protocol/identifiers.js';
import { ErrorCode, KonnectivityError } from '../protocol/errors.js';
import { checkNumber } from '../protocol/options.js';
import { DEFAULT_AGENT_MAX_PENDING_DIALS } from '../transport/limits.js';
import { graceMsOf, type CloseOptions } from '../transport/grace.js';
import type { Metadata, PacketStream, TunnelConnector } from '../transport/packet-stream.js';
import { PacketCounts } from '../tunnel/packet-counts.js';
import { CLOSE_TIMEOUT_MS } from '../tunnel/tunnel-socket.js';
import { agreedCreditTerms, creditOffer, validBufferBytes } from '../tunnel/flow.js';
import { HALF_CLOSE_METADATA } from '../tunnel/half-close.js';
import { AgentTunnel, DEFAULT_AGENT_CLOSE_GRACE_MS, DialSlots, type AgentTunnelEvents, type AgentTunnelHost } from './agent-tunnel.js';
import { DEFAULT_DIAL_TIMEOUT_MS, tcpDialer, type Dialer } from './dialer.js';

/** Options of {@link Agent}: its identity, how it dials endpoints, and what it offers servers. */
export interface AgentOptions {
  /** Sent as `agentid`; the server keys agents by it. */
  agentID: string;
  /** Advertised as `agentidentifiers` (for the destHost and defaultRoute strategies). */
  identifiers?: AgentIdentifiers;
  /** Bearer token sent as `authorization` (read again for every tunnel, so a rotated file is picked up). */
  token?: () => string | Promise<string>;
  /** How endpoints are reached (default: TCP). */
  dialer?: Dialer;
  /** Endpoint dial timeout (default 5000, the reference's). */
  dialTimeoutMs?: number;
  /** Per-connection buffer and credit window (default 1 MiB). */
  connectionBufferBytes?: number;
  /** Offer the per-connection credit regime to servers (default true; Go servers ignore the offer). */
  credits?: boolean;
  /**
   * Endpoint dials in progress at once, over all tunnels; past it a DIAL_REQ is answered at once with a DIAL_RSP
   * error and the dials in progress go on. Default 1024.
   */
  maxPendingDials?: number;
  /**
   * Offer half-close to servers (default true; Go servers ignore the offer): a client's `end()` then reaches the
   * endpoint as its EOF, and the endpoint's answer still comes back.
   */
  halfClose?: boolean;
  /**
   * How long a closing connection may take to send the server what its endpoint sent before CLOSE_RSP goes anyway
   * (a server that returns no credit), in ms (default 10000).
   */
  closeTimeoutMs?: number;
}

/** Packets by direction (`fromServer`/`toServer`, from the agent's side) and type name. */
export interface AgentStats {
  /** Packets by direction (`fromServer`, `toServer`), then by type name (`DATA`, `DIAL_REQ`, ...). */
  packets: Record<'fromServer' | 'toServer', Record<string, number>>;
}

/**
 * Events of an {@link Agent} (a node:events EventEmitter with this map): its tunnels and their connections and dials.
 */
export interface AgentEvents extends AgentTunnelEvents {
  /** A tunnel was opened (by `connect()` or `serve()`). */
  tunnelOpened: [tunnel: AgentTunnel];
  /** A tunnel ended; `err` is why, if it failed. */
  tunnelClosed: [tunnel: AgentTunnel, err: Error | undefined];
}

/**
 * The agent (PROTOCOL.md §2.3): serves tunnels to proxy servers and dials each DIAL_REQ's endpoint through its
 * `Dialer`. `connect()` opens one tunnel and never reconnects; {@link ServerTunnels} keeps one to every server.
 */
export class Agent extends EventEmitter<AgentEvents> {
  /** Sent as `agentid`; the server keys agents by it. */
  readonly agentID: string;
  /** Advertised as `agentidentifiers`, for the `destHost` and `defaultRoute` strategies. */
  readonly identifiers: AgentIdentifiers;
  private readonly bufferBytes: number;
  private readonly credits: boolean;
  private readonly halfClose: boolean;
  /** What each tunnel is given of the agent. */
  private readonly host: AgentTunnelHost;
  private readonly token: (() => string | Promise<string>) | undefined;
  private readonly live = new Set<AgentTunnel>();
  private draining = false;
  private closing = false;
  private readonly packets = new PacketCounts(['fromServer', 'toServer'] as const);

  constructor(options: AgentOptions) {
    super();
    if (typeof options.agentID !== 'string' || options.agentID === '') {
      throw new KonnectivityError(ErrorCode.INVALID_OPTION, 'agentID must be a non-empty string');
    }
    this.agentID = options.agentID;
    this.identifiers = options.identifiers ?? {};
    const dialTimeoutMs = checkNumber('dialTimeoutMs', options.dialTimeoutMs ?? DEFAULT_DIAL_TIMEOUT_MS, { above: 0 });
    this.bufferBytes = validBufferBytes(options.connectionBufferBytes, 'connectionBufferBytes');
    this.credits = options.credits ?? true;
    this.halfClose = options.halfClose ?? true;
    this.token = options.token;
    this.host = {
      dialer: options.dialer ?? tcpDialer({ timeoutMs: dialTimeoutMs }),
      dialTimeoutMs,
      closeTimeoutMs: checkNumber('closeTimeoutMs', options.closeTimeoutMs ?? CLOSE_TIMEOUT_MS, { above: 0, max: 2 ** 31 - 1 }),
      bufferBytes: this.bufferBytes,
      count: (direction, p) => this.packets.count(direction === 'sent' ? 'toServer' : 'fromServer', p),
      events: this,
      dialSlots: new DialSlots(checkNumber('maxPendingDials', options.maxPendingDials ?? DEFAULT_AGENT_MAX_PENDING_DIALS, { integer: true, min: 1 })),
    };
  }

  /**
   * The request metadata of a tunnel: `agentid`, `agentidentifiers`, `authorization` when a token is set, and the
   * offers of our extensions (`konnectivity-ts-window`, `konnectivity-ts-half-close`).
   */
  async metadata(): Promise<Metadata> {
    const md: Record<string, string[]> = {
      agentid: [this.agentID],
      agentidentifiers: [encodeAgentIdentifiers(this.identifiers)],
    };
    if (this.credits) Object.assign(md, creditOffer(this.bufferBytes));
    if (this.halfClose) Object.assign(md, HALF_CLOSE_METADATA);
    if (this.token) md['authorization'] = [`Bearer ${(await this.token()).trim()}`];
    return md;
  }

  /** Open one tunnel with a transport's connector and serve it. */
  async connect(connector: TunnelConnector, options: { signal?: AbortSignal } = {}): Promise<AgentTunnel> {
    if (this.closing) throw new KonnectivityError(ErrorCode.SHUTTING_DOWN, 'agent is closing');
    const stream = await connector(await this.metadata(), options.signal ? { signal: options.signal } : {});
    if (this.closing) {
      stream.destroy(new KonnectivityError(ErrorCode.SHUTTING_DOWN, 'agent is closing'));
      throw new KonnectivityError(ErrorCode.SHUTTING_DOWN, 'agent is closing');
    }
    return this.serve(stream);
  }

  /** Serve an open stream; its `remoteMetadata` holds the server's `serverid` and `servercount`. */
  serve(stream: PacketStream): AgentTunnel {
    const t = new AgentTunnel(this.host, stream, this.credits ? agreedCreditTerms(stream.remoteMetadata) : undefined);
    this.live.add(t);
    void t.done.then((err) => {
      this.live.delete(t);
      this.emit('tunnelClosed', t, err);
    });
    this.emit('tunnelOpened', t);
    if (this.draining) t.drain();
    return t;
  }

  /** Send DRAIN on every tunnel (and on tunnels opened later): servers then prefer other agents. */
  drain(): void {
    this.draining = true;
    for (const t of this.live) t.drain();
  }
  /** True once `drain()` was called: every tunnel sent DRAIN, and new ones will. */
  get isDraining(): boolean {
    return this.draining;
  }

  /** Packet counts over every tunnel this agent served. */
  get stats(): AgentStats {
    return { packets: this.packets.snapshot() };
  }

  /** The tunnels open now. */
  get tunnels(): readonly AgentTunnel[] {
    return [...this.live];
  }

  /**
   * Close every tunnel (`AgentTunnel.close`): endpoints are closed (CLOSE_RSP sent), dials in progress fail, the
   * streams end; a stream the server has not ended `graceMs` later (default 5000) or when `signal` aborts is
   * destroyed. Resolves once every tunnel is gone; connect() is refused from now on.
   */
  async close(options: CloseOptions = {}): Promise<void> {
    graceMsOf(options, DEFAULT_AGENT_CLOSE_GRACE_MS);
    this.closing = true;
    await Promise.all([...this.live].map((t) => t.close(options)));
  }

  /** Tear every tunnel down at once (their endpoints and dials with them); `connect()` is refused from now on. */
  destroy(err?: Error): void {
    this.closing = true;
    for (const t of [...this.live]) t.destroy(err);
  }
}
