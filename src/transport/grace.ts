/**
 * The grace period of every graceful `close()` in the library (the agent and its tunnels, the client set, the
 * proxy server, the listeners, a yamux session): open work may finish for `graceMs`, then what is left is
 * destroyed. Aborting `signal` ends the grace period at once. Event-driven: the close resolves as soon as the last
 * piece is gone, or at the deadline; nothing polls. The timer is unref'd, so it never holds the process open.
 */
import { checkNumber } from '../protocol/options.js';

/** The options of every graceful `close()`. */
export interface CloseOptions {
  /**
   * How long open work (connections, streams, calls) may take to finish, in ms, before it is destroyed. Each
   * `close()` documents its default.
   */
  graceMs?: number;
  /** Aborting it ends the grace period at once: what is still open is destroyed (without an error to users). */
  signal?: AbortSignal;
}

/** The largest timer Node takes (about 24.8 days). */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** `options.graceMs`, or `defaultMs`, checked: ERR_INVALID_OPTION for a negative or non-finite value. */
export function graceMsOf(options: CloseOptions | undefined, defaultMs: number): number {
  return checkNumber('graceMs', options?.graceMs ?? defaultMs, { min: 0, max: MAX_TIMER_MS });
}

/** For a close() that returns a promise: the ERR_INVALID_OPTION rejection for a bad `graceMs`, or undefined. */
export function rejectBadGrace(options: CloseOptions | undefined, defaultMs: number): Promise<never> | undefined {
  try {
    graceMsOf(options, defaultMs);
    return undefined;
  } catch (err) {
    return Promise.reject(err);
  }
}

/** A running grace period; see {@link startGrace}. */
export interface GracePeriod {
  /** True once the grace period ended (deadline or abort) and `onExpire` ran. */
  readonly expired: boolean;
  /** The work finished in time: stop the timer and forget the signal. Idempotent. */
  cancel(): void;
}

/**
 * Run `onExpire` once, `graceMs` (default `defaultMs`) from now or when `signal` aborts, whichever comes first,
 * unless `cancel()` came before. An aborted signal or a grace of 0 expires at once, inside this call: start the
 * grace period after the graceful steps. Throws ERR_INVALID_OPTION for a bad `graceMs`.
 */
export function startGrace(options: CloseOptions | undefined, defaultMs: number, onExpire: () => void): GracePeriod {
  const graceMs = graceMsOf(options, defaultMs);
  const signal = options?.signal;
  let state: 'running' | 'expired' | 'cancelled' = 'running';
  let timer: NodeJS.Timeout | undefined;
  const stop = (): void => {
    clearTimeout(timer);
    signal?.removeEventListener('abort', expire);
  };
  function expire(): void {
    if (state !== 'running') return;
    state = 'expired';
    stop();
    onExpire();
  }
  if (signal?.aborted || graceMs === 0) expire();
  else {
    timer = setTimeout(expire, graceMs).unref();
    signal?.addEventListener('abort', expire, { once: true });
  }
  return {
    get expired() {
      return state === 'expired';
    },
    cancel() {
      if (state !== 'running') return;
      state = 'cancelled';
      stop();
    },
  };
}

/**
 * The usual shape of a graceful close: `done` settles once everything has closed; if it has not by the end of the
 * grace period, `destroy()` runs (and must make `done` settle). Resolves when `done` settles, never rejects.
 */
export async function closeWithin(
  done: Promise<unknown>,
  options: CloseOptions | undefined,
  defaultMs: number,
  destroy: () => void,
): Promise<void> {
  graceMsOf(options, defaultMs);
  const grace = startGrace(options, defaultMs, destroy);
  try {
    await done;
  } catch {
    // The error was reported where it happened (an event, a stream's 'close'); close() itself only waits.
  } finally {
    grace.cancel();
  }
}
