/**
 * The client side of the gRPC transport on node:http2: one HTTP/2 connection (`GrpcConnection`) that opens calls,
 * the agent leg's TunnelConnector (a new connection per tunnel, as the reference agent does, so a load balancer
 * spreads them) and the frontend leg's `/ProxyService/Proxy` streams.
 */
import { EventEmitter } from 'node:events';
import http2, { type ClientHttp2Session } from 'node:http2';
import net from 'node:net';
import tls from 'node:tls';
import { joinHostPort, parseHostPort } from '../../protocol/address.js';
import { abortError } from '../../protocol/abort.js';
import { ErrorCode, KonnectivityError } from '../../protocol/errors.js';
import type { FrontendConnector, Metadata, PacketStream, TunnelConnector } from '../packet-stream.js';
import { closeWithin, rejectBadGrace, type CloseOptions } from '../grace.js';
import { headersFromMetadata } from './headers.js';
import { startKeepalive } from './keepalive.js';
import { SendBudget } from './send-budget.js';
import { tuneWindows } from './window-tuner.js';
import {
  DEFAULT_AGENT_KEEPALIVE_MS,
  DEFAULT_KEEPALIVE_TIMEOUT_MS,
  http2Settings,
  intOption,
  invalidOption,
  maxSessionMemoryMiB,
  resolveStreamOptions,
  type GrpcStreamOptions,
  type ResolvedStreamOptions,
} from './options.js';
import { AGENT_CONNECT_PATH, PROXY_PATH } from './server.js';
import { DEFAULT_GRPC_NODE_PEER_MAX_WINDOW_BYTES } from '../windows.js';
import { GrpcClientStream } from './client-stream.js';

/** TLS for a client connection. */
export interface GrpcClientTlsOptions {
  /** PEM CA bundle that signs the server's certificate (default: the system's roots). */
  ca?: string | Buffer;
  /** PEM client certificate chain, for mutual TLS. */
  cert?: string | Buffer;
  /** PEM client private key, for mutual TLS. */
  key?: string | Buffer;
  /** Server name to verify and send as SNI (default: the address's host). */
  servername?: string;
  /** ALPN protocols offered before `h2` (the reference agent's `--alpn-proto`, for ALPN-routing balancers). */
  alpnProtocols?: readonly string[];
}

/** Where and how to connect. */
export interface GrpcClientOptions extends GrpcStreamOptions {
  /** `host:port` (`[::1]:8091` for IPv6). One of `address` and `socketPath` is required. */
  address?: string;
  /** A Unix socket path. */
  socketPath?: string;
  /** TLS (TCP only); plain h2c when absent. A function is called for each connection, so files can be re-read. */
  tls?: GrpcClientTlsOptions | (() => GrpcClientTlsOptions);
  /** Send a keepalive PING this often, in ms; min 10000 (default: the agent leg 1 h like the reference, the frontend leg never). */
  keepaliveTimeMs?: number;
  /** Drop the connection when a ping stays unanswered this long, in ms (default 20000). */
  keepaliveTimeoutMs?: number;
  /** Give up connecting after this many ms (default 30000). */
  connectTimeoutMs?: number;
  /** The `user-agent` sent with each call. */
  userAgent?: string;
}

const DEFAULT_CONNECT_TIMEOUT_MS = 30_000;
const MIN_KEEPALIVE_MS = 10_000;
const DEFAULT_USER_AGENT = 'konnectivity-ts grpc-node-http2';

interface ResolvedClientOptions {
  authority: string;
  socketPath: string | undefined;
  tls: GrpcClientTlsOptions | (() => GrpcClientTlsOptions) | undefined;
  host: string;
  port: number;
  keepaliveTimeMs: number | undefined;
  keepaliveTimeoutMs: number;
  connectTimeoutMs: number;
  userAgent: string;
  stream: ResolvedStreamOptions;
}

