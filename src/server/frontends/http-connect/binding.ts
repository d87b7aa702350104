/**
 * A CONNECT client socket bound straight to its tunnel connection, as the agent binds its endpoint
 * (`tunnel/endpoint.ts`): no TunnelSocket and no relay between them, so an open connection costs the socket, one
 * ClientBinding and the TunnelConnection, and a packet one write. The socket's listeners are shared functions that
 * find their binding on the socket, and the binding is the connection's handlers: nothing is allocated per
 * connection beyond this object.
 *
 * What it does is what the relay over a TunnelSocket does (`relay.ts`, `tunnel/tunnel-socket.ts`), which still
 * serves dialers that return a Duplex:
 * - backpressure both ways: the client is paused while the connection cannot take more (`onWritable` resumes it);
 *   a payload the client socket cannot take at once keeps its credit until the socket's 'drain';
 * - the client's EOF ends the connection after what it sent: a half-close where the agent can hear one (a yamux
 *   substream's FIN, or HALF_CLOSE), and the answer keeps coming until the agent closes (or nothing comes for
 *   HALF_CLOSE_TIMEOUT_MS); else CLOSE_REQ, as the reference server sends, and the CLOSE_RSP is awaited for
 *   CLOSE_TIMEOUT_MS;
 * - the peer's CLOSE_RSP ends the client after what was sent to it; the client's input is then dropped, and the
 *   socket destroyed once the client's FIN came, `lingerMs` after the flush, or `flushTimeoutMs` after the end;
 * - a CLOSE_RSP with an error, the loss of the tunnel, or a client error destroys the other side at once;
 * - the client closing first sends CLOSE_REQ (after its data, unless it failed) and drops what still arrives.
 */
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { ErrorCode, KonnectivityError } from '../../../protocol/errors.js';
import { closeRequest, payloadOf, type DataPacket } from '../../../protocol/packet.js';
import { attachListeners, writePayload } from '../../../tunnel/endpoint.js';
import { CLOSE_TIMEOUT_MS, HALF_CLOSE_TIMEOUT_MS } from '../../../tunnel/tunnel-socket.js';
import type { ConnectionHandlers, TunnelConnection } from '../../../tunnel/tunnel.js';
import type { ConnectionOwner } from '../programmatic.js';
import type { RelayOptions, RelayResult } from './relay.js';

const BINDING = Symbol('konnectivity-ts.httpConnectBinding');

/**
 * What the client socket's shared listeners reach: the CONNECT's dial while it runs (`connect.ts`), then its
 * ClientBinding. One set of listeners serves both, so opening the tunnel adds and removes none.
 */
export interface ClientSide {
  fromClient(chunk: Buffer): void;
  clientDrained(): void;
  clientEnded(): void;
  clientFailed(err: Error): void;
  clientClosed(): void;
}

/** A client socket while it is served. */
type BoundSocket = Duplex & { [BINDING]?: ClientSide | undefined };

/** Route `socket`'s events to `side` from now on; the shared listeners are attached the first time only. */
export function serveClient(socket: Duplex, side: ClientSide | undefined): void {
  const s = socket as BoundSocket;
  const first = !(BINDING in s);
  s[BINDING] = side;
  if (first) attachListeners(socket, CLIENT_LISTENERS);
}

/** Whoever learns how a binding ended. */
export interface BindingOwner {
  /** Runs once, when the client socket has closed. */
  bindingDone(result: RelayResult): void;
}

export class ClientBinding implements ConnectionHandlers, ConnectionOwner, ClientSide {
  /** The peer or the tunnel ended the connection, or we did: nothing more goes to or comes from the tunnel. */
  private tunnelDone = false;
  private done = false;
  private error: Error | undefined;
  /** The client's EOF went to the agent as a half-close: its answer is awaited. */
  private halfClosed = false;
  /** The wait for CLOSE_RSP after the client's EOF, or the flush and linger after the peer's end. */
  private timer: NodeJS.Timeout | undefined;

  /** Bind `socket` to `connection`; `owner` hears once, when the socket has closed. */
  constructor(
    private readonly socket: Duplex,
    private readonly connection: TunnelConnection,
    private readonly options: Required<RelayOptions>,
    private readonly owner: BindingOwner,
  ) {
    connection.handlers = this;
    serveClient(socket, this);
  }

  /**
   * Start relaying: `early` (what the client sent during the dial) first, then the socket; `clientEnded` says
   * whether the client's EOF came too. A socket that is flowing already keeps flowing.
   */
  start(early: readonly Buffer[], clientEnded: boolean): void {
    let more = true;
    for (const chunk of early) more = this.connection.sendData(chunk);
    if (clientEnded) this.clientEnded();
    else if (!more) this.socket.pause();
    else if (this.socket.isPaused()) this.socket.resume();
  }

  // ---- the connection's handlers -------------------------------------------------------------------------------

  onData(packet: DataPacket, length: number): void {
    const s = this.socket;
    if (this.halfClosed) this.timer?.refresh();
    // A payload in pieces (the HTTP/2 frames it came in) goes out in one writev.
    this.connection.handedOn(length, s.destroyed || s.writableEnded || writePayload(s, payloadOf(packet)));
  }

