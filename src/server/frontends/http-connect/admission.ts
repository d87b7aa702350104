/**
 * Who gets as far as the HTTP-CONNECT frontend's request handling: the connection limit, the deadline for the
 * request head (from the connection on: Node's own header timeout never starts for a client that sends nothing),
 * failed TLS handshakes reported once, and client certificates checked by us rather than by OpenSSL, so the log
 * and the client both learn why (../../../transport/tls-peer.ts).
 */
import type * as http from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { TLSSocket, TlsOptions } from 'node:tls';
import { joinHostPort } from '../../../protocol/address.js';
import { ErrorCode, KonnectivityError } from '../../../protocol/errors.js';
import { clientCertificateProblem, rememberPeer, socketAddress } from '../../../transport/tls-peer.js';

export interface AdmissionOptions {
  maxConnections: number;
  headersTimeoutMs: number;
  handshakeTimeoutMs: number;
}

/** The TCP socket under a socket (itself, or the one under a TLS socket: Node's `_parent`). */
function tcpOf(socket: Duplex): object {
  return (socket as { _parent?: object })._parent ?? socket;
}

/** The request head came, or the connection closed: its deadline is over (`this` is the TCP socket). */
function endHeadDeadline(this: AwaitingSocket): void {
  const deadline = this[HEAD_DEADLINE];
  if (deadline === undefined) return;
  this[HEAD_DEADLINE] = undefined;
  clearTimeout(deadline);
}

/** `host:port` of a client for logs, also once its socket closed; `unix` on a Unix socket. */
export function remoteAddressOf(socket: Duplex): string {
  const { address, port } = socketAddress(socket as Partial<Socket>);
  return address ? joinHostPort(address, port) : 'unix';
}

/** With a CA, ask for client certificates; an unauthorized one is refused by {@link Admission}, with its reason. */
export function mtls(options: TlsOptions): TlsOptions {
  if (options.ca === undefined) return options;
  const o = { requestCert: true, ...options };
  return refusesUnauthorized(o) ? { ...o, rejectUnauthorized: false } : o;
}

/** The TLS options ask for client certificates and refuse unauthorized ones. */
function refusesUnauthorized(options: TlsOptions): boolean {
  return (options.requestCert === true || (options.ca !== undefined && options.requestCert === undefined)) && options.rejectUnauthorized !== false;
}

/** The request-head deadline of a connection (on its TCP socket) until its first request arrives. */
const HEAD_DEADLINE = Symbol('konnectivity-ts.headDeadline');
type AwaitingSocket = Socket & { [HEAD_DEADLINE]?: NodeJS.Timeout | undefined };

/** The admission of one frontend's connections; `report` is its `clientError`. */
export class Admission {
  /** Why a TLS client's certificate was refused, by its TLS socket: its first request is answered 403 with it. */
  private readonly unauthorized = new WeakMap<object, string>();
  /** TLS sockets whose failed handshake was reported, and those whose handshake succeeded. */
  private readonly tlsRefused = new WeakSet<object>();
  private readonly secured = new WeakSet<object>();

  constructor(
    http: http.Server,
    options: AdmissionOptions,
    tls: TlsOptions | undefined,
    report: (err: Error, remoteAddress: string) => void,
  ) {
    http.maxConnections = options.maxConnections;
    http.on('drop', (info?: { remoteAddress?: string; remotePort?: number }) =>
      report(
        new KonnectivityError(ErrorCode.LIMIT_EXCEEDED, `more than ${options.maxConnections} connections`),
        info?.remoteAddress ? joinHostPort(info.remoteAddress, info.remotePort) : 'unknown',
      ),
    );
    // Shared functions, not closures per connection: the deadline lives on the socket.
    const headTimedOut = (socket: Socket): void => {
      report(new KonnectivityError(ErrorCode.PROTOCOL, `no request header within ${options.headersTimeoutMs} ms`), remoteAddressOf(socket));
      socket.destroy();
    };
    http.on('connection', (socket: AwaitingSocket) => {
      rememberPeer(socket);
      socket[HEAD_DEADLINE] = setTimeout(headTimedOut, options.headersTimeoutMs, socket).unref();
      socket.on('close', endHeadDeadline);
    });
    const verify = tls !== undefined && refusesUnauthorized(mtlsRequested(tls));
    http.on('secureConnection', (socket: TLSSocket) => {
      this.secured.add(socket);
      const problem = verify ? clientCertificateProblem(socket) : undefined;
      if (problem === undefined) return;
      report(new KonnectivityError(ErrorCode.UNAUTHENTICATED, problem), remoteAddressOf(socket));
      this.unauthorized.set(socket, problem);
      // Long enough for the client's request to get its answer, and no longer.
      const cut = setTimeout(() => socket.destroy(), options.handshakeTimeoutMs);
      cut.unref();
      socket.once('close', () => clearTimeout(cut));
    });
    http.on('tlsClientError', (err: Error, socket: Duplex) => {
      if (!this.tlsHandshakeFailed(socket)) report(err, remoteAddressOf(socket));
      socket.destroy();
    });
  }

  /** The request head of `socket` arrived: its deadline is over. Returns why its client is refused, if it is. */
  headArrived(socket: Duplex): string | undefined {
    endHeadDeadline.call(tcpOf(socket) as AwaitingSocket);
    return this.unauthorized.get(socket);
  }

  /**
   * True when `socket` is a TLS socket whose failed handshake was already reported (node:https passes it to
   * 'clientError' as well as to 'tlsClientError'); otherwise, for such a socket, marks it (the caller reports it).
   */
  tlsHandshakeFailed(socket: Duplex): boolean {
    const tls = socket as Partial<TLSSocket>;
    if (tls.encrypted !== true || this.secured.has(socket)) return false;
    if (this.tlsRefused.has(socket)) {
      socket.destroy();
      return true;
    }
    this.tlsRefused.add(socket);
    return false;
  }
}

/** `requestCert` as `mtls()` fills it in. */
function mtlsRequested(options: TlsOptions): TlsOptions {
  return options.ca === undefined ? options : { requestCert: true, ...options };
}
