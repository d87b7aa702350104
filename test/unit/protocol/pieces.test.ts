/**
 * Payloads in pieces (src/protocol/payload.ts) and the piecewise decoder (decodePacketPieces): a message split at
 * every offset, into two and three pieces, decodes to the same packet; a DATA payload stays views of the pieces;
 * layouts the fast path does not know, and malformed input, go through the general decoder.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  ENCODED,
  ErrorCode,
  KonnectivityError,
  PacketType,
  PiecewiseData,
  closeResponse,
  dataOf,
  dataPacket,
  decodePacket,
  decodePacketPieces,
  dialRequest,
  encodePacket,
  joinPayload,
  ownPayload,
  payloadLength,
  payloadLengthOf,
  payloadOf,
  slicePayload,
  type DataPacket,
  type Packet,
  type Payload,
} from '../../../src/protocol/index.js';
import { canon } from './helpers.js';

function bytes(n: number, seed = 0): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 7 + seed) % 251;
  return b;
}

/** `whole` cut at `cuts`, each piece a view of `whole`. */
function cut(whole: Buffer, cuts: number[]): Buffer[] {
  const out: Buffer[] = [];
  let start = 0;
  for (const c of [...cuts, whole.length]) {
    out.push(whole.subarray(start, c));
    start = c;
  }
  return out;
}

function hexOf(p: Payload): string {
  return Buffer.from(joinPayload(p)).toString('hex');
}

describe('payload helpers', () => {
  it('length, join and slice over pieces agree with one buffer, for every range', () => {
    const whole = bytes(40);
    const pieces = cut(whole, [0, 7, 7, 20, 39]);
    expect(payloadLength(pieces)).toBe(40);
    expect(hexOf(pieces)).toBe(whole.toString('hex'));
    for (let s = 0; s <= 40; s++) {
      for (let e = s; e <= 40; e++) {
        const sliced = slicePayload(pieces, s, e);
        expect(payloadLength(sliced)).toBe(e - s);
        expect(hexOf(sliced)).toBe(whole.subarray(s, e).toString('hex'));
      }
    }
  });

  it('slices are views, never copies', () => {
    const whole = bytes(100);
    const sliced = slicePayload(cut(whole, [30, 60]), 10, 90) as Uint8Array[];
    expect(sliced.map((p) => p.length)).toEqual([20, 30, 30]);
    for (const p of sliced) expect(p.buffer).toBe(whole.buffer);
    expect(slicePayload(cut(whole, [30, 60]), 31, 59)).toBeInstanceOf(Uint8Array);
  });

  it('ownPayload copies only views that hold on to a much larger buffer', () => {
    const big = Buffer.allocUnsafeSlow(64 * 1024).fill(3);
    const small = big.subarray(0, 100);
    const large = big.subarray(100, 40_000);
    const owned = ownPayload([small, large]) as Uint8Array[];
    expect(owned[0]).not.toBe(small);
    expect(owned[0]!.buffer.byteLength).toBe(100);
    expect(owned[1]).toBe(large);
    expect(hexOf(owned)).toBe(hexOf([small, large]));
    const fine = [large];
    expect(ownPayload(fine)).toBe(fine);
    expect((ownPayload(small) as Uint8Array).buffer.byteLength).toBe(100);
  });

  it('PiecewiseData joins on first read only, and dataPacket keeps pieces', () => {
    const pieces = cut(bytes(50), [10, 30]);
    const p = dataPacket(5n, pieces);
    expect(p.data).toBeInstanceOf(PiecewiseData);
    expect(payloadOf(p)).toBe(pieces);
    expect(payloadLengthOf(p)).toBe(50);
    const joined = dataOf(p);
    expect(Buffer.from(joined).equals(bytes(50))).toBe(true);
    expect(dataOf(p)).toBe(joined);
    // It encodes like the same packet with one buffer.
    expect(encodePacket(p).equals(encodePacket(dataPacket(5n, bytes(50))))).toBe(true);
    const one = dataPacket(5n, bytes(3));
    expect(payloadOf(one)).toBeInstanceOf(Uint8Array);
    expect(payloadLengthOf({ type: PacketType.DATA })).toBe(0);
  });
});

describe('decodePacketPieces', () => {
  const messages: Array<[string, Packet]> = [
    ['DATA 5 KB', dataPacket(7n, bytes(5000))],
    ['DATA with a large connectID', dataPacket(2n ** 62n + 3n, bytes(3000, 1))],
    ['DATA with a negative connectID', dataPacket(-5n, bytes(300, 2))],
    ['DATA with connectID 0', dataPacket(0n, bytes(100, 3))],
    ['DATA with an error text (general decoder)', { type: PacketType.DATA, data: { connectID: 1n, error: 'x', data: bytes(200) } }],
    ['DIAL_REQ (general decoder)', dialRequest('10.0.0.1:443', 99n)],
    ['CLOSE_RSP (general decoder)', closeResponse(4n, 'gone')],
  ];

  for (const [name, packet] of messages) {
    it(`${name}: split into two pieces at every offset and three at many decodes the same`, () => {
      const whole = encodePacket(packet);
      const want = canon(decodePacket(whole));
      const step = Math.max(1, Math.floor(whole.length / 60));
      for (let a = 0; a <= whole.length; a++) {
        const got = decodePacketPieces(cut(whole, [a]), whole.length);
        expect(canon(got)).toEqual(want);
        if (a % step !== 0) continue;
        for (let b = a; b <= whole.length; b += step) {
          expect(canon(decodePacketPieces(cut(whole, [a, b]), whole.length))).toEqual(want);
        }
      }
    });
  }

  it('keeps a DATA payload as views of the pieces, and the message pieces as its encoding', () => {
    const whole = encodePacket(dataPacket(7n, bytes(40_000)));
    const pieces = cut(whole, [16_384, 32_768]);
    const p = decodePacket(pieces, { keepEncoded: true }) as DataPacket;
    expect(p.data).toBeInstanceOf(PiecewiseData);
    const payload = payloadOf(p) as Uint8Array[];
    expect(payload).toHaveLength(3);
    for (const piece of payload) expect(piece.buffer).toBe(whole.buffer);
    expect(payloadLengthOf(p)).toBe(40_000);
    expect((p as { [ENCODED]?: Payload })[ENCODED]).toBe(pieces);
    expect(Buffer.from(dataOf(p)).equals(bytes(40_000))).toBe(true);
  });

  it('random DATA packets cut at random points decode the same (property)', () => {
    fc.assert(
      fc.property(
        fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }),
        fc.uint8Array({ minLength: 0, maxLength: 2000 }),
        fc.array(fc.nat({ max: 2100 }), { maxLength: 6 }),
        (id, payload, points) => {
          const whole = encodePacket(dataPacket(id, payload));
          const cuts = [...new Set(points.map((c) => c % (whole.length + 1)))].sort((x, y) => x - y);
          expect(canon(decodePacketPieces(cut(whole, cuts), whole.length))).toEqual(canon(decodePacket(whole)));
        },
      ),
      { numRuns: 300 },
    );
  });

  it('malformed input fails the same way as in one buffer', () => {
    // A DATA member whose length runs past the message.
    const bad = Buffer.from('0804220a0801', 'hex');
    for (let a = 0; a <= bad.length; a++) {
      let err: unknown;
      try {
        decodePacketPieces(cut(bad, [a]), bad.length);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(KonnectivityError);
      expect((err as KonnectivityError).code).toBe(ErrorCode.MALFORMED_PACKET);
    }
  });
});
