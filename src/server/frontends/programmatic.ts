/**
 * The programmatic frontend, `ProxyServer.dial()`: a dial from inside the process, answered with a TunnelSocket (a
 * net.Socket-like Duplex). Under it is `open()`, which hands over the tunnel connection itself, for an owner that
 * binds a socket straight to it with no Duplex in between (the HTTP-CONNECT frontend). Like every frontend it knows
 * the server only as a {@link DialBroker}.
 */
import { abortError, destroyOnAbort } from '../../protocol/abort.js';
import { KonnectivityError } from '../../protocol/errors.js';
import { TunnelSocket, checkHalfCloseTimeoutMs, type TunnelSocketTimeouts } from '../../tunnel/tunnel-socket.js';
import type { TunnelConnection } from '../../tunnel/tunnel.js';
import type { DialBroker, DialHandle, FrontendKind } from '../dials.js';

/** Options of `ProxyServer.dial()`. */
export interface ProgrammaticDialOptions {
  /** Aborts the dial, and the connection once it is open (as `net.connect({ signal })`). */
  signal?: AbortSignal;
  /** How long to wait for the agent's DIAL_RSP; 0 = no limit (default: the server's `dialTimeoutMs`). */
  timeoutMs?: number;
  /** After `end()`, how long the socket waits with nothing from the peer before closing, in ms (default: the server's `halfCloseTimeoutMs`). */
  halfCloseTimeoutMs?: number;
  /** Which frontend asks, for events, metrics and logs (default `programmatic`; the HTTP-CONNECT frontend says so). */
  frontend?: FrontendKind;
}

/** Whoever holds a connection handed over by {@link ProgrammaticFrontend.open}. */
export interface ConnectionOwner {
  /** The server is shutting down: tear the connection down now. */
  destroy(reason: Error): void;
}

/** What becomes of {@link ProgrammaticFrontend.open}: exactly one of the two, unless the dial is cancelled. */
export interface OpenCallbacks {
  /**
   * The agent connected: the connection is the owner's (set `connection.handlers` now). Call `ended()` once when it
   * is over; until then the server's shutdown reaches the owner through `destroy()`.
   */
  succeed(connection: TunnelConnection, agentID: string, ended: () => void): ConnectionOwner;
  /** The dial failed (no answer in time, refused by the agent, its tunnel gone). */
  fail(err: KonnectivityError): void;
}

/**
 * One connection handed over by `open()`, until its owner reports it ended. Its own object rather than a closure in
 * `open()`: a closure there would keep the dial's whole scope (the pending dial, the caller's callbacks and promise)
 * alive for as long as the connection is open.
 */
class OpenedConnection {
  owner: ConnectionOwner | undefined;
  over = false;

  constructor(
    private readonly owners: Set<ConnectionOwner>,
    private readonly broker: DialBroker,
    private readonly agentID: string,
    private readonly connection: TunnelConnection,
  ) {}

  /** Called once by the owner when the connection is over (later calls do nothing). */
  readonly ended = (): void => {
    if (this.over) return;
    this.over = true;
    if (this.owner) this.owners.delete(this.owner);
    this.broker.connectionEnded(this.agentID, this.connection);
  };
}

export class ProgrammaticFrontend {
  /** Owners of open connections, so that shutdown reaches them. */
  private readonly owners = new Set<ConnectionOwner>();

  constructor(
    private readonly broker: DialBroker,
    private readonly dialTimeoutMs: number,
    private readonly timeouts: TunnelSocketTimeouts,
  ) {}

  /**
   * Dial `address`; the connection goes to `callbacks.succeed`. Returns the error when the dial cannot start (no
   * agent, shutting down); otherwise a handle whose `cancel()` gives up while the agent dials. `frontend` labels the
   * dial in events and metrics.
   */
  open(address: string, timeoutMs: number | undefined, callbacks: OpenCallbacks, frontend: FrontendKind = 'programmatic'): DialHandle | KonnectivityError {
    const request = { address, random: this.broker.newDialID() };
    return this.broker.beginDial(request, frontend, timeoutMs ?? this.dialTimeoutMs, {
      succeed: (connection, agentID) => {
        const opened = new OpenedConnection(this.owners, this.broker, agentID, connection);
        opened.owner = callbacks.succeed(connection, agentID, opened.ended);
        if (!opened.over) this.owners.add(opened.owner);
      },
      fail: (err) => callbacks.fail(err),
    });
  }

  /** See `ProxyServer.dial()`. */
  dial(address: string, options: ProgrammaticDialOptions = {}): Promise<TunnelSocket> {
    const { signal } = options;
    try {
      checkHalfCloseTimeoutMs(options.halfCloseTimeoutMs);
    } catch (err) {
      return Promise.reject(err);
    }
    if (signal?.aborted) return Promise.reject(abortError('dial aborted', signal));
    return new Promise<TunnelSocket>((resolve, reject) => {
      const onAbort = (): void => {
        if (!(handle instanceof KonnectivityError)) handle.cancel();
        reject(abortError('dial aborted', signal));
      };
      const handle = this.open(address, options.timeoutMs, {
        succeed: (connection, agentID, ended) => {
          signal?.removeEventListener('abort', onAbort);
          const socket = new TunnelSocket(connection, {
            ...this.timeouts,
            address,
            agentID,
            halfCloseTimeoutMs: options.halfCloseTimeoutMs ?? this.timeouts.halfCloseTimeoutMs,
            onClose: ended,
          });
          // As net.connect({ signal }): the signal still aborts the connection once it is open.
          destroyOnAbort(socket, signal);
          resolve(socket);
          return socket;
        },
        fail: (err) => {
          signal?.removeEventListener('abort', onAbort);
          reject(err);
        },
      }, options.frontend);
      if (handle instanceof KonnectivityError) {
        reject(handle);
        return;
      }
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Destroy every open connection with `reason` (the server is destroyed). */
  destroy(reason: Error): void {
    for (const o of [...this.owners]) o.destroy(reason);
  }

  /**
   * The server's grace period is over: `dial()` sockets end without an error (readers see EOF; a program with no
   * 'error' listener must not crash), other owners are torn down with `reason`.
   */
  endAll(reason: Error): void {
    for (const o of [...this.owners]) {
      if (o instanceof TunnelSocket) void o.close({ graceMs: 0 });
      else o.destroy(reason);
    }
  }
}
