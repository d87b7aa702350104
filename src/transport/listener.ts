/**
 * The one listener convention of the gRPC server, the yamux server and the HTTP-CONNECT frontend, and the binding
 * they share: TCP or a Unix socket, a stale socket file replaced, the file's mode set.
 */
import { chmod, lstat, unlink } from 'node:fs/promises';
import type net from 'node:net';
import type { CloseOptions } from './grace.js';

/** Where a listener binds: TCP (`port` 0 picks a free one; `host` defaults to 127.0.0.1) or a Unix socket `path`. */
export type ListenTarget = { port: number; host?: string } | { path: string };

/**
 * Options of a listener's `close()`: how long open work (calls, carriers, tunnels) may take to finish before it is
 * destroyed (`graceMs`), and a `signal` that ends the grace period at once; the library's {@link CloseOptions}.
 */
export type ListenerCloseOptions = CloseOptions;

/**
 * What every listener of the library does: `listen()` resolves once bound (and rejects with the listen error:
 * EADDRINUSE, EACCES, ...), `address()` is `net.Server`'s, `close()` stops accepting and lets open work finish for
 * a grace period, `destroy()` ends everything at once. `close()` and `destroy()` are idempotent.
 */
export interface Listener {
  /** Start listening on `target` (`{ port, host }` or `{ path }`); resolves once bound. */
  listen(target: ListenTarget): Promise<void>;
  /** An AddressInfo for TCP, the path for a Unix socket, null before `listen()` and after `close()`. */
  address(): net.AddressInfo | string | null;
  /** Stop accepting; let open work finish for `graceMs`, then destroy what is left. Idempotent. */
  close(options?: ListenerCloseOptions): Promise<void>;
  /** Stop accepting and close everything at once. Idempotent. */
  destroy(err?: Error): void;
}

/** How a listener treats its Unix socket file. */
export interface UnixSocketOptions {
  /** Mode of the socket file (default 0o770, as the reference's umask 0007). */
  socketMode?: number;
  /** Replace an existing socket file at the path (default true); anything that is not a socket makes listen fail. */
  deleteExistingSocket?: boolean;
}

/** Bind `server` to `target`; resolves once it listens, rejects with the listen error. */
export async function bindServer(server: net.Server, target: ListenTarget, unix: UnixSocketOptions = {}): Promise<void> {
  if ('path' in target) {
    if (unix.deleteExistingSocket ?? true) await removeStaleSocket(target.path);
    await listenOnce(server, { path: target.path });
    await chmod(target.path, unix.socketMode ?? 0o770);
  } else {
    await listenOnce(server, { port: target.port, host: target.host ?? '127.0.0.1' });
  }
}

function listenOnce(server: net.Server, where: net.ListenOptions): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(where, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

/** Remove a socket file left by an earlier process; anything that is not a socket is left alone (listen fails). */
async function removeStaleSocket(path: string): Promise<void> {
  try {
    if ((await lstat(path)).isSocket()) await unlink(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}
