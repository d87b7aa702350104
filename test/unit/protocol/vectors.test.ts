/**
 * The golden wire vectors (test/fixtures/vectors/packets.json, a verbatim copy of ../shared/vectors/packets.json):
 * the copy is current, exact encodings, decoding back, both framers fed the framed bytes split at every offset,
 * decode-only encodings and malformed input.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ErrorCode, KonnectivityError, decodePacket, encodePacket, type Packet } from '../../../src/protocol/index.js';
import { GrpcMessageDecoder } from '../../../src/transport/grpc/framing.js';
import { DelimitedMessageDecoder } from '../../../src/transport/yamux/delimited.js';
import { SHARED_VECTORS_PATH, VECTORS_PATH, canon, hex, loadVectors, packetFromJson } from './helpers.js';

const vectors = loadVectors();

// Only where the shared original is at hand (a clone with nothing beside it has just the fixture).
describe.runIf(SHARED_VECTORS_PATH !== undefined)('golden vectors: the committed fixture', () => {
  it(`equals ${SHARED_VECTORS_PATH ?? 'the shared original'} byte for byte`, () => {
    const same = readFileSync(VECTORS_PATH, 'utf8') === readFileSync(SHARED_VECTORS_PATH!, 'utf8');
    expect(same, `out of date: cp ${SHARED_VECTORS_PATH} test/fixtures/vectors/packets.json`).toBe(true);
  });
});

type Decoder = GrpcMessageDecoder | DelimitedMessageDecoder;

/** Feed `bytes` to a fresh decoder in the given chunks and decode every message it yields. */
function feed(make: () => Decoder, bytes: Buffer, cuts: number[]): Packet[] {
  const decoder = make();
  const out: Packet[] = [];
  let start = 0;
  for (const cut of [...cuts, bytes.length]) {
    for (const msg of decoder.push(bytes.subarray(start, cut))) out.push(decodePacket(msg));
    start = cut;
  }
  expect(decoder.idle).toBe(true);
  expect(decoder.bufferedBytes).toBe(0);
  return out;
}

const framers: Array<[string, 'grpcFrameHex' | 'delimitedHex', () => Decoder]> = [
  ['GrpcMessageDecoder', 'grpcFrameHex', () => new GrpcMessageDecoder()],
  ['DelimitedMessageDecoder', 'delimitedHex', () => new DelimitedMessageDecoder()],
];

describe('golden vectors: valid', () => {
  it('has the cases the contract names', () => {
    const names = vectors.valid.map((v) => v.name);
    expect(names).toContain('dial_req_max_random');
    expect(names).toContain('dial_req_random_2p53_plus_1');
    expect(vectors.valid.length).toBeGreaterThanOrEqual(17);
  });

  for (const v of vectors.valid) {
    describe(v.name, () => {
      const packet = packetFromJson(v.packet);
      const bytes = Buffer.from(v.hex, 'hex');

      it('encodes to exactly hex', () => {
        expect(hex(encodePacket(packet))).toBe(v.hex);
      });

      it('decodes back to the packet (bigints exact)', () => {
        const decoded = decodePacket(bytes);
        expect(canon(decoded)).toEqual(canon(packet));
        for (const key of ['dialRequest', 'dialResponse', 'data', 'closeRequest', 'closeResponse', 'closeDial']) {
          const want = (packet as unknown as Record<string, Record<string, unknown> | undefined>)[key];
          const got = (decoded as unknown as Record<string, Record<string, unknown> | undefined>)[key];
          for (const f of ['random', 'connectID']) {
            if (want?.[f] !== undefined) {
              expect(typeof got?.[f]).toBe('bigint');
              expect(got?.[f] === want[f]).toBe(true);
            }
          }
        }
      });

      for (const [name, field, make] of framers) {
        it(`${name}: frame bytes split at every offset and byte by byte decode the same`, () => {
          const framed = Buffer.from(v[field], 'hex');
          const want = canon(packet);
          expect(feed(make, framed, []).map(canon)).toEqual([want]);
          for (let cut = 0; cut <= framed.length; cut++) {
            expect(feed(make, framed, [cut]).map(canon)).toEqual([want]);
          }
          const every = Array.from({ length: framed.length }, (_, i) => i);
          expect(feed(make, framed, every).map(canon)).toEqual([want]);
        });
      }
    });
  }

  for (const [name, field, make] of framers) {
    it(`${name}: all valid vectors back to back, split at every offset, decode in order`, () => {
      const stream = Buffer.concat(vectors.valid.map((v) => Buffer.from(v[field], 'hex')));
      const want = vectors.valid.map((v) => canon(packetFromJson(v.packet)));
      // Every offset would be quadratic in a long stream; a stride plus byte-by-byte covers the boundaries.
      for (let cut = 0; cut <= stream.length; cut += 7) expect(feed(make, stream, [cut]).map(canon)).toEqual(want);
      const every = Array.from({ length: stream.length }, (_, i) => i);
      expect(feed(make, stream, every).map(canon)).toEqual(want);
    });
  }
});

describe('golden vectors: decodeOnly', () => {
  for (const v of vectors.decodeOnly) {
    it(`${v.name}: decodes as given`, () => {
      const decoded = decodePacket(Buffer.from(v.hex, 'hex'));
      expect(canon(decoded)).toEqual(canon(packetFromJson(v.packet)));
    });
  }

  it('keeps an unknown packet type as { type: 99, unknown: true }', () => {
    const v = vectors.decodeOnly.find((c) => c.name === 'unknown_packet_type_99');
    expect(v).toBeDefined();
    expect(decodePacket(Buffer.from(v!.hex, 'hex'))).toEqual({ type: 99, unknown: true });
  });
});

describe('golden vectors: invalid', () => {
  for (const v of vectors.invalid) {
    it(`${v.name}: throws ERR_MALFORMED_PACKET, never returns a packet`, () => {
      let result: unknown;
      let error: unknown;
      try {
        result = decodePacket(Buffer.from(v.hex, 'hex'));
      } catch (err) {
        error = err;
      }
      expect(result).toBeUndefined();
      expect(error).toBeInstanceOf(KonnectivityError);
      expect((error as KonnectivityError).code).toBe(ErrorCode.MALFORMED_PACKET);
      expect((error as Error).message).toMatch(/malformed packet/);
    });
  }
});
