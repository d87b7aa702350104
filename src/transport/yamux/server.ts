/**
 * The server side of yamux tunnels: a TCP, TLS or Unix-socket listener whose every connection (carrier) carries one
 * tunnel, and the accept side for a carrier from elsewhere (a WebSocket).
 */
import net from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import { ErrorCode, KonnectivityError } from '../../protocol/errors.js';
import { startGrace } from '../grace.js';
import { bindServer, type Listener, type ListenerCloseOptions, type ListenTarget, type UnixSocketOptions } from '../listener.js';
import type { IncomingPacketStream } from '../packet-stream.js';
import { DEFAULT_HANDSHAKE_TIMEOUT_MS, defaultMaxConnectionsPerListener } from '../limits.js';
import { clientCertificateProblem, rememberPeer, socketAddress } from '../tls-peer.js';
import { checkNumber } from '../../protocol/options.js';
import { joinHostPort } from '../../protocol/address.js';
import { resolveYamuxOptions } from './config.js';
import { acceptYamuxTunnel, carrierAddress, type YamuxTunnelOptions } from './tunnel.js';

/** Options of {@link createYamuxServer} and {@link serveYamuxCarrier}. */
export interface YamuxServerOptions extends YamuxTunnelOptions, UnixSocketOptions {
  /** Every tunnel that finished its handshake, e.g. `(incoming) => void server.acceptAgent(incoming)`. */
  onTunnel: (incoming: IncomingPacketStream) => void;
  /**
   * A carrier whose handshake failed (`remoteAddress` is its peer), or the listener failed to accept a connection
   * (no `remoteAddress`). Default: ignored; the carrier is closed either way and the listener keeps listening.
   */
  onError?: (err: Error, remoteAddress?: string) => void;
  /**
   * Serve TLS with these options (`requestCert` and `ca` for mTLS); plain TCP when absent. With `requestCert` (and
   * `rejectUnauthorized` not false) an unauthorized client certificate is refused after the handshake, with the
   * reason sent to the agent as ERR_UNAUTHENTICATED and given to `onError`.
   */
  tls?: tls.TlsOptions;
  /** Connections held at once; past it a new one is closed at once and reported to `onError` (default: what the open-files limit allows, `defaultMaxConnectionsPerListener()` in transport/limits.ts). */
  maxConnections?: number;
}

const DEFAULT_CLOSE_GRACE_MS = 5000;

/**
 * A listener whose connections are yamux tunnels, each handed to `onTunnel` once its handshake is done. The tunnels
 * belong to whoever took them (a ProxyServer): `close()` stops accepting, lets the carriers still open run for
 * `graceMs` (default 5000), then destroys them; close the ProxyServer first to end them cleanly.
 */
export class YamuxServer implements Listener {
  private readonly server: net.Server;
  /** Every raw connection, so destroy() also reaches those still in the TLS or yamux handshake. */
  private readonly carriers = new Set<net.Socket>();
  private closing: Promise<void> | undefined;
  private destroyed = false;

  constructor(private readonly options: YamuxServerOptions) {
    // Bad options fail here, not on every connection.
    resolveYamuxOptions(options.yamux);
    // The TLS handshake and then the yamux one each have this long.
    const handshakeTimeout = checkNumber('handshakeTimeoutMs', options.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS, { integer: true, min: 1 });
    const maxConnections = checkNumber('maxConnections', options.maxConnections ?? defaultMaxConnectionsPerListener(), { integer: true, min: 1 });
    // We refuse unauthorized client certificates ourselves, so both sides learn why (../tls-peer.ts).
    const verify = options.tls?.requestCert === true && options.tls.rejectUnauthorized !== false;
    const onCarrier = (socket: net.Socket): void => {
      socket.setNoDelay(true);
      const problem = verify ? clientCertificateProblem(socket as tls.TLSSocket) : undefined;
      serveYamuxCarrier(socket, options, problem);
    };
    // noDelay on the listener covers each accepted socket from its first byte, the TLS handshake included (why no
    // Nagle: carriers.ts).
    this.server = options.tls
      ? tls.createServer({ ...options.tls, ...(verify ? { rejectUnauthorized: false } : {}), handshakeTimeout, noDelay: true }, onCarrier)
      : net.createServer({ noDelay: true }, onCarrier);
    this.server.maxConnections = maxConnections;
    this.server.on('connection', (socket: net.Socket) => {
      rememberPeer(socket);
      this.carriers.add(socket);
      socket.once('close', () => this.carriers.delete(socket));
    });
    const report = (err: Error, socket: { remoteAddress?: string | undefined; remotePort?: number | undefined } | undefined): void => {
      const { address, port } = socketAddress(socket);
      options.onError?.(err, address ? joinHostPort(address, port) : 'unknown');
    };
    // With a listener of ours Node leaves the socket open: close it, and tell the owner who and why.
    this.server.on('tlsClientError', (err: Error, socket: tls.TLSSocket) => {
      report(err, socket);
      socket.destroy();
    });
    this.server.on('drop', (info?: { remoteAddress?: string; remotePort?: number }) =>
      report(new KonnectivityError(ErrorCode.LIMIT_EXCEEDED, `more than ${maxConnections} connections`), info),
    );
  }

