/**
 * Codec features beyond plain round trips: the reserved prefix room, the DATA header encoder, passing a decoded
 * packet's bytes through unchanged, zero-copy payloads, and the packet helpers.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  ENCODED,
  PacketType,
  closeDial,
  closeRequest,
  closeResponse,
  connectIDOf,
  dataOf,
  dataPacket,
  decodePacket,
  dialRequest,
  dialResponse,
  drainPacket,
  encodeDataHeader,
  encodePacket,
  isUnknownPacket,
  packetTypeName,
  randomOf,
  type DataPacket,
  type Packet,
} from '../../../src/protocol/index.js';
import { canon, hex } from './helpers.js';

const samples: Packet[] = [
  dialRequest('127.0.0.1:8080', 2n ** 62n + 5n),
  dialResponse(-7n, 3n, 'oops'),
  closeRequest(42n),
  closeResponse(42n, 'Unknown connectID'),
  dataPacket(9n, Buffer.from('hello')),
  closeDial(123n),
  drainPacket(),
  { type: 77, unknown: true },
  { type: PacketType.CLOSE_RSP },
];

describe('encodePacket with reserve', () => {
  for (const p of samples) {
    it(`${packetTypeName(p.type)}: leaves the first bytes free and the rest equal to the plain encoding`, () => {
      const plain = encodePacket(p);
      for (const reserve of [1, 5, 10]) {
        const withRoom = encodePacket(p, { reserve });
        expect(withRoom.length).toBe(plain.length + reserve);
        expect(hex(withRoom.subarray(reserve))).toBe(hex(plain));
      }
      expect(hex(encodePacket(p, { reserve: 0 }))).toBe(hex(plain));
    });
  }
});

describe('encodeDataHeader', () => {
  it('header + payload equals encodePacket of the DATA packet (property)', () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }), fc.constantFrom(0n, 1n, -1n)),
        fc.oneof(fc.uint8Array({ maxLength: 200 }), fc.uint8Array({ minLength: 16_000, maxLength: 20_000 })),
        fc.nat({ max: 10 }),
        (connectID, payload, reserve) => {
          const header = encodeDataHeader(connectID, payload.length, reserve);
          const whole = encodePacket(dataPacket(connectID, payload));
          expect(hex(Buffer.concat([header.subarray(reserve), payload]))).toBe(hex(whole));
        },
      ),
      { numRuns: 500 },
    );
  });

  it('works for an empty payload and connectID 0', () => {
    expect(hex(encodeDataHeader(0n, 0))).toBe(hex(encodePacket(dataPacket(0n, new Uint8Array(0)))));
  });
});

describe('keepEncoded / ENCODED passthrough', () => {
  it('a packet decoded with keepEncoded carries its bytes and encodes to them without re-encoding', () => {
    // An encoding with an unknown field: a fresh encoding would drop it, the passthrough keeps it.
    const bytes = Buffer.from('0804220908011a0568656c6c6f7801820102abcd', 'hex');
    const p = decodePacket(bytes, { keepEncoded: true });
    expect((p as { [ENCODED]?: Uint8Array })[ENCODED]).toBe(bytes);
    const out = encodePacket(p);
    expect(out).toBe(bytes);
  });

  it('a non-Buffer kept encoding comes back as a Buffer over the same memory', () => {
    const u8 = new Uint8Array(encodePacket(closeRequest(5n)));
    const p = decodePacket(u8, { keepEncoded: true });
    const out = encodePacket(p);
    expect(Buffer.isBuffer(out)).toBe(true);
    expect(out.buffer).toBe(u8.buffer);
    expect(hex(out)).toBe(hex(u8));
  });

  it('with a reserve the packet is encoded afresh, with room in front', () => {
    const bytes = encodePacket(dataPacket(1n, Buffer.from('hi')));
    const p = decodePacket(bytes, { keepEncoded: true });
    const out = encodePacket(p, { reserve: 5 });
    expect(hex(out.subarray(5))).toBe(hex(bytes));
  });

  it('without keepEncoded nothing is kept', () => {
    const p = decodePacket(encodePacket(drainPacket()));
    expect(Object.getOwnPropertySymbols(p)).toEqual([]);
  });
});

describe('zero-copy decode', () => {
  it("a DATA payload is a view into the input's ArrayBuffer", () => {
    const payload = Buffer.alloc(4096, 0xab);
    const bytes = encodePacket(dataPacket(2n, payload));
    // Put the message at an offset inside a bigger allocation, as a framer hands it over.
    const backing = Buffer.alloc(bytes.length + 100);
    bytes.copy(backing, 37);
    const view = new Uint8Array(backing.buffer, backing.byteOffset + 37, bytes.length);
    const p = decodePacket(view) as DataPacket;
    const data = dataOf(p);
    expect(data.buffer).toBe(backing.buffer);
    expect(data.length).toBe(4096);
    // Same memory, not a copy.
    backing[37 + bytes.length - 1] = 0x01;
    expect(data[data.length - 1]).toBe(0x01);
  });
});

describe('decoding details', () => {
  it('a payload member that does not match the type is dropped (as a Go getter reads zero values)', () => {
    // type DATA (4) with a closeRequest member (field 5).
    const bytes = Buffer.from('08042a020801', 'hex');
    expect(decodePacket(bytes)).toEqual({ type: PacketType.DATA });
  });

  it('the last oneof member wins', () => {
    const first = encodePacket(closeRequest(1n)).subarray(2); // 2a 02 08 01
    const second = encodePacket(closeRequest(9n)).subarray(2);
    const bytes = Buffer.concat([Buffer.from('0802', 'hex'), first, second]);
    expect(canon(decodePacket(bytes))).toEqual(canon(closeRequest(9n)));
  });

  it('an empty message is a DIAL_REQ without payload', () => {
    expect(decodePacket(new Uint8Array(0))).toEqual({ type: PacketType.DIAL_REQ });
  });

  it('a negative packet type is kept as unknown', () => {
    const p = encodePacket({ type: -3, unknown: true });
    expect(decodePacket(p)).toEqual({ type: -3, unknown: true });
  });
});

describe('packet helpers', () => {
  it('builders set type and payload; accessors read them with zero defaults', () => {
    expect(connectIDOf(dataPacket(5n, new Uint8Array(0)))).toBe(5n);
    expect(connectIDOf(closeResponse(6n))).toBe(6n);
    expect(connectIDOf(closeRequest(7n))).toBe(7n);
    expect(connectIDOf(dialResponse(1n, 8n))).toBe(8n);
    expect(connectIDOf({ type: PacketType.DATA })).toBe(0n);
    expect(connectIDOf(drainPacket())).toBe(0n);
    expect(randomOf(dialRequest('a:1', 11n))).toBe(11n);
    expect(randomOf(dialResponse(12n, 1n))).toBe(12n);
    expect(randomOf(closeDial(13n))).toBe(13n);
    expect(randomOf({ type: PacketType.DIAL_REQ })).toBe(0n);
    expect(dataOf({ type: PacketType.DATA }).length).toBe(0);
    expect(dialRequest('a:1', 1n).dialRequest?.protocol).toBe('tcp');
  });

  it('names types and recognises unknown ones', () => {
    expect(packetTypeName(PacketType.DRAIN)).toBe('DRAIN');
    expect(packetTypeName(99)).toBe('UNKNOWN(99)');
    expect(isUnknownPacket({ type: 99, unknown: true })).toBe(true);
    expect(isUnknownPacket(drainPacket())).toBe(false);
  });
});

describe('int64 range', () => {
  it('refuses an int64 field outside the signed 64-bit range instead of wrapping it', async () => {
    const { encodePacket, dataPacket, dialRequest, isKonnectivityError } = await import('../../../src/index.js');
    for (const p of [dataPacket(1n << 70n, new Uint8Array(1)), dialRequest('a:1', -(1n << 63n) - 1n)]) {
      let err: unknown;
      try {
        encodePacket(p);
      } catch (e) {
        err = e;
      }
      expect(isKonnectivityError(err, 'ERR_INVALID_PACKET')).toBe(true);
    }
    expect(() => encodePacket(dialRequest('a:1', (1n << 63n) - 1n))).not.toThrow();
    expect(() => encodePacket(dialRequest('a:1', -(1n << 63n)))).not.toThrow();
  });
});