  onWritable(): void {
    if (!this.tunnelDone && !this.socket.readableEnded) this.socket.resume();
  }

  onPeerClosed(error: string): void {
    this.tunnelDone = true;
    clearTimeout(this.timer);
    if (error) {
      this.fail(new KonnectivityError(ErrorCode.REMOTE, error));
      return;
    }
    // The endpoint is gone: the client gets what was sent to it, then our FIN; its input is dropped.
    const s = this.socket;
    if (s.destroyed) return;
    if (s.readableEnded && s.writableLength === 0 && !(s as Partial<TLSSocket>).encrypted) {
      // The client's FIN came and all we wrote is with the kernel: closing now sends ours after it, with no
      // shutdown, flush wait or linger (a TLS socket still ends, for its close_notify).
      s.destroy();
      return;
    }
    s.end();
    s.resume();
    this.timer = setTimeout(destroySocket, this.options.flushTimeoutMs, s).unref();
    if (s.writableFinished) this.linger();
    else s.once('finish', onClientFlushed);
  }

  onTunnelClosed(err: Error): void {
    this.tunnelDone = true;
    this.fail(err);
  }

  // ---- from the client socket ----------------------------------------------------------------------------------

  /** @internal */
  fromClient(chunk: Buffer): void {
    if (!this.tunnelDone && !this.connection.sendData(chunk)) this.socket.pause();
  }

  /** @internal */
  clientDrained(): void {
    this.connection.release();
  }

  /** @internal The client sent EOF: the connection ends after what the client sent; its answer keeps coming. */
  clientEnded(): void {
    if (this.tunnelDone || this.connection.finishing) return;
    if (this.connection.endWrite()) {
      this.halfClosed = true;
      this.timer = setTimeout(closeAfterHalfClose, HALF_CLOSE_TIMEOUT_MS, this.socket).unref();
      return;
    }
    this.closeWithRequest();
  }

  /** @internal Close as the reference server does on a client's EOF: CLOSE_REQ after the data, CLOSE_RSP awaited. */
  closeWithRequest(): void {
    this.halfClosed = false;
    clearTimeout(this.timer);
    if (this.tunnelDone) return;
    const c = this.connection;
    // A per-connection stream we ended can carry no CLOSE_REQ: destroying the socket resets it.
    if (!c.canSend) {
      this.socket.destroy();
      return;
    }
    c.finish(closeRequest(c.connectID), true);
    this.timer = setTimeout(destroySocket, CLOSE_TIMEOUT_MS, this.socket).unref();
  }

  /** @internal */
  clientFailed(err: Error): void {
    this.error ??= err;
  }

  /** @internal The client socket closed: the connection goes too (after the client's data, unless it failed). */
  clientClosed(): void {
    clearTimeout(this.timer);
    (this.socket as BoundSocket)[BINDING] = undefined;
    if (!this.tunnelDone) {
      this.tunnelDone = true;
      const c = this.connection;
      c.discardIncoming(CLOSE_TIMEOUT_MS);
      // After the client's data, unless it failed or the connection's own stream already ended (then a reset).
      c.finish(closeRequest(c.connectID), this.error === undefined && !this.socket.errored && c.canSend);
    }
    this.finished();
  }

  /** @internal The client has taken all we sent after the peer's end: give it `lingerMs` for its FIN. */
  linger(): void {
    clearTimeout(this.timer);
    if (!this.socket.destroyed) this.timer = setTimeout(destroySocket, this.options.lingerMs, this.socket).unref();
  }

  // ---- ConnectionOwner -------------------------------------------------------------------------------------------

  /** Tear down both sides now (the frontend or the server is shutting down). */
  destroy(reason?: Error): void {
    if (reason) this.error ??= reason;
    this.socket.destroy();
  }

  private fail(err: Error): void {
    this.error ??= err;
    this.socket.destroy();
  }

  private finished(): void {
    if (this.done) return;
    this.done = true;
    const c = this.connection;
    this.owner.bindingDone({ bytesFromClient: c.bytesSent, bytesToClient: c.bytesReceived, error: this.error });
  }
}

// Shared listeners: `this` is the client socket, which carries its binding.
function onClientData(this: BoundSocket, chunk: Buffer): void {
  this[BINDING]?.fromClient(chunk);
}
function onClientDrain(this: BoundSocket): void {
  this[BINDING]?.clientDrained();
}
function onClientEnd(this: BoundSocket): void {
  this[BINDING]?.clientEnded();
}
function onClientError(this: BoundSocket, err: Error): void {
  this[BINDING]?.clientFailed(err);
}
function onClientClose(this: BoundSocket): void {
  this[BINDING]?.clientClosed();
}
const CLIENT_LISTENERS = { data: onClientData, drain: onClientDrain, end: onClientEnd, error: onClientError, close: onClientClose };
function onClientFlushed(this: BoundSocket): void {
  const side = this[BINDING];
  if (side instanceof ClientBinding) side.linger();
}
function closeAfterHalfClose(socket: BoundSocket): void {
  const side = socket[BINDING];
  if (side instanceof ClientBinding) side.closeWithRequest();
}
function destroySocket(socket: Duplex): void {
  socket.destroy();
}
