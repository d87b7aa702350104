/**
 * One tunnel from the agent to one server (PROTOCOL.md §2.3, agent role). For each DIAL_REQ it allocates a connectID
 * (per tunnel, from 1), dials the endpoint through the agent's Dialer and joins the endpoint to the connection
 * (`bindEndpoint`), with these differences from the reference: it honours DIAL_CLS, and a slow endpoint holds only
 * its own connection.
 */
import type { Duplex } from 'node:stream';
import { ErrorCode, KonnectivityError } from '../protocol/errors.js';
import { noop } from '../protocol/noop.js';
import {
  PacketType,
  closeResponse,
  connectIDOf,
  dialResponse,
  drainPacket,
  randomOf,
  type DialRequestPacket,
} from '../protocol/packet.js';
import { metadataValue, type PacketStream } from '../transport/packet-stream.js';
import { bindEndpoint, type EndpointBinding } from '../tunnel/endpoint.js';
import type { CreditTerms } from '../tunnel/flow.js';
import type { EventSink } from '../tunnel/event-sink.js';
import { packetSwitch, refuseUnknownData } from '../tunnel/packet-switch.js';
import { PendingDials } from '../tunnel/pending-dials.js';
import { attachStream, closeStream } from '../tunnel/stream-lifecycle.js';
import { TunnelGroup } from '../tunnel/tunnel-group.js';
import type { PacketCounter, Tunnel } from '../tunnel/tunnel.js';
import { directDialOf, type Dialer } from './dialer.js';

/** A connection the agent opened or closed, as its `connectionOpened` and `connectionClosed` events tell. */
export interface AgentConnectionEvent {
  /** The endpoint, `host:port`. */
  address: string;
  /** The connection's ID on this tunnel (allocated by the agent, from 1). */
  connectID: bigint;
  /** The server's `serverid`, when it sent one. */
  serverID: string | undefined;
  /** The dial's `random`. */
  dialID: bigint;
  /** connectionOpened: how long the endpoint dial took. */
  durationMs?: number;
}

/** What a tunnel reports through its agent's events. */
export interface AgentTunnelEvents {
  connectionOpened: [event: AgentConnectionEvent];
  connectionClosed: [event: AgentConnectionEvent];
  dialFailed: [event: AgentDialFailure];
}

/** A dial the agent answered with an error: the endpoint failed, or the agent refused to start it (`refused`). */
export interface AgentDialFailure {
  /** The dialed `host:port`. */
  address: string;
  /** The error text sent back in the DIAL_RSP. */
  error: string;
  /** The server whose tunnel carried the DIAL_REQ (undefined before it said). */
  serverID: string | undefined;
  /** The dial's `random`, as the DIAL_REQ gave it. */
  dialID: bigint;
  /** The connection ID the dial would have had (none for a refused dial). */
  connectID?: bigint;
  /** Set when the agent refused the dial before dialing (a limit), not when the endpoint failed. */
  refused?: 'too_many_pending_dials';
}

/** What a tunnel needs from its agent. */
export interface AgentTunnelHost {
  readonly dialer: Dialer;
  /** The endpoint dial timeout, in ms. */
  readonly dialTimeoutMs: number;
  readonly bufferBytes: number;
  readonly count: PacketCounter;
  readonly events: EventSink<AgentTunnelEvents>;
  /** The agent's endpoint dials in progress, over all its tunnels, against `maxPendingDials`. */
  readonly dialSlots: DialSlots;
}

/** A count with a ceiling, shared by the tunnels of one agent. */
export class DialSlots {
  private used = 0;
  constructor(readonly limit: number) {}
  /** Take a slot; false when all are in use. */
  take(): boolean {
    if (this.used >= this.limit) return false;
    this.used++;
    return true;
  }
  give(): void {
    this.used--;
  }
  get inUse(): number {
    return this.used;
  }
}

/** A connection whose endpoint is open (its tunnel is `binding.connection.tunnel`). */
interface Endpoint {
  /** The dial's `random` and address, for the connection's events. */
  random: bigint;
  address: string;
  binding: EndpointBinding;
}

/** An endpoint dial in progress. */
interface EndpointDial {
  /** Give up the dial (DIAL_CLS, its timeout, the tunnel's end). */
  cancel(): void;
  /** The stream the DIAL_REQ came on: only a DIAL_CLS on the same stream cancels the dial. */
  via: Tunnel;
  /** DIAL_CLS arrived or the tunnel closed: a late success is closed at once. */
  cancelled: boolean;
}

