/**
 * The one abort error, for every wait that a caller's signal (or its owner's shutdown) cuts short, and the rule that
 * a signal still aborts a connection once it is open, as `net.connect({ signal })` has both. Pure.
 */
import { ErrorCode, KonnectivityError } from './errors.js';

/**
 * What an aborted dial or connect rejects with, as Node's own AbortError: `name` `AbortError`, `code` `ABORT_ERR`,
 * the signal's reason as `cause`. It is a KonnectivityError too (client reason `context`, konnectivity-client's), so
 * `isKonnectivityError(err, ErrorCode.ABORTED)` and `err.code === 'ABORT_ERR'` both match it.
 */
export class AbortError extends KonnectivityError {
  override readonly name = 'AbortError';

  constructor(message = 'The operation was aborted', options: { cause?: unknown } = {}) {
    super(ErrorCode.ABORTED, message, { reason: 'context', cause: options.cause });
  }
}

/** An {@link AbortError} caused by `signal.reason` when given. */
export function abortError(message: string, signal?: AbortSignal): AbortError {
  return new AbortError(message, { cause: signal?.reason });
}

/** What {@link destroyOnAbort} needs of a socket. */
export interface Destroyable {
  destroy(err?: Error): unknown;
  once(event: 'close', listener: () => void): unknown;
}

/**
 * As `net.connect({ signal })` does once connected: aborting `signal` destroys `socket` with an {@link AbortError}.
 * The listener goes with the socket's 'close'.
 */
export function destroyOnAbort(socket: Destroyable, signal: AbortSignal | undefined, message = 'the connection was aborted'): void {
  if (!signal) return;
  const onAbort = (): void => void socket.destroy(abortError(message, signal));
  if (signal.aborted) {
    onAbort();
    return;
  }
  signal.addEventListener('abort', onAbort, { once: true });
  socket.once('close', () => signal.removeEventListener('abort', onAbort));
}
