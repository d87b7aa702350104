/**
 * A frontend client for a proxy server's gRPC frontend (`/ProxyService/Proxy`), what kube-apiserver's
 * konnectivity-client does: each dial is one Proxy call carrying one connection. Two modes, as the reference has:
 * - reusable (default): one HTTP/2 connection, one call per dial (`CreateGRPCTunnel`, post-0.36); the connection is
 *   opened again after it fails or the server sends GOAWAY;
 * - single-use: a new HTTP/2 connection per dial, closed with that connection (`CreateSingleUseGrpcTunnel`).
 *
 * It takes from the gRPC transport only its public frontend connector; the rest is the transport-neutral
 * FrontendConnection contract and `dialOverStream`.
 */
import { ErrorCode, KonnectivityError } from '../protocol/errors.js';
import { graceMsOf, startGrace, type CloseOptions } from '../transport/grace.js';
import { grpcFrontendConnector, type GrpcClientOptions } from '../transport/grpc/index.js';
import type { FrontendConnection, FrontendConnector, Metadata, PacketStream } from '../transport/packet-stream.js';
import { HALF_CLOSE_METADATA } from '../tunnel/half-close.js';
import { whenClosed } from '../tunnel/stream-lifecycle.js';
import type { TunnelSocket } from '../tunnel/tunnel-socket.js';
import { dialOverStream, type DialOverStreamOptions } from './dial-over-stream.js';

/** Options of {@link GrpcProxyClient}: where the server's gRPC frontend listens, and the mode. */
export interface GrpcProxyClientOptions extends GrpcClientOptions {
  /** A new HTTP/2 connection for every dial, as kube-apiserver's single-use tunnels (default false: one shared). */
  singleUse?: boolean;
  /**
   * Offer half-close on each Proxy call (default true): where the server confirms it (a konnectivity-ts server),
   * `end()` reaches the endpoint as its EOF. A Go server ignores the offer; `end()` then only stops writing.
   */
  halfClose?: boolean;
}

/** How long `GrpcProxyClient.close()` lets open connections finish, by default. */
export const DEFAULT_CLIENT_CLOSE_GRACE_MS = 5000;

/** Dials through a proxy server's gRPC frontend. See the module comment for the two modes. */
export class GrpcProxyClient {
  private readonly connector: FrontendConnector;
  private readonly singleUse: boolean;
  /** Request metadata of every Proxy call. */
  private readonly metadata: Metadata;
  private connection: FrontendConnection | undefined;
  private readonly sockets = new Set<TunnelSocket>();
  private closed = false;

  constructor(options: GrpcProxyClientOptions) {
    // Checks the options now: a bad address fails here rather than at the first dial.
    this.connector = grpcFrontendConnector(options);
    this.singleUse = options.singleUse ?? false;
    this.metadata = options.halfClose === false ? {} : HALF_CLOSE_METADATA;
    if (!this.singleUse) this.connection = this.connector();
  }

  /**
   * Dial `address` (`host:port`) through the server. Resolves with a net.Socket-like TunnelSocket once the agent
   * answers; rejects with the engine's dial errors (ERR_DIAL_FAILED with the agent's text, ERR_DIAL_TIMEOUT,
   * ERR_TUNNEL_CLOSED, an AbortError (ABORT_ERR), ...).
   */
  async dial(address: string, options: DialOverStreamOptions = {}): Promise<TunnelSocket> {
    if (this.closed) throw new KonnectivityError(ErrorCode.SHUTTING_DOWN, 'the client is closed');
    let stream: PacketStream;
    try {
      stream = this.singleUse ? this.singleUseStream() : this.liveConnection().openProxyStream(this.metadata);
    } catch (err) {
      throw new KonnectivityError(ErrorCode.TUNNEL_CLOSED, `cannot open a Proxy stream: ${(err as Error).message}`, {
        cause: err,
        reason: 'streamsetup',
      });
    }
    const socket = await dialOverStream(stream, address, options);
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    return socket;
  }

  /**
   * Dial no more; open connections may finish for `graceMs` (default 5000). Those still open then, or when `signal`
   * aborts, end without an error (their readers see EOF) and the HTTP/2 connection is destroyed. Resolves once every
   * connection has closed and the HTTP/2 connection is gone.
   */
  async close(options: CloseOptions = {}): Promise<void> {
    graceMsOf(options, DEFAULT_CLIENT_CLOSE_GRACE_MS);
    this.closed = true;
    const connection = this.connection;
    const open = [...this.sockets];
    const grace = startGrace(options, DEFAULT_CLIENT_CLOSE_GRACE_MS, () => {
      for (const s of open) void s.close({ graceMs: 0 });
    });
    await Promise.all(open.map((s) => new Promise<void>((resolve) => whenClosed(s, resolve))));
    grace.cancel();
    // The users' sockets are closed: destroying the calls under them can no longer reach anyone as an error.
    if (grace.expired) connection?.destroy();
    else await connection?.close();
  }

  /** Close every connection at once. */
  destroy(err?: Error): void {
    this.closed = true;
    for (const s of this.sockets) s.destroy(err);
    this.connection?.destroy(err);
  }

  private liveConnection(): FrontendConnection {
    if (!this.connection || this.connection.closed) this.connection = this.connector();
    return this.connection;
  }

  /** A stream on a connection of its own, which closes with it. */
  private singleUseStream(): PacketStream {
    const connection = this.connector();
    const stream = connection.openProxyStream(this.metadata);
    whenClosed(stream, () => void connection.close());
    return stream;
  }
}
