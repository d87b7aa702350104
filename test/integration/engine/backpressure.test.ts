/**
 * Backpressure without head-of-line blocking (reference issues #180, #881): a stalled reader holds only its own
 * connection, and the bytes held for it stay within its limit. Each bound below is the real one, from the limits
 * in play (the per-connection buffer, the in-memory transport's high-water mark, a DATA chunk, a sink's buffer),
 * checked once the flow has stopped: after a number of event-loop turns without progress, never after a time.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { once } from 'node:events';
import { Duplex } from 'node:stream';
import { tcpDialer } from '../../../src/agent/dialer.js';
import { MAX_DATA_CHUNK_BYTES } from '../../../src/transport/windows.js';
import { Engine, receiveAll, sendPattern, tcpServer } from '../../helpers/engine.js';
import { expectNoLeaks, snapshotResources, type ResourceSnapshot } from '../../helpers/leaks.js';

const MiB = 1024 * 1024;
const KiB = 1024;
/** The per-connection buffer (and credit window) of both sides. */
const LIMIT = 256 * KiB;
/** What the in-memory transport holds undelivered before its write() returns false. */
const TRANSPORT_HWM = 64 * KiB;
/** The writable buffer of the endpoint that never reads. */
const SINK_HWM = 64 * KiB;
/** A TunnelSocket's readable buffer: what a paused reader takes in before the connection holds bytes for it. */
const SOCKET_READ_BUFFER = 64 * KiB;
const CHUNK = MAX_DATA_CHUNK_BYTES;

