/**
 * TunnelSocket: one proxied connection as a Duplex that behaves like a `net.Socket` (write/end/destroy, 'close' and
 * 'error', backpressure, `setTimeout`). Returned by `ProxyServer.dial()` and by the client's dials.
 *
 * `end()` is a half-close, as on a net.Socket: the queued data goes out, then the peer hears that we send no more
 * (a yamux substream's FIN, or a HALF_CLOSE packet where the peer confirmed the extension), and reads go on until the
 * peer ends the connection (CLOSE_RSP: the endpoint closed). A Go peer cannot be told: there `end()` only stops
 * writing, and reads go on the same way. A peer that sends nothing for `halfCloseTimeoutMs` after `end()` is closed
 * as the reference client closes (CLOSE_REQ, then CLOSE_RSP awaited for `closeTimeoutMs`). `destroy()` drops queued
 * data and sends CLOSE_REQ at once; its entry waits for the CLOSE_RSP up to `closeTimeoutMs` too. Every wait for
 * the peer has a deadline.
 */
import type * as net from 'node:net';
import { Duplex } from 'node:stream';
import { ErrorCode, KonnectivityError } from '../protocol/errors.js';
import { checkNumber } from '../protocol/options.js';
import { closeRequest, payloadOf, type DataPacket } from '../protocol/packet.js';
import { isPieces, ownPayload } from '../protocol/payload.js';
import { splitHostPort } from '../protocol/address.js';
import { startGrace, type CloseOptions } from '../transport/grace.js';
import type { TunnelConnection } from './tunnel.js';

/** How long a CLOSE_REQ waits for the peer's CLOSE_RSP before the socket is destroyed (the reference client's CloseTimeout). */
export const CLOSE_TIMEOUT_MS = 10_000;

/**
 * After `end()`, how long the socket waits with nothing from the peer before it closes the connection: each chunk
 * received starts the wait again, so a long answer is never cut (hashicorp/yamux's StreamCloseTimeout, 5 minutes).
 */
export const HALF_CLOSE_TIMEOUT_MS = 5 * 60_000;

/** The deadlines of a TunnelSocket's end; its owner (the server, the client) sets them. */
export interface TunnelSocketTimeouts {
  /** How long to wait for the peer's CLOSE_RSP after a CLOSE_REQ (close(), destroy()), in ms (default 10000). */
  closeTimeoutMs?: number | undefined;
  /** After `end()`, how long to wait with nothing from the peer before closing, in ms (default 300000). */
  halfCloseTimeoutMs?: number | undefined;
}

/** What a {@link TunnelSocket} is made with by its owner (the server, the client). */
export interface TunnelSocketInfo extends TunnelSocketTimeouts {
  /** The dialed endpoint, `host:port`. */
  address: string;
  /** The agent that serves the connection, when known (server side). */
  agentID?: string | undefined;
  /** Called once when the socket has closed, for the owner's bookkeeping. */
  onClose?: ((socket: TunnelSocket) => void) | undefined;
}

/** Check a `halfCloseTimeoutMs` option (ERR_INVALID_OPTION), for the dial functions that take one. */
export function checkHalfCloseTimeoutMs(ms: number | undefined): number {
  return checkNumber('halfCloseTimeoutMs', ms ?? HALF_CLOSE_TIMEOUT_MS, { above: 0, max: 2 ** 31 - 1 });
}

/** {@link TunnelSocketTimeouts} with the defaults, checked (ERR_INVALID_OPTION): for the owners' constructors. */
export function resolveSocketTimeouts(t: TunnelSocketTimeouts = {}): Required<{ [K in keyof TunnelSocketTimeouts]: number }> {
  return {
    closeTimeoutMs: checkNumber('closeTimeoutMs', t.closeTimeoutMs ?? CLOSE_TIMEOUT_MS, { above: 0, max: 2 ** 31 - 1 }),
    halfCloseTimeoutMs: checkHalfCloseTimeoutMs(t.halfCloseTimeoutMs),
  };
}

/**
 * A TunnelSocket is typed as a `net.Socket`, so what takes one takes it without a cast (undici's connector, an
 * `http.Agent`'s `createConnection`). Every member a net.Socket has beyond a Duplex is implemented below (the tests
 * check that), with what it means for a tunnel: no local address, `connect()` refused, `resetAndDestroy()` is
 * `destroy()`.
 */
// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging
export interface TunnelSocket extends Omit<net.Socket, keyof Duplex> {}

/** One proxied connection as a net.Socket-like Duplex: see the module comment for `end()` and `destroy()`. */
// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging
export class TunnelSocket extends Duplex {
  /** The connection's ID (the agent's connectID). */
  readonly connectID: bigint;
  /** The dialed endpoint, `host:port` (`address()` is net.Socket's: the local address, unknown here). */
  readonly endpoint: string;
  /** The agent that serves the connection, when known (server side). */
  readonly agentID: string | undefined;
  /** Like net.Socket: the endpoint's host and port as dialed (the tunnel hides the real peer). */
  readonly remoteAddress: string;
  /** Like net.Socket: the endpoint's port as dialed. */
  readonly remotePort: number | undefined;
  /** Like net.Socket: `IPv4` or `IPv6` for an IP endpoint, undefined for a host name. */
  readonly remoteFamily: string | undefined;
  /** Set once the peer said the connection is over (CLOSE_RSP or DIAL_CLS). */
  private remoteDone = false;
  private pendingWrite: ((err?: Error | null) => void) | undefined;
  private idleMs = 0;
  private idleTimer: NodeJS.Timeout | undefined;
  /** After end(): the wait for the peer (refreshed by what it sends), then the wait for its CLOSE_RSP. */
  private closeTimer: NodeJS.Timeout | undefined;
  private halfClosed = false;
  /** close() was called: the write side's end is a CLOSE_REQ, not a half-close (set before end(), which may call _final at once). */
  private closeRequested = false;
  private closing: Promise<void> | undefined;
  private readonly halfCloseTimeoutMs: number;
  private readonly closeTimeoutMs: number;
  private readonly onCloseHook: ((socket: TunnelSocket) => void) | undefined;

  constructor(
    private readonly connection: TunnelConnection,
    info: TunnelSocketInfo,
  ) {
    // Half-open: our end() leaves reading open. The peer's end is the whole connection's: remoteClosed() ends both.
    super({ allowHalfOpen: true, readableHighWaterMark: 64 * 1024, writableHighWaterMark: 64 * 1024 });
    const timeouts = resolveSocketTimeouts(info);
    this.halfCloseTimeoutMs = timeouts.halfCloseTimeoutMs;
    this.closeTimeoutMs = timeouts.closeTimeoutMs;
    this.connectID = connection.connectID;
    this.endpoint = info.address;
    this.agentID = info.agentID;
    const { host, port } = splitHostPort(info.address);
    this.remoteAddress = host;
    this.remotePort = port === undefined || port === '' ? undefined : Number(port);
    this.remoteFamily = host.includes(':') ? 'IPv6' : /^\d+\.\d+\.\d+\.\d+$/.test(host) ? 'IPv4' : undefined;
    this.onCloseHook = info.onClose;
    connection.handlers = {
      onData: (packet, length) => this.onData(packet, length),
      onWritable: () => {
        const cb = this.pendingWrite;
        this.pendingWrite = undefined;
        cb?.();
      },
      onPeerClosed: (error) => this.remoteClosed(error),
      onTunnelClosed: (err) => this.tunnelClosed(err),
    };
    this.once('close', () => this.onCloseHook?.(this));
  }

  /** Always false: a TunnelSocket is connected when its dial resolves. */
  readonly connecting = false;
  /** The tunnel hides the agent's local end: undefined, as for a socket that is not connected. */
  readonly localAddress: string | undefined = undefined;
  /** Undefined: the tunnel hides the agent's local end. */
  readonly localPort: number | undefined = undefined;
  /** Undefined: the tunnel hides the agent's local end. */
  readonly localFamily: string | undefined = undefined;
  /** Empty: the agent picked the endpoint's address. */
  readonly autoSelectFamilyAttemptedAddresses: string[] = [];

  /**
   * True when `end()` reaches the peer as a half-close: the connection's stream ends (yamux) or the peer confirmed
   * HALF_CLOSE. On the server (`server.dial()`) that peer is the agent, so false means a Go agent, whose endpoint
   * never sees our EOF; on a client it is the server, which may still serve the dial through a Go agent.
   */
  get halfCloseCarried(): boolean {
    return this.connection.tunnel.halfClose !== undefined;
  }

