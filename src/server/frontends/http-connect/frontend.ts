/**
 * The HTTP-CONNECT frontend (PROTOCOL.md §3.1): an HTTP/1.1 server (TCP, TLS/mTLS or a Unix socket) that takes
 * `CONNECT host:port HTTP/1.1`, dials the target through the tunnel, answers exactly
 * `HTTP/1.1 200 Connection Established\r\n\r\n` once the dial succeeded, and relays raw bytes.
 *
 * It depends only on {@link HttpConnectDialer}, which the ProxyServer satisfies, so it can front anything that
 * dials.
 */
import { EventEmitter } from 'node:events';
import { unlink } from 'node:fs/promises';
import * as http from 'node:http';
import * as https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { abortError } from '../../../protocol/abort.js';
import { ErrorCode, KonnectivityError } from '../../../protocol/errors.js';
import { noop } from '../../../protocol/noop.js';
import { bindServer, type Listener, type ListenTarget } from '../../../transport/listener.js';
import type { DialHandle } from '../../dials.js';
import { Admission, mtls, remoteAddressOf } from './admission.js';
import { parseConnectAuthority } from './authority.js';
import { ClientBinding } from './binding.js';
import { holdEarlyInput, type EarlyInput } from './early-input.js';
import {
  DEFAULT_GRACE_MS,
  resolveHttpConnectOptions,
  type HttpConnectCloseOptions,
  type HttpConnectDialer,
  type HttpConnectFrontendEventMap,
  type HttpConnectFrontendOptions,
  type ResolvedHttpConnectOptions,
} from './options.js';
import { relay } from './relay.js';
import {
  badRequestResponse,
  CONNECT_ESTABLISHED,
  dialErrorResponse,
  forbiddenResponse,
  formatErrorResponse,
  headerTooLargeResponse,
  METHOD_NOT_ALLOWED_BODY,
  type ErrorResponse,
} from './responses.js';

/** One CONNECT socket being served: how to give up its dial, and what carries it once open. */
interface TunnelEntry {
  /** Give up the dial (the client left, or the frontend is destroyed). */
  cancel(reason: Error): void;
  /** The dialer's Duplex, relayed to the socket. */
  tunnel?: Duplex;
  /** The socket bound straight to its tunnel connection (a dialer with `openConnection`, as the ProxyServer). */
  binding?: ClientBinding;
}

/** Create an HTTP-CONNECT frontend; call {@link HttpConnectFrontend.listen} to start serving. */
export function createHttpConnectFrontend(options: HttpConnectFrontendOptions): HttpConnectFrontend {
  return new HttpConnectFrontend(options);
}

/**
 * The HTTP-CONNECT frontend. Events: `tunnelOpened`, `tunnelClosed`, `dialFailed`, `clientError`, `serverError`.
 *
 * {@link handleConnect} may also be wired to the 'connect' event of an HTTP server the caller owns, e.g. to check
 * `Proxy-Authorization` or the client certificate first (the reference has no such check: mTLS is its only gate);
 * close() and destroy() then cover those tunnels too.
 */
export class HttpConnectFrontend extends EventEmitter<HttpConnectFrontendEventMap> implements Listener {
  private readonly dialer: HttpConnectDialer;
  private readonly options: ResolvedHttpConnectOptions;
  private readonly http: http.Server;
  /** Every raw connection, so destroy() reaches those still in the HTTP parser or the TLS handshake. */
  private readonly connections = new Set<Socket>();
  private readonly admission: Admission;
  /** CONNECT sockets from the request to the end of their tunnel. */
  private readonly tunnels = new Map<Duplex, TunnelEntry>();
  /** close() waiting for the last tunnel to end. */
  private drained: (() => void) | undefined;
  private pending = 0;
  private state: 'idle' | 'listening' | 'closing' | 'closed' = 'idle';
  private closing: Promise<void> | undefined;
  private socketPath: string | undefined;

