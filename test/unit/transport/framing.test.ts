/**
 * The streaming framers (gRPC message prefix, varint-delimited) over their shared base, src/transport/framing.ts:
 * split input, many messages per chunk, empty messages, the maximum size refused before anything is buffered,
 * compression refused, and a decoder that stays failed after an error.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  ErrorCode,
  KonnectivityError,
  dataPacket,
  decodePacket,
  encodePacket,
  joinPayload,
  type Payload,
} from '../../../src/protocol/index.js';
import { DEFAULT_MAX_MESSAGE_BYTES } from '../../../src/transport/framing.js';
import { GRPC_PREFIX_BYTES, GrpcMessageDecoder, grpcPrefix, writeGrpcPrefix } from '../../../src/transport/grpc/framing.js';
import { DelimitedMessageDecoder, delimitedPrefix } from '../../../src/transport/yamux/delimited.js';

type Kind = 'grpc' | 'delimited';
const kinds: Kind[] = ['grpc', 'delimited'];

function decoder(kind: Kind, maxMessageBytes?: number): GrpcMessageDecoder | DelimitedMessageDecoder {
  const options = maxMessageBytes === undefined ? undefined : { maxMessageBytes };
  return kind === 'grpc' ? new GrpcMessageDecoder(options) : new DelimitedMessageDecoder(options);
}

function prefix(kind: Kind, length: number): Buffer {
  return kind === 'grpc' ? grpcPrefix(length) : delimitedPrefix(length);
}

function frame(kind: Kind, msg: Uint8Array): Buffer {
  return Buffer.concat([prefix(kind, msg.length), msg]);
}

/** A decoded message as one buffer (the gRPC decoder returns a split message as its pieces). */
function whole(m: Payload): Buffer {
  return Buffer.from(joinPayload(m));
}

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(KonnectivityError);
    return (err as KonnectivityError).code;
  }
  return undefined;
}

describe('prefix writers', () => {
  it('grpcPrefix and writeGrpcPrefix write flag 0 and a big-endian length', () => {
    expect(grpcPrefix(0x01020304).toString('hex')).toBe('0001020304');
    expect(GRPC_PREFIX_BYTES).toBe(5);
    const b = Buffer.alloc(8, 0xff);
    writeGrpcPrefix(b, 300, 2);
    expect(b.toString('hex')).toBe('ffff000000012cff');
  });

  it('delimitedPrefix writes a protobuf varint', () => {
    expect(delimitedPrefix(0).toString('hex')).toBe('00');
    expect(delimitedPrefix(127).toString('hex')).toBe('7f');
    expect(delimitedPrefix(128).toString('hex')).toBe('8001');
    expect(delimitedPrefix(300).toString('hex')).toBe('ac02');
    expect(delimitedPrefix(2 ** 32 - 1).toString('hex')).toBe('ffffffff0f');
  });
});

