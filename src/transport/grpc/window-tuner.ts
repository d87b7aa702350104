/**
 * Grows one HTTP/2 session's receive windows from bandwidth x delay, with a {@link BdpEstimator}: its streams report
 * the DATA bytes they receive; the tuner sends the estimator's PINGs and applies the windows it returns, to the
 * connection (`setLocalWindowSize`) and to every stream (SETTINGS_INITIAL_WINDOW_SIZE, which applies to the open
 * streams too). Both matter: node:http2 returns connection window as data arrives, stream window only as it is read,
 * so the stream window is what bounds a stream whose reader stalls.
 *
 * Between two node peers one direction must stay within what the socket buffers hold. node:http2 reads nothing
 * while one of its socket writes is pending, so two node peers that both have more in flight than the socket buffers
 * between them hold stop reading at once and wait for each other for ever; as long as one direction stays within
 * DEFAULT_GRPC_NODE_PEER_MAX_WINDOW_BYTES, that end's writes always complete, it keeps reading, and the other end
 * drains. A client guards its window with a send budget (send-budget.ts): it grows its window past the bound only
 * once its own unread sends are within it, and keeps them there while the window is large. A tunnel's client (one
 * call per connection) also gives the window back to the bound when the budget holds its sends while little
 * arrives, so a download is not held to the budget: SETTINGS_INITIAL_WINDOW_SIZE shrinks the one stream's window,
 * and once the server acknowledged it the budget no longer applies. A server that reads while it writes (Go: no
 * `konnectivity-ts-http2` header) turns the budget off.
 *
 * PINGs go out only right after DATA arrived, at most one at a time, so a Go server never counts them as abusive
 * (grpc-go forgives a PING that follows data it sent, which is how its own BDP pings work).
 */
import type { Http2Session } from 'node:http2';
import { BdpEstimator } from './bdp.js';
import type { SendBudget } from './send-budget.js';

const tuners = new WeakMap<Http2Session, WindowTuner>();

/** How long a span of received bytes counts as recent, in ms (two spans are kept). */
const RECENT_SPAN_MS = 100;
/** Less than this share of the budget received in the recent spans: the download the budget holds is alone. */
const QUIET_SHARE = 1 / 8;

/** How a session's windows are tuned. */
export interface TuneOptions {
  /** The window already announced, in bytes. */
  initialWindowBytes: number;
  /** How far it may grow, in bytes. */
  maxWindowBytes: number;
  /** Measure the round trip at once; without it the first PING waits for {@link pingIdle} or for data. */
  idlePing?: boolean;
  /** The client's send budget: the window grows past its bound only while the budget applies. */
  guard?: SendBudget;
  /** One call per connection: the window may be given back to the guard's bound (see the module comment). */
  giveBack?: boolean;
}

class WindowTuner {
  readonly estimator: BdpEstimator;
  /** The connection window last set (it is only raised: shrinking it would not bound one stream more). */
  private connectionWindow: number;
  private readonly guard: SendBudget | undefined;
  private giving = false;
  private recentSince = 0;
  private recentBytes = 0;
  private earlierBytes = 0;

  constructor(
    private readonly session: Http2Session,
    options: TuneOptions,
  ) {
    this.connectionWindow = options.initialWindowBytes;
    this.estimator = new BdpEstimator({ initialWindowBytes: options.initialWindowBytes, maxWindowBytes: options.maxWindowBytes });
    this.guard = options.guard;
    if (this.guard && options.giveBack) this.guard.onHeld = () => this.maybeGiveBack();
    if (options.idlePing ?? true) this.idlePing();
  }

  /** Measure the path's own round trip now, while nothing is queued ahead of the PING. */
  idlePing(): void {
    if (this.estimator.idlePing()) this.ping();
  }

  received(bytes: number): void {
    const now = performance.now();
    if (this.guard?.applies) this.countRecent(bytes, now);
    if (this.estimator.onData(bytes, now)) this.ping();
  }

