/** Dial IDs: non-zero, non-negative 63-bit values drawn uniformly, across more than one refill of the pool. */
import { describe, expect, it } from 'vitest';
import { randomDialID } from '../../../src/protocol/index.js';

describe('randomDialID', () => {
  it('gives distinct IDs in [1, 2^63) that use all 63 bits', () => {
    const n = 4096; // eight refills of the 512-ID pool
    const ids = Array.from({ length: n }, () => randomDialID());
    for (const id of ids) {
      expect(typeof id).toBe('bigint');
      expect(id >= 1n && id < 2n ** 63n, String(id)).toBe(true);
    }
    expect(new Set(ids).size).toBe(n);
    // Each of the 63 bits is set in about half of the IDs; 4096 draws put every count far from 0 and from n.
    for (let bit = 0n; bit < 63n; bit++) {
      const set = ids.filter((id) => (id >> bit) & 1n).length;
      expect(set, `bit ${bit}`).toBeGreaterThan(n * 0.4);
      expect(set, `bit ${bit}`).toBeLessThan(n * 0.6);
    }
  });
});
