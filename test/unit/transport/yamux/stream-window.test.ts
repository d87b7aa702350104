/**
 * A yamux stream's receive window without I/O: a fake session records the Window Updates the stream sends while
 * a sender fills the window round after round, as on a long link where each round is one round trip.
 */
import { describe, expect, it } from 'vitest';
import { resolveYamuxOptions } from '../../../../src/transport/yamux/config.js';
import { FrameType } from '../../../../src/transport/yamux/frame.js';
import { YamuxStream, type StreamOwner } from '../../../../src/transport/yamux/stream.js';

const KiB = 1024;
const WINDOW = 1024 * KiB;

/** An accepted stream whose session only records the updates it sends. */
function acceptedStream(): { stream: YamuxStream; granted: () => number } {
  let granted = 0;
  const owner: StreamOwner = {
    options: resolveYamuxOptions({ maxStreamWindowBytes: WINDOW }),
    windowGrowth: undefined,
    markReady: () => undefined,
    sendControl: (type, flags, _id, length) => {
      if (type === FrameType.WINDOW_UPDATE && flags === 0) granted += length;
    },
    streamClosed: () => undefined,
  };
  const stream = new YamuxStream(owner, 2, false);
  stream.sendAck();
  return { stream, granted: () => granted };
}

/**
 * Carve `n` bytes into pieces the way a TLS carrier hands a Data frame over: 16 KiB reads that do not line up
 * with the 12-byte frame headers, so a piece now and then is a few bytes long.
 */
function pieces(n: number): number[] {
  const sizes = [16_372, 16_384, 12, 16_372, 16_384, 16_384, 16_380, 4];
  const out: number[] = [];
  for (let i = 0; n > 0; i++) {
    const k = Math.min(n, sizes[i % sizes.length]!);
    out.push(k);
    n -= k;
  }
  return out;
}

describe('yamux stream receive window', () => {
  it('gives a sender that filled its window the whole window back once the reader consumed it, every round', () => {
    const { stream, granted } = acceptedStream();
    // What the peer may still send: its window, plus what we granted, less what it sent.
    let allowance = WINDOW;
    let seen = 0;
    for (let round = 0; round < 6; round++) {
      // The sender puts its whole allowance in flight; the reader keeps up, reading every piece as it comes.
      const burst = allowance;
      for (const n of pieces(burst)) {
        expect(stream.onData(Buffer.alloc(n, round), true)).toBe(true);
        stream.read();
      }
      allowance -= burst;
      allowance += granted() - seen;
      seen = granted();
      // Never more in flight and unread than the window.
      expect(allowance + stream.readableLength).toBeLessThanOrEqual(WINDOW);
      // All of it was consumed, so the next round trip may carry a whole window again (not half of one).
      expect(allowance).toBe(WINDOW);
    }
    stream.destroy();
  });
});
