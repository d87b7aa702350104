/**
 * Dial through an HTTP-CONNECT proxy (a konnectivity server in `http-connect` mode, or any CONNECT proxy) over
 * TCP, TLS/mTLS or a Unix socket: send `CONNECT host:port HTTP/1.1`, wait for the 200, and hand back the raw socket.
 */
import * as net from 'node:net';
import * as tls from 'node:tls';
import { joinHostPort } from '../protocol/address.js';
import { abortError, destroyOnAbort } from '../protocol/abort.js';
import { ErrorCode, KonnectivityError, type DialFailureReason } from '../protocol/errors.js';

/** A proxy reached over TCP. */
export interface HttpProxyTcpAddress {
  /** The proxy's host name or IP address. */
  host: string;
  /** The proxy's TCP port. */
  port: number;
}

/** A proxy reached over a Unix socket (kube-apiserver's `HTTPConnect` over UDS). */
export interface HttpProxyUnixAddress {
  /** The path of the proxy's Unix socket. */
  socketPath: string;
}

/** Options of {@link connectViaHttpProxy}. */
export interface ConnectViaHttpProxyOptions {
  /** Where the proxy listens. */
  proxy: HttpProxyTcpAddress | HttpProxyUnixAddress;
  /**
   * Speak TLS to the proxy: `true` for the defaults, or tls.connect options (`ca`, `cert` and `key` for mTLS,
   * `servername`, ...). Omitted: plain TCP.
   */
  tls?: boolean | tls.ConnectionOptions;
  /** The endpoint to reach, `host:port` (IPv6 as `[addr]:port`). */
  target: string;
  /** Extra request headers (e.g. `Proxy-Authorization`). `Host` is always the target. */
  headers?: Readonly<Record<string, string>>;
  /**
   * Aborts the connect (an AbortError, ABORT_ERR); once connected, aborting it destroys the socket with one, as
   * `net.connect({ signal })` does.
   */
  signal?: AbortSignal;
  /** How long to wait for the proxy's answer, from the start. Default 30000 (the reference client's backstop). */
  timeoutMs?: number;
  /** Largest response header accepted from the proxy, in bytes. Default 16384. */
  maxHeaderBytes?: number;
}

/**
 * A proxy that answered with a status other than 200. `code` says what happened in the library's terms
 * (ERR_NO_AGENT, ERR_DIAL_FAILED, ERR_DIAL_TIMEOUT, ERR_TUNNEL_CLOSED, ERR_UNAUTHENTICATED, ERR_REMOTE);
 * `statusCode` and `body` are what the proxy sent.
 */
export class HttpConnectError extends KonnectivityError {
  /** The HTTP status the proxy answered. */
  readonly statusCode: number;
  /** The response body (at most 64 KiB), e.g. the agent's dial error text. */
  readonly body: string;

  constructor(code: ErrorCode, message: string, statusCode: number, body: string, reason?: DialFailureReason) {
    super(code, message, reason === undefined ? {} : { reason });
    this.statusCode = statusCode;
    this.body = body;
  }
}

/** A parsed response header. */
export interface ConnectResponseHead {
  /** The status code (`200` for an open tunnel). */
  statusCode: number;
  /** The reason phrase (`Connection Established`, `Bad Gateway`). */
  statusText: string;
  /** Header fields, names lower-cased; repeated fields joined with `, `. */
  headers: Record<string, string>;
  /** Bytes of the header, through the blank line; what follows belongs to the body or the tunnel. */
  headerBytes: number;
}

const DEFAULT_TIMEOUT_MS = 30_000;
const DEFAULT_MAX_HEADER_BYTES = 16 * 1024;
const MAX_BODY_BYTES = 64 * 1024;
const HEADER_END = Buffer.from('\r\n\r\n');

/**
 * Parse an HTTP/1.x response header from the start of `data`. Returns undefined while the header is incomplete;
 * throws ERR_PROTOCOL for a malformed status line or field. Pure.
 */
export function parseConnectResponseHead(data: Buffer): ConnectResponseHead | undefined {
  const end = data.indexOf(HEADER_END);
  if (end < 0) return undefined;
  const lines = data.subarray(0, end).toString('latin1').split('\r\n');
  const status = /^HTTP\/1\.[01] (\d{3})(?: (.*))?$/.exec(lines[0] ?? '');
  if (!status) {
    throw new KonnectivityError(ErrorCode.PROTOCOL, `malformed response from the proxy: ${JSON.stringify(lines[0])}`);
  }
  const headers: Record<string, string> = {};
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    if (colon <= 0) throw new KonnectivityError(ErrorCode.PROTOCOL, `malformed header from the proxy: ${JSON.stringify(line)}`);
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
  }
  return { statusCode: Number(status[1]), statusText: status[2] ?? '', headers, headerBytes: end + HEADER_END.length };
}

