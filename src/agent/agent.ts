/**
 * The agent: serves tunnels opened to proxy servers. For each DIAL_REQ it allocates a connectID (per tunnel, from
 * 1), dials the endpoint through its Dialer and relays DATA both ways (PROTOCOL.md §2.3, agent role), with these
 * differences from the reference: it honours DIAL_CLS, and a slow endpoint holds only its own connection.
 */
import type { Duplex } from 'node:stream';
import { EventEmitter } from 'eventemitter3';
import { encodeAgentIdentifiers, type AgentIdentifiers } from '../protocol/identifiers.js';
import { ErrorCode, KonnectivityError } from '../protocol/errors.js';
import { checkNumber } from '../protocol/options.js';
import { noop } from '../protocol/noop.js';
import {
  PacketType,
  closeResponse,
  connectIDOf,
  dialResponse,
  drainPacket,
  randomOf,
  type DialRequestPacket,
  type Packet,
} from '../protocol/packet.js';
import { metadataValue, type Metadata, type PacketStream, type TunnelConnector } from '../transport/packet-stream.js';
import { Tunnel, tallyPacket } from '../tunnel/tunnel.js';
import { bindEndpoint, type EndpointBinding } from '../tunnel/endpoint.js';
import { attachStream, closeStream } from '../tunnel/stream-lifecycle.js';
import { WINDOW_METADATA_KEY, offeredWindow, validBufferBytes } from '../tunnel/flow.js';
import { DEFAULT_DIAL_TIMEOUT_MS, tcpDialer, type Dialer } from './dialer.js';

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
}

export interface AgentConnectionEvent {
  address: string;
  connectID: bigint;
  serverID: string | undefined;
  /** The dial's `random`. */
  dialID: bigint;
  /** connectionOpened: how long the endpoint dial took. */
  durationMs?: number;
}

/** Packets by direction (`fromServer`/`toServer`, from the agent's side) and type name. */
export interface AgentStats {
  packets: Record<'fromServer' | 'toServer', Record<string, number>>;
}

export interface AgentEvents {
  tunnelOpened: [tunnel: AgentTunnel];
  tunnelClosed: [tunnel: AgentTunnel, err: Error | undefined];
  connectionOpened: [event: AgentConnectionEvent];
  connectionClosed: [event: AgentConnectionEvent];
  dialFailed: [event: { address: string; error: string; serverID: string | undefined; dialID: bigint }];
}

export class Agent extends EventEmitter<AgentEvents> {
  readonly agentID: string;
  readonly identifiers: AgentIdentifiers;
  /** @internal */ readonly dialer: Dialer;
  /** @internal */ readonly dialTimeoutMs: number;
  /** @internal */ readonly bufferBytes: number;
  private readonly credits: boolean;
  private readonly token: (() => string | Promise<string>) | undefined;
  private readonly live = new Set<AgentTunnel>();
  private draining = false;
  private closing = false;
  private readonly packetCounts: AgentStats['packets'] = { fromServer: {}, toServer: {} };

  constructor(options: AgentOptions) {
    super();
    if (typeof options.agentID !== 'string' || options.agentID === '') {
      throw new KonnectivityError(ErrorCode.INVALID_OPTION, 'agentID must be a non-empty string');
    }
    this.agentID = options.agentID;
    this.identifiers = options.identifiers ?? {};
    this.dialTimeoutMs = checkNumber('dialTimeoutMs', options.dialTimeoutMs ?? DEFAULT_DIAL_TIMEOUT_MS, { above: 0 });
    this.dialer = options.dialer ?? tcpDialer({ timeoutMs: this.dialTimeoutMs });
    this.bufferBytes = validBufferBytes(options.connectionBufferBytes, 'connectionBufferBytes');
    this.credits = options.credits ?? true;
    this.token = options.token;
  }

