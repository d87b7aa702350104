/**
 * Joins an endpoint Duplex (the agent's socket to the target) to a tunnel connection.
 *
 * endpoint -> tunnel: 'data' goes out as DATA; when the connection cannot take more, the endpoint is paused (only
 * this endpoint: the others go on). tunnel -> endpoint: each DATA payload is written to the endpoint; its credit
 * is returned at once while the endpoint is under its high-water mark, else on 'drain', so a target that reads
 * slowly holds only its own sender.
 *
 * An open connection costs the endpoint, one EndpointBinding (which is also the connection's handlers) and the
 * TunnelConnection: the endpoint's listeners are shared functions that find their binding on the endpoint, so
 * nothing else is allocated per connection, and listeners stay attached rather than being removed (removing one
 * turns the emitter's listener table into a dictionary).
 *
 * The other joins are the HTTP-CONNECT frontend's (`server/frontends/http-connect/binding.ts`, the client socket
 * straight onto its connection) and a TunnelSocket (the connection as a net.Socket-like Duplex, for `dial()` and the
 * client). What they share is in TunnelConnection: `handedOn`/`release` credit for a full sink, `discardIncoming`
 * after the owner left, and the stream lifecycle for 'close'.
 */
import type { Duplex, Writable } from 'node:stream';
import { payloadOf, type DataPacket, type Packet } from '../protocol/packet.js';
import { isPieces, ownPayload, type Payload } from '../protocol/payload.js';
import type { ConnectionHandlers, TunnelConnection } from './tunnel.js';

const BINDING = Symbol('konnectivity-ts.endpointBinding');

/**
 * Write a payload to a sink: pieces in one corked batch (one writev), and, when the sink is already full, as a copy,
 * so that bytes that wait there do not hold on to the transport's receive buffers. Returns the sink's write() answer.
 */
export function writePayload(sink: Writable, payload: Payload): boolean {
  if (sink.writableNeedDrain) payload = ownPayload(payload);
  if (!isPieces(payload)) return sink.write(payload);
  let ok = true;
  sink.cork();
  for (const piece of payload) ok = sink.write(piece);
  sink.uncork();
  return ok;
}

/**
 * Attach a table of shared listeners (functions that find their state through `this`, the emitter) to `emitter`:
 * the way a binding listens without a closure per connection.
 */
export function attachListeners(emitter: NodeJS.EventEmitter, listeners: Readonly<Record<string, (this: never, ...args: never[]) => void>>): void {
  for (const event in listeners) emitter.on(event, listeners[event] as (...args: unknown[]) => void);
}

/** An endpoint while it is bound. */
type BoundEndpoint = Duplex & { [BINDING]?: EndpointBinding | undefined };

/**
 * Start relaying. `closePacket(connectID)` is what tells the peer that the endpoint went away (the agent's
 * unsolicited CLOSE_RSP); `onDone` runs once, when the connection is over either way. A close packet goes out after
 * what the endpoint sent, or `flushTimeoutMs` later without the rest (a peer that returns no credit).
 */
export function bindEndpoint(
  connection: TunnelConnection,
  endpoint: Duplex,
  closePacket: (connectID: bigint) => Packet,
  onDone: (binding: EndpointBinding) => void,
  flushTimeoutMs: number,
): EndpointBinding {
  return new EndpointBinding(connection, endpoint, closePacket, onDone, flushTimeoutMs);
}

/**
 * An endpoint joined to its tunnel connection, made by {@link bindEndpoint}: it is also the connection's handlers,
 * and how the connection's owner ends the join.
 */
export class EndpointBinding implements ConnectionHandlers {
  /** The tunnel connection. */
  readonly connection: TunnelConnection;
  /** The endpoint socket (or any Duplex a dialer gave). */
  readonly endpoint: Duplex;
  private done = false;
  /** The endpoint's input is no longer sent (it went away, or the peer closed). */
  private stopped = false;

  /** @internal Made by {@link bindEndpoint}. */
  constructor(
    connection: TunnelConnection,
    endpoint: Duplex,
    private readonly closePacket: (connectID: bigint) => Packet,
    private readonly onDone: (binding: EndpointBinding) => void,
    private readonly flushTimeoutMs: number,
  ) {
    this.connection = connection;
    this.endpoint = endpoint;
    connection.handlers = this;
    (endpoint as BoundEndpoint)[BINDING] = this;
    attachListeners(endpoint, ENDPOINT_LISTENERS);
  }

  /** The peer closed the connection: flush what is queued to the endpoint, end it, then send `reply`. */
  closeByPeer(reply: Packet): void {
    if (this.done) return;
    this.stopped = true;
    const endpoint = this.endpoint;
    endpoint.pause();
    // Queued writes reach the endpoint before its FIN; there is no half-close, so it is destroyed after.
    endpoint.end(() => endpoint.destroy());
    this.connection.finish(reply, true, () => this.finished(), this.flushTimeoutMs);
  }

  /** The peer ended its direction (yamux FIN): end the endpoint's write side; its answer keeps flowing back. */
  halfClose(): void {
    if (this.done || this.endpoint.writableEnded) return;
    this.endpoint.end();
  }

  /** Tear down at once (DIAL_CLS, tunnel gone). */
  destroy(err?: Error): void {
    if (this.done) return;
    this.endpoint.destroy(err);
    this.finished();
  }

  // ---- the connection's handlers -------------------------------------------------------------------------------

  /** DATA from the peer: written to the endpoint (pieces in one writev), its credit kept until the endpoint drains. */
  onData(packet: DataPacket, length: number): void {
    const e = this.endpoint;
    this.connection.handedOn(length, e.writableEnded || e.destroyed || writePayload(e, payloadOf(packet)));
  }

  /** The connection can take more: read the endpoint again. */
  onWritable(): void {
    this.endpoint.resume();
  }

  /** The tunnel went away: the endpoint goes too. */
  onTunnelClosed(): void {
    this.destroy();
  }

  // ---- from the endpoint -----------------------------------------------------------------------------------------

  /** @internal */
  fromEndpoint(chunk: Buffer): void {
    if (!this.stopped && !this.connection.sendData(chunk)) this.endpoint.pause();
  }

  /** @internal The endpoint went away (EOF, error or close): send what it had sent us, then tell the peer. */
  endpointGone(): void {
    if (this.done || this.connection.finishing) return;
    this.stopped = true;
    const c = this.connection;
    c.finish(
      this.closePacket(c.connectID),
      true,
      () => {
        this.endpoint.destroy();
        this.finished();
      },
      this.flushTimeoutMs,
    );
  }

  private finished(): void {
    if (this.done) return;
    this.done = true;
    this.stopped = true;
    (this.endpoint as BoundEndpoint)[BINDING] = undefined;
    this.connection.detach();
    this.onDone(this);
  }
}

// Shared listeners: `this` is the endpoint, which carries its binding.
function onEndpointData(this: BoundEndpoint, chunk: Buffer): void {
  this[BINDING]?.fromEndpoint(chunk);
}
function onEndpointDrain(this: BoundEndpoint): void {
  this[BINDING]?.connection.release();
}
function onEndpointGone(this: BoundEndpoint): void {
  this[BINDING]?.endpointGone();
}
const ENDPOINT_LISTENERS = {
  data: onEndpointData,
  drain: onEndpointDrain,
  end: onEndpointGone,
  close: onEndpointGone,
  // Reported through 'close'; the peer learns of it through the close packet.
  error: () => {},
};