/** Wait until `cond()` holds, checking on every turn of the event loop (no fixed sleeps). */
async function until(cond: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/**
 * Wait until `value()` has not changed for `turns` turns of the event loop in a row: the flow it measures has
 * stopped (the in-memory transport and the tunnel move data only on immediates and ticks).
 */
async function settled(value: () => number, turns = 200): Promise<number> {
  let last = value();
  for (let same = 0; same < turns; same++) {
    await new Promise((r) => setImmediate(r));
    const now = value();
    if (now !== last) {
      last = now;
      same = -1;
    }
  }
  return last;
}

/** An endpoint that takes writes into its buffer (SINK_HWM) and never reads them, as a target that stalls. */
function stalledEndpoint(): { endpoint: Duplex; accepted: () => number } {
  const endpoint = new Duplex({
    writableHighWaterMark: SINK_HWM,
    read() {},
    // The callback is never called: the first chunk stays "being written", the rest queue behind it.
    write() {},
  });
  // Nothing ever completes, so everything written is still in its buffer.
  return { endpoint, accepted: () => endpoint.writableLength };
}

for (const substreams of [false, true]) {
  describe(`no head-of-line blocking over ${substreams ? 'substreams' : 'one shared stream with credits'}`, () => {
    let before: ResourceSnapshot;
    let engine: Engine;
    beforeEach(() => {
      before = snapshotResources();
      engine = new Engine({ substreams, highWaterMarkBytes: TRANSPORT_HWM, server: { connectionBufferBytes: LIMIT } });
    });
    afterEach(async () => {
      await engine.close();
      await expectNoLeaks(before);
    });

    it('a stalled reader (server side) does not stop another connection, and holds at most its limit', async () => {
      // Target A floods its connection; target B serves 64 MiB.
      let floodWritten = 0;
      let stopFlood = false;
      const flood = await tcpServer((s) => {
        const chunk = Buffer.alloc(64 * 1024, 1);
        const pump = (): void => {
          while (!stopFlood && s.writable) {
            floodWritten += chunk.length;
            if (!s.write(chunk)) return void s.once('drain', pump);
          }
        };
        pump();
      });
      engine.defer(() => flood.close());
      let served!: Promise<string>;
      const bulk = await tcpServer((s) => (served = sendPattern(s, 64 * MiB)));
      engine.defer(() => bulk.close());
      await engine.agent({ connectionBufferBytes: LIMIT });

      const a = await engine.server.dial(flood.address);
      a.pause(); // the stalled reader
      await until(() => a.bytesRead > 0 && floodWritten > 4 * LIMIT, 'the flood to fill the buffers');

      const b = await engine.server.dial(bulk.address);
      const got = await receiveAll(b, 64 * MiB);
      expect(got).toBe(await served);

      // A's sender kept writing all along; what reached the server for A is bounded by its limit: what the paused
      // socket took into its readable buffer, then the credit window (shared stream) or the buffer past which the
      // substream is paused, plus the DATA chunk that crossed it.
      const held = await settled(() => a.bytesRead);
      expect(held).toBeGreaterThanOrEqual(LIMIT);
      expect(held).toBeLessThanOrEqual(LIMIT + SOCKET_READ_BUFFER + CHUNK);
      expect(floodWritten).toBeGreaterThan(held);
      stopFlood = true;
      a.destroy();
      b.destroy();
      await Promise.all([once(a, 'close'), once(b, 'close')]);
    });

    it('a target that does not read stalls only its own connection (agent side)', async () => {
      const sink = stalledEndpoint();
      let echoed!: Promise<void>;
      const echo = await tcpServer((s) => {
        s.pipe(s);
        echoed = once(s, 'close').then(() => {});
      });
      engine.defer(() => echo.close());
      await engine.agent({
        connectionBufferBytes: LIMIT,
        dialer: (req) => (req.address === 'stalled.test:1' ? Promise.resolve(sink.endpoint) : tcpDialer()(req)),
      });

      const a = await engine.server.dial('stalled.test:1');
      // Far more than any limit, written without waiting: the tunnel must push back.
      const total = 8 * MiB;
      for (let i = 0; i < total / (32 * KiB); i++) a.write(Buffer.alloc(32 * KiB, 2));
      await until(() => sink.accepted() >= SINK_HWM && a.bytesWritten >= LIMIT, 'the sink and the window to fill');
      const sent = await settled(() => a.bytesWritten);
      // What left A is bounded: the window (or, on a substream, the agent's buffer before it pauses the substream
      // plus what the transport holds undelivered), what the endpoint took into its buffer, and the chunks in flight
      // as each limit was crossed.
      const bound = substreams ? LIMIT + TRANSPORT_HWM + SINK_HWM + 3 * CHUNK : LIMIT + SINK_HWM + 2 * CHUNK;
      expect(sent).toBeLessThanOrEqual(bound);
      expect(sent).toBeLessThan(total);
      // The rest waits in A's own buffer: write() says so.
      expect(a.writableNeedDrain).toBe(true);

      const b = await engine.server.dial(echo.address);
      const [sentB, got] = await Promise.all([sendPattern(b, 16 * MiB), receiveAll(b, 16 * MiB)]);
      expect(got).toBe(sentB);
      b.end();
      a.destroy();
      await Promise.all([once(a, 'close'), once(b, 'close'), echoed]);
    });
  });
}

describe('legacy regime (a Go peer: no credits)', () => {
  it('a stalled reader pauses the shared stream, holds at most its buffer, and the transfer completes', async () => {
    const before = snapshotResources();
    const engine = new Engine({ server: { connectionBufferBytes: LIMIT } });
    try {
      let served!: Promise<string>;
      const bulk = await tcpServer((s) => (served = sendPattern(s, 8 * MiB)));
      engine.defer(() => bulk.close());
      const { tunnel } = await engine.agent({ connectionBufferBytes: LIMIT, credits: false });
      const a = await engine.server.dial(bulk.address);
      a.pause();
      // The server pauses the whole stream past the buffer; the agent sees it as its writes being refused.
      await until(() => tunnel.stream.writableNeedDrain, 'the agent to be pushed back');
      // The paused socket's readable buffer, then the connection buffer, plus the chunk that crossed it.
      const held = await settled(() => a.bytesRead);
      expect(held).toBeGreaterThan(LIMIT);
      expect(held).toBeLessThanOrEqual(LIMIT + SOCKET_READ_BUFFER + CHUNK);
      const got = receiveAll(a, 8 * MiB);
      a.resume();
      expect(await got).toBe(await served);
      a.destroy();
      await once(a, 'close');
    } finally {
      await engine.close();
      await expectNoLeaks(before);
    }
  });
});
