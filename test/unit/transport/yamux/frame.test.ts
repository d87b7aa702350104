import { describe, expect, it } from 'vitest';
import {
  FrameDecoder,
  FrameType,
  Flag,
  HEADER_BYTES,
  decodeHeader,
  encodeFrame,
  encodeHeader,
  type Frame,
} from '../../../../src/transport/yamux/frame.js';

const frames: Frame[] = [
  { type: FrameType.WINDOW_UPDATE, flags: Flag.SYN, streamID: 1, length: 0 },
  { type: FrameType.DATA, flags: 0, streamID: 1, length: 5, payload: Buffer.from('hello') },
  { type: FrameType.DATA, flags: Flag.FIN, streamID: 3, length: 0, payload: Buffer.alloc(0) },
  { type: FrameType.PING, flags: Flag.ACK, streamID: 0, length: 0xfffffffe },
  { type: FrameType.DATA, flags: Flag.ACK, streamID: 0xfffffffe, length: 300, payload: Buffer.alloc(300, 7) },
  { type: FrameType.GO_AWAY, flags: 0, streamID: 0, length: 2 },
  { type: FrameType.WINDOW_UPDATE, flags: Flag.RST, streamID: 2, length: 262144 },
];

function norm(fs: Frame[]): unknown[] {
  return fs.map((f) => ({ ...f, payload: f.payload ? Buffer.from(f.payload).toString('hex') : undefined }));
}

/**
 * Join the pieces of Data frames split across chunks back into frames: a piece without FIN/RST of a frame whose
 * bytes are still to come is followed by the next piece of the same stream.
 */
function joinPieces(fs: Frame[], expected: Frame[]): Frame[] {
  const out: Frame[] = [];
  let i = 0;
  for (const want of expected) {
    if (want.type !== FrameType.DATA || want.length === 0) {
      out.push(fs[i++]!);
      continue;
    }
    const parts: Buffer[] = [];
    let flags = 0;
    let got = 0;
    while (got < want.length) {
      const f = fs[i++]!;
      expect(f.type).toBe(FrameType.DATA);
      expect(f.streamID).toBe(want.streamID);
      expect(f.length).toBe(f.payload!.length);
      expect(f.length).toBeGreaterThan(0);
      flags |= f.flags;
      got += f.length;
      parts.push(f.payload!);
    }
    out.push({ type: FrameType.DATA, flags, streamID: want.streamID, length: got, payload: Buffer.concat(parts) });
  }
  expect(i).toBe(fs.length);
  return out;
}

describe('yamux frame codec', () => {
  it('encodes the header big-endian, as the spec lays it out', () => {
    const h = encodeHeader({ type: FrameType.WINDOW_UPDATE, flags: Flag.SYN | Flag.ACK, streamID: 0x01020304, length: 0x0a0b0c0d });
    expect(h.toString('hex')).toBe('0001000301020304' + '0a0b0c0d');
    expect(decodeHeader(h)).toEqual({ type: 1, flags: 3, streamID: 0x01020304, length: 0x0a0b0c0d });
  });

  it('decodes a stream of frames split at every offset', () => {
    const bytes = Buffer.concat(frames.map(encodeFrame));
    const whole = new FrameDecoder().push(bytes);
    expect(norm(whole)).toEqual(norm(frames));
    for (let cut = 1; cut < bytes.length; cut++) {
      const d = new FrameDecoder();
      const got = [...d.push(bytes.subarray(0, cut)), ...d.push(bytes.subarray(cut))];
      expect(norm(joinPieces(got, frames))).toEqual(norm(frames));
      expect(d.idle).toBe(true);
    }
  });

  it('decodes byte by byte', () => {
    const bytes = Buffer.concat(frames.map(encodeFrame));
    const d = new FrameDecoder();
    const got: Frame[] = [];
    for (const b of bytes) got.push(...d.push(Buffer.of(b)));
    expect(norm(joinPieces(got, frames))).toEqual(norm(frames));
  });

  it('passes a split payload on as views of its chunks, SYN/ACK on the first piece and FIN/RST on the last', () => {
    const payload = Buffer.alloc(1000, 9);
    const bytes = encodeFrame({ type: FrameType.DATA, flags: Flag.ACK | Flag.FIN, streamID: 5, length: 1000, payload });
    const chunks = [bytes.subarray(0, 300), Buffer.from(bytes.subarray(300, 700)), Buffer.from(bytes.subarray(700))];
    const d = new FrameDecoder();
    const got = chunks.flatMap((c) => d.push(c));
    expect(got.map((f) => [f.flags, f.length])).toEqual([
      [Flag.ACK, 300 - HEADER_BYTES],
      [0, 400],
      [Flag.FIN, 300 + HEADER_BYTES],
    ]);
    got.forEach((f, i) => expect(f.payload!.buffer).toBe(chunks[i]!.buffer));
    // A header that ends with its chunk: the flags wait for the first byte of payload.
    const e = new FrameDecoder();
    expect(e.push(bytes.subarray(0, HEADER_BYTES))).toEqual([]);
    expect(e.idle).toBe(false);
    expect(e.push(bytes.subarray(HEADER_BYTES)).map((f) => f.flags)).toEqual([Flag.ACK | Flag.FIN]);
    expect(e.idle).toBe(true);
  });

  it('holds only a partial header, never payload', () => {
    const d = new FrameDecoder();
    const bytes = encodeFrame(frames[1]!);
    d.push(bytes.subarray(0, 5));
    expect(d.bufferedBytes).toBe(5);
    d.push(bytes.subarray(5, HEADER_BYTES + 2));
    expect(d.bufferedBytes).toBe(0);
    expect(d.idle).toBe(false);
  });

  it('refuses a bad version, an unknown type and an oversized payload, and stays failed', () => {
    const bad = Buffer.from('0100000000000001' + '00000000', 'hex');
    expect(() => new FrameDecoder().push(bad)).toThrow(/version/);
    const d = new FrameDecoder();
    expect(() => d.push(Buffer.from('0004000000000001' + '00000000', 'hex'))).toThrow(
      expect.objectContaining({ code: 'ERR_PROTOCOL' }),
    );
    expect(() => d.push(encodeFrame(frames[0]!))).toThrow(/unknown frame type/);
    const small = new FrameDecoder({ maxPayloadBytes: 10 });
    expect(() => small.push(encodeHeader({ type: 0, flags: 0, streamID: 1, length: 11 }))).toThrow(/exceeds/);
    expect(() => new FrameDecoder({ maxPayloadBytes: -1 })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION' }));
  });
});
