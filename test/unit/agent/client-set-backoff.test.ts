import { describe, expect, it } from 'vitest';
import { Backoff, jitter } from '../../../src/agent/backoff.js';
import { ErrorCode } from '../../../src/protocol/errors.js';

describe('Backoff', () => {
  it('grows by 1.5 from the interval up to the cap, with no jitter when random() is 0', () => {
    const b = new Backoff({ initialMs: 1000, capMs: 10_000, random: () => 0 });
    const delays = Array.from({ length: 8 }, () => b.next());
    expect(delays).toEqual([1000, 1500, 2250, 3375, 5062.5, 7593.75, 10_000, 10_000]);
  });

  it('adds at most 10 % jitter, never less than the delay', () => {
    const high = new Backoff({ initialMs: 1000, capMs: 10_000, random: () => 0.999999 });
    expect(high.next()).toBeCloseTo(1100, 1);
    expect(high.next()).toBeCloseTo(1650, 1);
    expect(jitter(1000, 0.1, () => 0.5)).toBe(1050);
    expect(jitter(1000, 0, () => 0.5)).toBe(1000);
  });

  it('reset() starts again from the interval; interval() never grows', () => {
    const b = new Backoff({ initialMs: 100, capMs: 1000, random: () => 0 });
    b.next();
    b.next();
    expect(b.interval()).toBe(100);
    b.reset();
    expect(b.next()).toBe(100);
  });

  it('uses the reference defaults (1 s to 10 s)', () => {
    const b = new Backoff({ random: () => 0 });
    expect([b.initialMs, b.capMs, b.factor, b.jitterFraction]).toEqual([1000, 10_000, 1.5, 0.1]);
  });

  it.each([
    [{ initialMs: -1 }],
    [{ initialMs: Number.NaN }],
    [{ initialMs: 10, capMs: 5 }],
    [{ factor: 0.5 }],
    [{ jitter: -0.1 }],
  ])('refuses bad options %j', (options) => {
    expect(() => new Backoff(options)).toThrow(expect.objectContaining({ code: ErrorCode.INVALID_OPTION }));
  });
});
