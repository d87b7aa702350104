/**
 * Helpers shared by the compliance suites: a recorder for everything a PacketStream emits, event-driven waits with
 * named timeouts, backpressure-respecting writers, and deterministic packets compared by their wire bytes.
 */
import { expect } from 'vitest';
import {
  closeDial,
  closeRequest,
  closeResponse,
  dataPacket,
  dialRequest,
  dialResponse,
  drainPacket,
  encodePacket,
  PacketType,
  windowUpdate,
  type DataPacket,
  type Packet,
} from '../../src/protocol/index.js';
import type { PacketStream } from '../../src/transport/packet-stream.js';
import { expectNoLeaks, type ResourceSnapshot } from '../helpers/leaks.js';

/** How long any single wait may take before it fails with a message naming what it waited for. */
export const WAIT_MS = 10_000;

/** A stream with everything it emitted written down; error listeners keep Node's unhandled-'error' rule quiet. */
export interface Recorded {
  stream: PacketStream;
  packets: Packet[];
  /** DATA payload bytes received. */
  dataBytes: number;
  /** 'end', 'close' and 'error' in emission order. */
  events: string[];
  errors: Error[];
  closeCount: number;
  closeErr: Error | undefined;
  /** How many packets had arrived when 'end' was emitted (-1 before). */
  packetsAtEnd: number;
}

export function record(stream: PacketStream): Recorded {
  const r: Recorded = {
    stream,
    packets: [],
    dataBytes: 0,
    events: [],
    errors: [],
    closeCount: 0,
    closeErr: undefined,
    packetsAtEnd: -1,
  };
  stream.on('packet', (p) => {
    r.packets.push(p);
    if (p.type === PacketType.DATA) r.dataBytes += (p as DataPacket).data?.data.length ?? 0;
  });
  stream.on('end', () => {
    r.events.push('end');
    r.packetsAtEnd = r.packets.length;
  });
  stream.on('error', (err) => {
    r.events.push('error');
    r.errors.push(err);
  });
  stream.on('close', (err) => {
    r.events.push('close');
    r.closeCount++;
    r.closeErr = err;
  });
  return r;
}

/** One turn of the event loop (lets I/O and immediates run). */
export function turn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Wait until `cond()` holds, checking after every turn of the event loop; fail naming `what` after WAIT_MS. */
export async function until(cond: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + WAIT_MS;
  let spins = 0;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    // Spin on immediates first, then back off to short timers so real sockets get CPU.
    if (++spins < 100) await turn();
    else await new Promise<void>((resolve) => setTimeout(resolve, 2).unref());
  }
}

