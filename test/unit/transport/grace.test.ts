/** The grace period every close() uses: one expiry at the deadline or the abort, none after cancel(). */
import { describe, expect, it } from 'vitest';
import { closeWithin, graceMsOf, startGrace } from '../../../src/transport/grace.js';
import { expectNoLeaks, snapshotResources } from '../../helpers/leaks.js';

describe('startGrace', () => {
  it('expires once at the deadline, and leaves no timer behind', async () => {
    const before = snapshotResources();
    let expired = 0;
    const grace = startGrace({ graceMs: 10 }, 60_000, () => expired++);
    expect(grace.expired).toBe(false);
    await new Promise((r) => setTimeout(r, 30));
    expect(expired).toBe(1);
    expect(grace.expired).toBe(true);
    grace.cancel();
    expect(expired).toBe(1);
    await expectNoLeaks(before);
  });

  it('expires when the signal aborts, at once for an aborted signal or a grace of 0', () => {
    let expired = 0;
    const ac = new AbortController();
    const grace = startGrace({ signal: ac.signal }, 60_000, () => expired++);
    ac.abort();
    ac.abort();
    expect(expired).toBe(1);
    grace.cancel();
    startGrace({ signal: ac.signal }, 60_000, () => expired++);
    startGrace({ graceMs: 0 }, 60_000, () => expired++);
    expect(expired).toBe(3);
  });

  it('does nothing after cancel(), and forgets the signal and the timer', async () => {
    const before = snapshotResources();
    const ac = new AbortController();
    let expired = 0;
    startGrace({ graceMs: 5, signal: ac.signal }, 0, () => expired++).cancel();
    ac.abort();
    await new Promise((r) => setTimeout(r, 20));
    expect(expired).toBe(0);
    await expectNoLeaks(before);
  });

  it('refuses a bad graceMs with ERR_INVALID_OPTION, and uses the default when none is given', () => {
    for (const graceMs of [-1, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 31]) {
      expect(() => graceMsOf({ graceMs }, 0)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION' }));
    }
    expect(graceMsOf(undefined, 1234)).toBe(1234);
    expect(graceMsOf({}, 1234)).toBe(1234);
  });
});

describe('closeWithin', () => {
  it('resolves with the work when it finishes in time, and destroys at the deadline when it does not', async () => {
    let destroyed = 0;
    await closeWithin(Promise.resolve(), { graceMs: 60_000 }, 0, () => destroyed++);
    expect(destroyed).toBe(0);
    let finish!: () => void;
    const done = new Promise<void>((r) => (finish = r));
    await closeWithin(done, { graceMs: 10 }, 0, () => {
      destroyed++;
      finish();
    });
    expect(destroyed).toBe(1);
    // A failure of the work is reported elsewhere; closeWithin only waits.
    await expect(closeWithin(Promise.reject(new Error('x')), {}, 10, () => {})).resolves.toBeUndefined();
  });
});
