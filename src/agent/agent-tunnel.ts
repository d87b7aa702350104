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
import { PendingDials, type PendingDial } from '../tunnel/pending-dials.js';
import { attachStream, closeStream } from '../tunnel/stream-lifecycle.js';
import { rejectBadGrace, type CloseOptions } from '../transport/grace.js';
import { TunnelGroup } from '../tunnel/tunnel-group.js';
import type { PacketCounter, Tunnel } from '../tunnel/tunnel.js';
import { directDialOf, type DialInProgress, type DialWaiter, type Dialer } from './dialer.js';

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
  /** How long a closing connection may take to flush what its endpoint sent before CLOSE_RSP goes anyway, in ms. */
  readonly closeTimeoutMs: number;
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
  /** Stop the dial's work (the dialer's signal, the direct dial's cancel); whoever settles the dial calls it. */
  abort(): void;
  /** The stream the DIAL_REQ came on: only a DIAL_CLS on the same stream cancels the dial. */
  via: Tunnel;
  address: string;
  protocol: string;
}

/**
 * An endpoint dial through the default dialer's callback form: the pending dial's value and the dial's waiter in
 * one. A cancelled dial never calls back; one settled otherwise (close(), DIAL_CLS) is cancelled by its settler.
 */
class DirectEndpointDial implements EndpointDial, DialWaiter {
  entry!: PendingDial<EndpointDial>;
  progress: DialInProgress | undefined;

  constructor(
    private readonly tunnel: AgentTunnel,
    readonly via: Tunnel,
    readonly address: string,
    readonly protocol: string,
    private readonly connectID: bigint,
  ) {}

  abort(): void {
    this.progress?.cancel();
  }

  dialed(err: Error | undefined, endpoint?: Duplex): void {
    const pd = this.entry;
    if (!pd.settle()) {
      endpoint?.destroy();
      return;
    }
    this.tunnel.dialed(err, endpoint, this.address, this.protocol, pd.random, this.connectID, this.via, pd.startedAt, false);
  }
}

/** How long `close()` waits, by default, for the server to end the stream before destroying it. */
export const DEFAULT_AGENT_CLOSE_GRACE_MS = 5000;

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
  private closing: Promise<void> | undefined;

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

  /** Endpoint dials in progress on this tunnel. */
  get pendingDialCount(): number {
    return this.dials.size;
  }

  /**
   * Refuse new dials, close the endpoints (each gets its CLOSE_RSP out) and fail the dials in progress (the server
   * hears Go's `dial tcp …: operation was canceled`, not a timeout), then end the stream. If the server has not ended
   * it `graceMs` later (default 5000) or `signal` aborts, the stream is destroyed. Resolves once the tunnel is gone.
   * Idempotent.
   */
  close(options: CloseOptions = {}): Promise<void> {
    if (this.closing) return this.closing;
    const bad = rejectBadGrace(options, DEFAULT_AGENT_CLOSE_GRACE_MS);
    if (bad) return bad;
    for (const [id, ep] of [...this.endpoints]) {
      const via = ep.binding.connection.tunnel;
      ep.binding.destroy();
      via.send(closeResponse(id));
    }
    // Go's text for a dial whose context was cancelled: not a timeout (a Go server would answer 504 for that).
    for (const d of [...this.dials.values()]) this.dialFailed(d, `dial ${d.value.protocol} ${d.value.address}: operation was canceled`);
    const ended = closeStream(this.stream, { ...options, graceMs: options.graceMs ?? DEFAULT_AGENT_CLOSE_GRACE_MS });
    this.closing = ended.then(() => this.done.then(noop));
    return this.closing;
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
    if (this.closing) {
      via.send(dialResponse(random, 0n, `dial ${protocol} ${address}: operation was canceled`));
      this.tunnels.release(via);
      return;
    }
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
      // The default dialer: its own timeout (the same as ours); no Promise, signal, second timer or closure.
      const dial = new DirectEndpointDial(this, via, address, protocol, connectID);
      dial.entry = this.dials.add(random, dial, undefined, noop);
      dial.progress = direct(address, protocol, dial);
      return;
    }
    const controller = new AbortController();
    // User dialers get the same deadline as the default one, and the server hears it even from a dialer that
    // ignores its signal.
    const pd = this.dials.add(random, { abort: () => controller.abort(), via, address, protocol }, this.host.dialTimeoutMs + 100, (d) =>
      this.dialFailed(d, `dial ${protocol} ${address}: i/o timeout`),
    );
    this.host.dialer({ address, protocol, signal: controller.signal }).then(
      (endpoint) => {
        if (!pd.settle()) {
          endpoint.destroy();
          return;
        }
        this.dialed(undefined, endpoint, address, protocol, random, connectID, via, pd.startedAt, false);
      },
      (err: unknown) => {
        if (!pd.settle()) return;
        this.dialed(err instanceof Error ? err : new Error(String(err)), undefined, address, protocol, random, connectID, via, pd.startedAt, controller.signal.aborted);
      },
    );
  }

  /** Settle a dial as failed, if it is still pending: the server hears `text` in DIAL_RSP. */
  private dialFailed(pd: PendingDial<EndpointDial>, text: string): void {
    if (!pd.settle()) return;
    const { address, via } = pd.value;
    pd.value.abort();
    if (!this.ended) {
      via.send(dialResponse(pd.random, 0n, text));
      this.host.events.emit('dialFailed', { address, error: text, serverID: this.serverID, dialID: pd.random });
    }
    this.tunnels.release(via);
  }

  /** Settle a dial the server gave up on (DIAL_CLS), if it is still pending: nothing goes back. */
  private dialCancelled(pd: PendingDial<EndpointDial>): void {
    if (!pd.settle()) return;
    pd.value.abort();
    this.tunnels.release(pd.value.via);
  }

  /** @internal An endpoint dial ended: join the endpoint, or answer the server with the error (`timedOut`: ours fired). */
  dialed(
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
    const binding = bindEndpoint(conn, endpoint, closeResponse, this.endpointDone, this.host.closeTimeoutMs);
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
    if (pd && pd.value.via === via) this.dialCancelled(pd);
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
    for (const d of this.dials.settleWhere(() => true)) d.value.abort();
    const reason = err ?? new KonnectivityError(ErrorCode.TUNNEL_CLOSED, 'tunnel closed');
    this.tunnels.destroy(reason);
    return err;
  }
}
