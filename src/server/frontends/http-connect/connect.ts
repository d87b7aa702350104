/**
 * Serving one CONNECT once its target is known: the dial, then the join of the client socket to what the dial gave.
 * Two ways, by what the dialer offers: a dialer with `openConnection` (the ProxyServer) hands over the tunnel
 * connection, and the socket is bound straight to it (`binding.ts`); any other dialer's `dial()` gives a Duplex,
 * relayed to the socket (`relay.ts`). What the client sent during the dial is held and goes first.
 */
import type { Duplex } from 'node:stream';
import { abortError } from '../../../protocol/abort.js';
import { KonnectivityError } from '../../../protocol/errors.js';
import type { TunnelConnection } from '../../../tunnel/tunnel.js';
import type { DialHandle } from '../../dials.js';
import type { ConnectionOwner, OpenCallbacks } from '../programmatic.js';
import { ClientBinding, serveClient, type BindingOwner, type ClientSide } from './binding.js';
import { CLIENT_LEFT_DURING_DIAL, EarlyBytes, clientErrorDuringDial, holdEarlyInput } from './early-input.js';
import type { HttpConnectDialer, HttpConnectFrontendEventMap, ResolvedHttpConnectOptions } from './options.js';
import { relay, type RelayResult } from './relay.js';
import { CONNECT_ESTABLISHED, dialErrorResponse, type ErrorResponse } from './responses.js';

/** One CONNECT socket being served, from its dial to the end of its tunnel. */
export interface TunnelEntry {
  /** Give up the dial, or tear down the open tunnel (the client left, or the frontend is destroyed). */
  destroy(reason: Error): void;
}

/** What serving a CONNECT needs from its frontend. */
export interface ConnectHost {
  readonly dialer: HttpConnectDialer;
  readonly options: ResolvedHttpConnectOptions;
  /** The socket is served from now until {@link untrack}. */
  track(socket: Duplex, entry: TunnelEntry): void;
  untrack(socket: Duplex): void;
  /** The dial ended, either way. */
  dialSettled(): void;
  respondAndClose(socket: Duplex, response: ErrorResponse): void;
  emit<K extends keyof HttpConnectFrontendEventMap>(event: K, ...args: HttpConnectFrontendEventMap[K]): boolean;
}

/** The 200, as bytes once for every tunnel. */
const ESTABLISHED = Buffer.from(CONNECT_ESTABLISHED, 'latin1');

/** Dial `address` for the CONNECT on `socket` (`head`: bytes that came with the request) and join the two. */
export function serveConnect(host: ConnectHost, socket: Duplex, head: Buffer, address: string, remoteAddress: string): void {
  if (typeof host.dialer.openConnection === 'function') new BoundConnect(host, socket, head, address, remoteAddress).dial();
  else connectRelayed(host, socket, head, address, remoteAddress);
}

/**
 * A CONNECT through a dialer that hands over the tunnel connection: the dial, then the socket bound straight to
 * the connection (`binding.ts`). This one object is the dial's callbacks, the frontend's entry, the client side
 * while the dial runs (what the client sends is held, bounded, then the socket paused; its leaving aborts the dial)
 * and the binding's owner: a CONNECT allocates no closures.
 */
class BoundConnect implements OpenCallbacks, TunnelEntry, ClientSide, BindingOwner {
  private readonly started = Date.now();
  private handle: DialHandle | undefined;
  /** While dialing: what the client sent. */
  private early: EarlyBytes | undefined;
  private dialing = true;
  private binding: ClientBinding | undefined;
  private ended: (() => void) | undefined;

  constructor(
    private readonly host: ConnectHost,
    private readonly socket: Duplex,
    head: Buffer,
    private readonly address: string,
    private readonly remoteAddress: string,
  ) {
    this.early = new EarlyBytes(head, host.options.maxEarlyDataBytes);
  }

  dial(): void {
    const { host, socket } = this;
    host.track(socket, this);
    // The socket is read during the dial: a paused one would never see its client leave.
    serveClient(socket, this);
    if (this.early!.full) socket.pause();
    let handle: DialHandle | KonnectivityError;
    try {
      handle = host.dialer.openConnection!(this.address, host.options.dialTimeoutMs, this, 'http-connect');
    } catch (err) {
      // A dialer that throws fails this CONNECT, not the process.
      this.fail(err instanceof Error ? err : new Error(String(err)));
      return;
    }
    if (handle instanceof KonnectivityError) this.fail(handle);
    else if (this.dialing) this.handle = handle;
  }

  // ---- the dial's callbacks ------------------------------------------------------------------------------------

  succeed(connection: TunnelConnection, _agentID: string, ended: () => void): ConnectionOwner {
    const { host, socket } = this;
    this.dialing = false;
    this.handle = undefined;
    this.ended = ended;
    host.dialSettled();
    const early = this.early!;
    this.early = undefined;
    const binding = (this.binding = new ClientBinding(socket, connection, host.options, this));
    socket.write(ESTABLISHED);
    binding.start(early.take(), early.ended);
    host.emit('tunnelOpened', { address: this.address, remoteAddress: this.remoteAddress, durationMs: Date.now() - this.started });
    return binding;
  }

