/**
 * Packets on a yamux stream, and the control-stream handshake, travel varint-delimited (protobuf's
 * writeDelimited form): a varint length, then the message. Writing: encodeDelimitedPacket puts the prefix in room
 * the codec reserved, in one buffer. Reading: DelimitedMessageDecoder (see ../framing.ts for the shared machinery).
 */
import { encodePacket } from '../../protocol/encode.js';
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
function prefixSize(length: number): number {
  let size = 1;
  for (let v = length; v > 0x7f; v = Math.floor(v / 128)) size++;
  return size;
}

/** Write `length` as a varint at `pos` of `buf` (division, not shifts: lengths reach 2^32 - 1). */
function writePrefix(buf: Buffer, pos: number, length: number): void {
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

/** Space for the longest varint prefix of a message under 2^32 bytes. */
const PREFIX_ROOM = 5;

/** Encode a packet with its varint length prefix, in one buffer (one copy). */
export function encodeDelimitedPacket(packet: Packet): Buffer {
  const buf = encodePacket(packet, { reserve: PREFIX_ROOM });
  const len = buf.length - PREFIX_ROOM;
  const start = PREFIX_ROOM - prefixSize(len);
  writePrefix(buf, start, len);
  return buf.subarray(start);
}