  constructor(options: HttpConnectFrontendOptions) {
    super();
    this.dialer = options.server;
    this.options = resolveHttpConnectOptions(options);
    const serverOptions: http.ServerOptions = {
      maxHeaderSize: this.options.maxHeaderSize,
      headersTimeout: this.options.headersTimeoutMs,
      // A CONNECT request has no body; the header timeout is the only one that applies before the tunnel.
      requestTimeout: 0,
      // Node checks header deadlines on an interval (default 30 s); keep it in proportion to a short timeout.
      connectionsCheckingInterval: Math.min(30_000, Math.max(50, Math.floor(this.options.headersTimeoutMs / 4))),
    };
    this.http = options.tls
      ? // allowHalfOpen as node:http has it, so a client's EOF over TLS half-closes instead of closing.
        https.createServer({
          minVersion: 'TLSv1.2',
          ...mtls(options.tls),
          ...serverOptions,
          allowHalfOpen: true,
          handshakeTimeout: this.options.handshakeTimeoutMs,
        })
      : http.createServer(serverOptions);
    this.admission = new Admission(this.http, this.options, options.tls, (err, remoteAddress) => this.emit('clientError', err, remoteAddress));
    // One listener for every socket ('close' comes once), not a closure each.
    const connections = this.connections;
    const forget = function (this: Socket): void {
      connections.delete(this);
    };
    this.http.on('connection', (socket: Socket) => {
      connections.add(socket);
      socket.on('close', forget);
    });
    this.http.on('connect', (req: http.IncomingMessage, socket: Duplex, head: Buffer) =>
      this.handleConnect(req, socket, head),
    );
    this.http.on('request', (req, res) => this.refuseMethod(req, res));
    this.http.on('clientError', (err: Error & { code?: string }, socket: Duplex) => this.onClientError(err, socket));
  }

  /** Start listening. Resolves once bound; rejects with the listen error (EADDRINUSE, EACCES, ...). */
  async listen(target: ListenTarget): Promise<void> {
    if (this.state !== 'idle') {
      throw new KonnectivityError(ErrorCode.INVALID_OPTION, `cannot listen: the frontend is ${this.state}`);
    }
    this.state = 'listening';
    try {
      if ('path' in target) this.socketPath = target.path;
      await bindServer(this.http, target, this.options);
      // Accept errors come as 'error' on the server; never let one crash the process.
      this.http.on('error', (err) => this.emit('serverError', err));
    } catch (err) {
      this.socketPath = undefined;
      this.state = 'idle';
      if (this.http.listening) this.http.close();
      throw err;
    }
  }

  /** The bound address: an AddressInfo for TCP, the path for a Unix socket, null before listen(). */
  address(): AddressInfo | string | null {
    return this.http.address();
  }

  /** CONNECT requests whose dial is in progress. */
  get pendingDials(): number {
    return this.pending;
  }

  /** CONNECT sockets being served (dialing or relaying). */
  get activeTunnels(): number {
    return this.tunnels.size;
  }

  /**
   * Serve one CONNECT request: the handler of `http.Server`'s 'connect' event. What the client sends during the
   * dial (`head`, then more) is held and forwarded first once the tunnel is open. A client that leaves during the
   * dial (close, error, or EOF before sending anything) aborts it.
   */
  handleConnect(req: http.IncomingMessage, socket: Duplex, head: Buffer): void {
    if (this.refusedClient(socket)) return;
    const remoteAddress = remoteAddressOf(socket);
    const authority = parseConnectAuthority(req.url);
    if (authority === undefined) {
      this.emit('clientError', new KonnectivityError(ErrorCode.PROTOCOL, `bad CONNECT target: ${req.url}`), remoteAddress);
      this.respondAndClose(socket, badRequestResponse(), true);
      return;
    }
    if (this.state === 'closing' || this.state === 'closed') {
      const err = new KonnectivityError(ErrorCode.SHUTTING_DOWN, 'the server is shutting down');
      this.respondAndClose(socket, dialErrorResponse(err));
      return;
    }
    const address = authority.address;
    this.pending += 1;
    if (typeof this.dialer.openConnection === 'function') this.connectBound(socket, head, address, remoteAddress);
    else this.connectRelayed(socket, head, address, remoteAddress);
  }