  fail(err: Error): void {
    if (!this.dialing) return;
    this.dialing = false;
    this.handle = undefined;
    this.early = undefined;
    dialFailed(this.host, this.socket, this.address, this.remoteAddress, err, false, false);
  }

  // ---- the frontend's entry and the binding's owner ------------------------------------------------------------

  destroy(reason: Error): void {
    if (this.binding) this.binding.destroy(reason);
    else this.cancel(reason);
  }

  bindingDone(result: RelayResult): void {
    const { host } = this;
    this.ended?.();
    host.untrack(this.socket);
    const { bytesFromClient, bytesToClient, error } = result;
    host.emit('tunnelClosed', { bytesFromClient, bytesToClient, error, address: this.address, remoteAddress: this.remoteAddress });
  }

  // ---- the client while the dial runs --------------------------------------------------------------------------

  fromClient(chunk: Buffer): void {
    if (this.dialing && this.early!.add(chunk)) this.socket.pause();
  }

  clientDrained(): void {}

  clientEnded(): void {
    if (this.early?.end()) this.cancel(abortError(CLIENT_LEFT_DURING_DIAL));
  }

  clientFailed(err: Error): void {
    this.cancel(abortError(clientErrorDuringDial(err)));
  }

  clientClosed(): void {
    if (this.dialing) this.cancel(abortError(CLIENT_LEFT_DURING_DIAL));
    else this.host.untrack(this.socket);
  }

  /** Give up the dial: the client left, or the frontend is destroyed. */
  private cancel(reason: Error): void {
    const handle = this.handle;
    if (!this.dialing || handle === undefined) return;
    this.dialing = false;
    this.handle = undefined;
    this.early = undefined;
    handle.cancel();
    const { host, socket } = this;
    host.dialSettled();
    socket.destroy();
    host.untrack(socket);
    host.emit('dialFailed', { address: this.address, remoteAddress: this.remoteAddress, statusCode: undefined, error: reason });
  }
}

/** Dial through the dialer's `dial()`, and relay between the socket and the Duplex it gives. */
function connectRelayed(host: ConnectHost, socket: Duplex, head: Buffer, address: string, remoteAddress: string): void {
  const abort = new AbortController();
  let opened: Duplex | undefined;
  const entry: TunnelEntry = {
    destroy: (reason) => {
      opened?.destroy();
      abort.abort(reason);
    },
  };
  host.track(socket, entry);
  const early = holdEarlyInput(socket, head, host.options.maxEarlyDataBytes, (why) => abort.abort(abortError(why)));
  const started = Date.now();
  dialThrough(host, address, abort.signal).then(
    (tunnel) => {
      host.dialSettled();
      const { chunks } = early.release();
      if (socket.destroyed || abort.signal.aborted) {
        // The client left while the dial completed (#404): close the connection on the agent at once.
        tunnel.destroy();
        socket.destroy();
        host.untrack(socket);
        host.emit('dialFailed', { address, remoteAddress, statusCode: undefined, error: abortReason(abort.signal) });
        return;
      }
      opened = tunnel;
      socket.write(ESTABLISHED);
      for (const chunk of chunks) tunnel.write(chunk);
      void relay(socket, tunnel, host.options).then((result) => {
        host.untrack(socket);
        host.emit('tunnelClosed', { ...result, address, remoteAddress });
      });
      // Events go out after the bookkeeping, so a listener that throws cannot leave a socket unserved.
      host.emit('tunnelOpened', { address, remoteAddress, durationMs: Date.now() - started });
    },
    (err: unknown) => {
      const error = err instanceof Error ? err : new Error(String(err));
      early.release();
      dialFailed(host, socket, address, remoteAddress, error, abort.signal.aborted, true);
    },
  );
}

/**
 * A dial failed: answer the client with the status for `error`, unless it left first. The socket is untracked once
 * it has closed: here when `watchClose`, else by the caller's own 'close' listener.
 */
function dialFailed(host: ConnectHost, socket: Duplex, address: string, remoteAddress: string, error: Error, aborted: boolean, watchClose: boolean): void {
  host.dialSettled();
  let statusCode: number | undefined;
  if (socket.destroyed || aborted) {
    socket.destroy();
  } else {
    const response = dialErrorResponse(error);
    statusCode = response.statusCode;
    host.respondAndClose(socket, response);
  }
  if (socket.closed) host.untrack(socket);
  else if (watchClose) socket.once('close', () => host.untrack(socket));
  host.emit('dialFailed', { address, remoteAddress, statusCode, error });
}

/** The dialer's promise; a dialer that throws instead of rejecting fails that one CONNECT, not the process. */
function dialThrough(host: ConnectHost, address: string, signal: AbortSignal): Promise<Duplex> {
  try {
    return host.dialer.dial(address, { signal, timeoutMs: host.options.dialTimeoutMs, frontend: 'http-connect' });
  } catch (err) {
    return Promise.reject(err);
  }
}

function abortReason(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : abortError('the dial was aborted', signal);
}
