/**
 * Retry delays for the agent's sync loop, after the reference (`wait.Backoff` with factor 1.5, jitter 0.1, from
 * `--sync-interval` up to `--sync-interval-cap`). Pure: no timers; the caller sleeps.
 */
import { checkNumber } from '../protocol/options.js';

/** Options for {@link Backoff}. */
export interface BackoffOptions {
  /** The first delay, in milliseconds (the agent's sync interval, default 1000). */
  initialMs?: number;
  /** The largest delay before jitter, in milliseconds (the sync interval cap, default 10000). */
  capMs?: number;
  /** How much each failure multiplies the delay by (default 1.5). */
  factor?: number;
  /** The most jitter adds, as a fraction of the delay (default 0.1: up to +10 %). */
  jitter?: number;
  /** Source of randomness in [0, 1) (default Math.random); tests pass a fixed one. */
  random?: () => number;
}

/** Add up to `fraction * ms` to `ms`, as Go's `wait.Jitter` does (never less than `ms`). */
export function jitter(ms: number, fraction: number, random: () => number = Math.random): number {
  return fraction > 0 ? ms + random() * fraction * ms : ms;
}

/** Exponential backoff with a cap and jitter: `next()` gives the delay to wait now, then grows it. */
export class Backoff {
  /** The first delay, in ms. */
  readonly initialMs: number;
  /** The largest delay, in ms. */
  readonly capMs: number;
  /** Each delay is the previous one times this (at most `capMs`). */
  readonly factor: number;
  /** Up to this fraction of each delay is added at random (0.1 = +10 %). */
  readonly jitterFraction: number;
  private readonly random: () => number;
  private currentMs: number;

  constructor(options: BackoffOptions = {}) {
    this.initialMs = options.initialMs ?? 1000;
    this.capMs = options.capMs ?? 10_000;
    this.factor = options.factor ?? 1.5;
    this.jitterFraction = options.jitter ?? 0.1;
    this.random = options.random ?? Math.random;
    checkNumber('backoff: initialMs', this.initialMs, { min: 0 });
    checkNumber('backoff: capMs', this.capMs, { min: this.initialMs });
    checkNumber('backoff: factor', this.factor, { min: 1 });
    checkNumber('backoff: jitter', this.jitterFraction, { min: 0 });
    this.currentMs = this.initialMs;
  }

  /** The delay before the next attempt (jittered); each call grows the following one, up to the cap. */
  next(): number {
    const ms = this.currentMs;
    this.currentMs = Math.min(this.currentMs * this.factor, this.capMs);
    return jitter(ms, this.jitterFraction, this.random);
  }

  /** The plain interval with jitter, without growing: what the loop waits after a success. */
  interval(): number {
    return jitter(this.initialMs, this.jitterFraction, this.random);
  }

  /** Start again from the initial delay (after a success). */
  reset(): void {
    this.currentMs = this.initialMs;
  }
}
