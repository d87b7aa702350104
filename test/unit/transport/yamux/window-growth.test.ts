/** Receive-window growth with an injected clock: when a window doubles or halves, how far, and the shared budget. */
import { describe, expect, it } from 'vitest';
import { WINDOWS_BEFORE_GROWTH } from '../../../../src/transport/windows.js';
import { GROWTH_RTTS, SHRINK_RTTS, WindowGrowth } from '../../../../src/transport/yamux/window-growth.js';

const KiB = 1024;
const MiB = 1024 * KiB;

function growth(budgetBytes = 64 * MiB): { g: WindowGrowth; clock: { t: number } } {
  const clock = { t: 1000 };
  const g = new WindowGrowth({ initialBytes: 1 * MiB, ceilingBytes: 16 * MiB, budgetBytes, now: () => clock.t });
  return { g, clock };
}

describe('window growth', () => {
  it('grows nothing before a round trip is known', () => {
    const { g } = growth();
    expect(g.grow(1 * MiB, 0, 1)).toBe(1 * MiB);
  });

  it('grows nothing on the first update of a stream that got no data time yet', () => {
    const { g } = growth();
    g.rttMs = 20;
    expect(g.grow(1 * MiB, undefined, 100)).toBe(1 * MiB);
  });

  it(`doubles a window whose updates come less than ${GROWTH_RTTS} round trips apart, up to the ceiling`, () => {
    const { g, clock } = growth();
    g.rttMs = 20;
    let size = 1 * MiB;
    let last = clock.t;
    const sizes: number[] = [];
    for (let i = 0; i < 6; i++) {
      clock.t += 15; // a window-bound sender: one update per 15 ms at a 20 ms round trip
      size = g.grow(size, last, clock.t);
      last = clock.t;
      sizes.push(size / MiB);
    }
    expect(sizes).toEqual([2, 4, 8, 16, 16, 16]);
    expect(g.spareBytes).toBe(64 * MiB - 15 * MiB);
  });

  it(`grows nothing before the stream consumed ${WINDOWS_BEFORE_GROWTH} opening windows (a stalled reader's socket buffers fill fast)`, () => {
    const { g } = growth();
    g.rttMs = 20;
    const before = WINDOWS_BEFORE_GROWTH * MiB - 1;
    expect(g.grow(1 * MiB, 0, 5, before)).toBe(1 * MiB);
    expect(g.spareBytes).toBe(64 * MiB);
    expect(g.grow(1 * MiB, 5, 10, WINDOWS_BEFORE_GROWTH * MiB)).toBe(2 * MiB);
  });

  it(`keeps a window whose updates come ${GROWTH_RTTS} round trips apart or more (the link, not the window, limits)`, () => {
    const { g } = growth();
    g.rttMs = 20;
    expect(g.grow(1 * MiB, 0, GROWTH_RTTS * 20)).toBe(1 * MiB);
    expect(g.grow(1 * MiB, 0, GROWTH_RTTS * 20 - 1)).toBe(2 * MiB);
  });

  it('lets a later stream that grows go straight to the largest window an earlier one reached', () => {
    const { g } = growth();
    g.rttMs = 20;
    let first = 1 * MiB;
    for (let i = 0; i < 3; i++) first = g.grow(first, i * 10, i * 10 + 5);
    expect(first).toBe(8 * MiB);
    g.release(first);
    // Opening at the opening window; slow updates do not grow it; the first fast one takes it to 8 MiB at once.
    expect(g.grow(1 * MiB, 0, 100)).toBe(1 * MiB);
    expect(g.grow(1 * MiB, 100, 105)).toBe(8 * MiB);
    expect(g.grow(8 * MiB, 105, 110)).toBe(16 * MiB);
  });

  it('shares one budget between streams and gets it back when a stream is gone', () => {
    const { g } = growth(3 * MiB);
    g.rttMs = 10;
    const a = g.grow(1 * MiB, 0, 1); // +1 MiB
    const b = g.grow(1 * MiB, 0, 1); // +1 MiB
    const a2 = g.grow(a, 1, 2); // wants +2 MiB, 1 MiB left
    expect([a / MiB, b / MiB, a2 / MiB]).toEqual([2, 2, 3]);
    expect(g.spareBytes).toBe(0);
    expect(g.grow(b, 1, 2)).toBe(b);
    g.release(a2);
    expect(g.spareBytes).toBe(2 * MiB);
    expect(g.grow(b, 2, 3)).toBe(4 * MiB);
    // A stream that never grew gives nothing back.
    g.release(1 * MiB);
    expect(g.spareBytes).toBe(0);
  });

  it(`halves a grown window whose updates come ${SHRINK_RTTS} round trips apart, down to the opening window, and gives the budget back`, () => {
    const { g } = growth();
    g.rttMs = 20;
    let size = 1 * MiB;
    for (let i = 0; i < 3; i++) size = g.grow(size, 0, 1);
    expect(size).toBe(8 * MiB);
    expect(g.spareBytes).toBe(64 * MiB - 7 * MiB);
    const gap = SHRINK_RTTS * 20;
    const sizes: number[] = [];
    for (let i = 0; i < 5; i++) {
      size = g.grow(size, 0, gap);
      sizes.push(size / MiB);
    }
    expect(sizes).toEqual([4, 2, 1, 1, 1]);
    expect(g.spareBytes).toBe(64 * MiB);
    // Releasing a stream that shrank back gives nothing twice.
    g.release(size);
    expect(g.spareBytes).toBe(64 * MiB);
  });

  it(`keeps a grown window whose updates come between ${GROWTH_RTTS} and ${SHRINK_RTTS} round trips apart (no flapping)`, () => {
    const { g } = growth();
    g.rttMs = 20;
    const size = g.grow(g.grow(1 * MiB, 0, 1), 0, 1);
    expect(size).toBe(4 * MiB);
    expect(g.grow(size, 0, GROWTH_RTTS * 20)).toBe(4 * MiB);
    expect(g.grow(size, 0, SHRINK_RTTS * 20 - 1)).toBe(4 * MiB);
    // A window that never grew does not shrink below the opening one.
    expect(g.grow(1 * MiB, 0, 10 * SHRINK_RTTS * 20)).toBe(1 * MiB);
  });

  it('lets a stream grow again after it shrank, with budget another stream gave back', () => {
    const { g } = growth(4 * MiB);
    g.rttMs = 10;
    const a = g.grow(g.grow(g.grow(1 * MiB, 0, 1), 0, 1), 0, 1); // 1 -> 2 -> 4 -> 5 (the budget runs out)
    expect(a).toBe(5 * MiB);
    expect(g.grow(1 * MiB, 0, 1)).toBe(1 * MiB); // b: nothing left
    const a2 = g.grow(a, 0, SHRINK_RTTS * 10); // a went quiet: 5 -> 2.5 MiB
    expect(a2).toBe(Math.floor(5 * MiB / 2));
    expect(g.grow(1 * MiB, 0, 1)).toBe(1 * MiB + (5 * MiB - Math.floor(5 * MiB / 2))); // b takes what a gave back
  });
});
