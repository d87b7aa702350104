/**
 * protobufjs, loaded from proto/konnectivity.proto, is the reference oracle for the hand-written codec: for random
 * packets of every type both encoders give identical bytes, and each decoder reads the other's output back to the
 * same packet. Random garbage never makes decodePacket fail with anything but ERR_MALFORMED_PACKET.
 */
import { resolve } from 'node:path';
import fc from 'fast-check';
import protobuf from 'protobufjs';
import { describe, expect, it } from 'vitest';
import {
  ErrorCode,
  KonnectivityError,
  PacketType,
  decodePacket,
  encodePacket,
  type Packet,
} from '../../../src/protocol/index.js';
import { ROOT, canon, hex } from './helpers.js';

const root = new protobuf.Root().loadSync(resolve(ROOT, 'proto/konnectivity.proto'), { keepCase: true });
const PbPacket = root.lookupType('Packet');

/** Property-test runs (reported by the suite's summary). */
export const PACKET_RUNS = 3000;
export const GARBAGE_RUNS = 5000;

const MEMBER_OF_TYPE: Record<number, string> = {
  [PacketType.DIAL_REQ]: 'dialRequest',
  [PacketType.DIAL_RSP]: 'dialResponse',
  [PacketType.CLOSE_REQ]: 'closeRequest',
  [PacketType.CLOSE_RSP]: 'closeResponse',
  [PacketType.DATA]: 'data',
  [PacketType.DIAL_CLS]: 'closeDial',
  [PacketType.DRAIN]: 'drain',
  [PacketType.WINDOW_UPDATE]: 'windowUpdate',
  [PacketType.HALF_CLOSE]: 'halfClose',
};
const INT64_FIELDS = new Set(['random', 'connectID', 'increment']);

// ---- arbitraries ----------------------------------------------------------------------------------------------

const MIN_INT64 = -(2n ** 63n);
const MAX_INT64 = 2n ** 63n - 1n;
const int64 = fc.oneof(
  fc.bigInt({ min: MIN_INT64, max: MAX_INT64 }),
  fc.constantFrom(0n, 1n, -1n, MIN_INT64, MAX_INT64, 2n ** 53n + 1n, 2n ** 31n, 2n ** 32n, -(2n ** 31n)),
  fc.bigInt({ min: -1000n, max: 1000n }),
);
const text = fc.oneof(fc.constant(''), fc.string(), fc.string({ unit: 'binary', maxLength: 40 }), fc.string({ unit: 'grapheme' }));
const payload = fc.oneof(
  fc.uint8Array({ maxLength: 64 }),
  fc.uint8Array({ minLength: 100, maxLength: 20_000 }),
  fc.constant(new Uint8Array(0)),
);

/** A packet of any known type with its payload absent or random, or an unknown type without payload. */
const packetArb: fc.Arbitrary<Packet> = fc.oneof(
  fc.option(fc.record({ protocol: text, address: text, random: int64 }), { nil: undefined }).map((m) =>
    m ? { type: PacketType.DIAL_REQ, dialRequest: m } : { type: PacketType.DIAL_REQ },
  ),
  fc.option(fc.record({ error: text, connectID: int64, random: int64 }), { nil: undefined }).map((m) =>
    m ? { type: PacketType.DIAL_RSP, dialResponse: m } : { type: PacketType.DIAL_RSP },
  ),
  fc.option(fc.record({ connectID: int64 }), { nil: undefined }).map((m) =>
    m ? { type: PacketType.CLOSE_REQ, closeRequest: m } : { type: PacketType.CLOSE_REQ },
  ),
  fc.option(fc.record({ error: text, connectID: int64 }), { nil: undefined }).map((m) =>
    m ? { type: PacketType.CLOSE_RSP, closeResponse: m } : { type: PacketType.CLOSE_RSP },
  ),
  fc.option(fc.record({ connectID: int64, error: text, data: payload }), { nil: undefined }).map((m) =>
    m ? { type: PacketType.DATA, data: m } : { type: PacketType.DATA },
  ),
  fc.option(fc.record({ random: int64 }), { nil: undefined }).map((m) =>
    m ? { type: PacketType.DIAL_CLS, closeDial: m } : { type: PacketType.DIAL_CLS },
  ),
  fc.boolean().map((present) => (present ? { type: PacketType.DRAIN, drain: {} } : { type: PacketType.DRAIN })),
  fc.option(fc.record({ connectID: int64, increment: int64 }), { nil: undefined }).map((m) =>
    m ? { type: PacketType.WINDOW_UPDATE, windowUpdate: m } : { type: PacketType.WINDOW_UPDATE },
  ),
  fc.option(fc.record({ connectID: int64 }), { nil: undefined }).map((m) =>
    m ? { type: PacketType.HALF_CLOSE, halfClose: m } : { type: PacketType.HALF_CLOSE },
  ),
  fc
    .oneof(fc.integer({ min: 7, max: 2 ** 31 - 1 }), fc.integer({ min: -(2 ** 31), max: -1 }))
    .filter((type) => type !== PacketType.WINDOW_UPDATE && type !== PacketType.HALF_CLOSE)
    .map((type) => ({ type, unknown: true as const })),
) as fc.Arbitrary<Packet>;