  private countRecent(bytes: number, now: number): void {
    if (now - this.recentSince >= RECENT_SPAN_MS) {
      this.earlierBytes = now - this.recentSince >= 2 * RECENT_SPAN_MS ? 0 : this.recentBytes;
      this.recentBytes = 0;
      this.recentSince = now;
    }
    this.recentBytes += bytes;
  }

  private ping(): void {
    const session = this.session;
    let sent = false;
    try {
      sent = !session.destroyed && !session.closed && session.ping((err, durationMs) => this.answered(err, durationMs));
    } catch {
      // Too many PINGs outstanding (keepalive's among them): skip this sample.
    }
    if (!sent) this.estimator.onPingFailed();
  }

  private answered(err: Error | null, durationMs: number): void {
    if (err) {
      this.estimator.onPingFailed();
      return;
    }
    const grown = this.estimator.onPingAck(durationMs, performance.now());
    if (grown === undefined || this.session.destroyed || this.session.closed) return;
    this.giving = false;
    const guard = this.guard;
    if (guard?.active && grown > guard.limitBytes && !(guard.applies && guard.open)) {
      // Past the bound only once our own unread sends are within the budget.
      guard.bound(() => this.apply(this.estimator.windowBytes));
      return;
    }
    this.apply(grown);
  }

  private apply(windowBytes: number): void {
    if (this.session.destroyed || this.session.closed) return;
    try {
      if (windowBytes > this.connectionWindow) {
        this.session.setLocalWindowSize(windowBytes);
        this.connectionWindow = windowBytes;
      }
      this.session.settings({ initialWindowSize: windowBytes });
    } catch {
      // The session is going away, or too many SETTINGS are unacknowledged: the next growth sets both again.
    }
  }

  /** The budget holds our sends: if little arrives, give the window back to the bound and send freely. */
  private maybeGiveBack(): void {
    const guard = this.guard!;
    const bound = guard.limitBytes;
    if (this.giving || !guard.active || this.estimator.windowBytes <= bound) return;
    this.countRecent(0, performance.now());
    if (this.recentBytes + this.earlierBytes >= QUIET_SHARE * bound) return;
    if (this.session.destroyed || this.session.closed) return;
    this.giving = true;
    const grown = this.estimator.windowBytes;
    this.estimator.giveBack(bound);
    try {
      this.session.settings({ initialWindowSize: bound }, (err) => {
        // A growth since (it clears `giving`) needs the budget again.
        if (!this.giving) return;
        this.giving = false;
        if (!err) guard.unbound();
      });
    } catch {
      // Not sent (the session is going away, or too many SETTINGS unacknowledged): the window stays as it was.
      this.giving = false;
      this.estimator.giveBack(grown);
    }
  }
}

/**
 * Start growing `session`'s receive window from `options.initialWindowBytes` (already announced) up to
 * `options.maxWindowBytes`. Nothing happens when the maximum is not above the start.
 */
export function tuneWindows(session: Http2Session, options: TuneOptions): void {
  if (options.maxWindowBytes <= options.initialWindowBytes || tuners.has(session)) return;
  tuners.set(session, new WindowTuner(session, options));
}

/** `session` carries a long-lived tunnel: measure its idle round trip now (see {@link tuneWindows}). */
export function pingIdle(session: Http2Session | undefined): void {
  if (session !== undefined) tuners.get(session)?.idlePing();
}

/** A stream of `session` received `bytes` of DATA. */
export function receivedOn(session: Http2Session | undefined, bytes: number): void {
  if (session !== undefined) tuners.get(session)?.received(bytes);
}

/** The receive window the tuner last announced for `session`, undefined when it does not tune it. */
export function tunedWindowOf(session: Http2Session | undefined): number | undefined {
  return session === undefined ? undefined : tuners.get(session)?.estimator.windowBytes;
}

/** The smallest round trip measured on `session`, in ms; undefined before the first PING answer or untuned. */
export function minRttOf(session: Http2Session | undefined): number | undefined {
  const rtt = session === undefined ? undefined : tuners.get(session)?.estimator.minRttMs;
  return rtt === undefined || rtt === Number.POSITIVE_INFINITY ? undefined : rtt;
}
