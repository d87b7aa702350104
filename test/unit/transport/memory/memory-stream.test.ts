/** What the in-memory pair does beyond the shared compliance suite: options, its own errors, substream edges. */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  closeRequest,
  dataPacket,
  drainPacket,
  ErrorCode,
  isKonnectivityError,
  KonnectivityError,
  type CloseRequestPacket,
  type DataPacket,
  type Packet,
} from '../../../../src/protocol/index.js';
import { createMemoryPair } from '../../../../src/transport/memory/index.js';
import type { PacketStream } from '../../../../src/transport/packet-stream.js';
import { expectNoLeaks, snapshotResources, type ResourceSnapshot } from '../../../helpers/leaks.js';

let before: ResourceSnapshot;
beforeEach(() => {
  before = snapshotResources();
});
afterEach(async () => {
  await expectNoLeaks(before);
});

function next<T extends unknown[]>(stream: PacketStream, event: 'packet' | 'close' | 'error'): Promise<T> {
  return new Promise((resolve) => stream.once(event, (...args: unknown[]) => resolve(args as T)));
}

/** Streams whose 'close' was seen; `track` before anything can close them. */
const closedSeen = new WeakSet<PacketStream>();
function track<T extends PacketStream>(...streams: T[]): T[] {
  for (const s of streams) {
    s.on('error', () => {}); // the tests look at errors through next(); teardown resets are expected
    s.once('close', () => closedSeen.add(s));
  }
  return streams;
}
function pair(options: Parameters<typeof createMemoryPair>[0] = {}): PacketStream[] {
  return track(...createMemoryPair(options));
}

/** Destroy every stream and wait until each has said 'close'. */
async function teardown(...streams: PacketStream[]): Promise<void> {
  for (const s of streams) s.destroy();
  while (!streams.every((s) => closedSeen.has(s))) await new Promise<void>((r) => setImmediate(r));
}

describe('createMemoryPair options', () => {
  it.each([0, -1, 1.5, Number.NaN, Infinity])('refuses highWaterMarkBytes = %s', (hwm) => {
    let caught: unknown;
    try {
      createMemoryPair({ highWaterMarkBytes: hwm });
    } catch (err) {
      caught = err;
    }
    expect(isKonnectivityError(caught, ErrorCode.INVALID_OPTION)).toBe(true);
    expect((caught as Error).message).toMatch(/highWaterMarkBytes/);
  });

  it('has no substreams unless asked, and says where the peer is', async () => {
    const [a, b] = pair();
    expect(a!.substreams).toBeUndefined();
    expect(b!.substreams).toBeUndefined();
    expect(a!.remoteAddress).toBe('memory');
    expect(a!.remoteMetadata).toEqual({});
    await teardown(a!, b!);
  });

  it('counts the high-water mark in bytes: one packet over it makes write() return false', async () => {
    const [a, b] = pair({ highWaterMarkBytes: 1000 });
    expect(a!.write(dataPacket(1n, new Uint8Array(500)))).toBe(true);
    expect(a!.write(dataPacket(1n, new Uint8Array(500)))).toBe(false);
    expect(a!.writableNeedDrain).toBe(true);
    await new Promise<void>((resolve) => a!.once('drain', resolve));
    expect(a!.writableNeedDrain).toBe(false);
    await teardown(a!, b!);
  });

  it('delivers asynchronously, never inside write()', async () => {
    const [a, b] = pair();
    const got: Packet[] = [];
    b!.on('packet', (p) => got.push(p));
    a!.write(drainPacket());
    expect(got).toHaveLength(0);
    await next(b!, 'packet');
    expect(got).toHaveLength(1);
    await teardown(a!, b!);
  });

  it('with encode: true, packets cross as decoded copies with equal content', async () => {
    const [a, b] = pair({ encode: true });
    const sent = dataPacket(2n ** 62n, new Uint8Array([9, 8, 7]));
    a!.write(sent);
    const [got] = await next<[DataPacket]>(b!, 'packet');
    expect(got).not.toBe(sent);
    expect(got.data?.connectID).toBe(2n ** 62n);
    expect([...got.data!.data]).toEqual([9, 8, 7]);
    await teardown(a!, b!);
  });
});

