/**
 * Streaming framers for the two length-prefixed forms a Packet travels in:
 * - the gRPC message prefix: 1 flag byte (0 = uncompressed), 4-byte big-endian length;
 * - the protobuf varint-delimited form (a varint length, then the message).
 *
 * Both are sans-I/O state machines: `push(chunk)` takes bytes split at any offset and returns the complete messages
 * they finish. A message that lies wholly inside one chunk is returned as a view of it (no copy); one split across
 * chunks is assembled once into a buffer of its declared size. A declared length above `maxMessageBytes` is refused
 * before anything is buffered for it.
 */
import { ErrorCode, KonnectivityError } from './errors.js';

/** gRPC's default maximum received message size. */
export const DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024;

export interface FramerOptions {
  /** Largest message accepted, in bytes (default 4 MiB, like gRPC). */
  maxMessageBytes?: number;
}

function checkMax(options: FramerOptions | undefined): number {
  const max = options?.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  if (!Number.isInteger(max) || max < 0 || max > 0xffffffff) {
    throw new KonnectivityError(ErrorCode.INVALID_OPTION, `maxMessageBytes must be an integer in [0, 2^32), got ${max}`);
  }
  return max;
}

function tooLarge(len: number, max: number): never {
  throw new KonnectivityError(
    ErrorCode.MESSAGE_TOO_LARGE,
    `received message larger than max (${len} vs. ${max})`,
  );
}

/**
 * A streaming decoder that turns byte chunks into items and, once it has thrown, keeps throwing: a framing error
 * leaves the byte stream out of step for good. Subclasses implement `consume`.
 */
export abstract class StickyDecoder<T> {
  private failed: Error | undefined;

  /** Feed a chunk split at any offset; returns the items it completes. */
  push(chunk: Uint8Array): T[] {
    if (this.failed) throw this.failed;
    try {
      return this.consume(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    } catch (err) {
      this.failed = err as Error;
      throw err;
    }
  }

  protected abstract consume(chunk: Buffer): T[];
}

/** Shared body assembly: holds the partial message once its length is known. */
abstract class LengthPrefixedDecoder extends StickyDecoder<Buffer> {
  protected readonly maxMessageBytes: number;
  /** Bytes of the prefix read so far (prefixes are at most 10 bytes). */
  protected readonly prefix = Buffer.alloc(10);
  protected prefixLength = 0;
  private body: Buffer | undefined;
  private bodyFilled = 0;

  constructor(options?: FramerOptions) {
    super();
    this.maxMessageBytes = checkMax(options);
  }

  /**
   * Parse the prefix in `prefix[0..prefixLength)`. Returns the declared message length once the prefix is complete,
   * or -1 if more bytes are needed. Throws on a bad or oversized prefix.
   */
  protected abstract prefixComplete(): number;

  /** Bytes held for a message not yet complete (for tests and memory accounting). */
  get bufferedBytes(): number {
    return this.prefixLength + this.bodyFilled;
  }

  /** True when no partial message is held (a clean place for the stream to end). */
  get idle(): boolean {
    return this.prefixLength === 0 && this.body === undefined;
  }

  protected consume(chunk: Buffer): Buffer[] {
    const out: Buffer[] = [];
    let pos = 0;
    const n = chunk.length;
    while (pos < n) {
      if (this.body !== undefined) {
        const take = Math.min(this.body.length - this.bodyFilled, n - pos);
        chunk.copy(this.body, this.bodyFilled, pos, pos + take);
        this.bodyFilled += take;
        pos += take;
        if (this.bodyFilled === this.body.length) {
          out.push(this.body);
          this.body = undefined;
          this.bodyFilled = 0;
        }
        continue;
      }
      this.prefix[this.prefixLength++] = chunk[pos++]!;
      const len = this.prefixComplete();
      if (len < 0) continue;
      this.prefixLength = 0;
      if (len > this.maxMessageBytes) tooLarge(len, this.maxMessageBytes);
      if (n - pos >= len) {
        out.push(chunk.subarray(pos, pos + len));
        pos += len;
      } else {
        this.body = Buffer.allocUnsafe(len);
        this.bodyFilled = 0;
      }
    }
    return out;
  }
}

/** Decodes the gRPC length-prefixed message stream. Compressed messages (flag 1) are refused: we never negotiate compression. */
export class GrpcMessageDecoder extends LengthPrefixedDecoder {
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

/** The varint-delimited prefix for a message of `length` bytes. */
export function delimitedPrefix(length: number): Buffer {
  const bytes: number[] = [];
  let v = length;
  while (v > 0x7f) {
    bytes.push((v & 0x7f) | 0x80);
    v = Math.floor(v / 128);
  }
  bytes.push(v);
  return Buffer.from(bytes);
}
