/**
 * A gRPC server on node:http2 for the two Konnectivity services: `/AgentService/Connect` (agent leg) and
 * `/ProxyService/Proxy` (frontend leg). Each call becomes a PacketStream; many calls may share one connection.
 * It listens on TCP (h2c or TLS, optionally mutual TLS) or on a Unix socket.
 */
import { EventEmitter } from 'node:events';
import http2, {
  type Http2SecureServer,
  type Http2Server,
  type Http2Session,
  type IncomingHttpHeaders,
  type ServerHttp2Stream,
} from 'node:http2';
import type { AddressInfo, Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { joinHostPort } from '../../protocol/address.js';
import { ErrorCode, KonnectivityError } from '../../protocol/errors.js';
import { startGrace } from '../grace.js';
import { bindServer, type Listener, type ListenerCloseOptions, type ListenTarget } from '../listener.js';
import type { IncomingPacketStream, Metadata, PacketStream } from '../packet-stream.js';
import { headersFromMetadata, metadataFromRawHeaders } from './headers.js';
import { startKeepalive } from './keepalive.js';
import { pingIdle, tuneWindows } from './window-tuner.js';
import { secureContextOptions, type GrpcServerTlsOptions } from './tls-options.js';
import {
  DEFAULT_KEEPALIVE_TIMEOUT_MS,
  http2Settings,
  intOption,
  invalidOption,
  maxSessionMemoryMiB,
  resolveStreamOptions,
  type GrpcStreamOptions,
  type ResolvedStreamOptions,
} from './options.js';
import { GrpcServerPacketStream, respondTrailersOnly } from './server-stream.js';
import { GrpcStatus, asKonnectivityError, statusForError } from './status.js';
import { ConnectionAdmission, resolveServerLimits, type ConnectionRefusal, type ServerLimits } from './admission.js';
import { peerCertificateNames, socketAddress } from '../tls-peer.js';
import { DEFAULT_MAX_CONCURRENT_STREAMS } from '../limits.js';

/** The agent leg's method path (no proto package, as in the reference). */
export const AGENT_CONNECT_PATH = '/AgentService/Connect';
/** The frontend leg's method path. */
export const PROXY_PATH = '/ProxyService/Proxy';

/** Options of {@link createGrpcServer}. */
export interface GrpcServerOptions extends GrpcStreamOptions {
  /** TCP port for `listen()` without a target (0 picks a free one). Ignored when `socketPath` is set. */
  port?: number;
  /** TCP bind address (default `127.0.0.1`). */
  host?: string;
  /** `listen()` without a target listens on this Unix socket path instead of TCP. */
  socketPath?: string;
  /** Mode of the Unix socket file (default 0o770, like the reference's umask 0007). */
  socketMode?: number;
  /** Replace an existing socket file at `socketPath` (default true). */
  deleteExistingSocket?: boolean;
  /** Serve TLS (TCP only). */
  tls?: GrpcServerTlsOptions;
  /**
   * Handles `/AgentService/Connect` calls. The handler accepts or rejects each one; a returned promise that
   * rejects refuses the call with its error. Without it the method is UNIMPLEMENTED.
   */
  agent?: (incoming: IncomingPacketStream) => void | Promise<void>;
  /**
   * Handles `/ProxyService/Proxy` calls. It may return response metadata (sent as the call's response headers
   * before any packet; `ProxyServer.acceptFrontend` returns its confirmation of half-close). Without it the method is
   * UNIMPLEMENTED.
   */
  frontend?: (stream: PacketStream) => Metadata | void;
  /** Ping each client connection this often, in ms (default: never; the reference's servers ping every hour). */
  keepaliveTimeMs?: number;
  /** Drop a connection whose ping is not answered within this many ms (default 20000). */
  keepaliveTimeoutMs?: number;
  /**
   * Concurrent calls allowed per HTTP/2 connection, announced in SETTINGS (default 16384; grpc-go's is unlimited).
   * A client past it waits for a call to end, as HTTP/2 clients do.
   */
  maxConcurrentStreams?: number;
  /** Connections held at once; a new one past it is closed at once and reported as `connectionRefused` (default: what the open-files limit allows, `defaultMaxConnectionsPerListener()` in transport/limits.ts). */
  maxConnections?: number;
  /**
   * How long a new connection may take to finish the TLS handshake, and then to send the HTTP/2 preface and its
   * SETTINGS; a connection that has not is closed and reported as `connectionRefused` (default 10000).
   */
  handshakeTimeoutMs?: number;
  /**
   * Bytes of gRPC messages not yet whole, over all calls of one connection; the call whose bytes go past it fails
   * with RESOURCE_EXHAUSTED (ERR_LIMIT_EXCEEDED) and the others go on. Default: 32 MiB, at least twice `maxMessageBytes`.
   */
  maxPartialMessageBytes?: number;
}

export type { ConnectionRefusal } from './admission.js';

/** Events of a {@link GrpcServer}. */
export interface GrpcServerEvents {
  /** A listener or connection error that is not tied to one call (per-call errors go to the streams). */
  error: [err: Error];
  /** A call was refused by the transport itself (unknown method, bad content-type); for logs. */
  refused: [info: { path: string; remoteAddress: string; status: number; message: string }];
  /**
   * A connection was closed before it could carry a call: a failed TLS handshake (`tls`), a client certificate
   * that is missing, expired or from another CA (`client_certificate`: its calls are answered UNAUTHENTICATED with
   * the same words, so the peer learns why), no HTTP/2 preface in time, or one connection too many. For logs and
   * metrics.
   */
  connectionRefused: [info: { remoteAddress: string; reason: ConnectionRefusal; message: string }];
}

/**
 * A gRPC server. `new GrpcServer(options)` checks the options; `listen()` binds (to `socketPath`, else `port` and
 * `host` of the options, unless given a target). {@link createGrpcServer} does both.
 */
export class GrpcServer extends EventEmitter<GrpcServerEvents> implements Listener {
  private readonly sessions = new Set<Http2Session>();
  /** Raw connections: a session destroyed before the peer's preface leaves its socket open (node waits for the peer). */
  private readonly sockets = new Set<Socket>();
  private server: Http2Server | Http2SecureServer | undefined;
  /** `unix:<path>` when listening on a Unix socket: every call's remote address. */
  private unixAddress: string | undefined;
  private streamOptions: ResolvedStreamOptions;
  private readonly maxConcurrentStreams: number;
  private readonly limits: ServerLimits;
  private readonly admission: ConnectionAdmission;
  private closing: Promise<void> | undefined;
  private destroyed = false;

  constructor(private readonly options: GrpcServerOptions) {
    super();
    // Bad options fail here, not at listen(); the windows are settled at listen(), by the kind of socket.
    this.streamOptions = resolveStreamOptions(options, options.socketPath !== undefined);
    if (options.socketPath !== undefined && options.tls) throw invalidOption('tls is not supported on a Unix socket');
    if (options.socketPath === undefined) intOption('port', options.port, 0, 0, 65535);
    if (options.keepaliveTimeMs !== undefined) intOption('keepaliveTimeMs', options.keepaliveTimeMs, 0, 1, 2 ** 31 - 1);
    intOption('keepaliveTimeoutMs', options.keepaliveTimeoutMs, 1, 1, 2 ** 31 - 1);
    this.maxConcurrentStreams = intOption('maxConcurrentStreams', options.maxConcurrentStreams, DEFAULT_MAX_CONCURRENT_STREAMS, 1, 0xffffffff);
    this.limits = resolveServerLimits(options, this.streamOptions.maxMessageBytes);
    this.admission = new ConnectionAdmission(this.limits, options.tls?.ca !== undefined, (peer, reason, message) => {
      if (this.listenerCount('connectionRefused') > 0) this.emit('connectionRefused', { remoteAddress: this.addressOf(peer), reason, message });
    });
  }

  /** Start listening; resolves once bound, rejects with the listen error (EADDRINUSE, EACCES, ...). Once only. */
  async listen(target: ListenTarget = targetOf(this.options)): Promise<void> {
    if (this.server || this.closing) {
      throw invalidOption(`cannot listen: the server is ${this.closing ? 'closed' : 'already listening'}`);
    }
    const unix = 'path' in target;
    if (unix && this.options.tls) throw invalidOption('tls is not supported on a Unix socket');
    if (!unix) intOption('port', target.port, 0, 0, 65535);
    this.streamOptions = resolveStreamOptions(this.options, unix);
    const server = this.createHttp2Server();
    this.server = server;
    this.unixAddress = unix ? `unix:${target.path}` : undefined;
    try {
      await bindServer(server, target, this.options);
    } catch (err) {
      this.server = undefined;
      this.unixAddress = undefined;
      throw err;
    }
  }

  /** Where the server listens: an AddressInfo for TCP, the path for a Unix socket, null when not listening. */
  address(): AddressInfo | string | null {
    return this.server?.address() ?? null;
  }

  /** The TCP port (0 for a Unix socket or when not listening). */
  get port(): number {
    const a = this.address();
    return typeof a === 'object' && a !== null ? a.port : 0;
  }

  /** Open HTTP/2 connections. */
  get connectionCount(): number {
    return this.sessions.size;
  }

  /**
   * Use new TLS credentials for new handshakes (certificate rotation); open connections keep theirs. A TLS server
   * only; throws for a plaintext one, or when the material is unusable (the old material then stays).
   */
  setSecureContext(t: GrpcServerTlsOptions): void {
    const server = this.server as Http2SecureServer | undefined;
    if (!this.options.tls || typeof server?.setSecureContext !== 'function') throw invalidOption('setSecureContext: not a listening TLS server');
    server.setSecureContext(secureContextOptions(t));
  }

  /**
   * Stop accepting connections, send GOAWAY on every connection so clients open no new calls, wait for the calls
   * in progress up to `graceMs` (default 5000) or until `signal` aborts, then destroy what is left. Idempotent.
   */
  close(options: ListenerCloseOptions = {}): Promise<void> {
    if (this.closing) return this.closing;
    const graceMs = intOption('graceMs', options.graceMs, 5000, 0, 2 ** 31 - 1);
    const server = this.server;
    if (!server) return (this.closing = Promise.resolve());
    this.closing = new Promise<void>((resolve) => {
      server.close(() => resolve());
      for (const s of this.sessions) s.close();
      if (this.sessions.size === 0) return;
      const grace = startGrace({ ...options, graceMs }, graceMs, () => this.destroy());
      server.once('close', () => grace.cancel());
    });
    return this.closing;
  }

  /** Close every connection and the listener at once. */
  destroy(err?: Error): void {
    if (this.destroyed) return;
    this.destroyed = true;
    const server = this.server;
    if (!this.closing) this.closing = server ? new Promise<void>((resolve) => server.close(() => resolve())) : Promise.resolve();
    for (const s of this.sessions) s.destroy(err);
    for (const socket of this.sockets) socket.destroy();
  }

  private createHttp2Server(): Http2Server | Http2SecureServer {
    const options = this.options;
    const { windowBytes, maxWindowBytes } = this.streamOptions;
    const common = {
      settings: { ...http2Settings(this.streamOptions), maxConcurrentStreams: this.maxConcurrentStreams },
      maxSessionMemory: maxSessionMemoryMiB(maxWindowBytes),
      // Our own memory bound is the per-stream high-water mark; node's outstanding-ping/settings limits stay default.
    };
    const t = options.tls;
    const server = t
      ? http2.createSecureServer({
          ...common,
          ...secureContextOptions(t),
          // Unauthorized clients are refused by the 'session' check, with their reason (../tls-peer.ts says why).
          ...(t.ca !== undefined ? { requestCert: true, rejectUnauthorized: false } : {}),
          allowHTTP1: false,
          handshakeTimeout: this.limits.handshakeTimeoutMs,
        })
      : http2.createServer(common);
    this.admission.watch(server);
    const keepaliveTimeMs = options.keepaliveTimeMs;
    const keepaliveTimeoutMs = options.keepaliveTimeoutMs ?? DEFAULT_KEEPALIVE_TIMEOUT_MS;
    // Shared listeners (node calls them with the socket or session as `this`): nothing allocated per connection.
    const { sockets, sessions } = this;
    const socketClosed = function (this: Socket) { sockets.delete(this); };
    const sessionClosed = function (this: Http2Session) { sessions.delete(this); };
    server.on('connection', (socket: Socket) => {
      sockets.add(socket);
      socket.on('close', socketClosed);
    });
    server.on('session', (session: Http2Session) => {
      sessions.add(session);
      session.on('close', sessionClosed);
      this.admission.admit(session);
      // A session error is reported to its streams (they close); never let it crash the process.
      session.on('error', ignore);
      try {
        session.setLocalWindowSize(windowBytes);
      } catch {
        // The session may already be gone.
      }
      tuneWindows(session, { initialWindowBytes: windowBytes, maxWindowBytes, idlePing: false }); // the first PING waits for an agent's tunnel or for data
      if (keepaliveTimeMs !== undefined) startKeepalive(session, keepaliveTimeMs, keepaliveTimeoutMs);
    });
    (server as Http2Server).on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, _flags: number, rawHeaders: unknown) =>
      this.onStream(stream, headers, rawHeaders as string[]),
    );
    // Listen errors reject listen(); later ones go to 'error' listeners, if any.
    server.on('error', (err) => {
      if (this.listenerCount('error') > 0) this.emit('error', err);
    });
    // Unreachable in h2-only servers, but an HTTP/1 probe must not crash us.
    server.on('unknownProtocol', (socket) => socket.destroy());
    return server;
  }

  private onStream(h2: ServerHttp2Stream, headers: IncomingHttpHeaders, rawHeaders: string[]): void {
    h2.on('error', ignore);
    const path = String(headers[':path'] ?? '');
    const remoteAddress = this.remoteAddressOf(h2.session);
    const problem = this.admission.refusal(h2.session);
    if (problem !== undefined) {
      this.refuse(h2, path, remoteAddress, GrpcStatus.UNAUTHENTICATED, problem);
      h2.session?.close();
      return;
    }
    if (headers[':method'] !== 'POST') {
      h2.respond({ ':status': 405 }, { endStream: true });
      return;
    }
    const ct = String(headers['content-type'] ?? '');
    if (!ct.startsWith('application/grpc')) {
      h2.respond({ ':status': 415, 'content-type': 'text/plain' }, { endStream: true });
      return;
    }
    const encoding = headers['grpc-encoding'];
    if (encoding !== undefined && encoding !== 'identity') {
      this.refuse(h2, path, remoteAddress, GrpcStatus.UNIMPLEMENTED, `grpc: Decompressor is not installed for grpc-encoding "${String(encoding)}"`);
      return;
    }
    if (this.closing) {
      this.refuse(h2, path, remoteAddress, GrpcStatus.UNAVAILABLE, 'the server is shutting down');
      return;
    }
    const metadata = metadataFromRawHeaders(rawHeaders);
    if (path === AGENT_CONNECT_PATH && this.options.agent) {
      pingIdle(h2.session);
      this.onAgent(h2, metadata, remoteAddress, this.options.agent);
    } else if (path === PROXY_PATH && this.options.frontend) {
      const stream = new GrpcServerPacketStream(h2, remoteAddress, metadata, this.streamOptions, this.admission.budget(h2.session));
      const response = this.options.frontend(stream);
      // A handler that refused the call destroyed the stream, which answered it already.
      if (!stream.closed) stream.start(headersFromMetadata(response ?? {}) as Record<string, string | string[]>);
    } else {
      const service = path.split('/')[1] ?? '';
      const unknown = path === AGENT_CONNECT_PATH || path === PROXY_PATH ? `unknown service ${service}` : `unknown method ${path}`;
      this.refuse(h2, path, remoteAddress, GrpcStatus.UNIMPLEMENTED, unknown);
    }
  }

  private refuse(h2: ServerHttp2Stream, path: string, remoteAddress: string, status: number, message: string): void {
    this.emit('refused', { path, remoteAddress, status, message });
    respondTrailersOnly(h2, status, message);
  }

  private onAgent(
    h2: ServerHttp2Stream,
    metadata: Metadata,
    remoteAddress: string,
    handler: NonNullable<GrpcServerOptions['agent']>,
  ): void {
    let answered = false;
    const streamOptions = this.streamOptions;
    const budget = this.admission.budget(h2.session);
    const incoming: IncomingPacketStream = {
      metadata,
      remoteAddress,
      peerCommonName: peerCommonName(h2.session),
      peerCertificateNames: peerCertificateNames(h2.session?.socket as TLSSocket | undefined),
      accept(responseMetadata: Metadata): PacketStream {
        if (answered) throw new KonnectivityError(ErrorCode.PROTOCOL, 'the call was already answered');
        answered = true;
        const stream = new GrpcServerPacketStream(h2, remoteAddress, metadata, streamOptions, budget);
        stream.start(headersFromMetadata(responseMetadata) as Record<string, string | string[]>);
        return stream;
      },
      reject(err: KonnectivityError): void {
        if (answered) return;
        answered = true;
        respondTrailersOnly(h2, statusForError(err), err.message);
      },
    };
    let result: void | Promise<void>;
    try {
      result = handler(incoming);
    } catch (err) {
      incoming.reject(asKonnectivityError(err));
      return;
    }
    if (result && typeof (result as Promise<void>).then === 'function') {
      (result as Promise<void>).then(
        () => {},
        (err: unknown) => incoming.reject(asKonnectivityError(err)),
      );
    }
  }

  private remoteAddressOf(session: Http2Session | undefined): string {
    return this.addressOf(session?.socket);
  }

  private addressOf(s: { remoteAddress?: string | undefined; remotePort?: number | undefined } | undefined): string {
    if (this.unixAddress !== undefined) return this.unixAddress;
    const { address, port } = socketAddress(s);
    if (!address) return 'unknown';
    return joinHostPort(address, port);
  }
}

/** The one listener for errors reported elsewhere (a session's go to its streams, a stream's to its PacketStream). */
function ignore(): void {}

function peerCommonName(session: Http2Session | undefined): string | undefined {
  const socket = session?.socket as TLSSocket | undefined;
  if (!socket || typeof socket.getPeerCertificate !== 'function' || !socket.authorized) return undefined;
  const cn = socket.getPeerCertificate()?.subject?.CN;
  return Array.isArray(cn) ? cn[0] : cn || undefined;
}

/** Create a gRPC server and start listening (on `socketPath`, else `port` and `host`); resolves once it listens. */
export async function createGrpcServer(options: GrpcServerOptions): Promise<GrpcServer> {
  const server = new GrpcServer(options);
  await server.listen();
  return server;
}

/** The listen target the options name: `socketPath`, else `port` (default 0) on `host` (default 127.0.0.1). */
function targetOf(options: GrpcServerOptions): ListenTarget {
  if (options.socketPath !== undefined) return { path: options.socketPath };
  return { port: options.port ?? 0, host: options.host ?? '127.0.0.1' };
}