  /** The request metadata of a tunnel: `agentid`, `agentidentifiers`, `authorization` when a token is set. */
  async metadata(): Promise<Metadata> {
    const md: Record<string, string[]> = {
      agentid: [this.agentID],
      agentidentifiers: [encodeAgentIdentifiers(this.identifiers)],
    };
    if (this.credits) md[WINDOW_METADATA_KEY] = [String(this.bufferBytes)];
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
    const t = new AgentTunnel(this, stream, this.credits ? offeredWindow(stream.remoteMetadata) : undefined);
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
  get isDraining(): boolean {
    return this.draining;
  }

  /** Packet counts over every tunnel this agent served. */
  get stats(): AgentStats {
    return { packets: { fromServer: { ...this.packetCounts.fromServer }, toServer: { ...this.packetCounts.toServer } } };
  }

  /** @internal */
  count(direction: 'sent' | 'received', p: Packet): void {
    tallyPacket(direction === 'sent' ? this.packetCounts.toServer : this.packetCounts.fromServer, p);
  }

  get tunnels(): readonly AgentTunnel[] {
    return [...this.live];
  }

  /** Close every tunnel: endpoints are closed (CLOSE_RSP sent), then the streams end. */
  async close(): Promise<void> {
    this.closing = true;
    await Promise.all([...this.live].map((t) => t.close()));
  }

  destroy(err?: Error): void {
    this.closing = true;
    for (const t of [...this.live]) t.destroy(err);
  }
}

interface Endpoint {
  address: string;
  random: bigint;
  via: Tunnel;
  binding: EndpointBinding;
}

interface PendingEndpointDial {
  controller: AbortController;
  /** DIAL_CLS arrived or the tunnel closed: a late success is closed at once. */
  cancelled: boolean;
}

/** One tunnel to one server. */
export class AgentTunnel {
  readonly serverID: string | undefined;
  /** The server's `servercount` (1 when absent or invalid). */
  readonly serverCount: number;
  /** Resolves when the tunnel is gone, with the error that ended it (undefined for a clean close). */
  readonly done: Promise<Error | undefined>;
  private readonly tunnel: Tunnel;
  private nextConnectID = 0n;
  private readonly pending = new Map<bigint, PendingEndpointDial>();
  private readonly endpoints = new Map<bigint, Endpoint>();
  private readonly subTunnels = new Set<Tunnel>();
  private drained = false;
  private ended = false;

  constructor(
    private readonly agent: Agent,
    readonly stream: PacketStream,
    windowBytes: number | undefined,
  ) {
    this.serverID = metadataValue(stream.remoteMetadata, 'serverid');
    const count = Number(metadataValue(stream.remoteMetadata, 'servercount'));
    this.serverCount = Number.isInteger(count) && count > 0 ? count : 1;
    this.tunnel = new Tunnel(stream, {
      windowBytes,
      bufferBytes: agent.bufferBytes,
      onPacket: (p) => this.handle(p, this.tunnel),
      onCount: (dir, p) => agent.count(dir, p),
    });
    stream.substreams?.onStream((sub) => this.serveSubstream(sub));
    this.done = new Promise((resolve) => attachStream(stream, { onClose: (err) => resolve(this.onClosed(err)) }));
  }

  /** The connection under the tunnel can carry new work (see PacketStream.transportReady). */
  get transportReady(): boolean {
    return this.stream.transportReady;
  }

  /** Connections open on this tunnel. */
  get connectionCount(): number {
    return this.endpoints.size;
  }
  /** True once DRAIN was sent. */
  get draining(): boolean {
    return this.drained;
  }

  /** Send DRAIN once. */
  drain(): void {
    if (this.drained || this.ended) return;
    this.drained = true;
    this.tunnel.send(drainPacket());
  }

  /** Close the endpoints (each gets its CLOSE_RSP out), then end the stream. */
  async close(): Promise<void> {
    for (const [id, ep] of [...this.endpoints]) {
      ep.binding.destroy();
      ep.via.send(closeResponse(id));
    }
    for (const p of this.pending.values()) p.controller.abort();
    await this.stream.close().catch(noop);
  }

  destroy(err?: Error): void {
    this.stream.destroy(err);
  }

  private handle(p: Packet, via: Tunnel): void {
    switch (p.type) {
      case PacketType.DIAL_REQ:
        this.dial(p as DialRequestPacket, via);
        return;
      case PacketType.DATA: {
        // Known connections are routed by the tunnel; this one is unknown.
        const id = connectIDOf(p);
        if (id !== 0n) via.send(closeResponse(id, 'unrecognized connectID'));
        return;
      }
      case PacketType.CLOSE_REQ: {
        const id = connectIDOf(p);
        const ep = this.endpoints.get(id);
        if (ep && ep.via === via) ep.binding.closeByPeer(closeResponse(id));
        else via.send(closeResponse(id, 'Unknown connectID'));
        return;
      }
      case PacketType.DIAL_CLS: {
        const random = randomOf(p);
        const pd = this.pending.get(random);
        if (pd) {
          pd.cancelled = true;
          pd.controller.abort();
          return;
        }
        // The dial may have completed while the DIAL_CLS was on its way (reference issue #404).
        for (const [id, ep] of this.endpoints) {
          if (ep.random === random && ep.via === via) {
            ep.binding.destroy();
            via.send(closeResponse(id));
            break;
          }
        }
        return;
      }
      default:
        // DIAL_RSP, CLOSE_RSP, DRAIN and unknown types mean nothing to an agent.
        return;
    }
  }