/** One tunnel to one server. */
export class AgentTunnel {
  private static readonly packets = packetSwitch<AgentTunnel, Tunnel>({
    [PacketType.DIAL_REQ]: (t, p, via) => t.dial(p, via),
    // Known connections are routed by the tunnel; this one is unknown.
    [PacketType.DATA]: refuseUnknownData((id) => closeResponse(id, 'unrecognized connectID')),
    [PacketType.CLOSE_REQ]: (t, p, via) => t.closeRequested(connectIDOf(p), via),
    [PacketType.DIAL_CLS]: (t, p, via) => t.dialClosed(randomOf(p), via),
    [PacketType.HALF_CLOSE]: (t, p, via) => t.halfClosed(connectIDOf(p), via),
    // DIAL_RSP, CLOSE_RSP, DRAIN and unknown types mean nothing to an agent.
  });

  /** The server's `serverid` response header; undefined when it sent none. */
  readonly serverID: string | undefined;
  /** The server's `servercount` (1 when absent or invalid). */
  readonly serverCount: number;
  /** Resolves when the tunnel is gone, with the error that ended it (undefined for a clean close). */
  readonly done: Promise<Error | undefined>;
  private readonly tunnels: TunnelGroup;
  private nextConnectID = 0n;
  private readonly dials: PendingDials<EndpointDial>;
  private readonly endpoints = new Map<bigint, Endpoint>();
  private drained = false;
  private ended = false;

  constructor(
    private readonly host: AgentTunnelHost,
    readonly stream: PacketStream,
    terms: CreditTerms | undefined,
  ) {
    this.dials = new PendingDials<EndpointDial>(() => host.dialSlots.give());
    this.serverID = metadataValue(stream.remoteMetadata, 'serverid');
    const count = Number(metadataValue(stream.remoteMetadata, 'servercount'));
    this.serverCount = Number.isInteger(count) && count > 0 ? count : 1;
    this.tunnels = new TunnelGroup(stream, {
      terms,
      bufferBytes: host.bufferBytes,
      onPacket: (p, via) => AgentTunnel.packets(this, p, via),
      onCount: host.count,
      onSubstreamEnd: (via) => this.substreamEnded(via),
      onSubstreamClose: (via, err) => via.clear(err ?? new KonnectivityError(ErrorCode.TUNNEL_CLOSED, 'substream closed')),
    });
    stream.substreams?.onStream((sub) => this.tunnels.serve(sub));
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
    this.tunnels.control.send(drainPacket());
  }

  /** Close the endpoints (each gets its CLOSE_RSP out), then end the stream. */
  async close(): Promise<void> {
    for (const [id, ep] of [...this.endpoints]) {
      const via = ep.binding.connection.tunnel;
      ep.binding.destroy();
      via.send(closeResponse(id));
    }
    for (const d of this.dials.values()) d.value.cancel();
    await this.stream.close().catch(noop);
  }

  /** Tear the tunnel down at once: its stream is destroyed with `err`, its endpoints and dials with it. */
  destroy(err?: Error): void {
    this.stream.destroy(err);
  }

  private dial(packet: DialRequestPacket, via: Tunnel): void {
    const req = packet.dialRequest;
    if (!req) return;
    const { address, random } = req;
    const protocol = req.protocol || 'tcp';
    if (!this.host.dialSlots.take()) {
      // One server (or one frontend behind it) must not take every descriptor of the agent.
      const text = `too many pending dials on the agent (limit ${this.host.dialSlots.limit})`;
      via.send(dialResponse(random, 0n, text));
      this.host.events.emit('dialFailed', { address, error: text, serverID: this.serverID, dialID: random, refused: 'too_many_pending_dials' });
      this.tunnels.release(via);
      return;
    }
    const connectID = ++this.nextConnectID;
    const direct = directDialOf(this.host.dialer);
    if (direct) {
      // The default dialer: callbacks, and its own timeout (the same as ours); no Promise, signal or second timer.
      const value: EndpointDial = { cancel: noop, via, cancelled: false };
      const pd = this.dials.add(random, value, undefined, noop);
      const cancel = direct(address, protocol, (err, endpoint) => {
        pd.settle();
        this.dialed(err, endpoint, address, protocol, random, connectID, via, pd.startedAt, false);
      });
      // A cancelled dial never calls back: its end is here.
      value.cancel = () => {
        cancel();
        pd.settle();
        this.tunnels.release(via);
      };
      return;
    }
    const controller = new AbortController();
    // User dialers get the same deadline as the default one.
    const pd = this.dials.add(random, { cancel: () => controller.abort(), via, cancelled: false }, this.host.dialTimeoutMs + 100, () =>
      controller.abort(),
    );
    this.host.dialer({ address, protocol, signal: controller.signal }).then(
      (endpoint) => {
        pd.settle();
        if (pd.value.cancelled) {
          endpoint.destroy();
          this.tunnels.release(via);
          return;
        }
        this.dialed(undefined, endpoint, address, protocol, random, connectID, via, pd.startedAt, false);
      },
      (err: unknown) => {
        pd.settle();
        if (pd.value.cancelled) {
          this.tunnels.release(via);
          return;
        }
        this.dialed(err instanceof Error ? err : new Error(String(err)), undefined, address, protocol, random, connectID, via, pd.startedAt, controller.signal.aborted);
      },
    );
  }

