/**
 * What a gRPC listener lets in, and how far: connections per listener, the handshake deadline (the TLS handshake,
 * then the HTTP/2 preface and SETTINGS), client certificates checked by us rather than OpenSSL so the peer and the
 * log learn why (../tls-peer.ts), and each connection's budget for partial messages (stream.ts).
 */
import type { Http2SecureServer, Http2Server, Http2Session } from 'node:http2';
import type { TLSSocket } from 'node:tls';
import { DEFAULT_HANDSHAKE_TIMEOUT_MS, DEFAULT_MAX_PARTIAL_MESSAGE_BYTES, defaultMaxConnectionsPerListener } from '../limits.js';
import { clientCertificateProblem, rememberPeer } from '../tls-peer.js';
import { intOption } from './options.js';
import { PartialMessageBudget } from './stream.js';

/** Why a connection was closed before any call was served. */
export type ConnectionRefusal = 'tls' | 'client_certificate' | 'handshake_timeout' | 'too_many_connections';

/** The listener limits, with their defaults filled in. */
export interface ServerLimits {
  handshakeTimeoutMs: number;
  maxConnections: number;
  maxPartialMessageBytes: number;
}

/** Check the limit options; `maxMessageBytes` is the smallest budget that lets one whole message through. */
export function resolveServerLimits(
  options: { handshakeTimeoutMs?: number | undefined; maxConnections?: number | undefined; maxPartialMessageBytes?: number | undefined },
  maxMessageBytes: number,
): ServerLimits {
  return {
    handshakeTimeoutMs: intOption('handshakeTimeoutMs', options.handshakeTimeoutMs, DEFAULT_HANDSHAKE_TIMEOUT_MS, 1, 2 ** 31 - 1),
    maxConnections: intOption('maxConnections', options.maxConnections, defaultMaxConnectionsPerListener(), 1, 2 ** 31 - 1),
    maxPartialMessageBytes: intOption(
      'maxPartialMessageBytes',
      options.maxPartialMessageBytes,
      Math.max(DEFAULT_MAX_PARTIAL_MESSAGE_BYTES, 2 * maxMessageBytes),
      maxMessageBytes,
      2 ** 53 - 1,
    ),
  };
}

type Peer = { remoteAddress?: string | undefined; remotePort?: number | undefined } | undefined;

/** The admission of one listener's connections; `refuse` reports one (the server's `connectionRefused`). */
export class ConnectionAdmission {
  private readonly budgets = new WeakMap<Http2Session, PartialMessageBudget>();
  /** Connections whose client certificate was refused, with why: every call on them is refused with it. */
  private readonly unauthorized = new WeakMap<Http2Session, string>();
  /**
   * Sessions still waiting for the client's SETTINGS, with their deadlines (ms, performance.now()), in the order
   * they came, so the first is the next to expire: one timer for all of them, no timer or closure per connection.
   */
  private readonly awaitingPreface = new Map<Http2Session, number>();
  private prefaceTimer: NodeJS.Timeout | undefined;
  /** Shared 'remoteSettings' / 'close' listener: node calls it with the session as `this`. */
  private readonly prefaceDone: (this: Http2Session) => void;

  constructor(
    private readonly limits: ServerLimits,
    /** The listener asks for client certificates (mTLS). */
    private readonly verifyClients: boolean,
    private readonly refuse: (peer: Peer, reason: ConnectionRefusal, message: string) => void,
  ) {
    const admission = this;
    this.prefaceDone = function (this: Http2Session) {
      admission.prefaceArrived(this);
    };
  }

  /** Apply the limits to a new node:http2 server. */
  watch(server: Http2Server | Http2SecureServer): void {
    server.maxConnections = this.limits.maxConnections;
    server.on('connection', rememberPeer);
    // With a listener of ours Node leaves the socket open: close it, and say who and why.
    server.on('tlsClientError', (err: Error & { code?: string }, socket: TLSSocket) => {
      this.refuse(socket, err.code === 'ERR_TLS_HANDSHAKE_TIMEOUT' ? 'handshake_timeout' : 'tls', err.message);
      socket.destroy();
    });
    server.on('drop', (info?: { remoteAddress?: string; remotePort?: number }) =>
      this.refuse(info, 'too_many_connections', `more than ${this.limits.maxConnections} connections`),
    );
  }

  /** A new session: its budget, its preface deadline, and its client certificate checked. */
  admit(session: Http2Session): void {
    const { handshakeTimeoutMs, maxPartialMessageBytes } = this.limits;
    this.budgets.set(session, new PartialMessageBudget(maxPartialMessageBytes));
    // The client's SETTINGS follows its preface: until it arrives the connection is not HTTP/2 yet.
    this.awaitingPreface.set(session, performance.now() + handshakeTimeoutMs);
    session.on('remoteSettings', this.prefaceDone);
    session.on('close', this.prefaceDone);
    if (this.prefaceTimer === undefined) this.armPrefaceTimer();
    const problem = this.verifyClients ? clientCertificateProblem(session.socket as TLSSocket) : undefined;
    if (problem === undefined) return;
    this.refuse(session.socket, 'client_certificate', problem);
    this.unauthorized.set(session, problem);
    // Long enough to answer the peer's first call with the reason, and no longer.
    const cut = setTimeout(() => session.destroy(), handshakeTimeoutMs);
    cut.unref();
    session.once('close', () => clearTimeout(cut));
  }

  private prefaceArrived(session: Http2Session): void {
    if (!this.awaitingPreface.delete(session)) return;
    session.off('remoteSettings', this.prefaceDone);
    session.off('close', this.prefaceDone);
    if (this.awaitingPreface.size === 0 && this.prefaceTimer !== undefined) {
      clearTimeout(this.prefaceTimer);
      this.prefaceTimer = undefined;
    }
  }

  /** Wake up when the oldest waiting session's deadline passes. */
  private armPrefaceTimer(): void {
    const first = this.awaitingPreface.values().next();
    if (first.done) return;
    this.prefaceTimer = setTimeout(() => this.prefaceDeadline(), Math.max(0, first.value - performance.now()));
    this.prefaceTimer.unref();
  }

  private prefaceDeadline(): void {
    this.prefaceTimer = undefined;
    const now = performance.now();
    for (const [session, deadline] of this.awaitingPreface) {
      if (deadline > now) break;
      this.prefaceArrived(session);
      this.refuse(session.socket, 'handshake_timeout', `no HTTP/2 preface within ${this.limits.handshakeTimeoutMs} ms`);
      session.destroy();
    }
    if (this.prefaceTimer === undefined) this.armPrefaceTimer();
  }

  /** The session's budget for partial messages. */
  budget(session: Http2Session | undefined): PartialMessageBudget | undefined {
    return session ? this.budgets.get(session) : undefined;
  }

  /** Why the session's client is refused, if it is. */
  refusal(session: Http2Session | undefined): string | undefined {
    return session ? this.unauthorized.get(session) : undefined;
  }
}
