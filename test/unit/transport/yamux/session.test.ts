import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { YamuxSession } from '../../../../src/transport/yamux/session.js';
import type { YamuxStream } from '../../../../src/transport/yamux/stream.js';
import { encodeHeader, FrameDecoder, FrameType, Flag, type Frame } from '../../../../src/transport/yamux/frame.js';
import { resolveYamuxOptions } from '../../../../src/transport/yamux/config.js';
import { YAMUX_INITIAL_WINDOW_BYTES as INITIAL_WINDOW_BYTES } from '../../../../src/transport/windows.js';
import { duplexPair } from './pipe.js';
import { readAll, sha } from './bytes.js';

function pair(options: { keepAliveIntervalMs?: number } = {}): [YamuxSession, YamuxSession] {
  const [a, b] = duplexPair();
  return [
    new YamuxSession(a, { client: true, keepAliveIntervalMs: 0, ...options }),
    new YamuxSession(b, { client: false, keepAliveIntervalMs: 0, ...options }),
  ];
}

/** Read exactly `n` bytes in paused mode. */
async function readN(s: Duplex, n: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let got = 0;
  while (got < n) {
    const c = s.read(Math.min(n - got, s.readableLength || 1)) as Buffer | null;
    if (c) {
      parts.push(c);
      got += c.length;
    } else await once(s, 'readable');
  }
  return Buffer.concat(parts);
}

/** The session's 'close' event (events.once would reject on its 'error'). */
function closeOf(s: YamuxSession): Promise<Error | undefined> {
  if (s.closed) return Promise.resolve(s.errored);
  return new Promise((resolve) => s.once('close', resolve));
}

function quiet(...streams: Duplex[]): void {
  for (const st of streams) st.on('error', () => undefined);
}

/** Let I/O run until `cond` holds (the pipe delivers on setImmediate). */
async function until(cond: () => boolean): Promise<void> {
  while (!cond()) await new Promise((r) => setImmediate(r));
}

/** Watch what one side writes to the carrier, as frames. */
function tap(carrier: Duplex): Frame[] {
  const seen: Frame[] = [];
  const d = new FrameDecoder();
  const write = carrier.write.bind(carrier) as (c: Buffer) => boolean;
  (carrier as { write: unknown }).write = (c: Buffer, ...rest: unknown[]) => {
    seen.push(...d.push(c));
    return (write as (...a: unknown[]) => boolean)(c, ...rest);
  };
  return seen;
}

