/**
 * The gRPC message framing a Packet travels in: 1 flag byte (0 = uncompressed), then a 4-byte big-endian length.
 * Writing: the codec reserves the prefix room (`encodePacket(p, { reserve: GRPC_PREFIX_BYTES })`) and
 * writeGrpcPrefix fills it in place. Reading: GrpcMessageDecoder (see ../framing.ts for the shared machinery), whose
 * messages are one buffer or, when split across chunks, the list of their pieces.
 */
import { ErrorCode, KonnectivityError } from '../../protocol/errors.js';
import { LengthPrefixedDecoder } from '../framing.js';

/**
 * Decodes the gRPC length-prefixed message stream. Compressed messages (flag 1) are refused: we never negotiate
 * compression. A message split across chunks (node:http2 hands over one chunk per HTTP/2 DATA frame, 16 KiB at
 * most) comes out as its pieces, views of the chunks: nothing is copied.
 */
export class GrpcMessageDecoder extends LengthPrefixedDecoder<Buffer | Buffer[]> {
  protected override readonly gather = true;

  protected prefixComplete(): number {
    if (this.prefixLength < 5) return -1;
    const flag = this.prefix[0]!;
    if (flag !== 0) {
      throw new KonnectivityError(
        ErrorCode.PROTOCOL,
        flag === 1 ? 'compressed gRPC message received, but no compression was negotiated' : `bad gRPC message flag ${flag}`,
      );
    }
    return this.prefix.readUInt32BE(1);
  }
}

/** Size of the gRPC message prefix. */
export const GRPC_PREFIX_BYTES = 5;

/** Write a gRPC message prefix (uncompressed) for a message of `length` bytes at `offset` of `buf`. */
export function writeGrpcPrefix(buf: Buffer, length: number, offset = 0): void {
  buf[offset] = 0;
  buf.writeUInt32BE(length, offset + 1);
}

/** A gRPC message prefix as its own 5-byte buffer. */
export function grpcPrefix(length: number): Buffer {
  const b = Buffer.allocUnsafe(GRPC_PREFIX_BYTES);
  writeGrpcPrefix(b, length);
  return b;
}
