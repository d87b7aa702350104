/**
 * The PacketStream compliance suite: the behaviour every transport (memory, gRPC, yamux) must share, as
 * src/transport/packet-stream.ts describes it. It registers vitest tests; call it from a transport's own test file:
 *
 *   import { describePacketStreamCompliance } from '../../../compliance/packet-stream.js';
 *
 *   describePacketStreamCompliance('grpc over TCP', async () => {
 *     const { client, server, close } = await startMyTransportPair(); // port 0, loopback
 *     return { a: client, b: server, cleanup: close };
 *   }, { highWaterMarkBytes: 256 * 1024, inFlightBytes: 4 * 1024 * 1024 });
 *
 * `makePair` is called once per test and must give two fresh, open ends of one stream (`a.write()` reaches `b`
 * and back). `a` is the end that opened it (a gRPC client, the agent's side), `b` the end that accepted it: a few
 * tests are one-way because a gRPC server's close() ends the whole call, while a client's close() is a half-close.
 * `cleanup` (optional) releases whatever else the pair needed (servers, sockets); it runs after both ends are
 * closed or destroyed. Every test checks for leaked handles and timers (test/helpers/leaks.ts) from before
 * `makePair` to after `cleanup`. Options: `supportsSubstreams` runs the substream tests; `highWaterMarkBytes` and
 * `inFlightBytes` set the backpressure bound; `remoteMetadata` is what each end must see from its peer.
 *
 * Backpressure bound: a writer that waits for 'drain' after write() returned false may have at most
 * `highWaterMarkBytes + inFlightBytes + one packet` of payload that the peer has not yet read. `inFlightBytes` is
 * what the transport may hold below its own high-water mark (HTTP/2 or yamux windows, socket buffers).
 */
import { describe, expect, it } from 'vitest';
import {
  closeRequest,
  dataPacket,
  drainPacket,
  encodePacket,
  isKonnectivityError,
  type Packet,
} from '../../src/protocol/index.js';
import type { Metadata, PacketStream } from '../../src/transport/packet-stream.js';
import { snapshotResources } from '../helpers/leaks.js';
import {
  expectSamePackets,
  iterate,
  mixedPackets,
  pattern,
  record,
  runThenTearDown,
  turn,
  until,
  waitEvent,
  withTimeout,
  writeAll,
  type Recorded,
} from './helpers.js';

/** Two ends of one stream, fresh for every test. */
export interface PacketStreamPair {
  a: PacketStream;
  b: PacketStream;
  /** Release what else the pair holds (servers, client channels); runs after both ends are done. */
  cleanup?: () => Promise<void>;
}

export interface PacketStreamComplianceOptions {
  /** The pair exposes `substreams` on both ends (yamux-like); runs the substream tests. Default false. */
  supportsSubstreams?: boolean;
  /** The writer's high-water mark in payload bytes, as the pair was configured. Default 1 MiB. */
  highWaterMarkBytes?: number;
  /** Bytes the transport may hold in flight beyond the high-water mark (windows, socket buffers). Default 0. */
  inFlightBytes?: number;
  /** Metadata each end must see from its peer (each listed key with exactly these values; others may exist). */
  remoteMetadata?: { a?: Metadata; b?: Metadata };
  /** Resource types the leak check ignores for this transport (e.g. a process-wide pool it keeps). */
  ignoreResources?: readonly string[];
  /** Largest DATA payload to send, in bytes (default 1 MiB; keep under the transport's message limit). */
  maxDataBytes?: number;
}