describe('memory pair errors', () => {
  it('destroy(err) fails the peer with ERR_REMOTE carrying the cause', async () => {
    const [a, b] = pair();
    const cause = new KonnectivityError(ErrorCode.PROTOCOL, 'bad frame');
    const failed = next<[Error]>(b!, 'error');
    a!.destroy(cause);
    const [err] = await failed;
    expect(isKonnectivityError(err, ErrorCode.REMOTE)).toBe(true);
    expect(err.message).toContain('bad frame');
    expect(err.cause).toBe(cause);
    await teardown(a!, b!);
  });

  it('destroy() fails the peer with ERR_STREAM_CLOSED', async () => {
    const [a, b] = pair();
    const failed = next<[Error]>(b!, 'error');
    a!.destroy();
    const [err] = await failed;
    expect(isKonnectivityError(err, ErrorCode.STREAM_CLOSED)).toBe(true);
    await teardown(a!, b!);
  });
});

describe('memory substreams', () => {
  it('keeps streams opened before the peer listens, and hands them over in order', async () => {
    const [a, b] = pair({ substreams: true });
    const [s1, s2] = track(a!.substreams!.open(), a!.substreams!.open());
    s1!.write(closeRequest(1n));
    s2!.write(closeRequest(2n));
    // Let the pair accept both while nobody listens.
    for (let i = 0; i < 3; i++) await new Promise<void>((r) => setImmediate(r));
    const accepted: PacketStream[] = [];
    b!.substreams!.onStream((s) => accepted.push(...track(s)));
    expect(accepted).toHaveLength(2);
    const firsts = await Promise.all(accepted.map((s) => next<[CloseRequestPacket]>(s, 'packet')));
    expect(firsts.map(([p]) => p.closeRequest?.connectID)).toEqual([1n, 2n]);
    await teardown(s1!, s2!, ...accepted, a!, b!);
  });

  it('open() on a closed tunnel gives a stream that is already failed', async () => {
    const [a, b] = pair({ substreams: true });
    a!.destroy();
    const [s] = track(a!.substreams!.open());
    expect(s!.closed).toBe(true);
    expect(s!.write(drainPacket())).toBe(false);
    const [err] = await next<[Error]>(s!, 'close');
    expect(isKonnectivityError(err, ErrorCode.STREAM_CLOSED)).toBe(true);
    await teardown(s!, a!, b!);
  });

  it('a graceful close of the tunnel closes the substreams left open, with an error', async () => {
    const [a, b] = pair({ substreams: true });
    const accepted = new Promise<PacketStream>((resolve) => b!.substreams!.onStream((s) => resolve(track(s)[0]!)));
    const [s] = track(a!.substreams!.open());
    s!.write(drainPacket());
    const theirs = await accepted;
    const closes = Promise.all([s!, theirs].map((x) => next<[Error | undefined]>(x, 'close')));
    b!.once('end', () => void b!.close());
    await a!.close();
    for (const [err] of await closes) expect(isKonnectivityError(err, ErrorCode.STREAM_CLOSED)).toBe(true);
    await teardown(s!, theirs, a!, b!);
  });

  it('a substream the peer never took dies quietly with its tunnel (no unhandled error)', async () => {
    const [a, b] = pair({ substreams: true });
    const [s] = track(a!.substreams!.open());
    s!.write(drainPacket());
    for (let i = 0; i < 3; i++) await new Promise<void>((r) => setImmediate(r));
    b!.destroy(new Error('agent gone'));
    const [err] = await next<[Error | undefined]>(s!, 'close');
    expect(err).toBeInstanceOf(Error);
    await teardown(s!, a!, b!);
  });
});