for (const kind of kinds) {
  describe(`${kind} decoder`, () => {
    it('validates maxMessageBytes', () => {
      expect(codeOf(() => decoder(kind, -1))).toBe(ErrorCode.INVALID_OPTION);
      expect(codeOf(() => decoder(kind, 1.5))).toBe(ErrorCode.INVALID_OPTION);
      expect(codeOf(() => decoder(kind, 2 ** 32))).toBe(ErrorCode.INVALID_OPTION);
      expect(DEFAULT_MAX_MESSAGE_BYTES).toBe(4 * 1024 * 1024);
    });

    it('returns many messages from one chunk, as views of it (no copy)', () => {
      const msgs = Array.from({ length: 50 }, (_, i) => Buffer.alloc(i * 3, i));
      const chunk = Buffer.concat(msgs.map((m) => frame(kind, m)));
      const d = decoder(kind);
      const out = d.push(chunk);
      expect(out.map((b) => whole(b).toString('hex'))).toEqual(msgs.map((m) => m.toString('hex')));
      for (const b of out) expect((b as Buffer).buffer).toBe(chunk.buffer);
      expect(d.idle).toBe(true);
      expect(d.bufferedBytes).toBe(0);
    });

    it('returns zero-length messages (which decode as an empty DIAL_REQ)', () => {
      const d = decoder(kind);
      const out = d.push(Buffer.concat([frame(kind, Buffer.alloc(0)), frame(kind, Buffer.alloc(0))]));
      expect(out).toHaveLength(2);
      expect(out[0]!.length).toBe(0);
      expect(decodePacket(out[0]!)).toEqual({ type: 0 });
    });

    it('accepts a Uint8Array that is not a Buffer', () => {
      const bytes = frame(kind, Buffer.from('abc'));
      const u8 = new Uint8Array(bytes);
      expect(decoder(kind).push(u8).map((b) => b.toString())).toEqual(['abc']);
    });

    it('reassembles a message split at every offset; bufferedBytes counts what is held', () => {
      const msg = encodePacket(dataPacket(7n, Buffer.alloc(1000, 0x5a)));
      const framed = frame(kind, msg);
      for (let cut = 0; cut <= framed.length; cut++) {
        const d = decoder(kind);
        const first = d.push(framed.subarray(0, cut));
        // A prefix counts while it is incomplete; once parsed, only the body bytes received so far are held.
        const prefixBytes = framed.length - msg.length;
        expect(d.bufferedBytes).toBe(first.length === 1 ? 0 : cut < prefixBytes ? cut : cut - prefixBytes);
        const second = d.push(framed.subarray(cut));
        const all = [...first, ...second];
        expect(all).toHaveLength(1);
        expect(whole(all[0]!).equals(msg)).toBe(true);
        expect(d.idle).toBe(true);
      }
    });

    it('random messages in random chunks come out whole and in order (property)', () => {
      fc.assert(
        fc.property(
          fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 20 }),
          fc.array(fc.nat({ max: 400 }), { maxLength: 30 }),
          (msgs, cuts) => {
            const stream = Buffer.concat(msgs.map((m) => frame(kind, m)));
            const points = [...new Set(cuts.map((c) => c % (stream.length + 1)))].sort((a, b) => a - b);
            const d = decoder(kind);
            const out: Payload[] = [];
            let start = 0;
            for (const cut of [...points, stream.length]) {
              out.push(...d.push(stream.subarray(start, cut)));
              start = cut;
            }
            expect(out.map((b) => whole(b).toString('hex'))).toEqual(msgs.map((m) => Buffer.from(m).toString('hex')));
            expect(d.idle).toBe(true);
          },
        ),
        { numRuns: 500 },
      );
    });

    it('accepts a message of exactly maxMessageBytes', () => {
      const d = decoder(kind, 16);
      expect(whole(d.push(frame(kind, Buffer.alloc(16, 1)))[0]!).length).toBe(16);
    });

    it('refuses a declared length above the maximum after only the prefix, before buffering', () => {
      const d = decoder(kind);
      const p = prefix(kind, DEFAULT_MAX_MESSAGE_BYTES + 1);
      // Everything but the prefix's last byte: nothing decided yet.
      expect(d.push(p.subarray(0, p.length - 1))).toEqual([]);
      expect(codeOf(() => d.push(p.subarray(p.length - 1)))).toBe(ErrorCode.MESSAGE_TOO_LARGE);
      expect(d.bufferedBytes).toBeLessThan(16);
    });

    it('refuses with a small configured maximum, with the sizes in the message', () => {
      const d = decoder(kind, 10);
      let error: unknown;
      try {
        d.push(frame(kind, Buffer.alloc(11)));
      } catch (err) {
        error = err;
      }
      expect((error as KonnectivityError).code).toBe(ErrorCode.MESSAGE_TOO_LARGE);
      expect((error as Error).message).toMatch(/11 vs\. 10/);
    });

    it('stays failed after an error, even for good input', () => {
      const d = decoder(kind, 10);
      expect(codeOf(() => d.push(frame(kind, Buffer.alloc(11))))).toBe(ErrorCode.MESSAGE_TOO_LARGE);
      expect(codeOf(() => d.push(frame(kind, Buffer.alloc(1))))).toBe(ErrorCode.MESSAGE_TOO_LARGE);
      expect(codeOf(() => d.push(Buffer.alloc(0)))).toBe(ErrorCode.MESSAGE_TOO_LARGE);
    });
  });
}

describe('gRPC decoder specifics', () => {
  it('returns a message split across chunks as views of the chunks, without copying', () => {
    const msg = Buffer.alloc(40_000);
    for (let i = 0; i < msg.length; i++) msg[i] = i % 251;
    const framed = frame('grpc', msg);
    const chunks = [framed.subarray(0, 16_384), framed.subarray(16_384, 32_768), framed.subarray(32_768)];
    const d = new GrpcMessageDecoder();
    const out = chunks.flatMap((c) => d.push(c));
    expect(out).toHaveLength(1);
    const pieces = out[0] as Buffer[];
    expect(Array.isArray(pieces)).toBe(true);
    expect(pieces.map((p) => p.length)).toEqual([16_384 - GRPC_PREFIX_BYTES, 16_384, 40_000 + GRPC_PREFIX_BYTES - 32_768]);
    pieces.forEach((p, i) => {
      expect(p.buffer).toBe(framed.buffer);
      expect(p.byteOffset).toBe(framed.byteOffset + (i === 0 ? GRPC_PREFIX_BYTES : i * 16_384));
    });
    expect(whole(pieces).equals(msg)).toBe(true);
    expect(d.idle).toBe(true);
  });

  it('refuses the compressed flag (no compression is negotiated)', () => {
    const d = new GrpcMessageDecoder();
    const bad = Buffer.from('0100000001ff', 'hex');
    expect(codeOf(() => d.push(bad))).toBe(ErrorCode.PROTOCOL);
    // ... and stays failed.
    expect(codeOf(() => d.push(grpcPrefix(0)))).toBe(ErrorCode.PROTOCOL);
  });

  it('refuses a flag byte other than 0 and 1', () => {
    expect(codeOf(() => new GrpcMessageDecoder().push(Buffer.from('0200000000', 'hex')))).toBe(ErrorCode.PROTOCOL);
  });

  it('refuses a 4 GiB - 1 declared length with the default maximum', () => {
    const d = new GrpcMessageDecoder();
    expect(codeOf(() => d.push(Buffer.from('00ffffffff', 'hex')))).toBe(ErrorCode.MESSAGE_TOO_LARGE);
    expect(d.bufferedBytes).toBe(0);
  });
});

describe('delimited decoder specifics', () => {
  it('refuses a varint length longer than 5 bytes before it ends', () => {
    const d = new DelimitedMessageDecoder({ maxMessageBytes: 2 ** 32 - 1 });
    expect(d.push(Buffer.from('ffffffff', 'hex'))).toEqual([]);
    expect(codeOf(() => d.push(Buffer.from('ff', 'hex')))).toBe(ErrorCode.MESSAGE_TOO_LARGE);
  });
});