// ---- conversions to and from protobufjs objects ---------------------------------------------------------------

/** Our packet as a protobufjs plain object, proto3 defaults left out (as a generated Go struct would not send them). */
function toPb(p: Packet): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (p.type !== 0) out.type = p.type;
  const key = MEMBER_OF_TYPE[p.type];
  const member = key ? (p as unknown as Record<string, Record<string, unknown> | undefined>)[key] : undefined;
  if (key && member) {
    const m: Record<string, unknown> = {};
    for (const [f, v] of Object.entries(member)) {
      if (typeof v === 'bigint') {
        if (v !== 0n) m[f] = v.toString();
      } else if (typeof v === 'string') {
        if (v !== '') m[f] = v;
      } else if (v instanceof Uint8Array) {
        if (v.length > 0) m[f] = v;
      }
    }
    out[key] = m;
  }
  return out;
}

function pbEncode(p: Packet): Buffer {
  const msg = PbPacket.fromObject(toPb(p));
  return Buffer.from(PbPacket.encode(msg).finish());
}

/** protobufjs's reading of `bytes`, in our Packet shape (the member that matches the type, zero defaults). */
function pbDecode(bytes: Uint8Array): Packet {
  const obj = PbPacket.toObject(PbPacket.decode(bytes), { longs: String, enums: Number, defaults: true }) as Record<
    string,
    unknown
  >;
  const type = obj.type as number;
  const key = MEMBER_OF_TYPE[type];
  if (key === undefined) return { type, unknown: true };
  const out: Record<string, unknown> = { type };
  const member = obj[key] as Record<string, unknown> | undefined;
  if (member) {
    const m: Record<string, unknown> = {};
    for (const [f, v] of Object.entries(member)) m[f] = INT64_FIELDS.has(f) ? BigInt(v as string) : v;
    out[key] = m;
  }
  return out as unknown as Packet;
}

// ---- properties -----------------------------------------------------------------------------------------------

describe('codec vs protobufjs oracle', () => {
  it(`random packets of every type: identical bytes and mutual decoding (${PACKET_RUNS} runs)`, () => {
    const seenTypes = new Set<number>();
    fc.assert(
      fc.property(packetArb, (p) => {
        seenTypes.add(p.type > PacketType.DRAIN || p.type < 0 ? -1 : p.type);
        const ours = encodePacket(p);
        const theirs = pbEncode(p);
        expect(hex(ours)).toBe(hex(theirs));
        const want = canon(p);
        // Each side reads the other's output.
        expect(canon(decodePacket(theirs))).toEqual(want);
        expect(canon(pbDecode(ours))).toEqual(want);
      }),
      { numRuns: PACKET_RUNS },
    );
    // Every known type and the unknown ones were exercised.
    expect(seenTypes.size).toBe(8);
  });

  it('int64 fields survive the full range exactly (no trip through a JS number)', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: MIN_INT64, max: MAX_INT64 }), (random) => {
        const p: Packet = { type: PacketType.DIAL_CLS, closeDial: { random } };
        const bytes = encodePacket(p);
        expect(hex(bytes)).toBe(hex(pbEncode(p)));
        const back = decodePacket(bytes) as { closeDial: { random: bigint } };
        expect(back.closeDial.random === random).toBe(true);
      }),
      { numRuns: 1000 },
    );
  });
});

describe('decodePacket on garbage', () => {
  function check(bytes: Uint8Array): void {
    let result: unknown;
    try {
      result = decodePacket(bytes);
    } catch (err) {
      expect(err).toBeInstanceOf(KonnectivityError);
      expect((err as KonnectivityError).code).toBe(ErrorCode.MALFORMED_PACKET);
      return;
    }
    expect(typeof result).toBe('object');
    expect(Number.isInteger((result as Packet).type)).toBe(true);
  }

  it(`random bytes either decode to a packet or throw ERR_MALFORMED_PACKET (${GARBAGE_RUNS} runs)`, () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => check(bytes)), { numRuns: GARBAGE_RUNS });
  });

  it(`mutated and truncated valid encodings too (${GARBAGE_RUNS} runs)`, () => {
    const mutated = fc
      .tuple(packetArb, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }), fc.nat())
      .map(([p, flips, cut]) => {
        const bytes = Buffer.from(encodePacket(p));
        for (const [at, value] of flips) if (bytes.length > 0) bytes[at % bytes.length] = value;
        return bytes.subarray(0, bytes.length === 0 ? 0 : cut % (bytes.length + 1));
      });
    fc.assert(fc.property(mutated, (bytes) => check(bytes)), { numRuns: GARBAGE_RUNS });
  });
});