  /** Dial through a dialer that hands over the tunnel connection, and bind the socket straight to it. */
  private connectBound(socket: Duplex, head: Buffer, address: string, remoteAddress: string): void {
    const started = Date.now();
    let handle: DialHandle | KonnectivityError | undefined;
    const entry: TunnelEntry = {
      cancel: (reason) => {
        if (handle === undefined || handle instanceof KonnectivityError || entry.binding) return;
        handle.cancel();
        handle = undefined;
        this.pending -= 1;
        early.release();
        socket.destroy();
        this.untrack(socket);
        this.emit('dialFailed', { address, remoteAddress, statusCode: undefined, error: reason });
      },
    };
    this.tunnels.set(socket, entry);
    const early = holdEarlyInput(socket, head, this.options.maxEarlyDataBytes, (why) => entry.cancel(abortError(why)));
    try {
      handle = this.dialer.openConnection!(address, this.options.dialTimeoutMs, {
        succeed: (connection, _agentID, ended) => {
          handle = undefined;
          this.pending -= 1;
          const { chunks, ended: clientEnded } = early.release();
          const binding = new ClientBinding(socket, connection, this.options, (result) => {
            ended();
            this.untrack(socket);
            this.emit('tunnelClosed', { ...result, address, remoteAddress });
          });
          entry.binding = binding;
          socket.write(CONNECT_ESTABLISHED);
          binding.start(chunks, clientEnded);
          this.emit('tunnelOpened', { address, remoteAddress, durationMs: Date.now() - started });
          return binding;
        },
        fail: (err) => {
          handle = undefined;
          this.dialFailed(socket, early, address, remoteAddress, err, false);
        },
      });
    } catch (err) {
      // A dialer that throws fails this CONNECT, not the process.
      this.dialFailed(socket, early, address, remoteAddress, err instanceof Error ? err : new Error(String(err)), false);
      return;
    }
    if (handle instanceof KonnectivityError) {
      const err = handle;
      handle = undefined;
      this.dialFailed(socket, early, address, remoteAddress, err, false);
    }
  }

  /** Dial through the dialer's `dial()`, and relay between the socket and the Duplex it gives. */
  private connectRelayed(socket: Duplex, head: Buffer, address: string, remoteAddress: string): void {
    const abort = new AbortController();
    const entry: TunnelEntry = { cancel: (reason) => abort.abort(reason) };
    this.tunnels.set(socket, entry);
    const early = holdEarlyInput(socket, head, this.options.maxEarlyDataBytes, (why) =>
      abort.abort(abortError(why)),
    );
    const started = Date.now();
    this.dialThrough(address, abort.signal).then(
      (tunnel) => {
        this.pending -= 1;
        const { chunks } = early.release();
        if (socket.destroyed || abort.signal.aborted) {
          // The client left while the dial completed (#404): close the connection on the agent at once.
          tunnel.destroy();
          socket.destroy();
          this.untrack(socket);
          this.emit('dialFailed', { address, remoteAddress, statusCode: undefined, error: abortReason(abort.signal) });
          return;
        }
        entry.tunnel = tunnel;
        socket.write(CONNECT_ESTABLISHED);
        for (const chunk of chunks) tunnel.write(chunk);
        void relay(socket, tunnel, this.options).then((result) => {
          this.untrack(socket);
          this.emit('tunnelClosed', { ...result, address, remoteAddress });
        });
        // Events go out after the bookkeeping, so a listener that throws cannot leave a socket unserved.
        this.emit('tunnelOpened', { address, remoteAddress, durationMs: Date.now() - started });
      },
      (err: unknown) => {
        const error = err instanceof Error ? err : new Error(String(err));
        this.dialFailed(socket, early, address, remoteAddress, error, abort.signal.aborted);
      },
    );
  }

  /** A dial failed: answer the client with the status for `error`, unless it left first. */
  private dialFailed(socket: Duplex, early: EarlyInput, address: string, remoteAddress: string, error: Error, aborted: boolean): void {
    this.pending -= 1;
    early.release();
    let statusCode: number | undefined;
    if (socket.destroyed || aborted) {
      socket.destroy();
    } else {
      const response = dialErrorResponse(error);
      statusCode = response.statusCode;
      this.respondAndClose(socket, response);
    }
    if (socket.closed) this.untrack(socket);
    else socket.once('close', () => this.untrack(socket));
    this.emit('dialFailed', { address, remoteAddress, statusCode, error });
  }

  /** The CONNECT socket is done with; close() may be waiting for the last one. */
  private untrack(socket: Duplex): void {
    if (!this.tunnels.delete(socket) || this.tunnels.size > 0) return;
    const drained = this.drained;
    this.drained = undefined;
    drained?.();
  }

