/** The tunnel core's accounting, over an in-memory pair: credit bounds, ordering of the finishing packet, legacy pause. */
import { describe, expect, it } from 'vitest';
import { once } from 'node:events';
import {
  PacketType,
  Tunnel,
  closeRequest,
  createMemoryPair,
  type Packet,
  type TunnelConnection,
} from '../../../src/index.js';

const KiB = 1024;
const turn = () => new Promise((r) => setImmediate(r));
async function settle(n = 20): Promise<void> {
  for (let i = 0; i < n; i++) await turn();
}

function pair(windowBytes: number | undefined, bufferBytes = 64 * KiB) {
  const [a, b] = createMemoryPair({ encode: true });
  const seenB: Packet[] = [];
  const ta = new Tunnel(a, { windowBytes, bufferBytes, onPacket: () => {} });
  const tb = new Tunnel(b, { windowBytes, bufferBytes, onPacket: (p) => seenB.push(p) });
  return { a, b, ta, tb, seenB };
}

describe('Tunnel credit regime', () => {
  it('a sender never has more than the window unacknowledged; consumption returns credit', async () => {
    const { ta, tb, a, b } = pair(64 * KiB);
    const held: number[] = [];
    const receiver: TunnelConnection = tb.open(1n, { onData: (_p, length) => held.push(length), onWritable() {} });
    let writable = 0;
    const sender = ta.open(1n, { onData() {}, onWritable: () => writable++ });
    expect(sender.sendData(Buffer.alloc(200 * KiB))).toBe(false);
    await settle();
    expect(receiver.bytesReceived).toBe(64 * KiB);
    expect(sender.bytesSent).toBe(64 * KiB);
    // Consuming a quarter of the window returns it as one WINDOW_UPDATE.
    receiver.consumed(held.splice(0).reduce((x, y) => x + y, 0));
    await settle();
    expect(receiver.bytesReceived).toBe(128 * KiB);
    receiver.consumed(held.splice(0).reduce((x, y) => x + y, 0));
    await settle();
    receiver.consumed(held.splice(0).reduce((x, y) => x + y, 0));
    await settle();
    expect(receiver.bytesReceived).toBe(200 * KiB);
    expect(writable).toBe(1);
    a.destroy();
    b.destroy();
  });

  it('the finishing packet goes after queued data when graceful, at once otherwise', async () => {
    const { ta, tb, seenB, a, b } = pair(32 * KiB);
    const receiver = tb.open(1n, { onData() {}, onWritable() {} });
    const sender = ta.open(1n, { onData() {}, onWritable() {} });
    sender.sendData(Buffer.alloc(64 * KiB));
    let finished = false;
    sender.finish(closeRequest(1n), true, () => (finished = true));
    await settle();
    expect(finished).toBe(false); // waits behind data that waits for credit
    expect(seenB).toEqual([]);
    receiver.consumed(32 * KiB);
    await settle();
    expect(finished).toBe(true);
    expect(seenB.map((p) => p.type)).toEqual([PacketType.CLOSE_REQ]);
    expect(receiver.bytesReceived).toBe(64 * KiB);

    const s2 = ta.open(2n, { onData() {}, onWritable() {} });
    tb.open(2n, { onData() {}, onWritable() {} });
    s2.sendData(Buffer.alloc(64 * KiB));
    s2.finish(closeRequest(2n), false);
    await settle();
    expect(seenB.filter((p) => p.type === PacketType.CLOSE_REQ)).toHaveLength(2);
    a.destroy();
    b.destroy();
  });
});