/**
 * The error for a non-200 answer, from the konnectivity server's statuses (PROTOCOL.md §3.1): 500 "No agent
 * available", 502/503/504 with the agent's dial error text, 502 "Backend context error", 504 "Backend dial
 * timeout". Pure.
 */
export function httpConnectError(statusCode: number, statusText: string, body: string): HttpConnectError {
  const text = body.trimEnd();
  const describe = `HTTP-CONNECT proxy answered ${statusCode} ${statusText}${text ? `: ${text}` : ''}`;
  if (text.includes('No agent available')) {
    return new HttpConnectError(ErrorCode.NO_AGENT, describe, statusCode, body, 'endpoint');
  }
  if (text.startsWith('Backend dial timeout')) {
    return new HttpConnectError(ErrorCode.DIAL_TIMEOUT, describe, statusCode, body, 'timeout');
  }
  if (text.startsWith('Backend context error')) {
    return new HttpConnectError(ErrorCode.TUNNEL_CLOSED, describe, statusCode, body, 'tunnelclosed');
  }
  if (statusCode === 502 || statusCode === 503 || statusCode === 504) {
    // The message is the agent's text alone, as for ERR_DIAL_FAILED from any other dial.
    return new HttpConnectError(ErrorCode.DIAL_FAILED, text || describe, statusCode, body, 'endpoint');
  }
  if (statusCode === 401 || statusCode === 403 || statusCode === 407) {
    return new HttpConnectError(ErrorCode.UNAUTHENTICATED, describe, statusCode, body);
  }
  return new HttpConnectError(ErrorCode.REMOTE, describe, statusCode, body);
}

/**
 * Open a tunnel through an HTTP-CONNECT proxy. Resolves with the raw socket (a `tls.TLSSocket` when `tls` is set)
 * once the proxy answered 200; any bytes that came with the answer are put back to be read first. Rejects with a
 * KonnectivityError: an {@link HttpConnectError} for a non-200 answer, ERR_DIAL_TIMEOUT, an AbortError (ABORT_ERR),
 * ERR_TUNNEL_CLOSED (the proxy could not be reached or closed before answering), ERR_UNAUTHENTICATED (a TLS alert
 * refusing our client certificate), ERR_PROTOCOL (not HTTP), ERR_INVALID_OPTION.
 */
