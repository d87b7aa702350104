/**
 * The HTTP-CONNECT frontend (PROTOCOL.md §3.1): an HTTP/1.1 server (TCP, TLS/mTLS or a Unix socket) that takes
 * `CONNECT host:port HTTP/1.1`, dials the target through the tunnel, answers exactly
 * `HTTP/1.1 200 Connection Established\r\n\r\n` once the dial succeeded, and relays raw bytes.
 *
 * It depends only on {@link HttpConnectDialer}, which the ProxyServer satisfies, so it can front anything that
 * dials. This file is the server and its lifecycle; one CONNECT's dial and join are in `connect.ts`.
 */
import { EventEmitter } from 'node:events';
import { unlink } from 'node:fs/promises';
import * as http from 'node:http';
import * as https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { TlsOptions } from 'node:tls';
import { ErrorCode, KonnectivityError } from '../../../protocol/errors.js';
import { noop } from '../../../protocol/noop.js';
import { rejectBadGrace, startGrace } from '../../../transport/grace.js';
import { bindServer, type Listener, type ListenTarget } from '../../../transport/listener.js';
import { Admission, mtls, remoteAddressOf } from './admission.js';
import { parseConnectAuthority } from './authority.js';
import { serveConnect, type ConnectHost, type TunnelEntry } from './connect.js';
import {
  DEFAULT_GRACE_MS,
  resolveHttpConnectOptions,
  type HttpConnectCloseOptions,
  type HttpConnectDialer,
  type HttpConnectFrontendEventMap,
  type HttpConnectFrontendOptions,
  type ResolvedHttpConnectOptions,
} from './options.js';
import {
  badRequestResponse,
  dialErrorResponse,
  forbiddenResponse,
  formatErrorResponse,
  headerTooLargeResponse,
  METHOD_NOT_ALLOWED_BODY,
  type ErrorResponse,
} from './responses.js';

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
  /** What serving a CONNECT needs of this frontend. */
  private readonly host: ConnectHost;
  private state: 'idle' | 'listening' | 'closing' | 'closed' = 'idle';
  private closing: Promise<void> | undefined;
  private socketPath: string | undefined;

  constructor(options: HttpConnectFrontendOptions) {
    super();
    this.dialer = options.server;
    this.options = resolveHttpConnectOptions(options);
    this.host = {
      dialer: this.dialer,
      options: this.options,
      track: (socket, entry) => this.tunnels.set(socket, entry),
      untrack: (socket) => this.untrack(socket),
      dialSettled: () => (this.pending -= 1),
      respondAndClose: (socket, response) => this.respondAndClose(socket, response),
      emit: this.emit.bind(this) as ConnectHost['emit'],
    };
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

  /**
   * Use new TLS credentials for new handshakes (certificate rotation); open tunnels keep theirs. Throws for a
   * plaintext frontend, or when the material is unusable (the old material then stays).
   */
  setSecureContext(tls: TlsOptions): void {
    if (!(this.http instanceof https.Server)) throw new KonnectivityError(ErrorCode.INVALID_OPTION, 'setSecureContext: not a TLS frontend');
    this.http.setSecureContext({ minVersion: 'TLSv1.2', ...tls });
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
    serveConnect(this.host, socket, head, address, remoteAddress);
  }

  /** The CONNECT socket is done with; close() may be waiting for the last one. */
  private untrack(socket: Duplex): void {
    if (!this.tunnels.delete(socket) || this.tunnels.size > 0) return;
    const drained = this.drained;
    this.drained = undefined;
    drained?.();
  }

  /**
   * Stop listening and refuse new CONNECTs; let open tunnels finish for up to `graceMs` (default 10000) or until
   * `signal` aborts, then destroy what is left. Idempotent: later calls return the same promise.
   */
  close(options: HttpConnectCloseOptions = {}): Promise<void> {
    if (this.closing) return this.closing;
    const bad = rejectBadGrace(options, DEFAULT_GRACE_MS);
    if (bad) return bad;
    this.state = 'closing';
    const stopped = this.stopListening();
    this.closing = (async () => {
      const grace = startGrace(options, DEFAULT_GRACE_MS, () => this.destroy());
      try {
        // Idle keep-alive connections (a client that got a 405) would hold close() open.
        this.http.closeIdleConnections();
        if (this.tunnels.size > 0) await new Promise<void>((resolve) => (this.drained = resolve));
        await stopped;
      } finally {
        grace.cancel();
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
      entry.destroy(reason);
      socket.destroy();
    }
    for (const socket of this.connections) socket.destroy();
    this.http.closeAllConnections();
  }

  // ---- internals -----------------------------------------------------------------------------------------------

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
