/** The `raw-data` substream records: encoders, and the decoder fed the same bytes split at every offset. */
import { describe, expect, it } from 'vitest';
import { decodePacket } from '../../../../src/protocol/decode.js';
import { closeRequest, dataPacket, dialResponse, PacketType, type Packet } from '../../../../src/protocol/packet.js';
import {
  RecordDecoder,
  RecordKind,
  dataPacketRecordHead,
  dataRecordHeader,
  encodePacketRecord,
  type RecordPiece,
} from '../../../../src/transport/yamux/records.js';

const payloadA = Buffer.from(Array.from({ length: 300 }, (_, i) => i & 0xff));
const payloadB = Buffer.from('second chunk, a Data record');

/** What a sender writes for: DIAL_RSP, the first DATA (a Packet record), a Data record, an empty Data, CLOSE_REQ. */
const records: Array<{ bytes: Buffer; kind: RecordKind; body: Buffer }> = [
  { bytes: encodePacketRecord(dialResponse(7n, 42n)), kind: RecordKind.PACKET, body: Buffer.alloc(0) },
  { bytes: Buffer.concat([dataPacketRecordHead(42n, payloadA.length), payloadA]), kind: RecordKind.PACKET, body: Buffer.alloc(0) },
  { bytes: Buffer.concat([dataRecordHeader(payloadB.length), payloadB]), kind: RecordKind.DATA, body: payloadB },
  { bytes: dataRecordHeader(0), kind: RecordKind.DATA, body: Buffer.alloc(0) },
  { bytes: encodePacketRecord(closeRequest(42n)), kind: RecordKind.PACKET, body: Buffer.alloc(0) },
];
const wire = Buffer.concat(records.map((r) => r.bytes));

/** Packets as decoded, Data pieces joined into one Data entry per run. */
function summarise(pieces: RecordPiece[]): Array<Packet | { dataHex: string }> {
  const out: Array<Packet | { dataHex: string }> = [];
  for (const p of pieces) {
    if (p.kind === RecordKind.PACKET) {
      out.push(decodePacket(Buffer.from(p.bytes)));
      continue;
    }
    expect(p.bytes.length).toBeGreaterThan(0);
    const last = out[out.length - 1];
    if (last && 'dataHex' in last) last.dataHex += p.bytes.toString('hex');
    else out.push({ dataHex: p.bytes.toString('hex') });
  }
  return out;
}

const expected = [
  dialResponse(7n, 42n),
  dataPacket(42n, payloadA),
  { dataHex: payloadB.toString('hex') },
  closeRequest(42n),
];

function norm(x: unknown): string {
  return JSON.stringify(x, (_k, v: unknown) =>
    typeof v === 'bigint' ? `${v}n` : v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v,
  );
}

describe('raw-data records', () => {
  it('lays out a Data record as kind 1, varint length, payload; a Packet record as kind 0, varint length, Packet', () => {
    expect(dataRecordHeader(5).toString('hex')).toBe('0105');
    expect(dataRecordHeader(32 * 1024).toString('hex')).toBe('01808002');
    const rec = encodePacketRecord(closeRequest(1n));
    expect(rec[0]).toBe(RecordKind.PACKET);
    expect(rec[1]).toBe(rec.length - 2);
    expect(decodePacket(rec.subarray(2)).type).toBe(PacketType.CLOSE_REQ);
    // The first DATA of a connection is a whole DATA Packet, its payload written after the head.
    const head = dataPacketRecordHead(42n, payloadA.length);
    const whole = Buffer.concat([head, payloadA]);
    expect(whole[0]).toBe(RecordKind.PACKET);
    expect(norm(decodePacket(whole.subarray(3)))).toBe(norm(dataPacket(42n, payloadA)));
  });

  it('decodes the same records split at every offset, in two and in three chunks', () => {
    expect(norm(summarise(new RecordDecoder({ maxRecordBytes: 1024 }).push(wire)))).toBe(norm(expected));
    for (let cut = 1; cut < wire.length; cut++) {
      const d = new RecordDecoder({ maxRecordBytes: 1024 });
      const got = [...d.push(wire.subarray(0, cut)), ...d.push(wire.subarray(cut))];
      expect(norm(summarise(got))).toBe(norm(expected));
      expect(d.idle).toBe(true);
      const cut2 = Math.min(wire.length - 1, cut + 7);
      if (cut2 > cut) {
        const e = new RecordDecoder({ maxRecordBytes: 1024 });
        const three = [...e.push(wire.subarray(0, cut)), ...e.push(wire.subarray(cut, cut2)), ...e.push(wire.subarray(cut2))];
        expect(norm(summarise(three))).toBe(norm(expected));
      }
    }
  });

  it('decodes byte by byte', () => {
    const d = new RecordDecoder({ maxRecordBytes: 1024 });
    const got: RecordPiece[] = [];
    for (const b of wire) got.push(...d.push(Buffer.of(b)));
    expect(norm(summarise(got))).toBe(norm(expected));
  });

  it('passes Data pieces on as views of the chunks they arrived in', () => {
    const bytes = Buffer.concat([dataRecordHeader(payloadA.length), payloadA]);
    const chunks = [Buffer.from(bytes.subarray(0, 100)), Buffer.from(bytes.subarray(100, 200)), Buffer.from(bytes.subarray(200))];
    const d = new RecordDecoder({ maxRecordBytes: 1024 });
    const pieces = chunks.flatMap((c) => d.push(c));
    expect(pieces).toHaveLength(3);
    pieces.forEach((p, i) => {
      expect(p.kind).toBe(RecordKind.DATA);
      expect(p.bytes.buffer).toBe(chunks[i]!.buffer);
    });
    expect(Buffer.concat(pieces.map((p) => p.bytes)).equals(payloadA)).toBe(true);
    expect(d.idle).toBe(true);
  });

  it('is not idle inside a record, and holds no Data payload', () => {
    const d = new RecordDecoder({ maxRecordBytes: 1024 });
    d.push(Buffer.concat([dataRecordHeader(10), Buffer.alloc(4)]));
    expect(d.idle).toBe(false);
    d.push(Buffer.alloc(6));
    expect(d.idle).toBe(true);
    d.push(Buffer.of(RecordKind.PACKET));
    expect(d.idle).toBe(false);
  });

  it('refuses an unknown kind, an oversized or overlong length, and stays failed', () => {
    const d = new RecordDecoder({ maxRecordBytes: 1024 });
    expect(() => d.push(Buffer.of(2, 1, 0))).toThrow(expect.objectContaining({ code: 'ERR_PROTOCOL' }));
    expect(() => d.push(dataRecordHeader(1))).toThrow(/unknown record kind/);
    expect(() => new RecordDecoder({ maxRecordBytes: 1024 }).push(dataRecordHeader(1025))).toThrow(
      expect.objectContaining({ code: 'ERR_MESSAGE_TOO_LARGE' }),
    );
    expect(() => new RecordDecoder({ maxRecordBytes: 1024 }).push(Buffer.of(0, 0x80, 0x80, 0x80, 0x80, 0x80))).toThrow(
      expect.objectContaining({ code: 'ERR_MESSAGE_TOO_LARGE' }),
    );
    // Refused before the body arrives: nothing was buffered for it.
    const e = new RecordDecoder({ maxRecordBytes: 1024 });
    expect(() => e.push(Buffer.of(0, 0xff, 0xff, 0x03))).toThrow(/larger than max/);
  });
});