  /** Always false (connected when the dial resolved). */
  get pending(): boolean {
    return false;
  }
  /** As net.Socket: `open`, `readOnly` (after end()), `writeOnly` or `closed`. */
  get readyState(): net.SocketReadyState {
    if (this.readable && this.writable) return 'open';
    if (this.readable) return 'readOnly';
    if (this.writable) return 'writeOnly';
    return 'closed';
  }
  /** Bytes queued for writing (net.Socket's deprecated alias of `writableLength`). */
  get bufferSize(): number {
    return this.writableLength;
  }
  /** The idle timeout set with `setTimeout()`, in ms; undefined when none. */
  get timeout(): number | undefined {
    return this.idleMs > 0 ? this.idleMs : undefined;
  }
  /** `{}`: the local address of the agent's connection is not known here (net.Socket's answer when unconnected). */
  address(): net.AddressInfo | {} {
    return {};
  }
  /** Refused: a TunnelSocket is connected by its dial (`server.dial()`, `GrpcProxyClient.dial()`). */
  connect(..._args: unknown[]): this {
    throw new KonnectivityError(ErrorCode.INVALID_OPTION, 'a TunnelSocket is connected by its dial, not by connect()');
  }
  /** There is no RST to send through a tunnel: the same as `destroy()` (CLOSE_REQ at once). */
  resetAndDestroy(): this {
    return this.destroy();
  }
  /** As net.Socket: end, then destroy once everything was written. */
  destroySoon(): void {
    if (this.writable) this.end();
    if (this.writableFinished) this.destroy();
    else this.once('finish', () => this.destroy());
  }

  /** Bytes received from the endpoint (DATA payload). */
  get bytesRead(): number {
    return this.connection.bytesReceived;
  }
  /** Bytes sent to the endpoint (DATA payload). */
  get bytesWritten(): number {
    return this.connection.bytesSent;
  }

  /** The peer ended the connection (CLOSE_RSP). A non-empty `error` is the peer's reason. */
  remoteClosed(error = ''): void {
    if (this.remoteDone) return;
    this.remoteDone = true;
    this.connection.detach();
    if (error) {
      this.destroy(new KonnectivityError(ErrorCode.REMOTE, error));
      return;
    }
    this.endQuietly();
  }

  /** The tunnel under the connection failed. */
  tunnelClosed(err: Error): void {
    if (this.remoteDone) return;
    this.remoteDone = true;
    this.connection.detach();
    this.destroy(err);
  }

  /** Like net.Socket: emit 'timeout' after `ms` without reads or writes (0 turns it off). */
  setTimeout(ms: number, callback?: () => void): this {
    this.idleMs = ms;
    if (callback) this.once('timeout', callback);
    this.touch();
    return this;
  }
  /** Accepted for net.Socket compatibility; the endpoint socket's options are the agent's. */
  setNoDelay(_noDelay?: boolean): this {
    return this;
  }
  /** Accepted for net.Socket compatibility; the endpoint socket's keep-alive is the agent's. */
  setKeepAlive(_enable?: boolean, _initialDelay?: number): this {
    return this;
  }
  /** Accepted for net.Socket compatibility: the socket holds no handle of its own. */
  ref(): this {
    return this;
  }
  /** Accepted for net.Socket compatibility: the socket holds no handle of its own. */
  unref(): this {
    return this;
  }

  override _read(): void {
    this.connection.release();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, callback: (err?: Error | null) => void): void {
    this.touch();
    if (this.remoteDone || this.connection.closed) {
      callback(new KonnectivityError(ErrorCode.STREAM_CLOSED, 'write after the tunnel connection closed'));
      return;
    }
    if (this.connection.sendData(chunk)) callback();
    else this.pendingWrite = callback;
  }