  /** An endpoint dial ended: join the endpoint, or answer the server with the error (`timedOut`: ours fired). */
  private dialed(
    err: Error | undefined, endpoint: Duplex | undefined, address: string, protocol: string, random: bigint, connectID: bigint,
    via: Tunnel, startedAt: number, timedOut: boolean,
  ): void {
    if (this.ended || (endpoint && via.stream.closed)) {
      endpoint?.destroy();
      this.tunnels.release(via);
      return;
    }
    if (endpoint) {
      this.established(endpoint, address, random, connectID, via, performance.now() - startedAt);
      return;
    }
    const text = timedOut ? `dial ${protocol} ${address}: i/o timeout` : err!.message;
    via.send(dialResponse(random, 0n, text));
    this.host.events.emit('dialFailed', { address, error: text, serverID: this.serverID, dialID: random, connectID });
    this.tunnels.release(via);
  }

  private established(endpoint: Duplex, address: string, random: bigint, connectID: bigint, via: Tunnel, durationMs: number): void {
    const conn = via.open(connectID);
    // DIAL_RSP goes before any DATA the endpoint may already have sent: both happen in this tick, in this order.
    via.send(dialResponse(random, connectID));
    const binding = bindEndpoint(conn, endpoint, closeResponse, this.endpointDone);
    this.endpoints.set(connectID, { random, address, binding });
    this.host.events.emit('connectionOpened', { address, connectID, serverID: this.serverID, dialID: random, durationMs });
  }

  /** One function for every endpoint's end, not a closure each. */
  private readonly endpointDone = (binding: EndpointBinding): void => {
    const connectID = binding.connection.connectID;
    const ep = this.endpoints.get(connectID);
    if (ep?.binding !== binding) return;
    this.endpoints.delete(connectID);
    this.host.events.emit('connectionClosed', { address: ep.address, connectID, serverID: this.serverID, dialID: ep.random });
    this.tunnels.release(binding.connection.tunnel);
  };

  /** CLOSE_REQ: flush what the endpoint has for the server, then answer CLOSE_RSP. */
  private closeRequested(connectID: bigint, via: Tunnel): void {
    const ep = this.endpoints.get(connectID);
    if (ep && ep.binding.connection.tunnel === via) ep.binding.closeByPeer(closeResponse(connectID));
    else via.send(closeResponse(connectID, 'Unknown connectID'));
  }

  /**
   * DIAL_CLS: the server gave up on a dial still pending here, on the stream that carried its DIAL_REQ. It never
   * touches an established connection: a `random` names a dial, not a connection, and another frontend may reuse an
   * established connection's random to close it. A dial that completed while the DIAL_CLS was on its way (reference
   * issue #404) is closed by the server, which answers the late DIAL_RSP with CLOSE_REQ.
   */
  private dialClosed(random: bigint, via: Tunnel): void {
    const pd = this.dials.get(random);
    if (!pd || pd.value.via !== via) return;
    pd.value.cancelled = true;
    pd.value.cancel();
  }

  /** A substream's FIN is the client's end(): pass it to the endpoint and keep relaying its answer. */
  private substreamEnded(via: Tunnel): void {
    const [conn] = via.connections.values();
    const ep = conn ? this.endpoints.get(conn.connectID) : undefined;
    if (ep && ep.binding.connection.tunnel === via) ep.binding.halfClose();
    else closeStream(via.stream);
  }

  /** HALF_CLOSE (the extension): the same as a substream's FIN, for one connection of the tunnel. */
  private halfClosed(connectID: bigint, via: Tunnel): void {
    const ep = this.endpoints.get(connectID);
    if (ep && ep.binding.connection.tunnel === via) ep.binding.halfClose();
  }

  private onClosed(err: Error | undefined): Error | undefined {
    this.ended = true;
    for (const d of this.dials.settleWhere(() => true)) {
      d.value.cancelled = true;
      d.value.cancel();
    }
    const reason = err ?? new KonnectivityError(ErrorCode.TUNNEL_CLOSED, 'tunnel closed');
    this.tunnels.destroy(reason);
    return err;
  }
}
