/**
 * Carriers for a yamux tunnel: TCP, TLS (mTLS) and WebSocket (`ws`, for proxies and load balancers that only pass
 * HTTP), as `connect` functions for `yamuxAgentConnector`. The server side is in server.ts.
 */
import type http from 'node:http';
import { createRequire } from 'node:module';
import net from 'node:net';
import tls from 'node:tls';
import type { Duplex } from 'node:stream';
import type * as Ws from 'ws';
import { ErrorCode, KonnectivityError } from '../../protocol/errors.js';

/** Opens one carrier; `signal` aborts the attempt. */
export type CarrierConnect = (options: { signal: AbortSignal }) => Promise<Duplex>;

function connectError(what: string, err: Error): KonnectivityError {
  return new KonnectivityError(ErrorCode.TUNNEL_CLOSED, `${what}: ${err.message}`, { cause: err });
}

/** Wait for `event` on a fresh socket, failing on 'error' or abort (and destroying the socket then). */
function whenReady<T extends Duplex>(socket: T, event: string, what: string, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const done = (): void => {
      socket.off(event, onReady);
      socket.off('error', onError);
      signal.removeEventListener('abort', onAbort);
    };
    const onReady = (): void => {
      done();
      resolve(socket);
    };
    const onError = (err: Error): void => {
      done();
      socket.destroy();
      reject(connectError(what, err));
    };
    const onAbort = (): void => {
      done();
      socket.destroy();
      reject(signal.reason as Error);
    };
    if (signal.aborted) return onAbort();
    socket.once(event, onReady);
    socket.once('error', onError);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/*
 * Every carrier socket runs without Nagle's algorithm: yamux writes a small frame (a window update, a DIAL_REQ) and
 * waits for the answer, and Nagle holding it until the peer's delayed ACK costs about 40 ms per round trip (measured:
 * 25 dials/s over TLS with it, see CHANGELOG). The session already gathers its writes per tick, so Nagle has
 * nothing left to merge.
 */

/** Connect over plain TCP (or a Unix socket with `{ path }`). */
export function tcpCarrier(options: net.NetConnectOpts): CarrierConnect {
  return ({ signal }) => {
    const socket = net.connect(options);
    socket.setNoDelay(true);
    return whenReady(socket, 'connect', 'yamux: TCP connect failed', signal);
  };
}

/** Connect over TLS; give `cert`/`key` for mTLS. */
export function tlsCarrier(options: tls.ConnectionOptions | (() => tls.ConnectionOptions)): CarrierConnect {
  return ({ signal }) => {
    // A function is called for each carrier, so certificate files can be re-read before each handshake.
    const socket = tls.connect(typeof options === 'function' ? options() : options);
    // Reaches the TCP socket under the TLS layer (node passes it on), before the handshake's first flight.
    socket.setNoDelay(true);
    return whenReady(socket, 'secureConnect', 'yamux: TLS connect failed', signal);
  };
}

/**
 * A WebSocket from the `ws` package, e.g. what a `ws` WebSocketServer's 'connection' event gives. Only the members
 * `ws`'s stream adapter uses are named, so the published types need no `@types/ws`; a browser-style WebSocket
 * does not fit at run time.
 */
export interface WsWebSocket {
  /** The WebSocket state (1 = open). */
  readonly readyState: number;
  /** True while reading is paused. */
  readonly isPaused: boolean;
  /** Send one binary message. */
  send(data: Buffer, cb?: (err?: Error) => void): void;
  /** Close with a WebSocket close frame. */
  close(code?: number, reason?: string | Buffer): void;
  /** Drop the connection at once. */
  terminate(): void;
  /** Stop reading (backpressure). */
  pause(): void;
  /** Read again. */
  resume(): void;
  /** Add a listener ('message', 'close', 'error', ...). */
  on(event: string, listener: (...args: any[]) => void): this;
  /** Add a one-time listener. */
  once(event: string, listener: (...args: any[]) => void): this;
}

/**
 * Options of {@link webSocketCarrier}, handed to the `ws` client as given. The usual ones are named here (so the
 * published types need no `@types/ws`); any other `ws` ClientOptions passed in a variable goes through too.
 * Per-message deflate is always off: yamux frames are not worth compressing per message.
 */
export interface WebSocketCarrierOptions extends tls.SecureContextOptions {
  /** Extra request headers, e.g. `Authorization`. */
  headers?: Record<string, string>;
  /** Give up on the opening handshake after this many ms. */
  handshakeTimeout?: number;
  /** Verify the server's certificate (default true). */
  rejectUnauthorized?: boolean;
  /** TLS server name (SNI). */
  servername?: string;
  /** The agent for the upgrade request, e.g. one that goes through a proxy. */
  agent?: http.Agent;
  /** The largest message accepted, in bytes (`ws`'s default: 100 MiB). */
  maxPayload?: number;
  /** The `Origin` header. */
  origin?: string;
}

// `ws` is loaded on first use, so importing the yamux transport (or an agent over TCP) does not pay for it.
let wsModule: typeof Ws | undefined;
const loadWs = (): typeof Ws => (wsModule ??= createRequire(import.meta.url)('ws') as typeof Ws);

/** Connect over a WebSocket (`ws://` or `wss://`; `options` as for the `ws` client, e.g. `ca`, `headers`). */
export function webSocketCarrier(url: string | URL, options: WebSocketCarrierOptions = {}): CarrierConnect {
  return ({ signal }) =>
    new Promise<Duplex>((resolve, reject) => {
      const ws = new (loadWs().WebSocket)(url, { ...options, perMessageDeflate: false });
      const done = (): void => {
        ws.off('open', onOpen);
        ws.off('error', onError);
        signal.removeEventListener('abort', onAbort);
      };
      const onOpen = (): void => {
        done();
        resolve(webSocketDuplex(ws));
      };
      const onError = (err: Error): void => {
        done();
        ws.terminate();
        reject(connectError('yamux: WebSocket connect failed', err));
      };
      const onAbort = (): void => {
        done();
        ws.terminate();
        reject(signal.reason as Error);
      };
      if (signal.aborted) return onAbort();
      ws.once('open', onOpen);
      ws.once('error', onError);
      signal.addEventListener('abort', onAbort, { once: true });
    });
}

/** A byte stream over an open WebSocket (binary messages), with the peer's address for logs. */
export function webSocketDuplex(ws: WsWebSocket, remoteAddress?: string): Duplex {
  const stream = loadWs().createWebSocketStream(ws as Ws.WebSocket);
  const sock = (ws as unknown as { _socket?: net.Socket })._socket;
  const addr = remoteAddress ?? (sock?.remoteAddress ? `${sock.remoteAddress}:${sock.remotePort}` : undefined);
  if (addr) Object.defineProperty(stream, 'remoteAddress', { value: addr.replace(/:\d+$/, '') });
  if (sock?.remotePort) Object.defineProperty(stream, 'remotePort', { value: sock.remotePort });
  return stream;
}
