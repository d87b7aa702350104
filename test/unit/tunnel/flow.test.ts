/**
 * The credit regime's terms (src/tunnel/flow.ts) and the receiving end of a credit window
 * (src/tunnel/receive-window.ts): what an agent offers, what a server confirms to a konnectivity-ts agent and to an
 * older one, what an agent reads back; credit returned a quarter window at a time and grown only for a reader that
 * drains a window per round trip.
 */
import { describe, expect, it } from 'vitest';
import {
  CHUNK_METADATA_KEY,
  WINDOW_METADATA_KEY,
  acceptCreditOffer,
  agreedCreditTerms,
  creditOffer,
} from '../../../src/tunnel/flow.js';
import { ReceiveWindow } from '../../../src/tunnel/receive-window.js';
import { WINDOWS_BEFORE_GROWTH } from '../../../src/transport/windows.js';

const KiB = 1024;

describe('credit terms', () => {
  it('an agent offers its buffer as the window and 128 KiB chunks; the server takes the smaller of each', () => {
    const offer = creditOffer(2048 * KiB);
    expect(offer).toEqual({ [WINDOW_METADATA_KEY]: ['2097152'], [CHUNK_METADATA_KEY]: ['131072'] });
    const accepted = acceptCreditOffer(offer, 1024 * KiB)!;
    expect(accepted.terms).toEqual({ windowBytes: 1024 * KiB, chunkBytes: 128 * KiB });
    expect(accepted.response).toEqual({ [WINDOW_METADATA_KEY]: ['1048576'], [CHUNK_METADATA_KEY]: ['131072'] });
    expect(agreedCreditTerms(accepted.response)).toEqual({ windowBytes: 1024 * KiB, chunkBytes: 128 * KiB });
  });

  it('an agent without a chunk offer (an older konnectivity-ts) gets 32 KiB chunks and no chunk key back', () => {
    const accepted = acceptCreditOffer({ [WINDOW_METADATA_KEY]: ['262144'] }, 1024 * KiB)!;
    expect(accepted.terms).toEqual({ windowBytes: 256 * KiB, chunkBytes: 32 * KiB });
    expect(accepted.response).toEqual({ [WINDOW_METADATA_KEY]: ['262144'] });
    expect(agreedCreditTerms(accepted.response)).toEqual({ windowBytes: 256 * KiB, chunkBytes: 32 * KiB });
  });

  it('no window offered (a Go peer): the legacy regime; chunk offers out of range count as 32 KiB', () => {
    expect(acceptCreditOffer({ agentid: ['go'] }, 1024 * KiB)).toBeUndefined();
    expect(agreedCreditTerms({ serverid: ['go'] })).toBeUndefined();
    for (const bad of ['1024', '262144', 'x', '-5']) {
      expect(acceptCreditOffer({ [WINDOW_METADATA_KEY]: ['65536'], [CHUNK_METADATA_KEY]: [bad] }, 1024 * KiB)!.terms.chunkBytes).toBe(32 * KiB);
    }
  });
});

describe('ReceiveWindow', () => {
  it('returns credit a quarter of the window at a time', () => {
    const w = new ReceiveWindow(64 * KiB, 64 * KiB);
    const clock = () => 0;
    expect(w.consumed(10 * KiB, clock, 20)).toBe(0);
    expect(w.consumed(6 * KiB, clock, 20)).toBe(16 * KiB);
    expect(w.consumed(15 * KiB, clock, undefined)).toBe(0);
  });

  it('doubles for a reader that drains a window per round trip, up to its bound, never for a slow one', () => {
    let now = 0;
    const clock = () => now;
    const fast = new ReceiveWindow(64 * KiB, 256 * KiB);
    // Nothing is judged in the first eight windows (WINDOWS_BEFORE_GROWTH), however fast they go.
    for (let i = 0; i < WINDOWS_BEFORE_GROWTH; i++) {
      now += 1;
      expect(fast.consumed(fast.windowBytes, clock, 20)).toBe(64 * KiB);
    }
    expect(fast.windowBytes).toBe(64 * KiB);
    const grants: number[] = [];
    for (let i = 0; i < 4; i++) {
      now += 20;
      grants.push(fast.consumed(fast.windowBytes, clock, 20) / KiB);
    }
    // What was consumed comes back, plus the growth once a sample spans a round trip: 64, 64 + 64, 128 + 128, 256.
    expect(grants).toEqual([64, 128, 256, 256]);
    expect(fast.windowBytes).toBe(256 * KiB);
    const slow = new ReceiveWindow(64 * KiB, 256 * KiB);
    for (let i = 0; i < 16; i++) {
      now += 200;
      slow.consumed(64 * KiB, clock, 20);
    }
    expect(slow.windowBytes).toBe(64 * KiB);
    // A burst inside one event-loop turn is not a rate: spans shorter than 10 ms do not count.
    const burst = new ReceiveWindow(64 * KiB, 256 * KiB);
    for (let i = 0; i < 16; i++) burst.consumed(64 * KiB, () => 5, 0.2);
    expect(burst.windowBytes).toBe(64 * KiB);
  });
});
