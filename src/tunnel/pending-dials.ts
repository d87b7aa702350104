/**
 * Dials waiting for their answer, keyed by the dial's `random`: the one machine behind the server's dials to agents,
 * the agent's dials to endpoints and the client's dial over a frontend stream.
 *
 * A dial settles once, by whichever comes first of its answer, its timeout, a cancel or the loss of its tunnel:
 * `settle()` tells the caller whether it was first, so the later ones do nothing. How a dial failed is said with one
 * vocabulary (`DialFailure`), so every role reports the same code and client reason for the same failure.
 */
import { ErrorCode, KonnectivityError } from '../protocol/errors.js';
import { randomDialID } from '../protocol/ids.js';

/** One dial in a {@link PendingDials} table; `value` is what its role keeps for it. */
export class PendingDial<T> {
  /** When the dial was registered (performance.now()), for its duration. */
  readonly startedAt = performance.now();
  private settled = false;
  private readonly timer: NodeJS.Timeout | undefined;

  /** @internal Made by {@link PendingDials.add}. */
  constructor(
    private readonly table: Map<bigint, PendingDial<T>>,
    private readonly onSettled: ((dial: PendingDial<T>) => void) | undefined,
    readonly random: bigint,
    readonly value: T,
    timeoutMs: number | undefined,
    onTimeout: (dial: PendingDial<T>) => void,
  ) {
    if (timeoutMs !== undefined) this.timer = setTimeout(timeUp, timeoutMs, this, onTimeout).unref();
  }

  /** True until the dial is settled. */
  get pending(): boolean {
    return !this.settled;
  }

  /** Take the dial out of its table and stop its timer. True for the first caller only. */
  settle(): boolean {
    if (this.settled) return false;
    this.settled = true;
    clearTimeout(this.timer);
    if (this.table.get(this.random) === this) this.table.delete(this.random);
    this.onSettled?.(this);
    return true;
  }
}

/** A dial's timer fired (one function for every dial, not a closure each). */
function timeUp<T>(dial: PendingDial<T>, onTimeout: (dial: PendingDial<T>) => void): void {
  if (dial.pending) onTimeout(dial);
}

/** The table of pending dials of one owner (a server, an agent tunnel, a client dial). */
export class PendingDials<T> {
  private readonly table = new Map<bigint, PendingDial<T>>();

  /** `onSettled` runs once for each dial, when it settles (whoever settles it): for the owner's own counts. */
  constructor(private readonly onSettled?: (dial: PendingDial<T>) => void) {}

  get size(): number {
    return this.table.size;
  }

  get(random: bigint): PendingDial<T> | undefined {
    return this.table.get(random);
  }

  has(random: bigint): boolean {
    return this.table.has(random);
  }

  values(): IterableIterator<PendingDial<T>> {
    return this.table.values();
  }

  /**
   * Register a dial under `random`. `onTimeout` runs once after `timeoutMs` (none when undefined) if the dial is
   * still pending; it decides what the timeout means (fail the dial, or abort the work that will settle it). A dial
   * already under `random` is replaced; refusing duplicates is the caller's policy.
   */
  add(random: bigint, value: T, timeoutMs: number | undefined, onTimeout: (dial: PendingDial<T>) => void): PendingDial<T> {
    const dial = new PendingDial(this.table, this.onSettled, random, value, timeoutMs, onTimeout);
    this.table.set(random, dial);
    return dial;
  }

  /** Settle every pending dial `match` selects (their tunnel is gone) and return them, to be failed. */
  settleWhere(match: (value: T) => boolean): Array<PendingDial<T>> {
    const hit = [...this.table.values()].filter((d) => match(d.value));
    for (const d of hit) d.settle();
    return hit;
  }

  /** A dial ID not in use here (the 63-bit space makes a clash unlikely, not impossible). */
  newDialID(): bigint {
    let id = randomDialID();
    while (this.table.has(id)) id = randomDialID();
    return id;
  }
}

/** How a dial ended without a connection: one code and client reason per way, whichever role reports it. */
export const DialFailure = {
  /** The dialed side answered with an error (DIAL_RSP): its text verbatim, e.g. Go's `dial tcp …: connection refused`. */
  refused: (text: string): KonnectivityError => new KonnectivityError(ErrorCode.DIAL_FAILED, text, { reason: 'endpoint' }),
  /** The dialed side closed the dial (DIAL_CLS). */
  closed: (): KonnectivityError => new KonnectivityError(ErrorCode.DIAL_CLOSED, 'dial closed', { reason: 'dialclosed' }),
  /** No answer in time. */
  timedOut: (message: string): KonnectivityError => new KonnectivityError(ErrorCode.DIAL_TIMEOUT, message, { reason: 'timeout' }),
  /** The answer broke the protocol (an unknown dial, an invalid connectID). */
  invalid: (message: string): KonnectivityError => new KonnectivityError(ErrorCode.PROTOCOL, message),
  /** The stream the dial was on went away; `cause` is the stream's error, if any. */
  tunnelClosed: (what: string, cause?: Error): KonnectivityError =>
    new KonnectivityError(ErrorCode.TUNNEL_CLOSED, cause ? `${what}: ${cause.message}` : what, {
      reason: 'tunnelclosed',
      ...(cause ? { cause } : {}),
    }),
} as const;
