/**
 * The programs' heap-limit floor (src/cli/heap.ts): the growing percent that puts the next old-generation limit at the
 * floor, V8's own choice above it, and the setting it makes.
 */
import v8 from 'node:v8';
import { describe, expect, it, vi } from 'vitest';
import { HEAP_LIMIT_FLOOR_BYTES, growingPercentFor, keepHeapLimitFloor } from '../../../src/cli/heap.js';

const MiB = 1024 * 1024;

describe('growingPercentFor', () => {
  it('puts the limit of a small live heap at the floor', () => {
    // 8 MiB live x (1 + 700 %) = 64 MiB.
    expect(growingPercentFor(8 * MiB)).toBe(700);
    expect(growingPercentFor(32 * MiB)).toBe(100);
    expect(growingPercentFor(10 * MiB, 64 * MiB)).toBe(540);
  });

  it('leaves V8 its own factor once the live heap reached the floor', () => {
    expect(growingPercentFor(HEAP_LIMIT_FLOOR_BYTES)).toBe(0);
    expect(growingPercentFor(200 * MiB)).toBe(0);
  });

  it('never asks for more than 11x, however small the heap', () => {
    expect(growingPercentFor(1)).toBe(1000);
    expect(growingPercentFor(0)).toBe(1000);
  });
});

describe('keepHeapLimitFloor', () => {
  it("sets V8's heap growing percent from the live heap, and 0 (V8's own) for a floor already reached", () => {
    const set = vi.spyOn(v8, 'setFlagsFromString');
    try {
      const live = v8.getHeapStatistics().used_heap_size;
      keepHeapLimitFloor(live * 4)();
      expect(set).toHaveBeenCalledTimes(1);
      const percent = Number(/^--heap-growing-percent=(\d+)$/.exec(String(set.mock.calls[0]![0]))?.[1]);
      // About 300 % (the live heap moved a little between the two readings).
      expect(percent).toBeGreaterThan(250);
      expect(percent).toBeLessThanOrEqual(300);
      keepHeapLimitFloor(0)();
      expect(set).toHaveBeenLastCalledWith('--heap-growing-percent=0');
    } finally {
      set.mockRestore();
    }
  });
});
