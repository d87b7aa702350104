/**
 * Backpressure without head-of-line blocking (reference issues #180, #881): a stalled reader holds only its own
 * connection, and the bytes held for it stay within its limit.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { once } from 'node:events';
import type net from 'node:net';
import { Engine, receiveAll, sendPattern, tcpServer } from '../../helpers/engine.js';
import { expectNoLeaks, snapshotResources, type ResourceSnapshot } from '../../helpers/leaks.js';

const MiB = 1024 * 1024;
const LIMIT = 256 * 1024;

/** Wait until `cond()` holds, checking on every turn of the event loop (no fixed sleeps). */
async function until(cond: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

for (const substreams of [false, true]) {
  describe(`no head-of-line blocking over ${substreams ? 'substreams' : 'one shared stream with credits'}`, () => {
    let before: ResourceSnapshot;
    let engine: Engine;
    beforeEach(() => {
      before = snapshotResources();
      engine = new Engine({ substreams, server: { connectionBufferBytes: LIMIT } });
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

      // A's sender kept writing all along; what the tunnel holds for A is bounded by its limit.
      if (substreams) {
        // Per-stream windows: the server end holds at most the readable buffer plus one window.
        expect(a.bytesRead).toBeLessThanOrEqual(LIMIT + 2 * 64 * 1024 + 4 * MiB);
      } else {
        expect(a.bytesRead).toBeLessThanOrEqual(LIMIT);
      }
      expect(floodWritten).toBeGreaterThan(a.bytesRead);
      stopFlood = true;
      a.destroy();
      b.destroy();
      await Promise.all([once(a, 'close'), once(b, 'close')]);
    });

    it('a target that does not read stalls only its own connection (agent side)', async () => {
      const stalled: net.Socket[] = [];
      const sink = await tcpServer((s) => {
        s.pause();
        stalled.push(s);
      });
      engine.defer(() => sink.close());
      let echoed!: Promise<void>;
      const echo = await tcpServer((s) => {
        s.pipe(s);
        echoed = once(s, 'close').then(() => {});
      });
      engine.defer(() => echo.close());
      await engine.agent({ connectionBufferBytes: LIMIT });

      const a = await engine.server.dial(sink.address);
      // Keep writing to A until the tunnel pushes back (the write callback stops coming).
      const chunk = Buffer.alloc(32 * 1024, 2);
      let blocked = false;
      for (let i = 0; i < 2000 && !blocked; i++) {
        if (!a.write(chunk)) {
          const drained = once(a, 'drain').then(() => false);
          const timeout = new Promise<boolean>((r) => setTimeout(() => r(true), 300));
          blocked = await Promise.race([drained, timeout]);
        }
      }
      expect(blocked).toBe(true);
      // Bounded: what left A's socket is at most the limit plus the kernel's socket buffers and the stream window.
      expect(a.bytesWritten).toBeLessThan(64 * MiB);

      const b = await engine.server.dial(echo.address);
      const [sent, got] = await Promise.all([sendPattern(b, 16 * MiB), receiveAll(b, 16 * MiB)]);
      expect(got).toBe(sent);
      b.end();
      a.destroy();
      await Promise.all([once(a, 'close'), once(b, 'close'), echoed]);
    });
  });
}

describe('legacy regime (a Go peer: no credits)', () => {
  it('a stalled reader pauses the shared stream but memory stays bounded and the transfer completes', async () => {
    const before = snapshotResources();
    const engine = new Engine({ server: { connectionBufferBytes: LIMIT } });
    try {
      let served!: Promise<string>;
      const bulk = await tcpServer((s) => (served = sendPattern(s, 8 * MiB)));
      engine.defer(() => bulk.close());
      await engine.agent({ connectionBufferBytes: LIMIT, credits: false });
      const a = await engine.server.dial(bulk.address);
      a.pause();
      await until(() => a.readableLength > 0, 'data to arrive');
      // Give the agent time to push what it can: the server pauses the stream past the limit.
      await new Promise((r) => setTimeout(r, 200));
      expect(a.bytesRead).toBeLessThan(8 * MiB);
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
