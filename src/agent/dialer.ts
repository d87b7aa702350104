/**
 * How the agent reaches endpoints. The default dials TCP with a 5 s timeout and reports failures in Go's text form
 * (`dial tcp 127.0.0.1:1: connect: connection refused`), because reference servers map that text to HTTP statuses
 * (502/503/504) by substring.
 */
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { joinHostPort, splitHostPort } from '../protocol/address.js';

/** What a {@link Dialer} is asked: one DIAL_REQ's endpoint, and the signal that aborts the dial. */
export interface DialRequestInfo {
  /** `host:port` from the DIAL_REQ. */
  address: string;
  /** The DIAL_REQ protocol; only `tcp` is carried end to end. */
  protocol: string;
  /** Aborted when the dial is closed (DIAL_CLS), times out, or the tunnel goes away. */
  signal: AbortSignal;
}

/**
 * Opens the endpoint of one connection. Reject with an Error whose message is what the server (and its client)
 * should see; it goes on the wire as the DIAL_RSP error text.
 */
export type Dialer = (request: DialRequestInfo) => Promise<Duplex>;

/** The reference agent's endpoint dial timeout. */
export const DEFAULT_DIAL_TIMEOUT_MS = 5000;

/** Options of {@link tcpDialer}. */
export interface TcpDialerOptions {
  /** Give up after this long with `... i/o timeout` (default 5000). */
  timeoutMs?: number;
}

const GO_CONNECT_ERRORS: Record<string, string> = {
  ECONNREFUSED: 'connect: connection refused',
  ECONNRESET: 'connect: connection reset by peer',
  ENETUNREACH: 'connect: network is unreachable',
  EHOSTUNREACH: 'connect: no route to host',
  EADDRNOTAVAIL: 'connect: cannot assign requested address',
  EACCES: 'connect: permission denied',
  EPERM: 'connect: operation not permitted',
  EMFILE: 'socket: too many open files',
  ENFILE: 'socket: too many open files in system',
  ETIMEDOUT: 'i/o timeout',
};

/** The default dialer: TCP, with Go-style error text. */
export function tcpDialer(options: TcpDialerOptions = {}): Dialer {
  const timeoutMs = options.timeoutMs ?? DEFAULT_DIAL_TIMEOUT_MS;
  return ({ address, protocol, signal }) =>
    new Promise<Duplex>((resolve, reject) => {
      if (protocol !== 'tcp' && protocol !== 'tcp4' && protocol !== 'tcp6') {
        reject(new Error(`dial ${protocol} ${address}: unknown network ${protocol}`));
        return;
      }
      const target = parseAddress(address);
      if (typeof target === 'string') {
        reject(new Error(`dial ${protocol} ${address}: ${target}`));
        return;
      }
      if (signal.aborted) {
        reject(new Error(`dial ${protocol} ${address}: operation was canceled`));
        return;
      }
      const socket = net.connect({ host: target.host, port: target.port, family: protocol === 'tcp4' ? 4 : protocol === 'tcp6' ? 6 : 0 });
      const cleanup = (): void => {
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        socket.off('connect', onConnect);
        socket.off('error', onError);
      };
      const fail = (text: string): void => {
        cleanup();
        socket.destroy();
        reject(new Error(text));
      };
      const onConnect = (): void => {
        cleanup();
        socket.setNoDelay(true);
        resolve(socket);
      };
      const onError = (err: NodeJS.ErrnoException): void => fail(goDialError(protocol, address, err));
      const onAbort = (): void => fail(`dial ${protocol} ${address}: operation was canceled`);
      const timer = setTimeout(() => fail(`dial ${protocol} ${address}: i/o timeout`), timeoutMs).unref();
      signal.addEventListener('abort', onAbort, { once: true });
      socket.once('connect', onConnect);
      socket.once('error', onError);
    });
}

/** Render a Node connect error the way Go's net.Dial does. */
export function goDialError(protocol: string, address: string, err: NodeJS.ErrnoException & { address?: string; port?: number }): string {
  const code = err.code ?? '';
  if (code === 'ENOTFOUND' || code === 'EAI_NONAME' || code === 'EAI_AGAIN' || code === 'EAI_FAIL') {
    const { host } = splitHostPort(address);
    const what = code === 'EAI_AGAIN' ? 'server misbehaving' : 'no such host';
    return `dial ${protocol}: lookup ${host}: ${what}`;
  }
  // Go names the resolved address, as Node's error carries it.
  const where = err.address ? joinHostPort(err.address, err.port) : address;
  const text = GO_CONNECT_ERRORS[code] ?? err.message;
  return `dial ${protocol} ${where}: ${text}`;
}

/** `host:port` to its parts, or Go's error text for a bad address. */
function parseAddress(address: string): { host: string; port: number } | string {
  if (!address.startsWith('[') && address.indexOf(':') !== address.lastIndexOf(':')) return `address ${address}: too many colons in address`;
  const { host, port } = splitHostPort(address);
  if (port === undefined) return `address ${address}: missing port in address`;
  if (!/^\d{1,5}$/.test(port) || Number(port) > 65535) return `address ${port}: invalid port`;
  return { host: host === '' ? 'localhost' : host, port: Number(port) };
}
