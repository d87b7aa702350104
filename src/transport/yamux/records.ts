/**
 * The `raw-data` substream encoding (negotiated in the tunnel handshake, tunnel.ts): on a substream, which carries
 * one proxied connection, DATA payloads travel as they are instead of inside a Packet.
 *
 * A substream in each direction is a run of records: one kind byte, a varint length, then that many bytes.
 * - kind 0 (`RecordKind.PACKET`): a Packet (protobuf), as the delimited encoding would carry it.
 * - kind 1 (`RecordKind.DATA`): payload bytes of the connection's DATA: the connectID of the last DATA Packet
 *   received on this substream (so a sender's first DATA of a connection goes as a Packet record, the rest as Data
 *   records). A Data record before any DATA Packet is a protocol error.
 * Any other kind byte is a protocol error. Lengths above the decoder's maximum are refused before anything is read.
 *
 * Why: the payload is written beside a 2-4 byte header (`_writev`, no copy, no protobuf envelope), and a Data
 * record split across yamux frames or socket reads comes out in pieces, each a view of what was received (no
 * reassembly, no copy). Pure: no sockets, no timers.
 */
import { ErrorCode, KonnectivityError } from '../../protocol/errors.js';
import type { Packet } from '../../protocol/packet.js';
import { StickyDecoder, tooLarge } from '../framing.js';
import { delimitedDataHead, encodeDelimitedPacket, prefixSize, writePrefix } from './delimited.js';

/** The record kinds. */
export const RecordKind = {
  PACKET: 0,
  DATA: 1,
} as const;
export type RecordKind = (typeof RecordKind)[keyof typeof RecordKind];

/**
 * A decoded record or a piece of one: a whole Packet record's bytes, or a piece of a Data record's payload (a view
 * of the pushed chunk; a Data record may come out in several pieces).
 */
export interface RecordPiece {
  kind: RecordKind;
  bytes: Buffer;
}

/** Bytes of the longest record header: the kind byte and a varint under 2^32. */
export const MAX_RECORD_HEADER_BYTES = 6;

/** The header of a Data record of `length` payload bytes; the payload goes after it as its own chunk. */
export function dataRecordHeader(length: number): Buffer {
  const b = Buffer.allocUnsafe(1 + prefixSize(length));
  b[0] = RecordKind.DATA;
  writePrefix(b, 1, length);
  return b;
}

/** A Packet record in one buffer (the header is written in room the codec reserved: one copy). */
export function encodePacketRecord(packet: Packet): Buffer {
  return encodeDelimitedPacket(packet, RecordKind.PACKET);
}

/**
 * The head of a Packet record that carries a DATA packet whose payload is written after it as its own chunk:
 * record header and DATA envelope, no payload.
 */
export function dataPacketRecordHead(connectID: bigint, payloadLength: number): Buffer {
  return delimitedDataHead(connectID, payloadLength, RecordKind.PACKET);
}

export interface RecordDecoderOptions {
  /** Largest record accepted, Packet or Data, in bytes. */
  maxRecordBytes: number;
}

/**
 * Sans-I/O record parser. Packet records come out whole (a view when inside one chunk, else assembled once);
 * Data records come out as views of each chunk they span. After it throws once, it keeps throwing.
 */
export class RecordDecoder extends StickyDecoder<RecordPiece> {
  private readonly maxRecordBytes: number;
  /** Header bytes read so far (the kind, then the varint), and the length's value so far: numbers, no buffer. */
  private headFilled = 0;
  private headLength = 0;
  /** The record whose body is being read, and how many body bytes are still to come. */
  private kind: RecordKind = RecordKind.PACKET;
  private remaining = -1;
  /** A Packet record split across chunks, assembled here. */
  private body: Buffer | undefined;
  private bodyFilled = 0;

  constructor(options: RecordDecoderOptions) {
    super();
    this.maxRecordBytes = options.maxRecordBytes;
  }

  /** True when no partial record is held (a clean place for the stream to end). */
  get idle(): boolean {
    return this.headFilled === 0 && this.remaining < 0;
  }

  protected consume(chunk: Buffer): RecordPiece[] {
    const out: RecordPiece[] = [];
    let pos = 0;
    const n = chunk.length;
    while (pos < n) {
      if (this.remaining < 0) {
        pos = this.readHeader(chunk, pos);
        if (this.remaining < 0) break;
        if (this.remaining === 0) {
          this.emitEmpty(out);
          continue;
        }
        if (pos === n) break;
      }
      const take = Math.min(this.remaining, n - pos);
      if (this.kind === RecordKind.DATA) {
        out.push({ kind: RecordKind.DATA, bytes: chunk.subarray(pos, pos + take) });
      } else if (this.body === undefined && take === this.remaining) {
        out.push({ kind: RecordKind.PACKET, bytes: chunk.subarray(pos, pos + take) });
      } else {
        this.body ??= Buffer.allocUnsafe(this.remaining);
        chunk.copy(this.body, this.bodyFilled, pos, pos + take);
        this.bodyFilled += take;
        if (take === this.remaining) {
          out.push({ kind: RecordKind.PACKET, bytes: this.body });
          this.body = undefined;
          this.bodyFilled = 0;
        }
      }
      pos += take;
      this.remaining -= take;
      if (this.remaining === 0) this.remaining = -1;
    }
    return out;
  }

  /** Read header bytes from `pos`; once the header is complete, set `kind` and `remaining`. Returns the new pos. */
  private readHeader(chunk: Buffer, pos: number): number {
    const n = chunk.length;
    while (pos < n) {
      const b = chunk[pos++]!;
      if (this.headFilled === 0) {
        if (b !== RecordKind.PACKET && b !== RecordKind.DATA) {
          throw new KonnectivityError(ErrorCode.PROTOCOL, `yamux substream: unknown record kind ${b}`);
        }
        this.kind = b;
        this.headFilled = 1;
        this.headLength = 0;
        continue;
      }
      // Multiplication, not shifts: lengths reach 2^32 - 1.
      this.headLength += (b & 0x7f) * 2 ** (7 * (this.headFilled - 1));
      this.headFilled++;
      if (b >= 0x80) {
        // A length that needs more than 5 bytes exceeds 2^32 and therefore any maximum we accept.
        if (this.headFilled >= MAX_RECORD_HEADER_BYTES) tooLarge(Number.POSITIVE_INFINITY, this.maxRecordBytes);
        continue;
      }
      const len = this.headLength;
      if (len > this.maxRecordBytes) tooLarge(len, this.maxRecordBytes);
      this.headFilled = 0;
      this.remaining = len;
      return pos;
    }
    return pos;
  }

  private emitEmpty(out: RecordPiece[]): void {
    // An empty Packet is a valid (all-default) message; an empty Data record carries nothing.
    if (this.kind === RecordKind.PACKET) out.push({ kind: RecordKind.PACKET, bytes: Buffer.alloc(0) });
    this.remaining = -1;
  }
}