/** Split `host:port` / `[v6]:port`. */
export function parseGrpcAddress(address: string): { host: string; port: number } {
  const parsed = parseHostPort(address);
  if (!parsed) throw invalidOption(`address must be host:port, got ${JSON.stringify(address)}`);
  const { host, port } = parsed;
  if (port < 1 || port > 65535) throw invalidOption(`port out of range in ${JSON.stringify(address)}`);
  return { host: host || '127.0.0.1', port };
}

function resolveClientOptions(o: GrpcClientOptions, defaultKeepaliveMs: number | undefined): ResolvedClientOptions {
  if ((o.address === undefined) === (o.socketPath === undefined)) {
    throw invalidOption('exactly one of address and socketPath is required');
  }
  if (o.socketPath !== undefined && o.tls) throw invalidOption('tls is not supported on a Unix socket');
  const keepalive = o.keepaliveTimeMs ?? defaultKeepaliveMs;
  let host = 'localhost';
  let port = 0;
  if (o.address !== undefined) ({ host, port } = parseGrpcAddress(o.address));
  const scheme = o.tls ? 'https' : 'http';
  const authority =
    o.socketPath !== undefined ? 'http://localhost' : `${scheme}://${joinHostPort(host, port)}`;
  return {
    authority,
    socketPath: o.socketPath,
    tls: o.tls,
    host,
    port,
    keepaliveTimeMs:
      keepalive === undefined ? undefined : intOption('keepaliveTimeMs', keepalive, keepalive, MIN_KEEPALIVE_MS, 2 ** 31 - 1),
    keepaliveTimeoutMs: intOption('keepaliveTimeoutMs', o.keepaliveTimeoutMs, DEFAULT_KEEPALIVE_TIMEOUT_MS, 1, 2 ** 31 - 1),
    connectTimeoutMs: intOption('connectTimeoutMs', o.connectTimeoutMs, DEFAULT_CONNECT_TIMEOUT_MS, 1, 2 ** 31 - 1),
    userAgent: o.userAgent ?? DEFAULT_USER_AGENT,
    stream: resolveStreamOptions(o, o.socketPath !== undefined),
  };
}

/** Check client options without connecting; throws ERR_INVALID_OPTION. */
export function checkGrpcClientOptions(options: GrpcClientOptions): void {
  resolveClientOptions(options, undefined);
}

/** Events of a {@link GrpcConnection}. */
export interface GrpcConnectionEvents {
  /** The connection is gone; `err` says why when it failed. */
  close: [err: Error | undefined];
}

/** How long {@link GrpcConnection.close} lets open calls finish by default, in ms. */
export const DEFAULT_CONNECTION_CLOSE_GRACE_MS = 5000;

/**
 * One HTTP/2 connection to a gRPC server, on which any number of calls may be opened. It connects at once.
 * `close()` lets open calls finish; `destroy()` ends them.
 */
export class GrpcConnection extends EventEmitter<GrpcConnectionEvents> {
  private readonly session: ClientHttp2Session;
  private readonly options: ResolvedClientOptions;
  private failure: Error | undefined;
  private closePromise: Promise<void> | undefined;
  private readonly remoteAddress: string;
  private readonly destroySocket: () => void;
  /** Bounds our sends while the peer may be a node:http2 server (send-budget.ts); undefined when windows stay small. */
  private readonly sendBudget: SendBudget | undefined;

