/**
 * Grows one HTTP/2 session's receive windows from bandwidth x delay, with a {@link BdpEstimator}: its streams report
 * the DATA bytes they receive; the tuner sends the estimator's PINGs and applies the windows it returns, to the
 * connection (`setLocalWindowSize`) and to every stream (SETTINGS_INITIAL_WINDOW_SIZE, which applies to the open
 * streams too). Both matter: node:http2 returns connection window as data arrives, stream window only as it is read,
 * so the stream window is what bounds a stream whose reader stalls.
 *
 * Between two node peers only the server end grows freely. node:http2 reads nothing while one of its socket writes
 * is pending, so two node peers that both have more in flight than the socket buffers between them hold stop
 * reading at once and wait for each other for ever; as long as one direction stays within a window the buffers are
 * known to hold (DEFAULT_GRPC_NODE_PEER_MAX_WINDOW_BYTES), that end's writes always complete, it keeps reading, and
 * the other end drains. A client therefore grows its window only to that bound until the server's response headers
 * show a peer that reads while it writes (a Go server: no `konnectivity-ts-http2` header).
 *
 * PINGs go out only right after DATA arrived, at most one at a time, so a Go server never counts them as abusive
 * (grpc-go forgives a PING that follows data it sent, which is how its own BDP pings work).
 */
import type { Http2Session } from 'node:http2';
import { DEFAULT_GRPC_NODE_PEER_MAX_WINDOW_BYTES } from '../windows.js';
import { BdpEstimator } from './bdp.js';

const tuners = new WeakMap<Http2Session, WindowTuner>();

class WindowTuner {
  readonly estimator: BdpEstimator;

  constructor(
    private readonly session: Http2Session,
    initialWindowBytes: number,
    readonly maxWindowBytes: number,
    held: boolean,
    idlePing: boolean,
  ) {
    const heldMax = Math.max(initialWindowBytes, Math.min(maxWindowBytes, DEFAULT_GRPC_NODE_PEER_MAX_WINDOW_BYTES));
    this.estimator = new BdpEstimator({ initialWindowBytes, maxWindowBytes: held ? heldMax : maxWindowBytes });
    if (idlePing) this.idlePing();
  }

  /** Measure the path's own round trip now, while nothing is queued ahead of the PING. */
  idlePing(): void {
    if (this.estimator.idlePing()) this.ping();
  }

  received(bytes: number): void {
    if (this.estimator.onData(bytes, performance.now())) this.ping();
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
    try {
      this.session.setLocalWindowSize(grown);
      this.session.settings({ initialWindowSize: grown });
    } catch {
      // The session is going away, or too many SETTINGS are unacknowledged: the next growth sets both again.
    }
  }
}

/**
 * Start growing `session`'s receive window from `initialWindowBytes` (already announced) up to `maxWindowBytes`;
 * `held` keeps it within DEFAULT_GRPC_NODE_PEER_MAX_WINDOW_BYTES until {@link releaseWindow}. `idlePing` measures the
 * round trip at once; without it the first PING waits for {@link pingIdle} or for data (a server does not know yet
 * whether the connection carries a tunnel or one short call). Nothing happens when the maximum is not above the start.
 */
export function tuneWindows(session: Http2Session, initialWindowBytes: number, maxWindowBytes: number, held = false, idlePing = true): void {
  if (maxWindowBytes <= initialWindowBytes || tuners.has(session)) return;
  tuners.set(session, new WindowTuner(session, initialWindowBytes, maxWindowBytes, held, idlePing));
}

/** `session` carries a long-lived tunnel: measure its idle round trip now (see {@link tuneWindows}). */
export function pingIdle(session: Http2Session | undefined): void {
  if (session !== undefined) tuners.get(session)?.idlePing();
}

/** The peer of `session` reads while it writes: its window may grow to the maximum. */
export function releaseWindow(session: Http2Session | undefined): void {
  const tuner = session === undefined ? undefined : tuners.get(session);
  if (tuner) tuner.estimator.maxWindowBytes = tuner.maxWindowBytes;
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
