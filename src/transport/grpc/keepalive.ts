/**
 * HTTP/2 keepalive pings for one session, as gRPC keepalive does: a PING every `timeMs`, and the session is
 * destroyed when one stays unanswered for `timeoutMs`.
 */
import type { Http2Session } from 'node:http2';
import { ErrorCode, KonnectivityError } from '../../protocol/errors.js';

/** Start pinging `session`; returns a function that stops. Timers are unref'd. */
export function startKeepalive(session: Http2Session, timeMs: number, timeoutMs: number): () => void {
  let waiting: NodeJS.Timeout | undefined;
  const interval = setInterval(() => {
    if (session.destroyed || session.closed || waiting) return;
    waiting = setTimeout(() => {
      session.destroy(new KonnectivityError(ErrorCode.TUNNEL_CLOSED, `keepalive ping not answered within ${timeoutMs} ms`));
    }, timeoutMs);
    waiting.unref();
    const sent = session.ping((err) => {
      clearTimeout(waiting);
      waiting = undefined;
      if (err && !session.destroyed) session.destroy(err);
    });
    if (!sent) {
      clearTimeout(waiting);
      waiting = undefined;
    }
  }, timeMs);
  interval.unref();
  const stop = (): void => {
    clearInterval(interval);
    clearTimeout(waiting);
    waiting = undefined;
  };
  session.once('close', stop);
  return stop;
}
