/**
 * Sizing an HTTP/2 receive window from bandwidth x delay, as grpc-go's BDP estimator does: while data arrives, a
 * PING is sent, and the bytes that arrive until its ACK are a sample of what the sender has in flight. When the
 * samples show that the window is what holds the sender, the window doubles, up to a bound; once the link (or a
 * CPU) holds it instead, the samples stay below the window and it stays.
 *
 * Unlike grpc-go, a sample is scaled to the smallest round trip seen rather than taken whole: a PING answered behind
 * queued data measures the queue, and a window grown from it only fills buffers. On loopback, where the round trip
 * is a fraction of a millisecond, the window stays where it started.
 *
 * Sans-I/O: the caller reports bytes and PING round trips with its own clock and applies the window it returns.
 */

/** Options of {@link BdpEstimator}, in bytes. */
export interface BdpEstimatorOptions {
  /** The window the connection starts with (announced in SETTINGS and WINDOW_UPDATE). */
  initialWindowBytes: number;
  /** Never grow beyond this (it may be raised later, see `maxWindowBytes`). */
  maxWindowBytes: number;
}

/**
 * A sample counts as window-limited from this share of the window up. node:http2 returns window only once half of
 * it was consumed, and a sender it holds was measured moving 0.42-0.62 of the window per round trip on a 20 ms link
 * (before the scaling to the smallest round trip, which takes off another 10-20 % under load); at 0.45 most samples
 * missed and a 2 MiB window stayed for most of a 64 MiB transfer. A sender held by anything else (the link, a CPU)
 * moves less and less of the window as it grows. (grpc-go, which returns window at a quarter, asks for 2/3.)
 */
const LIMITED_SHARE = 1 / 3;

/** Round trips seen before the smallest is trusted: the first PING may wait for a cold start. */
const MIN_SAMPLES = 3;
/**
 * Pause between samples that did not grow the window; doubles each time, up to the maximum, reset on growth. A quarter
 * of a second at most: one PING per 250 ms costs nothing, and a transfer of a few seconds still gets samples.
 */
const MIN_SAMPLE_SPACING_MS = 10;
const MAX_SAMPLE_SPACING_MS = 250;

export class BdpEstimator {
  /** The receive window to announce, in bytes. Grows; only `giveBack` lowers it. */
  windowBytes: number;
  /** Smallest PING round trip seen, in ms (Infinity before the first). */
  minRttMs = Number.POSITIVE_INFINITY;
  /** The bound; raising it lets a window that stopped at the old bound grow on. */
  maxWindowBytes: number;
  private samples = 0;
  private pinging = false;
  private sampleBytes = 0;
  private spacingMs = 0;
  private nextSampleAtMs = 0;

  constructor(options: BdpEstimatorOptions) {
    this.windowBytes = options.initialWindowBytes;
    this.maxWindowBytes = options.maxWindowBytes;
  }

  /** True while the window may still grow. */
  get growing(): boolean {
    return this.windowBytes < this.maxWindowBytes;
  }

  /**
   * A PING is going out that no data waits behind (the connection just opened), so its round trip is the path's
   * own. Returns false when a PING is already out.
   */
  idlePing(): boolean {
    if (this.pinging) return false;
    this.pinging = true;
    this.sampleBytes = 0;
    return true;
  }

  /** `bytes` of DATA arrived at `nowMs`. Returns true when the caller should send a PING now. */
  onData(bytes: number, nowMs: number): boolean {
    if (this.pinging) {
      this.sampleBytes += bytes;
      return false;
    }
    if (!this.growing || nowMs < this.nextSampleAtMs) return false;
    this.pinging = true;
    this.sampleBytes = bytes;
    return true;
  }

  /**
   * The PING was answered `rttMs` after it was sent, at `nowMs`. Returns the new window when it grows, otherwise
   * undefined.
   */
  onPingAck(rttMs: number, nowMs: number): number | undefined {
    if (!this.pinging) return undefined;
    this.pinging = false;
    const rtt = Math.max(rttMs, 0.001);
    if (rtt < this.minRttMs) this.minRttMs = rtt;
    this.samples++;
    let grown: number | undefined;
    // The sample at the queue-free round trip: what was in flight on the path itself.
    const pathBytes = (this.sampleBytes / rtt) * this.minRttMs;
    if (this.samples >= MIN_SAMPLES && pathBytes >= LIMITED_SHARE * this.windowBytes && this.growing) {
      grown = this.windowBytes = Math.min(this.maxWindowBytes, 2 * this.windowBytes);
    }
    this.spacingMs = grown !== undefined ? 0 : Math.min(MAX_SAMPLE_SPACING_MS, Math.max(MIN_SAMPLE_SPACING_MS, 2 * this.spacingMs));
    this.nextSampleAtMs = nowMs + this.spacingMs;
    return grown;
  }

  /** The window was set back to `windowBytes` (a node client that sends more than it receives, window-tuner.ts). */
  giveBack(windowBytes: number): void {
    this.windowBytes = Math.min(this.maxWindowBytes, windowBytes);
  }

  /** The PING failed (the session is going away): forget the sample. */
  onPingFailed(): void {
    this.pinging = false;
  }
}