/** Register the compliance tests for a transport. See the module comment. */
export function describePacketStreamCompliance(
  name: string,
  makePair: () => Promise<PacketStreamPair>,
  options: PacketStreamComplianceOptions = {},
): void {
  const hwm = options.highWaterMarkBytes ?? 1024 * 1024;
  const inFlight = options.inFlightBytes ?? 0;
  const maxData = options.maxDataBytes ?? 1024 * 1024;
  /** DATA payload size for the backpressure tests: a few packets fill the high-water mark. */
  const chunk = Math.max(1, Math.min(64 * 1024, Math.floor(hwm / 4)));

  /**
   * Write DATA until write() returns false (the peer's reader is paused); returns what was written. Fails when that
   * never happens within a generous multiple of what the transport may hold.
   */
  async function fillUntilFalse(stream: PacketStream, what: string): Promise<Packet[]> {
    const limit = 4 * (hwm + inFlight) + 64 * chunk;
    const sent: Packet[] = [];
    for (;;) {
      const p = dataPacket(BigInt(sent.length), pattern(chunk, sent.length));
      sent.push(p);
      if (!stream.write(p)) return sent;
      if (sent.length * chunk > limit) throw new Error(`write() never returned false on ${what} (${limit} bytes)`);
      // Let the transport move bytes, as a real writer would between writes.
      if (sent.length % 16 === 0) await turn();
    }
  }

  /** Run `body` with a fresh pair; always tear it down and check for leaks (runThenTearDown). */
  async function withPair(body: (a: Recorded, b: Recorded) => Promise<void>): Promise<void> {
    const before = snapshotResources();
    const pair = await withTimeout(makePair(), 'makePair()');
    const a = record(pair.a);
    const b = record(pair.b);
    await runThenTearDown(() => body(a, b), {
      streams: () => [a, b],
      cleanup: pair.cleanup,
      before,
      ignoreResources: options.ignoreResources,
    });
  }

  describe(`PacketStream compliance: ${name}`, () => {
    it('delivers many packets in order both ways, including large DATA', async () => {
      await withPair(async (a, b) => {
        const toB = mixedPackets(300, 1, maxData);
        const toA = mixedPackets(300, 2, maxData);
        await Promise.all([
          writeAll(a.stream, toB),
          writeAll(b.stream, toA),
          until(() => b.packets.length >= toB.length, 'b to receive every packet'),
          until(() => a.packets.length >= toA.length, 'a to receive every packet'),
        ]);
        expectSamePackets(b.packets, toB);
        expectSamePackets(a.packets, toA);
      });
    });

    it('returns false past the high-water mark and emits drain once the reader consumes', async () => {
      await withPair(async (a, b) => {
        const bound = hwm + inFlight + chunk;
        // A slow reader: it holds every packet for a turn of the event loop.
        b.stream.on('packet', () => {
          b.stream.pause();
          setImmediate(() => b.stream.resume());
        });
        const total = Math.max(4 * (hwm + inFlight), 8 * chunk);
        let sawFalse = false;
        let maxOutstanding = 0;
        for (let i = 0, sent = 0; sent < total; i++) {
          const ok = a.stream.write(dataPacket(BigInt(i), pattern(chunk, i)));
          sent += chunk;
          maxOutstanding = Math.max(maxOutstanding, sent - b.dataBytes);
          if (!ok) {
            sawFalse = true;
            expect(a.stream.writableNeedDrain).toBe(true);
            await waitEvent(a.stream, 'drain', "a's 'drain'");
            expect(a.stream.writableNeedDrain).toBe(false);
          }
        }
        expect(sawFalse).toBe(true);
        expect(maxOutstanding).toBeLessThanOrEqual(bound);
        await until(() => b.dataBytes >= total, 'b to read everything');
      });
    });

    it('pause() stops delivery and pushes back on the writer; resume() restarts it', async () => {
      await withPair(async (a, b) => {
        b.stream.pause();
        expect(b.stream.isPaused).toBe(true);
        const sent = await fillUntilFalse(a.stream, 'a stream whose reader is paused');
        // Listen at once: a transport may move its own buffer into the socket and drain before the reader resumes.
        let drained = false;
        a.stream.once('drain', () => (drained = true));
        // Give the transport time to deliver what it could; the paused reader must see none of it.
        for (let i = 0; i < 20; i++) await turn();
        expect(b.packets).toHaveLength(0);
        b.stream.resume();
        expect(b.stream.isPaused).toBe(false);
        await until(() => b.packets.length === sent.length && drained, 'delivery and drain after resume');
        expectSamePackets(b.packets, sent);
      });
    });

    it('random pause()/resume() on the reader never loses, duplicates or reorders a packet', async () => {
      await withPair(async (a, b) => {
        let state = 12345;
        const coin = (): boolean => ((state = (Math.imul(state, 1103515245) + 12345) >>> 0) & 0x100) !== 0;
        // Toggle inside delivery (re-entrant), and from immediates, the two ways an engine does it.
        b.stream.on('packet', () => {
          if (coin()) b.stream.pause();
          if (coin()) setImmediate(() => b.stream.resume());
          else if (coin()) b.stream.resume();
        });
        const keepAlive = setInterval(() => b.stream.resume(), 5).unref();
        try {
          const sent = mixedPackets(500, 11, 32 * 1024);
          await writeAll(a.stream, sent);
          await until(() => b.packets.length >= sent.length, 'every packet through the toggling reader');
          expectSamePackets(b.packets, sent);
        } finally {
          clearInterval(keepAlive);
        }
      });
    });

    it("holds 'end' while paused and delivers it after the queued packets on resume", async () => {
      await withPair(async (a, b) => {
        b.stream.pause();
        const sent = mixedPackets(20, 3, 4096);
        for (const p of sent) a.stream.write(p);
        const aClosed = a.stream.close();
        for (let i = 0; i < 20; i++) await turn();
        expect(b.packets).toHaveLength(0);
        expect(b.events).not.toContain('end');
        b.stream.resume();
        await until(() => b.events.includes('end'), "b's 'end'");
        expectSamePackets(b.packets, sent);
        expect(b.packetsAtEnd).toBe(sent.length);
        await b.stream.close();
        await aClosed;
      });
    });

    for (const from of ['a', 'b'] as const) {
      it(`close() from ${from} resolves both sides with 'end' then 'close'`, async () => {
        await withPair(async (a, b) => {
          const [closer, other] = from === 'a' ? [a, b] : [b, a];
          const sent = mixedPackets(50, 4, 16 * 1024);
          await writeAll(closer.stream, sent);
          // The peer closes its side once it sees ours end, as the engine does.
          other.stream.once('end', () => void other.stream.close());
          const closing = closer.stream.close();
          expect(closer.stream.closed).toBe(true);
          await closing;
          await until(() => a.closeCount > 0 && b.closeCount > 0, "'close' on both sides");
          expectSamePackets(other.packets, sent);
          expect(other.packetsAtEnd, "'end' comes after every packet").toBe(sent.length);
          for (const s of [a, b]) {
            expect(s.events).toEqual(['end', 'close']);
            expect(s.errors).toEqual([]);
            expect(s.closeErr).toBeUndefined();
            expect(s.stream.errored).toBeUndefined();
            expect(s.stream.closed).toBe(true);
          }
        });
      });

      it(`destroy(err) from ${from} reaches every waiter on both sides`, async () => {
        await withPair(async (a, b) => {
          const [destroyer, other] = from === 'a' ? [a, b] : [b, a];
          const iterators = [iterate(destroyer.stream), iterate(other.stream)];
          // A close() pending on a: after a half-close, a waits for b, which only resets. (Not the other way round:
          // a gRPC server's close() finishes the call by itself.)
          const aClosing = from === 'b' ? a.stream.close() : undefined;
          const boom = new Error('boom');
          destroyer.stream.destroy(boom);
          expect(destroyer.stream.closed).toBe(true);
          expect(destroyer.stream.errored).toBe(boom);
          await expect(destroyer.stream.close()).rejects.toBe(boom);
          await until(() => a.closeCount > 0 && b.closeCount > 0, "'close' on both sides");
          expect(destroyer.errors).toEqual([boom]);
          expect(destroyer.closeErr).toBe(boom);
          expect(other.errors).toHaveLength(1);
          const remote = other.errors[0]!;
          expect(isKonnectivityError(remote), `peer error should be a KonnectivityError: ${String(remote)}`).toBe(true);
          expect(other.closeErr).toBe(remote);
          expect(other.stream.errored).toBe(remote);
          if (aClosing) await expect(aClosing).rejects.toBe(remote);
          await expect(iterators[0]).rejects.toBe(boom);
          await expect(iterators[1]).rejects.toBe(remote);
        });
      });

      it(`destroy() without an error from ${from} fails the peer with one`, async () => {
        await withPair(async (a, b) => {
          const [destroyer, other] = from === 'a' ? [a, b] : [b, a];
          destroyer.stream.destroy();
          await until(() => a.closeCount > 0 && b.closeCount > 0, "'close' on both sides");
          expect(destroyer.errors).toEqual([]);
          expect(destroyer.closeErr).toBeUndefined();
          await expect(destroyer.stream.close()).resolves.toBeUndefined();
          expect(other.errors).toHaveLength(1);
          expect(isKonnectivityError(other.errors[0])).toBe(true);
          expect(other.closeErr).toBe(other.errors[0]);
          await expect(other.stream.close()).rejects.toBe(other.errors[0]);
        });
      });
    }

    it('a reset reaches a paused reader and a writer waiting for drain', async () => {
      await withPair(async (a, b) => {
        b.stream.pause();
        await fillUntilFalse(a.stream, 'a stream whose reader is paused');
        const blocked = waitEvent(a.stream, 'drain', "a's 'drain'");
        blocked.catch(() => {});
        const boom = new Error('reader gone');
        b.stream.destroy(boom);
        await expect(blocked).rejects.toThrow(/closed/);
        await until(() => a.closeCount > 0 && b.closeCount > 0, "'close' on both sides");
        expect(b.errors).toEqual([boom]);
        expect(a.errors).toHaveLength(1);
        expect(a.stream.write(drainPacket())).toBe(false);
      });
    });

    it('after a.close() (half-close), b can still write to a until b closes too', async () => {
      await withPair(async (a, b) => {
        const aClosing = a.stream.close();
        await until(() => b.events.includes('end'), "b's 'end'");
        expect(a.stream.write(drainPacket())).toBe(false);
        const late = mixedPackets(60, 10, 64 * 1024);
        await writeAll(b.stream, late);
        await until(() => a.packets.length === late.length, 'a to receive what b wrote after the half-close');
        expectSamePackets(a.packets, late);
        expect(a.closeCount).toBe(0);
        await b.stream.close();
        await aClosing;
        await until(() => a.closeCount > 0 && b.closeCount > 0, "'close' on both sides");
        expect(a.errors).toEqual([]);
        expect(b.errors).toEqual([]);
      });
    });

    it('close() from both ends at once resolves both, with every packet delivered', async () => {
      await withPair(async (a, b) => {
        const toB = mixedPackets(40, 12, 16 * 1024);
        const toA = mixedPackets(40, 13, 16 * 1024);
        await Promise.all([writeAll(a.stream, toB), writeAll(b.stream, toA)]);
        await Promise.all([a.stream.close(), b.stream.close()]);
        await until(() => a.closeCount > 0 && b.closeCount > 0, "'close' on both sides");
        expectSamePackets(b.packets, toB);
        expectSamePackets(a.packets, toA);
        for (const s of [a, b]) expect(s.errors).toEqual([]);
      });
    });

    it('close() and destroy() are idempotent; writes after close return false', async () => {
      await withPair(async (a, b) => {
        b.stream.on('end', () => void b.stream.close());
        const first = a.stream.close();
        const second = a.stream.close();
        expect(a.stream.write(dataPacket(1n, pattern(10, 1)))).toBe(false);
        await Promise.all([first, second]);
        await a.stream.close();
        a.stream.destroy(new Error('late'));
        a.stream.destroy();
        expect(a.stream.errored).toBeUndefined();
        await until(() => b.closeCount > 0, "b's 'close'");
        for (let i = 0; i < 5; i++) await turn();
        expect(a.closeCount).toBe(1);
        expect(a.errors).toEqual([]);
        expect(b.stream.write(drainPacket())).toBe(false);

        expect(b.packets).toHaveLength(0);
      });
    });

    it('the first error wins; destroy after destroy changes nothing', async () => {
      await withPair(async (a) => {
        const first = new Error('first');
        const pending = a.stream.close(); // waits for the peer, which never closes here
        a.stream.destroy(first);
        await expect(pending).rejects.toBe(first);
        a.stream.destroy(new Error('second'));
        await expect(a.stream.close()).rejects.toBe(first);
        expect(a.stream.write(drainPacket())).toBe(false);
        await until(() => a.closeCount > 0, "a's 'close'");
        for (let i = 0; i < 5; i++) await turn();
        expect(a.closeCount).toBe(1);
        expect(a.errors).toEqual([first]);
        expect(a.stream.errored).toBe(first);
      });
    });

    it('exposes the configured remote metadata and a remote address', async () => {
      await withPair(async (a, b) => {
        for (const [side, want] of [
          [a, options.remoteMetadata?.a],
          [b, options.remoteMetadata?.b],
        ] as const) {
          expect(typeof side.stream.remoteAddress).toBe('string');
          expect(side.stream.remoteAddress.length).toBeGreaterThan(0);
          for (const [key, values] of Object.entries(want ?? {})) {
            expect(side.stream.remoteMetadata[key], `metadata ${key}`).toEqual(values);
          }
        }
      });
    });

    it('async iteration yields every packet in order and ends with the stream', async () => {
      await withPair(async (a, b) => {
        const sent = mixedPackets(400, 5, 8192);
        const received = iterate(b.stream);
        b.stream.once('end', () => void b.stream.close());
        await writeAll(a.stream, sent);
        await a.stream.close();
        expectSamePackets(await received, sent);
      });
    });

    it('an iterator started after the end finishes at once', async () => {
      await withPair(async (a, b) => {
        const aClosing = a.stream.close();
        await until(() => b.events.includes('end'), "b's 'end'");
        expect(await iterate(b.stream)).toEqual([]);
        await b.stream.close();
        await aClosing;
      });
    });

    it('breaking out of async iteration leaves the stream usable', async () => {
      await withPair(async (a, b) => {
        const sent = mixedPackets(200, 6, 1024);
        await writeAll(a.stream, sent);
        let seen = 0;
        for await (const _ of b.stream) {
          if (++seen === 10) break;
        }
        // What the iterator did not take keeps flowing to 'packet' listeners.
        await until(() => b.packets.length === sent.length, 'every packet after the break');
        expect(b.stream.isPaused).toBe(false);
      });
    });

    if (options.supportsSubstreams) describeSubstreams();
  });

  function describeSubstreams(): void {
    describe('substreams', () => {
      for (const from of ['a', 'b'] as const) {
        it(`open() on ${from} reaches onStream on the peer; data flows both ways`, async () => {
          await withPair(async (a, b) => {
            const [opener, acceptor] = from === 'a' ? [a, b] : [b, a];
            const accepted: Recorded[] = [];
            acceptor.stream.substreams!.onStream((s) => accepted.push(record(s)));
            const mine = record(opener.stream.substreams!.open());
            const up = mixedPackets(30, 7, 32 * 1024);
            mine.stream.write(up[0]!); // the peer learns of a stream when it carries something
            await until(() => accepted.length === 1, 'the peer to accept the substream');
            const theirs = accepted[0]!;
            const down = mixedPackets(30, 8, 32 * 1024);
            await Promise.all([writeAll(mine.stream, up.slice(1)), writeAll(theirs.stream, down)]);
            await until(
              () => theirs.packets.length === up.length && mine.packets.length === down.length,
              'substream data both ways',
            );
            expectSamePackets(theirs.packets, up);
            expectSamePackets(mine.packets, down);
            // Closing a substream leaves the tunnel open.
            theirs.stream.once('end', () => void theirs.stream.close());
            await mine.stream.close();
            await until(() => theirs.closeCount > 0, "the peer substream's 'close'");
            expect(a.stream.closed || b.stream.closed).toBe(false);
            expect(a.stream.write(drainPacket())).toBe(true);
            await until(() => b.packets.length === 1, 'the tunnel to carry a packet after a substream closed');
          });
        });
      }

      it('pausing one substream never blocks another, nor the tunnel', async () => {
        await withPair(async (a, b) => {
          const accepted: Recorded[] = [];
          b.stream.substreams!.onStream((s) => accepted.push(record(s)));
          const s1 = record(a.stream.substreams!.open());
          const s2 = record(a.stream.substreams!.open());
          // Distinct first packets tell the accepted ends apart, whatever order they were accepted in.
          s1.stream.write(closeRequest(1n));
          s2.stream.write(closeRequest(2n));
          await until(() => accepted.length === 2 && accepted.every((s) => s.packets.length === 1), 'both substreams');
          const r1 = accepted.find((s) => encodePacket(s.packets[0]!).equals(encodePacket(closeRequest(1n))))!;
          const r2 = accepted.find((s) => s !== r1)!;
          r1.stream.pause();
          await fillUntilFalse(s1.stream, 'the paused substream');
          // The other substream and the tunnel itself still carry data, both ways.
          const other = mixedPackets(100, 9, 64 * 1024);
          await writeAll(s2.stream, other);
          await until(() => r2.packets.length === 1 + other.length, 'the unpaused substream to deliver');
          expectSamePackets(r2.packets.slice(1), other);
          expect(a.stream.write(drainPacket())).toBe(true);
          expect(b.stream.write(drainPacket())).toBe(true);
          await until(() => a.packets.length === 1 && b.packets.length === 1, 'the tunnel to deliver');
          expect(r1.packets).toHaveLength(1);
          r1.stream.resume();
          await until(() => r1.packets.length > 1 && !s1.stream.writableNeedDrain, 'the paused substream to resume');
          for (const s of [s1, s2]) s.stream.destroy();
        });
      });

      it('many substreams at once each carry their own packets and close cleanly', async () => {
        await withPair(async (a, b) => {
          const count = 50;
          const accepted: Recorded[] = [];
          b.stream.substreams!.onStream((s) => {
            const r = record(s);
            accepted.push(r);
            r.stream.once('end', () => void r.stream.close());
          });
          const opened = Array.from({ length: count }, () => record(a.stream.substreams!.open()));
          // Each substream's first packet names it; then a few more of its own.
          const sent = opened.map((_, i) => [closeRequest(BigInt(i)), ...mixedPackets(5, 100 + i, 8 * 1024)]);
          await Promise.all(opened.map((s, i) => writeAll(s.stream, sent[i]!)));
          await Promise.all(opened.map((s) => s.stream.close()));
          const allClosed = (): boolean => accepted.length === count && accepted.every((r) => r.closeCount > 0);
          await until(allClosed, 'every substream closed');
          for (const r of accepted) {
            const i = Number((r.packets[0] as ReturnType<typeof closeRequest>).closeRequest!.connectID);
            expectSamePackets(r.packets, sent[i]!);
            expect(r.errors).toEqual([]);
          }
          expect(new Set(accepted.map((r) => encodePacket(r.packets[0]!).toString('hex'))).size).toBe(count);
          expect(a.stream.write(drainPacket())).toBe(true);
          await until(() => b.packets.length === 1, 'the tunnel to carry a packet after');
        });
      });

      it('destroying the tunnel destroys its substreams on both sides', async () => {
        await withPair(async (a, b) => {
          const accepted: Recorded[] = [];
          b.stream.substreams!.onStream((s) => accepted.push(record(s)));
          const mine = record(a.stream.substreams!.open());
          mine.stream.write(drainPacket());
          await until(() => accepted.length === 1, 'the peer to accept the substream');
          a.stream.destroy(new Error('tunnel gone'));
          await until(() => mine.closeCount > 0 && accepted[0]!.closeCount > 0, "both substreams' 'close'");
          expect(mine.closeErr).toBeInstanceOf(Error);
          expect(accepted[0]!.closeErr).toBeInstanceOf(Error);
          expect(mine.stream.write(drainPacket())).toBe(false);
        });
      });
    });
  }
}