describe('yamux session', () => {
  it('validates options', () => {
    expect(() => resolveYamuxOptions({ maxStreamWindowBytes: 1000 })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION' }));
    expect(() => resolveYamuxOptions({ bogus: 1 } as never)).toThrow(/unknown yamux option/);
    expect(resolveYamuxOptions().acceptBacklog).toBe(256);
    // The growth ceiling defaults to the opening window (no growth) and may not be below it.
    expect(resolveYamuxOptions({ maxStreamWindowBytes: 1 << 20 }).streamWindowCeilingBytes).toBe(1 << 20);
    expect(() => resolveYamuxOptions({ maxStreamWindowBytes: 1 << 20, streamWindowCeilingBytes: 1 << 19 })).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_OPTION' }),
    );
  });

  it('opens odd streams from the client and even from the server, both ways, with half-close', async () => {
    const [c, s] = pair();
    const cs = c.open();
    expect(cs.id).toBe(1);
    const accepted = await s.accept();
    expect(accepted.id).toBe(1);
    accepted.on('data', (d: Buffer) => accepted.write(d));
    accepted.on('end', () => accepted.end());
    cs.end('ping over yamux');
    expect((await readAll(cs)).toString()).toBe('ping over yamux');

    const ss = s.open();
    expect(ss.id).toBe(2);
    const back = await c.accept();
    ss.end('from server');
    expect((await readAll(back)).toString()).toBe('from server');
    back.end();
    await once(ss, 'end').catch(() => undefined);
    ss.resume();
    await Promise.all([c.close(), s.close()]);
    expect(c.closed && s.closed).toBe(true);
  });

  it('moves a large transfer on many streams at once, intact', async () => {
    const [c, s] = pair();
    s.onStream((st) => {
      st.pipe(st);
    });
    const payloads = Array.from({ length: 20 }, (_, i) => randomBytes(200_000 + i * 1000));
    const results = await Promise.all(
      payloads.map(async (p) => {
        const st = c.open();
        st.end(p);
        return readAll(st);
      }),
    );
    results.forEach((r, i) => expect(sha(r)).toBe(sha(payloads[i]!)));
    await c.close();
    await s.close();
  });

  it('a stalled reader holds at most one window, and other streams keep moving', async () => {
    const [c, s] = pair();
    const accepted: YamuxStream[] = [];
    s.onStream((st) => {
      quiet(st);
      accepted.push(st);
    });
    const stalled = c.open();
    quiet(stalled);
    const big = Buffer.alloc(64 * 1024, 1);
    let writeFalse = false;
    let written = 0;
    // Write until the stream pushes back; never read on the other side.
    for (let i = 0; i < 64 && !writeFalse; i++) {
      writeFalse = !stalled.write(big.subarray(0, 64 * 1024));
      written += 64 * 1024;
    }
    expect(writeFalse).toBe(true);
    await until(() => accepted.length >= 1);
    const sink = accepted[0]!;
    // Let the frames flow until the sender runs out of window.
    for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
    expect(sink.readableLength).toBeLessThanOrEqual(INITIAL_WINDOW_BYTES);
    expect(sink.readableLength).toBeGreaterThan(0);

    // Another stream on the same session is unaffected.
    const other = c.open();
    quiet(other);
    other.end(Buffer.alloc(1024 * 1024, 2));
    await until(() => accepted.length >= 2);
    expect((await readAll(accepted[1]!)).length).toBe(1024 * 1024);
    expect(sink.readableLength).toBeLessThanOrEqual(INITIAL_WINDOW_BYTES);

    // Reading the stalled stream lets the writer finish.
    expect(written).toBeGreaterThan(INITIAL_WINDOW_BYTES);
    const done = once(stalled, 'drain');
    const got = await readN(sink, written);
    expect(got.length).toBe(written);
    await done;
    stalled.destroy();
    c.destroy();
    s.destroy();
  });

  it('sends window updates only as data is consumed, at half a window', async () => {
    const [ca, cb] = duplexPair();
    const seenFromServer = tap(cb);
    const c = new YamuxSession(ca, { client: true, keepAliveIntervalMs: 0 });
    const s = new YamuxSession(cb, { client: false, keepAliveIntervalMs: 0 });
    const st = c.open();
    const peer = await s.accept();
    quiet(st, peer);
    st.write(Buffer.alloc(INITIAL_WINDOW_BYTES, 3));
    await until(() => peer.readableLength >= INITIAL_WINDOW_BYTES);
    const updates = () => seenFromServer.filter((f) => f.type === FrameType.WINDOW_UPDATE && f.flags === 0);
    expect(updates()).toHaveLength(0);
    await readN(peer, 100 * 1024);
    expect(updates()).toHaveLength(0);
    await readN(peer, INITIAL_WINDOW_BYTES - 100 * 1024);
    await new Promise((r) => setImmediate(r));
    expect(updates().length).toBeGreaterThanOrEqual(1);
    expect(updates().reduce((n, f) => n + f.length, 0)).toBeLessThanOrEqual(INITIAL_WINDOW_BYTES);
    c.destroy();
    s.destroy();
  });

  it("passes views of a read to the stream that got most of it, and copies a stream's small share out", async () => {
    const [a, b] = duplexPair();
    const s = new YamuxSession(b, { client: false, keepAliveIntervalMs: 0 });
    const got = new Map<number, Buffer[]>();
    s.onStream((st) => {
      quiet(st);
      got.set(st.id, []);
      st.on('data', (d: Buffer) => got.get(st.id)!.push(d));
    });
    a.on('data', () => undefined);
    const small = Buffer.alloc(100, 2);
    const frameA = Buffer.alloc(30_000, 1);
    const frameB = Buffer.alloc(30_000, 3);
    const wire = Buffer.concat([
      encodeHeader({ type: FrameType.WINDOW_UPDATE, flags: Flag.SYN, streamID: 1, length: 0 }),
      encodeHeader({ type: FrameType.WINDOW_UPDATE, flags: Flag.SYN, streamID: 3, length: 0 }),
      encodeHeader({ type: FrameType.DATA, flags: 0, streamID: 3, length: small.length }),
      small,
      encodeHeader({ type: FrameType.DATA, flags: 0, streamID: 1, length: frameA.length }),
      frameA,
      encodeHeader({ type: FrameType.DATA, flags: 0, streamID: 1, length: frameB.length }),
      frameB,
    ]);
    // Three reads, as a socket delivers them: the first mostly stream 1, a little stream 3; the second the end of
    // frame A and the start of frame B (two pieces of stream 1, each under half the read); the third the rest.
    const startA = 12 * 3 + small.length + 12;
    const cuts = [startA + 20_000, startA + 30_000 + 12 + 10_000];
    const reads = [wire.subarray(0, cuts[0]), wire.subarray(cuts[0], cuts[1]), wire.subarray(cuts[1])].map((r) => Buffer.from(r));
    for (const r of reads) a.write(r);
    const total = () => got.get(1)?.reduce((n, d) => n + d.length, 0) ?? 0;
    await until(() => total() === 60_000 && (got.get(3)?.length ?? 0) > 0);
    const pieces = got.get(1)!;
    expect(pieces.map((p) => p.length)).toEqual([20_000, 10_000, 10_000, 20_000]);
    expect(pieces.map((p) => reads.indexOf(reads.find((r) => r.buffer === p.buffer)!))).toEqual([0, 1, 1, 2]);
    expect(got.get(3)![0]!.buffer).not.toBe(reads[0]!.buffer);
    expect(got.get(3)![0]!.equals(small)).toBe(true);
    s.destroy();
  });

  it('RST: destroying one side fails the other with ERR_STREAM_CLOSED', async () => {
    const [c, s] = pair();
    const st = c.open();
    st.write('x');
    const peer = await s.accept();
    quiet(st);
    const failed = once(peer, 'error');
    st.destroy();
    const [err] = await failed;
    expect(err).toMatchObject({ code: 'ERR_STREAM_CLOSED' });
    expect(c.streamCount).toBe(0);
    await new Promise((r) => setImmediate(r));
    expect(s.streamCount).toBe(0);
    c.destroy();
    s.destroy();
  });

  it('refuses streams beyond the accept backlog with RST', async () => {
    const [a, b] = duplexPair();
    const c = new YamuxSession(a, { client: true, keepAliveIntervalMs: 0 });
    const s = new YamuxSession(b, { client: false, keepAliveIntervalMs: 0, acceptBacklog: 2 });
    const streams = [c.open(), c.open(), c.open()];
    quiet(...streams);
    const refused = once(streams[2]!, 'error');
    const [err] = await refused;
    expect(err).toMatchObject({ code: 'ERR_STREAM_CLOSED' });
    const accepted = [await s.accept(), await s.accept()];
    quiet(...accepted);
    expect(accepted.map((x) => x.id)).toEqual([1, 3]);
    c.destroy();
    s.destroy();
  });

  it('answers pings and reports the round trip', async () => {
    const [c, s] = pair();
    expect(await c.ping()).toBeGreaterThanOrEqual(0);
    expect(await s.ping()).toBeGreaterThanOrEqual(0);
    c.destroy();
    s.destroy();
  });

  it('fails the session when a ping is not answered in time', async () => {
    const [a] = duplexPair();
    const c = new YamuxSession(a, { client: true, keepAliveIntervalMs: 0, pingTimeoutMs: 20 });
    await expect(c.ping()).rejects.toMatchObject({ code: 'ERR_TUNNEL_CLOSED' });
    expect(c.closed).toBe(true);
  });

  it('close() sends Go Away: the peer opens no more streams, open ones finish', async () => {
    const [c, s] = pair();
    const st = c.open();
    const peer = await s.accept();
    const closed = s.close();
    const clientClosed = closeOf(c);
    await once(c, 'goAway');
    expect(() => c.open()).toThrow(expect.objectContaining({ code: 'ERR_SHUTTING_DOWN' }));
    peer.end('bye');
    st.end();
    expect((await readAll(st)).toString()).toBe('bye');
    peer.resume();
    await closed;
    expect(await clientClosed).toBeUndefined();
  });

  it('a peer that overruns the window is a protocol error (Go Away 1)', async () => {
    const [a, b] = duplexPair();
    const s = new YamuxSession(b, { client: false, keepAliveIntervalMs: 0 });
    const seen = new FrameDecoder();
    const got: Frame[] = [];
    a.on('data', (d: Buffer) => got.push(...seen.push(d)));
    a.write(encodeHeader({ type: FrameType.WINDOW_UPDATE, flags: Flag.SYN, streamID: 1, length: 0 }));
    a.write(encodeHeader({ type: FrameType.DATA, flags: 0, streamID: 1, length: INITIAL_WINDOW_BYTES + 1 }));
    a.write(Buffer.alloc(INITIAL_WINDOW_BYTES + 1));
    const err = await closeOf(s);
    expect(err).toMatchObject({ code: 'ERR_PROTOCOL' });
    await until(() => got.some((f) => f.type === FrameType.GO_AWAY && f.length === 1));
  });

  it('a stream opened with the wrong parity is a protocol error', async () => {
    const [a, b] = duplexPair();
    const s = new YamuxSession(b, { client: false, keepAliveIntervalMs: 0 });
    a.on('data', () => undefined);
    a.write(encodeHeader({ type: FrameType.WINDOW_UPDATE, flags: Flag.SYN, streamID: 2, length: 0 }));
    const err = await closeOf(s);
    expect(err).toMatchObject({ code: 'ERR_PROTOCOL', message: expect.stringMatching(/parity/) });
  });

  it('destroy() fails open streams with the error, once, and is idempotent', async () => {
    const [c, s] = pair();
    const st = c.open();
    const peerClosed = closeOf(s);
    const failed = once(st, 'error');
    const boom = new Error('boom');
    c.destroy(boom);
    c.destroy(new Error('second'));
    expect((await failed)[0]).toBe(boom);
    await expect(c.close()).rejects.toBe(boom);
    expect(await peerClosed).toMatchObject({ code: 'ERR_TUNNEL_CLOSED' });
  });

  it('the carrier closing under open streams fails them with ERR_TUNNEL_CLOSED', async () => {
    const [a, b] = duplexPair();
    const c = new YamuxSession(a, { client: true, keepAliveIntervalMs: 0 });
    const s = new YamuxSession(b, { client: false, keepAliveIntervalMs: 0 });
    const st = c.open();
    quiet(await s.accept());
    const failed = once(st, 'error');
    b.destroy();
    expect((await failed)[0]).toMatchObject({ code: 'ERR_TUNNEL_CLOSED' });
    s.destroy();
  });
});