  private dial(packet: DialRequestPacket, via: Tunnel): void {
    const req = packet.dialRequest;
    if (!req) return;
    const { address, protocol, random } = req;
    const connectID = ++this.nextConnectID;
    const pd: PendingEndpointDial = { controller: new AbortController(), cancelled: false };
    const startedAt = performance.now();
    this.pending.set(random, pd);
    // User dialers get the same deadline as the default one.
    const timer = setTimeout(() => pd.controller.abort(), this.agent.dialTimeoutMs + 100).unref();
    const finished = (): void => {
      clearTimeout(timer);
      if (this.pending.get(random) === pd) this.pending.delete(random);
    };
    this.agent.dialer({ address, protocol: protocol || 'tcp', signal: pd.controller.signal }).then(
      (endpoint) => {
        finished();
        if (pd.cancelled || this.ended || via.stream.closed) {
          endpoint.destroy();
          if (via !== this.tunnel) closeStream(via.stream);
          return;
        }
        this.established(endpoint, address, random, connectID, via, performance.now() - startedAt);
      },
      (err: unknown) => {
        finished();
        if (pd.cancelled || this.ended) {
          if (via !== this.tunnel) closeStream(via.stream);
          return;
        }
        const text = pd.controller.signal.aborted
          ? `dial ${protocol || 'tcp'} ${address}: i/o timeout`
          : err instanceof Error ? err.message : String(err);
        via.send(dialResponse(random, 0n, text));
        this.agent.emit('dialFailed', { address, error: text, serverID: this.serverID, dialID: random });
        if (via !== this.tunnel) closeStream(via.stream);
      },
    );
  }

  private established(endpoint: Duplex, address: string, random: bigint, connectID: bigint, via: Tunnel, durationMs: number): void {
    const conn = via.open(connectID);
    // DIAL_RSP goes before any DATA the endpoint may already have sent: both happen in this tick, in this order.
    via.send(dialResponse(random, connectID));
    const event: AgentConnectionEvent = { address, connectID, serverID: this.serverID, dialID: random };
    const ep: Endpoint = {
      address,
      random,
      via,
      binding: bindEndpoint(conn, endpoint, () => closeResponse(connectID), () => {
        this.endpoints.delete(connectID);
        this.agent.emit('connectionClosed', event);
        if (via !== this.tunnel) closeStream(via.stream);
      }),
    };
    this.endpoints.set(connectID, ep);
    this.agent.emit('connectionOpened', { ...event, durationMs });
  }

  /** A per-connection stream (yamux): its packets are handled like the tunnel's, its window is its own. */
  private serveSubstream(sub: PacketStream): void {
    const t: Tunnel = new Tunnel(sub, {
      bufferBytes: this.agent.bufferBytes,
      onPacket: (p) => this.handle(p, t),
      onCount: (dir, p) => this.agent.count(dir, p),
      halfClose: true,
    });
    this.subTunnels.add(t);
    attachStream(sub, {
      onEnd: () => {
        // The server's FIN is the client's end(): pass it to the endpoint and keep relaying its answer.
        const [conn] = t.connections.values();
        const ep = conn ? this.endpoints.get(conn.connectID) : undefined;
        if (ep && ep.via === t) ep.binding.halfClose();
        else closeStream(sub);
      },
      onClose: (err) => {
        this.subTunnels.delete(t);
        t.clear(err ?? new KonnectivityError(ErrorCode.TUNNEL_CLOSED, 'substream closed'));
      },
    });
  }

  private onClosed(err: Error | undefined): Error | undefined {
    this.ended = true;
    for (const pd of this.pending.values()) {
      pd.cancelled = true;
      pd.controller.abort();
    }
    this.pending.clear();
    const reason = err ?? new KonnectivityError(ErrorCode.TUNNEL_CLOSED, 'tunnel closed');
    for (const t of this.subTunnels) t.stream.destroy(reason);
    this.tunnel.clear(reason);
    return err;
  }
}
