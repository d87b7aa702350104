/**
 * What the HTTP-CONNECT frontend is given and tells: the dialer it fronts, its options with their defaults and
 * checks, where it listens, and its events.
 */
import type { Duplex } from 'node:stream';
import type { TlsOptions } from 'node:tls';
import { ErrorCode, KonnectivityError } from '../../../protocol/errors.js';
import { checkNumber } from '../../../protocol/options.js';
import type { CloseOptions } from '../../../transport/grace.js';
import type { ListenTarget } from '../../../transport/listener.js';
import { DEFAULT_HANDSHAKE_TIMEOUT_MS, defaultMaxConnectionsPerListener } from '../../../transport/limits.js';
import type { DialHandle } from '../../dials.js';
import type { OpenCallbacks } from '../programmatic.js';
import type { RelayResult } from './relay.js';

/** What the frontend needs from a server: a dial that resolves with a connected Duplex. */
export interface HttpConnectDialer {
  /**
   * Dial `address` (`host:port`) through a tunnel. Rejects with a KonnectivityError: ERR_NO_AGENT, ERR_DIAL_FAILED
   * (message = the agent's error text), ERR_DIAL_TIMEOUT, ERR_TUNNEL_CLOSED, an AbortError (ABORT_ERR), ERR_SHUTTING_DOWN.
   */
  dial(address: string, options: { signal?: AbortSignal; timeoutMs?: number; frontend?: 'http-connect' }): Promise<Duplex>;
  /**
   * Optional (a ProxyServer has it): dial and hand over the tunnel connection itself, so the frontend binds the
   * client socket straight to it, with no Duplex and relay in between (less memory per connection, less work per
   * packet). Returns the error when the dial cannot start; `timeoutMs` undefined leaves the dialer's default.
   * Without it the frontend serves every CONNECT through `dial()`. `frontend` labels the dial in events and metrics.
   */
  openConnection?(address: string, timeoutMs: number | undefined, callbacks: OpenCallbacks, frontend?: 'http-connect'): DialHandle | KonnectivityError;
}

/** Options of {@link createHttpConnectFrontend}. */
export interface HttpConnectFrontendOptions {
  /** Dials targets through the tunnel (a ProxyServer). */
  server: HttpConnectDialer;
  /**
   * Serve HTTPS. When `ca` is given, clients must present a certificate signed by it (mTLS, as the reference
   * requires on TCP). `minVersion` defaults to TLSv1.2.
   */
  tls?: TlsOptions;
  /** Passed to each dial as `timeoutMs`; undefined leaves the server's default. */
  dialTimeoutMs?: number;
  /**
   * How many bytes a client may send before its tunnel is open (held, then forwarded first); beyond that the
   * socket is paused until the dial ends. Default 65536.
   */
  maxEarlyDataBytes?: number;
  /** Largest request header accepted, in bytes; a larger one gets a 431 and a close. Default 16384. */
  maxHeaderSize?: number;
  /** How long a client may take to send its request header. Default 60000 (the reference's ReadHeaderTimeout). */
  headersTimeoutMs?: number;
  /** How long a client may take to finish the TLS handshake (before its request header). Default 10000. */
  handshakeTimeoutMs?: number;
  /** Connections held at once; past it a new one is closed at once and reported as `clientError`. Default: what the open-files limit allows (`defaultMaxConnectionsPerListener()` in transport/limits.ts). */
  maxConnections?: number;
  /** After a tunnel ends, how long the client socket may stay open waiting for the client's FIN. Default 2000. */
  lingerMs?: number;
  /** After a tunnel ends, how long a client that does not read may take to flush. Default 30000. */
  flushTimeoutMs?: number;
  /** Mode of a Unix socket file. Default 0o770 (the reference's umask 0007). */
  socketMode?: number;
  /** Delete an existing socket file before listening on a Unix socket. Default true. */
  deleteExistingSocket?: boolean;
}

/** Where to listen: {@link ListenTarget} (the name is kept for existing code). */
export type HttpConnectListenTarget = ListenTarget;

/** Options of {@link HttpConnectFrontend.close}. */
export interface HttpConnectCloseOptions extends CloseOptions {
  /** How long open tunnels may take to finish before they are destroyed, in ms. Default 10000. */
  graceMs?: number;
}

