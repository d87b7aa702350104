/**
 * Packets on a yamux stream, and the control-stream handshake, travel varint-delimited (protobuf's
 * writeDelimited form): a varint length, then the message. Writing: encodeDelimitedPacket puts the prefix in room
 * the codec reserved, in one buffer; delimitedDataHead leaves a DATA payload out, to be written beside it.
 * Reading: DelimitedMessageDecoder (see ../framing.ts for the shared machinery).
 */
import { encodeDataHeader, encodePacket } from '../../protocol/encode.js';
import type { Packet } from '../../protocol/packet.js';
import { LengthPrefixedDecoder, tooLarge } from '../framing.js';

/** Decodes a stream of protobuf varint-delimited messages. */
export class DelimitedMessageDecoder extends LengthPrefixedDecoder {
  protected prefixComplete(): number {
    const last = this.prefix[this.prefixLength - 1]!;
    if (last >= 0x80) {
      // A length that needs more than 5 bytes exceeds 2^32 and therefore any maximum we accept.
      if (this.prefixLength >= 5) tooLarge(Number.POSITIVE_INFINITY, this.maxMessageBytes);
      return -1;
    }
    let len = 0;
    for (let i = 0; i < this.prefixLength; i++) len += (this.prefix[i]! & 0x7f) * 2 ** (7 * i);
    return len;
  }
}

/** Bytes of the varint prefix of a message of `length` bytes. */
export function prefixSize(length: number): number {
  let size = 1;
  for (let v = length; v > 0x7f; v = Math.floor(v / 128)) size++;
  return size;
}

/** Write `length` as a varint at `pos` of `buf` (division, not shifts: lengths reach 2^32 - 1). */
export function writePrefix(buf: Buffer, pos: number, length: number): void {
  while (length > 0x7f) {
    buf[pos++] = (length & 0x7f) | 0x80;
    length = Math.floor(length / 128);
  }
  buf[pos] = length;
}

/** The varint-delimited prefix for a message of `length` bytes. */
export function delimitedPrefix(length: number): Buffer {
  const b = Buffer.allocUnsafe(prefixSize(length));
  writePrefix(b, 0, length);
  return b;
}

/** Room for the longest prefix: an optional tag byte and a varint under 2^32. */
const PREFIX_ROOM = 6;

/**
 * Encode a packet with its varint length prefix, in one buffer (one copy). With `tag`, one byte before the prefix
 * (the substream records of records.ts).
 */
export function encodeDelimitedPacket(packet: Packet, tag?: number): Buffer {
  const buf = encodePacket(packet, { reserve: PREFIX_ROOM });
  return fillPrefix(buf, buf.length - PREFIX_ROOM, tag);
}

/** Prefix and envelope of a delimited DATA packet whose payload is written after it as its own chunk (no copy). */
export function delimitedDataHead(connectID: bigint, payloadLength: number, tag?: number): Buffer {
  const head = encodeDataHeader(connectID, payloadLength, PREFIX_ROOM);
  return fillPrefix(head, head.length - PREFIX_ROOM + payloadLength, tag);
}

/** Write the prefix for `length` bytes so that it ends where the reserved room does; returns the framed view. */
function fillPrefix(buf: Buffer, length: number, tag: number | undefined): Buffer {
  let pos = PREFIX_ROOM - prefixSize(length);
  writePrefix(buf, pos, length);
  if (tag !== undefined) buf[--pos] = tag;
  return buf.subarray(pos);
}
