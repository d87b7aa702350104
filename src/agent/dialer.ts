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

/**
 * A dial in callback form: `waiter.dialed` is called once, with the endpoint or the error text's Error, unless the
 * dial is cancelled first (`cancel()` of what it returns). The default dialer has it, so the agent dials with no
 * Promise, AbortSignal or closure per connection; any other Dialer is called through its Promise form.
 * @internal
 */
export type DirectDial = (address: string, protocol: string, waiter: DialWaiter) => DialInProgress;

/** Who waits for a {@link DirectDial}. @internal */
export interface DialWaiter {
  dialed(err: Error | undefined, endpoint?: Duplex): void;
}

/** A {@link DirectDial} in progress. @internal */
export interface DialInProgress {
  /** Give up: the waiter is not called, the socket is destroyed. */
  cancel(): void;
}

/** Where a Dialer keeps its callback form. @internal */
export const DIRECT_DIAL = Symbol('konnectivity-ts.directDial');

/** The callback form of `dialer`, when it has one. @internal */
export function directDialOf(dialer: Dialer): DirectDial | undefined {
  return (dialer as Dialer & { [DIRECT_DIAL]?: DirectDial })[DIRECT_DIAL];
}

/** The default dialer: TCP, with Go-style error text. */
export function tcpDialer(options: TcpDialerOptions = {}): Dialer {
  const timeoutMs = options.timeoutMs ?? DEFAULT_DIAL_TIMEOUT_MS;
  const direct: DirectDial = (address, protocol, waiter) => dialTcp(address, protocol, timeoutMs, waiter);
  const dialer: Dialer = ({ address, protocol, signal }) =>
    new Promise<Duplex>((resolve, reject) => {
      if (signal.aborted) {
        reject(new Error(`dial ${protocol} ${address}: operation was canceled`));
        return;
      }
      const onAbort = (): void => {
        dial.cancel();
        reject(new Error(`dial ${protocol} ${address}: operation was canceled`));
      };
      const dial = direct(address, protocol, {
        dialed(err, socket) {
          signal.removeEventListener('abort', onAbort);
          if (err) reject(err);
          else resolve(socket!);
        },
      });
      signal.addEventListener('abort', onAbort, { once: true });
    });
  return Object.assign(dialer, { [DIRECT_DIAL]: direct });
}

/** A TCP dial in progress, kept on its socket, so that the socket's listeners can be shared functions. */
class TcpDial implements DialInProgress {
  readonly timer: NodeJS.Timeout;
  settled = false;

  constructor(
    readonly socket: DialingSocket,
    readonly address: string,
    readonly protocol: string,
    readonly waiter: DialWaiter,
    timeoutMs: number,
  ) {
    this.timer = setTimeout(onDialTimeout, timeoutMs, socket).unref();
  }

  cancel(): void {
    if (this.settled) return;
    this.settled = true;
    clearTimeout(this.timer);
    this.socket[DIALING] = undefined;
    this.socket.destroy();
  }
}
const DIALING = Symbol('konnectivity-ts.tcpDial');
type DialingSocket = net.Socket & { [DIALING]?: TcpDial | undefined };

/** A dial that fails before it starts (a bad address or network): reported asynchronously, as a connect error. */
class FailedDial implements DialInProgress {
  private cancelled = false;
  constructor(text: string, waiter: DialWaiter) {
    process.nextTick(() => {
      if (!this.cancelled) waiter.dialed(new Error(text));
    });
  }
  cancel(): void {
    this.cancelled = true;
  }
}

/** One TCP dial with a timeout; `waiter` hears once unless cancelled. */
function dialTcp(address: string, protocol: string, timeoutMs: number, waiter: DialWaiter): DialInProgress {
  let target: { host: string; port: number } | string | undefined;
  if (protocol !== 'tcp' && protocol !== 'tcp4' && protocol !== 'tcp6') return new FailedDial(`dial ${protocol} ${address}: unknown network ${protocol}`, waiter);
  if (typeof (target = parseAddress(address)) === 'string') return new FailedDial(`dial ${protocol} ${address}: ${target}`, waiter);
  // No Nagle: net sets TCP_NODELAY as the connect completes. An IP literal connects without a lookup.
  const socket: DialingSocket = net.connect({
    host: target.host,
    port: target.port,
    family: protocol === 'tcp4' ? 4 : protocol === 'tcp6' ? 6 : 0,
    noDelay: true,
  });
  const dial = (socket[DIALING] = new TcpDial(socket, address, protocol, waiter, timeoutMs));
  // The listeners stay after the dial (removing one turns the socket's listener table into a dictionary), doing
  // nothing once it is settled.
  socket.on('connect', onDialConnect);
  socket.on('error', onDialError);
  return dial;
}

function settleDial(socket: DialingSocket, err: Error | undefined): void {
  const dial = socket[DIALING];
  if (dial === undefined) return;
  socket[DIALING] = undefined;
  dial.settled = true;
  clearTimeout(dial.timer);
  if (err) socket.destroy();
  dial.waiter.dialed(err, err ? undefined : socket);
}
function onDialConnect(this: DialingSocket): void {
  settleDial(this, undefined);
}
function onDialError(this: DialingSocket, err: NodeJS.ErrnoException): void {
  const dial = this[DIALING];
  if (dial) settleDial(this, new Error(goDialError(dial.protocol, dial.address, err)));
}
function onDialTimeout(socket: DialingSocket): void {
  const dial = socket[DIALING];
  if (dial) settleDial(socket, new Error(`dial ${dial.protocol} ${dial.address}: i/o timeout`));
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