/** A tunnel that was opened. */
export interface HttpConnectTunnelInfo {
  /** The dialed target (`host:port`). */
  address: string;
  /** The client's address. */
  remoteAddress: string;
  /** Time from the CONNECT request to the dial's success. */
  durationMs: number;
}

/** A tunnel that ended. */
export interface HttpConnectTunnelClosedInfo extends RelayResult {
  /** The CONNECT target, `host:port`. */
  address: string;
  /** The client's address. */
  remoteAddress: string;
}

/** A CONNECT that did not become a tunnel. */
export interface HttpConnectDialFailedInfo {
  /** The CONNECT target, `host:port`. */
  address: string;
  /** The client's address. */
  remoteAddress: string;
  /** The status written to the client, or undefined when the client went away first. */
  statusCode: number | undefined;
  /** Why the dial failed. */
  error: Error;
}

/** Events of {@link HttpConnectFrontend}. */
export interface HttpConnectFrontendEventMap {
  /** A tunnel opened: the dial succeeded and the 200 went out. */
  tunnelOpened: [info: HttpConnectTunnelInfo];
  /** A tunnel ended, with what it moved. */
  tunnelClosed: [info: HttpConnectTunnelClosedInfo];
  /** A CONNECT's dial failed (or the client left during it). */
  dialFailed: [info: HttpConnectDialFailedInfo];
  /** A request refused before any dial (malformed, oversized, not CONNECT) or a TLS handshake failure. */
  clientError: [err: Error, remoteAddress: string];
  /** The listening socket failed to accept a connection (e.g. EMFILE); the frontend keeps listening. */
  serverError: [err: Error];
}

const DEFAULTS = {
  maxEarlyDataBytes: 64 * 1024,
  maxHeaderSize: 16 * 1024,
  headersTimeoutMs: 60_000,
  handshakeTimeoutMs: DEFAULT_HANDSHAKE_TIMEOUT_MS,
  lingerMs: 2000,
  flushTimeoutMs: 30_000,
  socketMode: 0o770,
} as const;
/** How long `close()` lets open tunnels finish by default. */
export const DEFAULT_GRACE_MS = 10_000;
const POSITIVE = { above: 0 };
const NON_NEGATIVE = { min: 0 };

/** The options with their defaults filled in. */
export type ResolvedHttpConnectOptions = Required<Omit<HttpConnectFrontendOptions, 'server' | 'tls' | 'dialTimeoutMs'>> &
  Pick<HttpConnectFrontendOptions, 'dialTimeoutMs'>;

/** Fill in the defaults and check every option; throws ERR_INVALID_OPTION. */
export function resolveHttpConnectOptions(options: HttpConnectFrontendOptions): ResolvedHttpConnectOptions {
  if (!options || typeof options.server?.dial !== 'function') {
    throw new KonnectivityError(ErrorCode.INVALID_OPTION, 'createHttpConnectFrontend: `server.dial` is required');
  }
  return {
    maxEarlyDataBytes: checkNumber('maxEarlyDataBytes', options.maxEarlyDataBytes ?? DEFAULTS.maxEarlyDataBytes, POSITIVE),
    maxHeaderSize: checkNumber('maxHeaderSize', options.maxHeaderSize ?? DEFAULTS.maxHeaderSize, POSITIVE),
    headersTimeoutMs: checkNumber('headersTimeoutMs', options.headersTimeoutMs ?? DEFAULTS.headersTimeoutMs, POSITIVE),
    handshakeTimeoutMs: checkNumber('handshakeTimeoutMs', options.handshakeTimeoutMs ?? DEFAULTS.handshakeTimeoutMs, { integer: true, min: 1 }),
    maxConnections: checkNumber('maxConnections', options.maxConnections ?? defaultMaxConnectionsPerListener(), { integer: true, min: 1 }),
    lingerMs: checkNumber('lingerMs', options.lingerMs ?? DEFAULTS.lingerMs, NON_NEGATIVE),
    flushTimeoutMs: checkNumber('flushTimeoutMs', options.flushTimeoutMs ?? DEFAULTS.flushTimeoutMs, NON_NEGATIVE),
    socketMode: checkNumber('socketMode', options.socketMode ?? DEFAULTS.socketMode, NON_NEGATIVE),
    deleteExistingSocket: options.deleteExistingSocket ?? true,
    dialTimeoutMs: options.dialTimeoutMs === undefined ? undefined : checkNumber('dialTimeoutMs', options.dialTimeoutMs, POSITIVE),
  };
}