  constructor(options: GrpcClientOptions);
  /**
   * @internal `resolved`: options already checked (the agent connector resolves them once for every tunnel);
   * `singleCall`: the connection carries one call (a tunnel), whose window may be given back (window-tuner.ts).
   */
  constructor(options: GrpcClientOptions, resolved?: ResolvedClientOptions, singleCall?: boolean);
  constructor(options: GrpcClientOptions, resolved?: ResolvedClientOptions, singleCall = false) {
    super();
    const o = resolved ?? resolveClientOptions(options, undefined);
    this.options = o;
    this.remoteAddress = o.socketPath !== undefined ? `unix:${o.socketPath}` : joinHostPort(o.host, o.port);
    const settings = http2Settings(o.stream);
    const common = { settings, maxSessionMemory: maxSessionMemoryMiB(o.stream.maxWindowBytes) };
    // We open the socket ourselves so we can always close it: node leaves a TLS socket open when the handshake
    // fails under a session (a server refusing our client certificate).
    let socket: net.Socket | undefined;
    const createConnection = (): net.Socket => {
      if (o.socketPath !== undefined) socket = net.connect(o.socketPath);
      else if (o.tls) {
        const t = typeof o.tls === 'function' ? o.tls() : o.tls;
        socket = tls.connect({
          host: o.host,
          port: o.port,
          ca: t.ca,
          cert: t.cert,
          key: t.key,
          servername: t.servername ?? (net.isIP(o.host) ? undefined : o.host),
          ALPNProtocols: [...(t.alpnProtocols ?? []).filter((p) => p !== 'h2'), 'h2'],
        });
      } else socket = net.connect({ host: o.host, port: o.port });
      return socket;
    };
    this.session = http2.connect(o.authority, { ...common, createConnection });
    this.session.once('close', () => socket?.destroy());
    this.destroySocket = () => socket?.destroy();
    const session = this.session;
    const bound = DEFAULT_GRPC_NODE_PEER_MAX_WINDOW_BYTES;
    if (o.stream.maxWindowBytes > bound) {
      // The window may grow past what the socket buffers hold: then our sends are bounded instead (send-budget.ts),
      // unless the server's answer shows a peer that reads while it writes.
      const budget = new SendBudget((answered) => session.ping((err) => answered(err === null)), bound, o.stream.windowBytes > bound);
      this.sendBudget = budget;
      session.once('close', () => budget.stop());
    }
    const timer = setTimeout(() => {
      this.fail(new KonnectivityError(ErrorCode.TUNNEL_CLOSED, `connecting to ${this.remoteAddress} timed out after ${o.connectTimeoutMs} ms`));
    }, o.connectTimeoutMs);
    timer.unref();
    session.once('connect', () => {
      clearTimeout(timer);
      try {
        session.setLocalWindowSize(o.stream.windowBytes);
      } catch {
        // Already closing.
      }
      tuneWindows(session, {
        initialWindowBytes: o.stream.windowBytes,
        maxWindowBytes: o.stream.maxWindowBytes,
        guard: this.sendBudget,
        giveBack: singleCall,
      });
      if (o.keepaliveTimeMs !== undefined) startKeepalive(session, o.keepaliveTimeMs, o.keepaliveTimeoutMs);
    });
    session.on('error', (err: Error) => {
      this.failure ??= new KonnectivityError(ErrorCode.TUNNEL_CLOSED, `gRPC connection to ${this.remoteAddress} failed: ${err.message}`, {
        cause: err,
      });
    });
    session.on('goaway', (code: number) => {
      if (code !== http2.constants.NGHTTP2_NO_ERROR) {
        this.failure ??= new KonnectivityError(ErrorCode.TUNNEL_CLOSED, `the server sent GOAWAY (HTTP/2 error code ${code})`);
      }
    });
    session.once('close', () => {
      clearTimeout(timer);
      this.emit('close', this.failure);
    });
  }

  /** True once the connection can open no more calls (closing, closed, or GOAWAY received). */
  get closed(): boolean {
    return this.session.closed || this.session.destroyed;
  }

  /** The error the connection failed with, if any. */
  get errored(): Error | undefined {
    return this.failure;
  }

  /**
   * Open a bidirectional call at `path` with request `metadata`. The stream is usable at once (writes queue until
   * the connection is up); its `ready` promise resolves when the server's response headers arrive.
   */
  openStream(path: string, metadata: Metadata = {}): GrpcClientStream {
    if (this.closed) {
      throw new KonnectivityError(ErrorCode.TUNNEL_CLOSED, this.failure ? this.failure.message : 'the gRPC connection is closed');
    }
    const headers = headersFromMetadata(metadata, {
      ':method': 'POST',
      ':path': path,
      'content-type': 'application/grpc',
      te: 'trailers',
      'user-agent': this.options.userAgent,
    });
    const h2 = this.session.request(headers, { endStream: false });
    return new GrpcClientStream(h2, this.remoteAddress, this.options.stream, () => this.failure, this.sendBudget);
  }