export function connectViaHttpProxy(options: ConnectViaHttpProxyOptions): Promise<net.Socket | tls.TLSSocket> {
  let request: string;
  try {
    request = connectRequest(options.target, options.headers);
  } catch (err) {
    return Promise.reject(err);
  }
  const { signal } = options;
  if (signal?.aborted) return Promise.reject(abortError('connect aborted', signal));
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const maxHeaderBytes = options.maxHeaderBytes ?? DEFAULT_MAX_HEADER_BYTES;

  return new Promise((resolve, reject) => {
    const socket = openSocket(options);
    const where = 'socketPath' in options.proxy ? options.proxy.socketPath : joinHostPort(options.proxy.host, options.proxy.port);
    let data: Buffer = Buffer.alloc(0);
    let head: ConnectResponseHead | undefined;
    let settled = false;

    const cleanup = (): void => {
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      socket.off('readable', onReadable);
      socket.off('end', onEnd);
      socket.off('error', onError);
    };
    const fail = (err: KonnectivityError): void => {
      if (settled) return;
      cleanup();
      socket.destroy();
      reject(err);
    };
    const onAbort = (): void => fail(abortError('connect aborted', signal));
    const timer = setTimeout(() => {
      // An error answer whose body never ended (chunked, kept alive): report the status we have.
      if (head) return failWith(head);
      fail(new KonnectivityError(ErrorCode.DIAL_TIMEOUT, `no answer from the HTTP-CONNECT proxy at ${where} within ${timeoutMs} ms`, { reason: 'timeout' }));
    }, timeoutMs);
    timer.unref();
    const onError = (err: NodeJS.ErrnoException): void => {
      // A TLS alert about our certificate: the proxy refused our credentials.
      const refused = /ALERT_(CERTIFICATE_REQUIRED|BAD_CERTIFICATE|UNKNOWN_CA|CERTIFICATE_UNKNOWN|ACCESS_DENIED)/.test(err.code ?? '');
      const code = refused ? ErrorCode.UNAUTHENTICATED : ErrorCode.TUNNEL_CLOSED;
      fail(new KonnectivityError(code, `HTTP-CONNECT proxy at ${where}: ${err.message}`, { cause: err, reason: 'unknown' }));
    };
    // The answer is complete once the proxy closes (our servers delimit error bodies that way) or sent Content-Length.
    const onEnd = (): void => {
      if (head) return failWith(head);
      fail(new KonnectivityError(ErrorCode.TUNNEL_CLOSED, `the HTTP-CONNECT proxy at ${where} closed the connection without answering`, { reason: 'tunnelclosed' }));
    };
    const failWith = (h: ConnectResponseHead): void => {
      const body = data.subarray(h.headerBytes, h.headerBytes + MAX_BODY_BYTES).toString('utf8');
      fail(httpConnectError(h.statusCode, h.statusText, body));
    };
    // 'readable' and read(), not 'data': once the listener is removed the socket is as fresh as a new one.
    const onReadable = (): void => {
      let chunk: Buffer | null;
      while (!settled && (chunk = socket.read() as Buffer | null) !== null) {
        data = data.length === 0 ? chunk : Buffer.concat([data, chunk]);
        if (!head) {
          try {
            head = parseConnectResponseHead(data);
          } catch (err) {
            return fail(err as KonnectivityError);
          }
          if (!head) {
            if (data.length > maxHeaderBytes) {
              return fail(new KonnectivityError(ErrorCode.PROTOCOL, `the proxy's answer header is over ${maxHeaderBytes} bytes`));
            }
            continue;
          }
          if (head.statusCode === 200) {
            cleanup();
            const rest = data.subarray(head.headerBytes);
            if (rest.length > 0) socket.unshift(rest);
            destroyOnAbort(socket, signal);
            resolve(socket);
            return;
          }
        }
        const length = Number(head.headers['content-length']);
        const bodyBytes = data.length - head.headerBytes;
        if (bodyBytes >= MAX_BODY_BYTES || (Number.isInteger(length) && bodyBytes >= length)) return failWith(head);
      }
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    socket.on('readable', onReadable);
    socket.on('end', onEnd);
    socket.on('error', onError);
    socket.write(request);
  });
}

/** `CONNECT target HTTP/1.1` with `Host: target`, as kube-apiserver sends it. */
function connectRequest(target: string, headers: Readonly<Record<string, string>> = {}): string {
  if (typeof target !== 'string' || !/^(?:\[[0-9A-Za-z:.%_-]+\]|[^\s:/[\]@]+):\d{1,5}$/.test(target)) {
    throw new KonnectivityError(ErrorCode.INVALID_OPTION, `target must be host:port, got ${JSON.stringify(target)}`);
  }
  let text = `CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n`;
  for (const [name, value] of Object.entries(headers)) {
    if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name) || /[\r\n\0]/.test(value) || name.toLowerCase() === 'host') {
      throw new KonnectivityError(ErrorCode.INVALID_OPTION, `bad request header ${JSON.stringify(name)}`);
    }
    text += `${name}: ${value}\r\n`;
  }
  return `${text}\r\n`;
}

function openSocket(options: ConnectViaHttpProxyOptions): net.Socket | tls.TLSSocket {
  const { proxy } = options;
  const where = 'socketPath' in proxy ? { path: proxy.socketPath } : { host: proxy.host, port: proxy.port };
  if (!options.tls) return net.connect(where);
  const extra = options.tls === true ? {} : options.tls;
  // SNI names only: an IP address is not a valid servername.
  const servername = 'socketPath' in proxy || net.isIP(proxy.host) ? undefined : proxy.host;
  return tls.connect({ ...where, ...(servername ? { servername } : {}), ...extra });
}

/** Options of {@link createHttpConnectDialer}: how to reach the proxy, for every dial. */
export type HttpConnectDialerOptions = Omit<ConnectViaHttpProxyOptions, 'target' | 'signal'>;

/**
 * A dialer bound to one HTTP-CONNECT proxy: `dial(address, { signal, timeoutMs })` resolves with the tunnel socket.
 * It has the shape the HTTP-CONNECT frontend and the agent's dialers expect, so a proxy can be chained behind one.
 */
export function createHttpConnectDialer(options: HttpConnectDialerOptions): {
  dial(address: string, dialOptions?: { signal?: AbortSignal; timeoutMs?: number }): Promise<net.Socket | tls.TLSSocket>;
} {
  return {
    dial: (address, dialOptions = {}) =>
      connectViaHttpProxy({
        ...options,
        target: address,
        ...(dialOptions.signal ? { signal: dialOptions.signal } : {}),
        ...(dialOptions.timeoutMs === undefined ? {} : { timeoutMs: dialOptions.timeoutMs }),
      }),
  };
}