  /**
   * Close the connection as the reference client's `Close()` does, whether or not the peer can hear a half-close:
   * stop writing, send CLOSE_REQ after the queued data, and wait for the peer's CLOSE_RSP. What the endpoint sent
   * before goes to 'data' listeners, or is dropped if nobody reads (the socket flows from now on). If the socket has
   * not closed `graceMs` later (default `closeTimeoutMs`) or `signal` aborts, the connection is dropped (CLOSE_REQ at
   * once) and the socket ends without an error: readers see EOF. Resolves once the socket has closed. Idempotent.
   */
  close(options: CloseOptions = {}): Promise<void> {
    if (this.closing) return this.closing;
    this.closeRequested = true;
    this.closing = new Promise<void>((resolve) => {
      if (this.closed) return resolve();
      const grace = startGrace(options, this.closeTimeoutMs, () => this.dropQuietly());
      this.once('close', () => {
        grace.cancel();
        resolve();
      });
      if (grace.expired) return;
      // Done with it: what is not read is dropped, so the EOF is reached and the socket closes.
      this.resume();
      if (!this.writableEnded) this.end();
      // Already half-closed: close now rather than at the end of the wait.
      else if (this.halfClosed) this.closeWithRequest();
    });
    return this.closing;
  }

  override _final(callback: (err?: Error | null) => void): void {
    if (!this.remoteDone && this.closeRequested) {
      this.closeWithRequest();
    } else if (!this.remoteDone) {
      // The endpoint hears our end where the peer can carry it; its answer keeps coming until it closes.
      this.connection.endWrite();
      this.halfClosed = true;
      this.closeTimer = setTimeout(() => this.closeWithRequest(), this.halfCloseTimeoutMs).unref();
    }
    callback();
  }

  /** close(), or nothing came for `halfCloseTimeoutMs` after end(): close as the reference client does. */
  private closeWithRequest(): void {
    this.halfClosed = false;
    clearTimeout(this.closeTimer);
    if (this.remoteDone) return;
    // A per-connection stream we ended can carry no CLOSE_REQ: destroying it resets the stream.
    if (!this.connection.canSend) {
      this.destroy();
      return;
    }
    this.connection.finish(closeRequest(this.connectID), true);
    this.closeTimer = setTimeout(() => this.destroy(), this.closeTimeoutMs).unref();
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    clearTimeout(this.idleTimer);
    clearTimeout(this.closeTimer);
    if (!this.remoteDone) {
      this.remoteDone = true;
      this.dropConnection();
    }
    const cb = this.pendingWrite;
    this.pendingWrite = undefined;
    cb?.(err ?? new KonnectivityError(ErrorCode.STREAM_CLOSED, 'tunnel connection destroyed'));
    callback(err);
  }

  /** Tell the peer now (queued data dropped); see TunnelConnection.drop. */
  private dropConnection(): void {
    this.connection.drop(closeRequest(this.connectID), this.closeTimeoutMs);
  }

  /** The end of close()'s grace: drop the connection and end the socket without an error. */
  private dropQuietly(): void {
    if (this.closed) return;
    if (!this.remoteDone) {
      this.remoteDone = true;
      this.dropConnection();
    }
    this.endQuietly();
    // Nobody reads the EOF: it must not keep the socket open.
    setImmediate(() => this.destroy());
  }

  /** The connection is over without an error: EOF for readers, and the write side ended. */
  private endQuietly(): void {
    this.halfClosed = false;
    clearTimeout(this.closeTimer);
    // A write waiting for credit will never get it: its bytes are dropped, as a socket's unsent bytes are.
    const cb = this.pendingWrite;
    this.pendingWrite = undefined;
    cb?.();
    this.push(null);
    // The endpoint is gone: nothing more can be written, even where half-close is carried.
    if (!this.writableEnded) this.end();
  }

  private onData(packet: DataPacket, length: number): void {
    this.touch();
    if (this.halfClosed) this.closeTimer?.refresh();
    let payload = payloadOf(packet);
    // Bytes that wait for a reader must not hold on to the transport's receive buffers.
    if (this.readableLength >= this.readableHighWaterMark) payload = ownPayload(payload);
    let ok = true;
    if (isPieces(payload)) for (const piece of payload) ok = this.push(piece);
    else ok = this.push(payload);
    this.connection.handedOn(length, ok);
  }

  private touch(): void {
    if (this.idleMs <= 0) {
      if (this.idleTimer) clearTimeout(this.idleTimer);
      this.idleTimer = undefined;
      return;
    }
    if (this.idleTimer) this.idleTimer.refresh();
    else this.idleTimer = setTimeout(() => this.emit('timeout'), this.idleMs).unref();
  }
}