  /** Open a `/ProxyService/Proxy` call on this connection (the frontend leg; one proxied connection per call). */
  openProxyStream(metadata: Metadata = {}): GrpcClientStream {
    return this.openStream(PROXY_PATH, metadata);
  }

  /**
   * Open no more calls; the open ones may finish for `graceMs` (default 5000), then the connection and what is still
   * open on it are destroyed (at once when `signal` aborts). Resolves once the connection is closed.
   */
  close(options?: CloseOptions): Promise<void> {
    const bad = rejectBadGrace(options, DEFAULT_CONNECTION_CLOSE_GRACE_MS);
    if (bad) return bad;
    this.closePromise ??= closeWithin(
      new Promise<void>((resolve) => {
        // destroy() emits 'close' too, so the grace period's end settles this.
        if (this.session.destroyed) resolve();
        else this.session.close(() => resolve());
      }),
      options,
      DEFAULT_CONNECTION_CLOSE_GRACE_MS,
      () => this.destroy(),
    );
    return this.closePromise;
  }

  /** Close the connection and every call on it now. */
  destroy(err?: Error): void {
    if (err) this.failure ??= err;
    if (!this.session.destroyed) this.session.destroy();
    this.destroySocket();
  }

  private fail(err: Error): void {
    this.failure ??= err;
    this.session.destroy();
  }
}

/**
 * The agent leg: a TunnelConnector that opens a new HTTP/2 connection per tunnel, calls `/AgentService/Connect`
 * with the agent's metadata and resolves once the server's response headers (`serverid`, `servercount`) arrived.
 * A refusal becomes the KonnectivityError of its gRPC status (UNAUTHENTICATED -> ERR_UNAUTHENTICATED,
 * INVALID_ARGUMENT -> ERR_PROTOCOL, ...). The connection closes with the stream.
 */
export function grpcAgentConnector(options: GrpcClientOptions): TunnelConnector {
  const resolved = resolveClientOptions(options, DEFAULT_AGENT_KEEPALIVE_MS);
  return (metadata, { signal } = {}) => {
    if (signal?.aborted) return Promise.reject(abortError('the connect was aborted', signal));
    const conn = new GrpcConnection(options, resolved, true);
    const stream = conn.openStream(AGENT_CONNECT_PATH, metadata);
    stream.once('close', () => void conn.close());
    // Until the caller has the stream, a refusal is reported through the rejection alone.
    const swallow = (): void => {};
    stream.on('error', swallow);
    return new Promise<PacketStream>((resolve, reject) => {
      const onAbort = (): void => {
        const err = abortError('the connect was aborted', signal);
        stream.destroy(err);
        conn.destroy();
        reject(err);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      stream.ready.then(
        () => {
          signal?.removeEventListener('abort', onAbort);
          stream.off('error', swallow);
          resolve(stream);
        },
        (err: Error) => {
          signal?.removeEventListener('abort', onAbort);
          conn.destroy();
          reject(err);
        },
      );
    });
  };
}

/**
 * The frontend leg's connector: each call opens a new HTTP/2 connection, on which `openProxyStream()` opens one call
 * per dial. The options are checked now (ERR_INVALID_OPTION), not at the first dial.
 */
export function grpcFrontendConnector(options: GrpcClientOptions): FrontendConnector {
  const resolved = resolveClientOptions(options, undefined);
  return () => new GrpcConnection(options, resolved);
}

/**
 * The frontend leg: open a `/ProxyService/Proxy` call. Given options, it opens a connection of its own that closes
 * with the call (a single-use tunnel, as kube-apiserver does); given a {@link GrpcConnection}, it opens the call on
 * it (a reusable tunnel: one connection, one call per dial).
 */
export function openProxyStream(target: GrpcClientOptions | GrpcConnection, metadata: Metadata = {}): GrpcClientStream {
  if (target instanceof GrpcConnection) return target.openProxyStream(metadata);
  const conn = new GrpcConnection(target, undefined, true);
  const stream = conn.openProxyStream(metadata);
  stream.once('close', () => void conn.close());
  return stream;
}
