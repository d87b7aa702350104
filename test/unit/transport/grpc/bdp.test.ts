/**
 * The HTTP/2 window estimator (src/transport/grpc/bdp.ts) with an injected clock: it doubles a window that holds
 * the sender on a delayed path, leaves it alone on a fast path or when the link is the limit, scales samples to the
 * smallest round trip (a queue is not a path), spaces its PINGs, stops at the bound and grows on when it is raised.
 */
import { describe, expect, it } from 'vitest';
import { BdpEstimator } from '../../../../src/transport/grpc/bdp.js';

const MiB = 1024 * 1024;

/**
 * One sample: data arrives at `now` (a PING goes out if the estimator asks), `bytes` in all arrive before the ACK,
 * which comes `rttMs` later. Returns what onPingAck returned, or 'no ping'.
 */
function sample(e: BdpEstimator, now: number, bytes: number, rttMs: number): number | undefined | 'no ping' {
  if (!e.onData(Math.min(bytes, 16_384), now)) return 'no ping';
  let left = bytes - Math.min(bytes, 16_384);
  while (left > 0) {
    const n = Math.min(left, 16_384);
    expect(e.onData(n, now + rttMs / 2)).toBe(false);
    left -= n;
  }
  return e.onPingAck(rttMs, now + rttMs);
}

describe('BdpEstimator', () => {
  it('doubles a window that a 20 ms path fills, after three samples, up to the bound', () => {
    const e = new BdpEstimator({ initialWindowBytes: 2 * MiB, maxWindowBytes: 16 * MiB });
    expect(e.idlePing()).toBe(true);
    expect(e.onPingAck(20, 20)).toBeUndefined();
    let now = 100;
    // A window-held sender has about the whole window in flight per round trip.
    expect(sample(e, now, 2 * MiB, 20)).toBeUndefined(); // second sample: not trusted yet
    now += 100;
    expect(sample(e, now, 2 * MiB, 20)).toBe(4 * MiB);
    now += 100;
    expect(sample(e, now, 4 * MiB, 20)).toBe(8 * MiB);
    now += 100;
    expect(sample(e, now, 8 * MiB, 20)).toBe(16 * MiB);
    expect(e.growing).toBe(false);
    // At the bound it asks for no more PINGs.
    expect(e.onData(16_384, now + 1000)).toBe(false);
    expect(e.windowBytes).toBe(16 * MiB);
    expect(e.minRttMs).toBe(20);
  });

  it('grows on node:http2 half-window refills too (a sample of half the window counts as held)', () => {
    const e = new BdpEstimator({ initialWindowBytes: 2 * MiB, maxWindowBytes: 16 * MiB });
    let now = 0;
    for (let i = 0; i < 2; i++, now += 100) sample(e, now, MiB, 20);
    expect(sample(e, now, MiB, 20)).toBe(4 * MiB);
  });

  it('leaves the window alone when the link, not the window, is the limit', () => {
    const e = new BdpEstimator({ initialWindowBytes: 2 * MiB, maxWindowBytes: 16 * MiB });
    let now = 0;
    for (let i = 0; i < 10; i++) {
      const r = sample(e, now, 400 * 1024, 20); // 20 MB/s at 20 ms
      if (r !== 'no ping') expect(r).toBeUndefined();
      now += 2000;
    }
    expect(e.windowBytes).toBe(2 * MiB);
  });

  it('does not mistake a queue for a path: samples are scaled to the smallest round trip', () => {
    const e = new BdpEstimator({ initialWindowBytes: 2 * MiB, maxWindowBytes: 16 * MiB });
    expect(e.idlePing()).toBe(true);
    e.onPingAck(0.1, 0.1); // loopback, idle
    let now = 10;
    for (let i = 0; i < 20; i++) {
      // 3 MiB arrive while a PING waits 8 ms behind queued data: 390 MB/s, but only 40 kB are on the path.
      const r = sample(e, now, 3 * MiB, 8);
      if (r !== 'no ping') expect(r).toBeUndefined();
      now += 2000;
    }
    expect(e.windowBytes).toBe(2 * MiB);
    expect(e.minRttMs).toBe(0.1);
  });

  it('grows when a held sender is measured at 0.4 of the window behind a queue (a 20 ms link under load)', () => {
    const e = new BdpEstimator({ initialWindowBytes: 2 * MiB, maxWindowBytes: 16 * MiB });
    expect(e.idlePing()).toBe(true);
    e.onPingAck(20, 20);
    let now = 100;
    // 0.42 of the window arrives while the PING waits 22 ms instead of 20: 0.38 of it was on the path.
    expect(sample(e, now, 0.42 * 2 * MiB, 22)).toBeUndefined(); // second sample: not trusted yet
    now += 300;
    expect(sample(e, now, 0.42 * 2 * MiB, 22)).toBe(4 * MiB);
  });

  it('sends one PING at a time and spaces samples that did not grow it, doubling the pause up to 250 ms', () => {
    const e = new BdpEstimator({ initialWindowBytes: 2 * MiB, maxWindowBytes: 16 * MiB });
    expect(e.onData(100, 0)).toBe(true);
    expect(e.onData(100, 0.5)).toBe(false); // one outstanding
    expect(e.onPingAck(1, 1)).toBeUndefined();
    // 10 ms pause after a sample that did not grow the window, then 20, 40, ...
    const pauses: number[] = [];
    let now = 1;
    for (let i = 0; i < 10; i++) {
      let t = now;
      while (!e.onData(100, t)) t += 1;
      pauses.push(t - now);
      e.onPingAck(1, t + 1);
      now = t + 1;
    }
    expect(pauses.slice(0, 5)).toEqual([10, 20, 40, 80, 160]);
    expect(pauses.slice(5)).toEqual([250, 250, 250, 250, 250]);
  });

  it('a failed PING frees the slot', () => {
    const e = new BdpEstimator({ initialWindowBytes: MiB, maxWindowBytes: 4 * MiB });
    expect(e.onData(10, 0)).toBe(true);
    e.onPingFailed();
    expect(e.onData(10, 0)).toBe(true);
    expect(e.onPingAck(5, 5)).toBeUndefined();
    expect(e.onPingAck(5, 6)).toBeUndefined(); // an ACK with no PING out changes nothing
  });

  it('held at its start, it grows on once the bound is raised', () => {
    const e = new BdpEstimator({ initialWindowBytes: 2 * MiB, maxWindowBytes: 2 * MiB });
    expect(e.growing).toBe(false);
    expect(e.onData(16_384, 0)).toBe(false);
    e.maxWindowBytes = 16 * MiB;
    let now = 0;
    for (let i = 0; i < 2; i++, now += 100) sample(e, now, 2 * MiB, 20);
    expect(sample(e, now, 2 * MiB, 20)).toBe(4 * MiB);
  });
});
