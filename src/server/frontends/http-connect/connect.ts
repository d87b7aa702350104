/**
 * Serving one CONNECT once its target is known: the dial, then the join of the client socket to what the dial gave.
 * Two ways, by what the dialer offers: a dialer with `openConnection` (the ProxyServer) hands over the tunnel
 * connection, and the socket is bound straight to it (`binding.ts`); any other dialer's `dial()` gives a Duplex,
 * relayed to the socket (`relay.ts`). What the client sent during the dial is held (`early-input.ts`) and goes first.
 */
import type { Duplex } from 'node:stream';
import { abortError } from '../../../protocol/abort.js';
import { KonnectivityError } from '../../../protocol/errors.js';
import type { DialHandle } from '../../dials.js';
import { ClientBinding } from './binding.js';
import { holdEarlyInput, type EarlyInput } from './early-input.js';
import type { HttpConnectDialer, HttpConnectFrontendEventMap, ResolvedHttpConnectOptions } from './options.js';
import { relay } from './relay.js';
import { CONNECT_ESTABLISHED, dialErrorResponse, type ErrorResponse } from './responses.js';

/** One CONNECT socket being served: how to give up its dial, and what carries it once open. */
export interface TunnelEntry {
  /** Give up the dial (the client left, or the frontend is destroyed). */
  cancel(reason: Error): void;
  /** The dialer's Duplex, relayed to the socket. */
  tunnel?: Duplex;
  /** The socket bound straight to its tunnel connection. */
  binding?: ClientBinding;
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

/** Dial `address` for the CONNECT on `socket` (`head`: bytes that came with the request) and join the two. */
export function serveConnect(host: ConnectHost, socket: Duplex, head: Buffer, address: string, remoteAddress: string): void {
  if (typeof host.dialer.openConnection === 'function') connectBound(host, socket, head, address, remoteAddress);
  else connectRelayed(host, socket, head, address, remoteAddress);
}

/** Dial through a dialer that hands over the tunnel connection, and bind the socket straight to it. */
function connectBound(host: ConnectHost, socket: Duplex, head: Buffer, address: string, remoteAddress: string): void {
  const started = Date.now();
  let handle: DialHandle | KonnectivityError | undefined;
  const entry: TunnelEntry = {
    cancel: (reason) => {
      if (handle === undefined || handle instanceof KonnectivityError || entry.binding) return;
      handle.cancel();
      handle = undefined;
      host.dialSettled();
      early.release();
      socket.destroy();
      host.untrack(socket);
      host.emit('dialFailed', { address, remoteAddress, statusCode: undefined, error: reason });
    },
  };
  host.track(socket, entry);
  const early = holdEarlyInput(socket, head, host.options.maxEarlyDataBytes, (why) => entry.cancel(abortError(why)));
  const failed = (err: Error): void => {
    handle = undefined;
    dialFailed(host, socket, early, address, remoteAddress, err, false);
  };
  try {
    handle = host.dialer.openConnection!(address, host.options.dialTimeoutMs, {
      succeed: (connection, _agentID, ended) => {
        handle = undefined;
        host.dialSettled();
        const { chunks, ended: clientEnded } = early.release();
        const binding = new ClientBinding(socket, connection, host.options, (result) => {
          ended();
          host.untrack(socket);
          host.emit('tunnelClosed', { ...result, address, remoteAddress });
        });
        entry.binding = binding;
        socket.write(CONNECT_ESTABLISHED);
        binding.start(chunks, clientEnded);
        host.emit('tunnelOpened', { address, remoteAddress, durationMs: Date.now() - started });
        return binding;
      },
      fail: failed,
    }, 'http-connect');
  } catch (err) {
    // A dialer that throws fails this CONNECT, not the process.
    failed(err instanceof Error ? err : new Error(String(err)));
    return;
  }
  if (handle instanceof KonnectivityError) failed(handle);
}

/** Dial through the dialer's `dial()`, and relay between the socket and the Duplex it gives. */
function connectRelayed(host: ConnectHost, socket: Duplex, head: Buffer, address: string, remoteAddress: string): void {
  const abort = new AbortController();
  const entry: TunnelEntry = { cancel: (reason) => abort.abort(reason) };
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
      entry.tunnel = tunnel;
      socket.write(CONNECT_ESTABLISHED);
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
      dialFailed(host, socket, early, address, remoteAddress, error, abort.signal.aborted);
    },
  );
}

/** A dial failed: answer the client with the status for `error`, unless it left first. */
function dialFailed(host: ConnectHost, socket: Duplex, early: EarlyInput, address: string, remoteAddress: string, error: Error, aborted: boolean): void {
  host.dialSettled();
  early.release();
  let statusCode: number | undefined;
  if (socket.destroyed || aborted) {
    socket.destroy();
  } else {
    const response = dialErrorResponse(error);
    statusCode = response.statusCode;
    host.respondAndClose(socket, response);
  }
  if (socket.closed) host.untrack(socket);
  else socket.once('close', () => host.untrack(socket));
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
