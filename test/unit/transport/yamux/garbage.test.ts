/** Random bytes and random frames thrown at a session: it fails with a KonnectivityError or carries on, never throws. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isKonnectivityError } from '../../../../src/protocol/errors.js';
import { YamuxSession } from '../../../../src/transport/yamux/session.js';
import { encodeFrame, FrameType } from '../../../../src/transport/yamux/frame.js';
import { duplexPair } from './pipe.js';

async function feed(chunks: Uint8Array[]): Promise<void> {
  const [a, b] = duplexPair();
  const s = new YamuxSession(b, { client: false, keepAliveIntervalMs: 0 });
  a.on('data', () => undefined);
  a.on('error', () => undefined);
  const closed = new Promise<Error | undefined>((r) => s.once('close', r));
  for (const c of chunks) a.write(c);
  a.end();
  const err = await closed;
  if (err) expect(isKonnectivityError(err)).toBe(true);
  s.destroy();
}

const frame = fc
  .record({
    type: fc.integer({ min: 0, max: 3 }),
    flags: fc.integer({ min: 0, max: 15 }),
    streamID: fc.oneof(fc.integer({ min: 0, max: 8 }), fc.integer({ min: 0, max: 0xffffffff })),
    length: fc.integer({ min: 0, max: 0xffffffff }),
    payload: fc.uint8Array({ maxLength: 64 }),
  })
  .map(({ payload, ...h }) => encodeFrame(h.type === FrameType.DATA ? { ...h, payload: Buffer.from(payload) } : h));

describe('yamux session against garbage', () => {
  it('random bytes', async () => {
    await fc.assert(fc.asyncProperty(fc.array(fc.uint8Array({ minLength: 1, maxLength: 64 }), { maxLength: 8 }), feed), { numRuns: 200 });
  });

  it('random well-formed frames', async () => {
    await fc.assert(fc.asyncProperty(fc.array(frame, { maxLength: 16 }), feed), { numRuns: 300 });
  });
});
