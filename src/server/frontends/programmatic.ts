/**
 * The programmatic frontend, `ProxyServer.dial()`: a dial from inside the process, answered with a TunnelSocket (a
 * net.Socket-like Duplex). The HTTP-CONNECT frontend is built on it. Like every frontend it knows the server only as
 * a {@link DialBroker}.
 */
import { abortError, destroyOnAbort } from '../../protocol/abort.js';
import { KonnectivityError } from '../../protocol/errors.js';
import { TunnelSocket, checkHalfCloseTimeoutMs } from '../../tunnel/tunnel-socket.js';
import type { DialBroker } from '../dials.js';

export interface ProgrammaticDialOptions {
  signal?: AbortSignal;
  /** How long to wait for the agent's DIAL_RSP; 0 = no limit (default: the server's `dialTimeoutMs`). */
  timeoutMs?: number;
  /** After `end()`, how long the socket waits with nothing from the peer before closing, in ms (default 300000). */
  halfCloseTimeoutMs?: number;
}

export class ProgrammaticFrontend {
  /** Open sockets, so that shutdown reaches them. */
  private readonly sockets = new Set<TunnelSocket>();

  constructor(
    private readonly broker: DialBroker,
    private readonly dialTimeoutMs: number,
  ) {}

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
      const request = { address, random: this.broker.newDialID() };
      const handle = this.broker.beginDial(request, 'programmatic', options.timeoutMs ?? this.dialTimeoutMs, {
        succeed: (connection, agentID) => {
          signal?.removeEventListener('abort', onAbort);
          const socket = new TunnelSocket(connection, {
            address,
            agentID,
            halfCloseTimeoutMs: options.halfCloseTimeoutMs,
            onClose: (s) => {
              this.sockets.delete(s);
              this.broker.connectionEnded(agentID, connection);
            },
          });
          this.sockets.add(socket);
          // As net.connect({ signal }): the signal still aborts the connection once it is open.
          destroyOnAbort(socket, signal);
          resolve(socket);
        },
        fail: (err) => {
          signal?.removeEventListener('abort', onAbort);
          reject(err);
        },
      });
      if (handle instanceof KonnectivityError) {
        reject(handle);
        return;
      }
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Destroy every open socket (the server is shutting down). */
  destroy(reason: Error): void {
    for (const s of [...this.sockets]) s.destroy(reason);
  }
}