  /**
   * Stop listening and refuse new CONNECTs; let open tunnels finish for up to `graceMs`, then destroy what is left.
   * Idempotent: later calls return the same promise.
   */
  close(options: HttpConnectCloseOptions = {}): Promise<void> {
    if (this.closing) return this.closing;
    const graceMs = options.graceMs ?? DEFAULT_GRACE_MS;
    this.state = 'closing';
    const stopped = this.stopListening();
    this.closing = (async () => {
      const timer = setTimeout(() => this.destroy(), graceMs);
      timer.unref();
      try {
        // Idle keep-alive connections (a client that got a 405) would hold close() open.
        this.http.closeIdleConnections();
        if (this.tunnels.size > 0) await new Promise<void>((resolve) => (this.drained = resolve));
        await stopped;
      } finally {
        clearTimeout(timer);
        this.state = 'closed';
      }
    })();
    return this.closing;
  }

  /** Close every socket and tunnel now. Idempotent. */
  destroy(): void {
    if (this.state === 'closed' && this.connections.size === 0 && this.tunnels.size === 0) return;
    if (this.state !== 'closing') {
      this.state = 'closed';
      void this.stopListening();
    }
    const reason = new KonnectivityError(ErrorCode.SHUTTING_DOWN, 'the frontend was destroyed');
    for (const [socket, entry] of [...this.tunnels]) {
      entry.tunnel?.destroy();
      entry.binding?.destroy(reason);
      entry.cancel(reason);
      socket.destroy();
    }
    for (const socket of this.connections) socket.destroy();
    this.http.closeAllConnections();
  }

  // ---- internals -----------------------------------------------------------------------------------------------

  /** The dialer's promise; a dialer that throws instead of rejecting fails that one CONNECT, not the process. */
  private dialThrough(address: string, signal: AbortSignal): Promise<Duplex> {
    try {
      return this.dialer.dial(address, { signal, timeoutMs: this.options.dialTimeoutMs });
    } catch (err) {
      return Promise.reject(err);
    }
  }

  private stopListening(): Promise<void> {
    if (!this.http.listening) return Promise.resolve();
    return new Promise((resolve) => {
      this.http.close(() => {
        if (this.socketPath !== undefined) void unlink(this.socketPath).catch(noop);
        resolve();
      });
    });
  }

  /** Go's `http.Error`: any method other than CONNECT. */
  private refuseMethod(req: http.IncomingMessage, res: http.ServerResponse): void {
    if (this.refusedClient(req.socket)) return;
    this.emit(
      'clientError',
      new KonnectivityError(ErrorCode.PROTOCOL, `method ${req.method} not allowed`),
      remoteAddressOf(req.socket),
    );
    req.resume();
    res.writeHead(405, {
      'Content-Type': 'text/plain; charset=utf-8',
      'X-Content-Type-Options': 'nosniff',
      'Content-Length': Buffer.byteLength(METHOD_NOT_ALLOWED_BODY),
    });
    res.end(METHOD_NOT_ALLOWED_BODY);
  }

  /** The first request of a client whose certificate was refused: answer 403 with why, and close. */
  private refusedClient(socket: Duplex): boolean {
    const problem = this.admission.headArrived(socket);
    if (problem === undefined) return false;
    this.respondAndClose(socket, forbiddenResponse(problem), true);
    return true;
  }

  /** A request Node's parser refused: Go's bytes for a bad request (400) or an oversized header (431). */
  private onClientError(err: Error & { code?: string }, socket: Duplex): void {
    if (this.admission.tlsHandshakeFailed(socket)) return;
    this.emit('clientError', err, remoteAddressOf(socket));
    // A header that never completes is dropped without a reply, as Go's ReadHeaderTimeout does.
    if (err.code === 'ECONNRESET' || err.code === 'ERR_HTTP_REQUEST_TIMEOUT' || !socket.writable) {
      socket.destroy();
      return;
    }
    const response = err.code === 'HPE_HEADER_OVERFLOW' ? headerTooLargeResponse() : badRequestResponse();
    this.respondAndClose(socket, response, true);
  }

  /**
   * Write an error response and close: end our side, drop what the client still sends, and destroy on its FIN or
   * after `lingerMs`. Destroying at once would reset the connection over unread input, and the client could lose
   * the response.
   */
  private respondAndClose(socket: Duplex, response: ErrorResponse, connectionClose = false): void {
    socket.on('error', noop);
    socket.end(formatErrorResponse(response, connectionClose));
    socket.resume();
    const timer = setTimeout(() => socket.destroy(), this.options.lingerMs);
    timer.unref();
    socket.once('close', () => clearTimeout(timer));
    // Everything read already: close once the response is flushed.
    if (socket.readableEnded) socket.once('finish', () => socket.destroy());
    else socket.once('end', () => socket.destroy());
  }
}

function abortReason(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : abortError('the dial was aborted', signal);
}
