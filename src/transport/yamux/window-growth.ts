/**
 * Receive-window growth by bandwidth x delay, for the streams of one yamux session. Pure: the clock and the round
 * trip are given to it (the session measures the round trip with pings).
 *
 * A stream grants more window (a Window Update) each time its reader has consumed half of it. When two such updates
 * come less than `GROWTH_RTTS` round trips apart, the reader keeps up with a sender that is held back by the
 * window, not by the link: the window doubles, up to the ceiling. At a steady rate the updates then come further
 * apart, so a window stops growing near GROWTH_RTTS x 2 x bandwidth x delay. A reader that does not read sends no
 * updates and never grows its window, so a stalled reader holds at most the window it had: never more than
 * the ceiling. What all streams of a session grow beyond their opening window comes out of one budget, so a
 * tunnel with many fast-then-stalled connections still holds a bounded amount.
 *
 * A session learns: a stream that grows goes at once to the largest window one of its streams grew to before, if
 * that is more than double, instead of climbing there round trip by round trip (most of a 16 MiB download would
 * otherwise pass while its window is still small). Streams still open with the opening window and grow only on
 * their own proof, so a new stalled reader holds no more than before.
 *
 * Nothing grows before a stream has consumed WINDOWS_BEFORE_GROWTH opening windows (the burst into a stalled
 * reader's socket buffers must not look like a fast reader).
 *
 * A grown window also shrinks: when updates come `SHRINK_RTTS` round trips apart or more, the sender uses far less
 * than the window (its source slowed down, or the connection went quiet and woke up), so the window halves, never
 * below the opening one, and gives the rest back to the budget. A stream that grew once therefore does not keep
 * budget that other streams need. Growth below 2 round trips and shrinking from 8 leave a window between about 4x
 * and 16x what it carries per round trip, so it does not flap.
 */
import { WINDOWS_BEFORE_GROWTH } from '../windows.js';

/** Updates closer together than this many round trips mean the window, not the link, limits the sender. */
export const GROWTH_RTTS = 2;
/** Updates this many round trips apart or more mean the window is far larger than the sender uses. */
export const SHRINK_RTTS = 8;

export interface WindowGrowthOptions {
  /** The window every stream opens with, in bytes. */
  initialBytes: number;
  /** The largest window a stream grows to, in bytes. */
  ceilingBytes: number;
  /** What all streams together may grow beyond `initialBytes`, in bytes. */
  budgetBytes: number;
  /** The clock, in ms (performance.now in the session, a fake in tests). */
  now: () => number;
}

/** Window growth for the streams of one session. */
export class WindowGrowth {
  /** The latest measured round trip in ms; undefined until one is measured, and then no window grows. */
  rttMs: number | undefined;
  private readonly initial: number;
  private readonly ceiling: number;
  private spare: number;
  /** The largest window a stream of this session grew to. */
  private learned: number;
  readonly now: () => number;

  constructor(options: WindowGrowthOptions) {
    this.initial = options.initialBytes;
    this.ceiling = options.ceilingBytes;
    this.spare = options.budgetBytes;
    this.learned = options.initialBytes;
    this.now = options.now;
  }

  /** Budget not yet handed to a stream, in bytes. */
  get spareBytes(): number {
    return this.spare;
  }

  /**
   * A stream whose window is `size` bytes is about to send a Window Update at `now`; it sent its last one (or got
   * its first data) at `lastMs`, and its reader has consumed `consumedBytes` in all. Returns its window from now on:
   * `size`, larger when it proved it needs more (never before WINDOWS_BEFORE_GROWTH opening windows were
   * consumed), or smaller (not below the opening window) when it uses far less.
   */
  grow(size: number, lastMs: number | undefined, now: number, consumedBytes = Number.POSITIVE_INFINITY): number {
    const rtt = this.rttMs;
    if (rtt === undefined || lastMs === undefined) return size;
    const gap = now - lastMs;
    if (gap >= SHRINK_RTTS * rtt && size > this.initial) {
      const smaller = Math.max(this.initial, Math.floor(size / 2));
      this.spare += size - smaller;
      return smaller;
    }
    if (size >= this.ceiling || this.spare === 0 || gap >= GROWTH_RTTS * rtt) return size;
    if (consumedBytes < WINDOWS_BEFORE_GROWTH * this.initial) return size;
    const target = Math.min(Math.max(2 * size, this.learned), this.ceiling);
    const extra = Math.min(target - size, this.spare);
    this.spare -= extra;
    this.learned = Math.max(this.learned, size + extra);
    return size + extra;
  }

  /** A stream with a window of `size` bytes is gone: what it grew goes back to the budget. */
  release(size: number): void {
    this.spare += Math.max(0, size - this.initial);
  }
}