/** `promise`, or a failure naming `what` after 2 x WAIT_MS. */
export async function withTimeout<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish in ${(2 * WAIT_MS) / 1000} s`)), 2 * WAIT_MS);
    timer.unref();
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Resolve on the next `event`; fail naming `what` after WAIT_MS or if the stream closes first. */
export function waitEvent(stream: PacketStream, event: 'drain' | 'end', what: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const done = (err?: Error): void => {
      clearTimeout(timer);
      stream.off(event, onEvent);
      stream.off('close', onClose);
      if (err) reject(err);
      else resolve();
    };
    const onEvent = (): void => done();
    const onClose = (): void => done(new Error(`stream closed while waiting for ${what}`));
    const timer = setTimeout(() => done(new Error(`timed out waiting for ${what}`)), WAIT_MS);
    timer.unref();
    stream.on(event, onEvent);
    stream.on('close', onClose);
  });
}

/** Write every packet, waiting for 'drain' whenever write() says so. */
export async function writeAll(stream: PacketStream, packets: readonly Packet[]): Promise<void> {
  for (const p of packets) {
    if (stream.closed) throw new Error('stream closed while writing');
    if (!stream.write(p)) await waitEvent(stream, 'drain', "'drain' while writing");
  }
}

/** Collect every packet by async iteration (started now, before anything is written). */
export function iterate(stream: PacketStream): Promise<Packet[]> {
  const iterator = stream[Symbol.asyncIterator]();
  const out: Packet[] = [];
  const run = async (): Promise<Packet[]> => {
    for (;;) {
      const next = await iterator.next();
      if (next.done) return out;
      out.push(next.value);
    }
  };
  const p = run();
  p.catch(() => {}); // tests await it later; never unhandled meanwhile
  return p;
}

/** Deterministic bytes for payload `i`, so reordering or corruption shows up. */
export function pattern(length: number, i: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let j = 0; j < length; j++) out[j] = (i * 31 + j) & 0xff;
  return out;
}

/**
 * A deterministic mix of every packet type (WINDOW_UPDATE included), with int64 fields beyond 2^53, and DATA of
 * varied sizes with one at `maxData`.
 */
export function mixedPackets(count: number, seed: number, maxData: number): Packet[] {
  let state = seed * 2654435761;
  const next = (n: number): number => {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    return state % n;
  };
  const big = (i: number): bigint => (1n << 62n) + BigInt(seed) * 1000003n + BigInt(i);
  const out: Packet[] = [];
  for (let i = 0; i < count; i++) {
    if (i === Math.floor(count / 2)) {
      out.push(dataPacket(big(i), pattern(maxData, i))); // one packet at the largest size
      continue;
    }
    switch (next(10)) {
      case 0:
        out.push(dialRequest(`10.0.${seed}.${i % 256}:443`, big(i)));
        break;
      case 1:
        out.push(dialResponse(big(i), BigInt(i), i % 3 === 0 ? 'dial tcp: connection refused' : ''));
        break;
      case 2:
        out.push(closeRequest(BigInt(i)));
        break;
      case 3:
        out.push(closeResponse(BigInt(i)));
        break;
      case 4:
        out.push(closeDial(big(i)));
        break;
      case 5:
        out.push(drainPacket());
        break;
      case 6:
        // The credit extension travels on the same streams to konnectivity-ts peers.
        out.push(windowUpdate(BigInt(i), 65536 + i));
        break;
      default:
        out.push(dataPacket(BigInt(i), pattern(next(4) === 0 ? next(Math.min(maxData, 256 * 1024)) : next(2048), i)));
    }
  }
  return out;
}

/** Compare packets by their wire bytes: transports may hand back equal packets of another shape (Buffer views). */
export function expectSamePackets(got: readonly Packet[], want: readonly Packet[]): void {
  expect(got.length, 'packet count').toBe(want.length);
  for (let i = 0; i < want.length; i++) {
    const g = Buffer.from(encodePacket(got[i]!));
    const w = Buffer.from(encodePacket(want[i]!));
    if (!g.equals(w)) {
      const what = (p: Packet, b: Buffer): string => `type ${p.type} (${b.length} bytes)`;
      throw new Error(`packet ${i} differs: got ${what(got[i]!, g)}, want ${what(want[i]!, w)}`);
    }
  }
}

/** What a test leaves behind: its streams, the harness cleanup, and the resources that were active before it. */
export interface Teardown {
  /** Every recorded stream of the test, read after the body ran. */
  streams: () => readonly Recorded[];
  cleanup: (() => Promise<void>) | undefined;
  before: ResourceSnapshot;
  ignoreResources: readonly string[] | undefined;
}

/**
 * Run a test body, then always tear down: destroy what is still open (which also ends a close() still waiting for
 * its peer), wait until every stream is closed, run the cleanup, and check for leaks. A failure of the body wins.
 */
export async function runThenTearDown(body: () => Promise<void>, t: Teardown): Promise<void> {
  let failure: unknown;
  try {
    await body();
  } catch (err) {
    failure = err;
  }
  try {
    const streams = t.streams();
    for (const r of streams) if (r.closeCount === 0) r.stream.destroy();
    // Wait on `closed`, not on 'close': a stream may have closed before it was recorded. Then one turn for the
    // 'close' events that destroy() defers.
    await until(() => streams.every((r) => r.stream.closed), 'every stream closed after teardown');
    await turn();
    await withTimeout(t.cleanup?.() ?? Promise.resolve(), 'cleanup()');
    await expectNoLeaks(t.before, t.ignoreResources ? { ignore: t.ignoreResources } : {});
  } catch (err) {
    failure ??= err;
  }
  if (failure !== undefined) throw failure;
}