  /** Start listening; resolves once bound, rejects with the listen error (EADDRINUSE, EACCES, ...). Once only. */
  async listen(target: ListenTarget): Promise<void> {
    if (this.server.listening || this.closing) {
      const state = this.closing ? 'closed' : 'already listening';
      throw new KonnectivityError(ErrorCode.INVALID_OPTION, `cannot listen: the yamux server is ${state}`);
    }
    await bindServer(this.server, target, this.options);
    // Accept errors (EMFILE, ...) come as 'error' on the server; never let one crash the process.
    this.server.on('error', (err) => this.options.onError?.(err));
  }

  /** An AddressInfo for TCP, the path for a Unix socket, null when not listening. */
  address(): net.AddressInfo | string | null {
    return this.server.address();
  }

  /** New TLS credentials for new handshakes (certificate rotation); open carriers keep theirs. TLS servers only. */
  setSecureContext(options: tls.SecureContextOptions): void {
    if (!(this.server instanceof tls.Server)) throw new KonnectivityError(ErrorCode.INVALID_OPTION, 'setSecureContext: not a TLS yamux server');
    this.server.setSecureContext(options);
  }

  /** Open carriers (connections), tunnels or not yet. */
  get carrierCount(): number {
    return this.carriers.size;
  }

  /** Stop accepting; destroy the carriers still open after `graceMs` (default 5000) or when `signal` aborts. Idempotent. */
  close(options: ListenerCloseOptions = {}): Promise<void> {
    if (this.closing) return this.closing;
    const graceMs = options.graceMs ?? DEFAULT_CLOSE_GRACE_MS;
    if (!Number.isInteger(graceMs) || graceMs < 0) {
      throw new KonnectivityError(ErrorCode.INVALID_OPTION, `graceMs must be a non-negative integer, got ${graceMs}`);
    }
    this.closing = new Promise<void>((resolve) => {
      if (!this.server.listening) return resolve();
      this.server.close(() => resolve());
      if (this.carriers.size === 0) return;
      const grace = startGrace({ ...options, graceMs }, graceMs, () => this.destroyCarriers());
      this.server.once('close', () => grace.cancel());
    });
    return this.closing;
  }

  /** Stop accepting and destroy every carrier at once (without an error: the tunnels see their carrier close). */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    if (!this.closing) {
      this.closing = new Promise<void>((resolve) => (this.server.listening ? this.server.close(() => resolve()) : resolve()));
    }
    this.destroyCarriers();
  }

  private destroyCarriers(): void {
    for (const c of this.carriers) c.destroy();
  }
}

/** A yamux server; call `listen({ port, host })` or `listen({ path })` on it. */
export function createYamuxServer(options: YamuxServerOptions): YamuxServer {
  return new YamuxServer(options);
}

/**
 * Run the accept side of a tunnel on one carrier (e.g. a WebSocket from `webSocketDuplex`), reporting to `onTunnel`.
 * `refusal`: why the carrier's peer is not authorized (its client certificate); the tunnel is then refused with it.
 */
export function serveYamuxCarrier(carrier: Duplex, options: YamuxServerOptions, refusal?: string): void {
  // Read now: a carrier that fails its handshake is destroyed, and a destroyed socket forgets its peer.
  const remoteAddress = carrierAddress(carrier, '');
  acceptYamuxTunnel(carrier, options).then(
    (incoming) => {
      if (refusal === undefined) return options.onTunnel(incoming);
      const err = new KonnectivityError(ErrorCode.UNAUTHENTICATED, refusal);
      incoming.reject(err);
      options.onError?.(err, remoteAddress || undefined);
    },
    (err: Error) => options.onError?.(err, remoteAddress || undefined),
  );
}
