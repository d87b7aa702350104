/**
 * Relay raw bytes between a client socket and a tunnel socket, both ways, with backpressure: the source is paused
 * when the destination's write() returns false and resumed on its 'drain', so a slow reader never grows a queue
 * and never slows any other connection.
 */
import type { Duplex } from 'node:stream';
import { whenClosed } from '../../../tunnel/stream-lifecycle.js';
import { TunnelSocket } from '../../../tunnel/tunnel-socket.js';

/** What one relay moved and how it ended. */
export interface RelayResult {
  /** Bytes from the client to the tunnel. */
  bytesFromClient: number;
  /** Bytes from the tunnel to the client. */
  bytesToClient: number;
  /** The first error on either side, if any. */
  error: Error | undefined;
}

/** Timeouts for the end of a relay. */
export interface RelayOptions {
  /**
   * Once one side has closed and everything was flushed to the other, how long the other may stay open waiting
   * for its peer's FIN before it is destroyed. Default 2000.
   */
  lingerMs?: number;
  /**
   * Once one side has closed, how long the other may take to flush what is queued for it (a peer that stopped
   * reading) before it is destroyed. Default 30000.
   */
  flushTimeoutMs?: number;
}

/**
 * Start relaying. Half-closes travel across: client EOF ends the tunnel (a half-close where the agent can hear one,
 * else CLOSE_REQ as the reference sends), tunnel EOF ends the client. When either side closes, the other is
 * ended, its input is read and dropped, and it is destroyed after `lingerMs` (from its flush) or `flushTimeoutMs`.
 * An error on either side destroys both. Resolves once both sides have closed; never rejects.
 */
export function relay(client: Duplex, tunnel: Duplex, options: RelayOptions = {}): Promise<RelayResult> {
  const lingerMs = options.lingerMs ?? 2000;
  const flushTimeoutMs = options.flushTimeoutMs ?? 30_000;
  const result: RelayResult = { bytesFromClient: 0, bytesToClient: 0, error: undefined };
  return new Promise((resolve) => {
    let open = 2;
    const timers = new Set<NodeJS.Timeout>();
    const fail = (err: Error): void => {
      result.error ??= err;
      client.destroy();
      tunnel.destroy();
    };
    const pump = (src: Duplex, dst: Duplex, count: (n: number) => void, gather: boolean): void => {
      // The tunnel hands over a DATA payload in pieces (the HTTP/2 frames it came in): what arrives in one tick goes
      // to the client socket in one writev, flushed at the end of the tick, so a lone small write waits for nothing.
      let corked = false;
      const uncork = (): void => {
        corked = false;
        dst.uncork();
      };
      src.on('data', (chunk: Buffer) => {
        count(chunk.length);
        if (dst.destroyed || dst.writableEnded) return; // the other side is gone: read and drop
        if (gather && !corked) {
          corked = true;
          dst.cork();
          process.nextTick(uncork);
        }
        if (!dst.write(chunk)) src.pause();
      });
      dst.on('drain', () => {
        if (!src.destroyed) src.resume();
      });
      const onEnd = (): void => {
        if (dst.destroyed || dst.writableEnded) return;
        // An agent that cannot hear the half-close (a Go agent) gets what the reference sends on a client's EOF.
        if (dst instanceof TunnelSocket && !dst.halfCloseCarried) void dst.close();
        else dst.end();
      };
      // The client may have sent its EOF before the tunnel was open.
      if (src.readableEnded) onEnd();
      else src.on('end', onEnd);
    };
    const destroyLater = (stream: Duplex, ms: number): NodeJS.Timeout => {
      const t = setTimeout(() => stream.destroy(), ms);
      t.unref();
      timers.add(t);
      return t;
    };
    // Once one side has closed, the other gets its end, its input is dropped, and it is destroyed after a linger.
    const onClosed = (self: Duplex, other: Duplex) => (): void => {
      open -= 1;
      if (open === 0) {
        for (const t of timers) clearTimeout(t);
        resolve(result);
        return;
      }
      if (self.errored) {
        result.error ??= self.errored;
        other.destroy();
        return;
      }
      if (other.destroyed) return;
      if (!other.writableEnded) other.end();
      other.resume();
      const flush = destroyLater(other, flushTimeoutMs);
      const linger = (): void => {
        clearTimeout(flush);
        timers.delete(flush);
        destroyLater(other, lingerMs);
      };
      if (other.writableFinished) linger();
      else other.once('finish', linger);
    };
    pump(client, tunnel, (n) => (result.bytesFromClient += n), false);
    pump(tunnel, client, (n) => (result.bytesToClient += n), true);
    client.on('error', fail);
    tunnel.on('error', fail);
    // Either side may have closed already (a race with the dial).
    whenClosed(client, onClosed(client, tunnel));
    whenClosed(tunnel, onClosed(tunnel, client));
    client.resume();
    tunnel.resume();
  });
}