describe('Tunnel credit window growth', () => {
  /** A pair whose receiving end measures a 20 ms round trip and reads an injected clock. */
  function measured(rttMs: number | undefined) {
    const [a, b] = createMemoryPair({ encode: true });
    if (rttMs !== undefined) Object.defineProperty(b, 'roundTripMs', { value: rttMs });
    const clock = { now: 0 };
    const ta = new Tunnel(a, { windowBytes: 64 * KiB, maxWindowBytes: 512 * KiB, onPacket: () => {} });
    const tb = new Tunnel(b, { windowBytes: 64 * KiB, maxWindowBytes: 512 * KiB, onPacket: () => {}, now: () => clock.now });
    let got = 0;
    const receiver = tb.open(1n, { onData: (_p, length) => (got += length), onWritable() {} });
    const sender = ta.open(1n, { onData() {}, onWritable() {} });
    return { a, b, clock, receiver, sender, got: () => got };
  }

  /** Let the sender fill the window, then consume all of it `msLater` on the clock; returns what was in flight. */
  async function roundTrip(m: ReturnType<typeof measured>, consumedSoFar: number, msLater: number): Promise<number> {
    await settle();
    const inFlight = m.got() - consumedSoFar;
    m.clock.now += msLater;
    m.receiver.consumed(inFlight);
    return inFlight;
  }

  it('doubles the window of a reader that drains a window per round trip, up to the bound', async () => {
    const m = measured(20);
    m.sender.sendData(Buffer.alloc(8 * 1024 * KiB));
    const flights: number[] = [];
    let consumed = 0;
    // Eight windows at the start (WINDOWS_BEFORE_GROWTH), then one growth per round trip.
    for (let i = 0; i < 14; i++) {
      const f = await roundTrip(m, consumed, 20);
      consumed += f;
      flights.push(f);
    }
    expect(flights.slice(0, 9)).toEqual(Array(9).fill(64 * KiB));
    // One window per round trip is what holds the sender: 64 KiB, then 128, 256, 512 (the bound), 512.
    expect(m.receiver.windowBytes).toBe(512 * KiB);
    expect(Math.max(...flights)).toBe(512 * KiB);
    expect(flights.every((f) => f <= 512 * KiB)).toBe(true);
    m.a.destroy();
    m.b.destroy();
  });

  it('never grows for a reader that stops after taking in less than eight windows at full speed', async () => {
    const m = measured(20);
    m.sender.sendData(Buffer.alloc(2048 * KiB));
    let consumed = 0;
    // What a socket's buffers take in before a reader that never reads holds them full: fast, then nothing.
    for (let i = 0; i < 7; i++) consumed += await roundTrip(m, consumed, 20);
    m.clock.now += 1000;
    await settle();
    expect(m.receiver.windowBytes).toBe(64 * KiB);
    expect(m.got() - consumed).toBe(64 * KiB);
    m.a.destroy();
    m.b.destroy();
  });

  it('never grows for a slow reader, nor without a measured round trip', async () => {
    for (const [rtt, msPerWindow] of [
      [20, 200],
      [undefined, 20],
    ] as const) {
      const m = measured(rtt);
      m.sender.sendData(Buffer.alloc(2048 * KiB));
      let consumed = 0;
      for (let i = 0; i < 14; i++) consumed += await roundTrip(m, consumed, msPerWindow);
      expect(m.receiver.windowBytes).toBe(64 * KiB);
      expect(m.got()).toBe(14 * 64 * KiB);
      m.a.destroy();
      m.b.destroy();
    }
  });

  it('a grown window does not pause the stream while it is within the window', async () => {
    const m = measured(20);
    m.sender.sendData(Buffer.alloc(8 * 1024 * KiB));
    let consumed = 0;
    for (let i = 0; i < 13; i++) consumed += await roundTrip(m, consumed, 20);
    expect(m.receiver.windowBytes).toBe(512 * KiB);
    // Hold a whole grown window unconsumed: more than the 64 KiB buffer, no pause.
    await settle();
    expect(m.got() - consumed).toBe(512 * KiB);
    expect(m.b.isPaused).toBe(false);
    m.a.destroy();
    m.b.destroy();
  });
});

describe('Tunnel chunk size', () => {
  it('splits what it sends at the agreed chunk size (32 KiB by default)', async () => {
    for (const [chunkBytes, sizes] of [
      [undefined, [32, 32, 32, 32, 32, 32, 8]],
      [128 * KiB, [128, 72]],
    ] as const) {
      const [a, b] = createMemoryPair({ encode: true });
      const ta = new Tunnel(a, { windowBytes: 1024 * KiB, chunkBytes, onPacket: () => {} });
      const tb = new Tunnel(b, { windowBytes: 1024 * KiB, onPacket: () => {} });
      const got: number[] = [];
      tb.open(1n, { onData: (_p, length) => got.push(length / KiB), onWritable() {} });
      ta.open(1n, { onData() {}, onWritable() {} }).sendData(Buffer.alloc(200 * KiB));
      await settle();
      expect(got).toEqual(sizes);
      a.destroy();
      b.destroy();
    }
  });
});

describe('Tunnel legacy regime', () => {
  it('pauses the stream while a connection holds more than its buffer, resumes at half', async () => {
    const { ta, tb, a, b } = pair(undefined, 64 * KiB);
    let got = 0;
    const receiver = tb.open(1n, { onData: (_p, length) => (got += length), onWritable() {} });
    const sender = ta.open(1n, { onData() {}, onWritable() {} });
    sender.sendData(Buffer.alloc(256 * KiB));
    await settle();
    expect(b.isPaused).toBe(true);
    expect(got).toBeGreaterThan(64 * KiB);
    expect(got).toBeLessThan(256 * KiB);
    // Each time the owner catches up, delivery resumes, and pauses again past the limit.
    let consumed = 0;
    for (let i = 0; i < 20 && got < 256 * KiB; i++) {
      receiver.consumed(got - consumed);
      consumed = got;
      await settle();
      expect(got - consumed).toBeLessThanOrEqual(64 * KiB + 32 * KiB);
    }
    expect(got).toBe(256 * KiB);
    a.destroy();
    b.destroy();
    await once(b, 'close');
  });
});

describe('a packet that cannot be encoded', () => {
  it('write() throws ERR_INVALID_PACKET and sends nothing; the stream keeps working', async () => {
    const { dialRequest } = await import('../../../src/index.js');
    const [a, b] = createMemoryPair({ encode: true });
    const got: Packet[] = [];
    b.on('packet', (p) => got.push(p));
    expect(() => a.write(dialRequest('x:1', 1n << 70n))).toThrow(expect.objectContaining({ code: 'ERR_INVALID_PACKET' }));
    expect(a.write(dialRequest('x:1', 5n))).toBe(true);
    await settle();
    expect(got.map((p) => p.type)).toEqual([PacketType.DIAL_REQ]);
    a.destroy();
    b.destroy();
  });

  it('a connection whose DATA cannot be encoded keeps the chunk queued instead of losing it', () => {
    const { ta, a, b } = pair(undefined);
    const c = ta.open(1n << 70n, { onData() {}, onWritable() {} });
    expect(() => c.sendData(Buffer.from('kept'))).toThrow(expect.objectContaining({ code: 'ERR_INVALID_PACKET' }));
    expect(c.bytesSent).toBe(0);
    expect(() => c.flush()).toThrow(expect.objectContaining({ code: 'ERR_INVALID_PACKET' }));
    a.destroy();
    b.destroy();
  });
});
