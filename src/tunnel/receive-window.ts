/**
 * The receiving end of one connection's credit window (credit regime): it returns credit to the peer as the owner
 * consumes bytes, a quarter of the window at a time, and grows the window when it is what holds the sender back.
 *
 * A window caps a connection at one window per round trip. When the transport measures its round trip (gRPC: the
 * smallest HTTP/2 PING round trip), the consumption is sampled over spans of at least a round trip; when the
 * reader drains most of a window per round trip, the window doubles (the extra goes out as credit with the next
 * return), up to a bound. A slow or stalled reader drains less and never grows it; without a round trip it never
 * grows. Nothing is judged before the connection has consumed several windows: a reader that never reads still
 * takes in what its socket buffers hold at the speed of the tunnel, and on a loaded machine the measured round trip
 * of a loopback tunnel can be long enough for that burst to look like a reader that keeps up (the stalled-reader
 * bench grew such a connection's window before). Sans-I/O: the caller passes the clock and the round trip, and sends
 * what it is told.
 */
import { WINDOWS_BEFORE_GROWTH } from '../transport/windows.js';

/** A sample counts as window-limited from this share of the window up (credit returns at a quarter). */
const LIMITED_SHARE = 0.45;
/** Shortest span a consumption sample covers: below it, one event-loop turn's burst would look like a rate. */
const MIN_SAMPLE_MS = 10;

export class ReceiveWindow {
  /** Bytes consumed and not yet returned to the peer as credit. */
  private unreturned = 0;
  /** The consumption sample growth is judged by: since when (-1: none yet) and how many bytes. */
  private sampleStartMs = -1;
  private sampleBytes = 0;
  /** Bytes still to be consumed before growth is judged. */
  private untilJudged: number;

  constructor(
    /** The window granted to the peer now, in bytes. */
    public windowBytes: number,
    /** How far it may grow. */
    readonly maxWindowBytes: number,
  ) {
    this.untilJudged = WINDOWS_BEFORE_GROWTH * windowBytes;
  }

  /**
   * The owner consumed `n` bytes. Returns the credit to send now (0: not yet). `nowMs` is read only when the window
   * may grow; `rttMs` is the transport's round trip, undefined when it measures none.
   */
  consumed(n: number, nowMs: () => number, rttMs: number | undefined): number {
    this.unreturned += n;
    let extra = 0;
    if (this.untilJudged > 0) this.untilJudged -= n;
    else if (rttMs !== undefined && this.windowBytes < this.maxWindowBytes) extra = this.growth(n, nowMs(), rttMs);
    if (this.unreturned < this.windowBytes / 4 && extra === 0) return 0;
    const credit = this.unreturned + extra;
    this.unreturned = 0;
    return credit;
  }

  /** Judge the window by what the reader drained per round trip; returns the extra credit when it doubles. */
  private growth(n: number, now: number, rttMs: number): number {
    if (this.sampleStartMs < 0) this.sampleStartMs = now;
    this.sampleBytes += n;
    const elapsed = now - this.sampleStartMs;
    if (elapsed < Math.max(rttMs, MIN_SAMPLE_MS)) return 0;
    const perRoundTrip = (this.sampleBytes / elapsed) * rttMs;
    this.sampleStartMs = now;
    this.sampleBytes = 0;
    if (perRoundTrip < LIMITED_SHARE * this.windowBytes) return 0;
    const grown = Math.min(this.maxWindowBytes, 2 * this.windowBytes);
    const extra = grown - this.windowBytes;
    this.windowBytes = grown;
    return extra;
  }
}
