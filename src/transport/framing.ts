/**
 * The streaming decoders every transport's framer builds on (the gRPC message prefix in grpc/framing.ts, the
 * varint-delimited Packets and the yamux frame header in yamux/).
 *
 * They are sans-I/O state machines: `push(chunk)` takes bytes split at any offset and returns the complete items
 * they finish. A message that lies wholly inside one chunk is returned as a view of it (no copy); one split across
 * chunks is assembled once, when its last byte arrives, or, for a framer that gathers (gRPC), returned as the views
 * of its pieces: until then only the bytes received are held (views of the chunks), never a buffer of the declared
 * size, so a peer that declares large messages and sends little costs what it sent. A declared length above
 * `maxMessageBytes` is refused before anything is buffered for it.
 */
import { ErrorCode, KonnectivityError } from '../protocol/errors.js';
import { checkNumber } from '../protocol/options.js';
import { toBuffer } from '../protocol/wire.js';

/** gRPC's default maximum received message size. */
export const DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024;

/** Options of the framers. */
export interface FramerOptions {
  /** Largest message accepted, in bytes (default 4 MiB, like gRPC). */
  maxMessageBytes?: number;
}

function checkMax(options: FramerOptions | undefined): number {
  return checkNumber('maxMessageBytes', options?.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES, { integer: true, min: 0, max: 0xffffffff });
}

/** Refuse a declared message length above the maximum. */
export function tooLarge(len: number, max: number): never {
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
      return this.consume(toBuffer(chunk));
    } catch (err) {
      this.failed = err as Error;
      throw err;
    }
  }

  protected abstract consume(chunk: Buffer): T[];
}

/**
 * The length-prefixed framers' common part: subclasses parse their prefix; this holds a partial message's body.
 * A message split across chunks is assembled once its last byte arrives, or, when the subclass sets `gather`,
 * returned as its pieces (views of the chunks, in order) so that nothing is copied (`M` is then `Buffer | Buffer[]`).
 */
export abstract class LengthPrefixedDecoder<M extends Buffer | Buffer[] = Buffer> extends StickyDecoder<M> {
  protected readonly maxMessageBytes: number;
  /** Bytes of the prefix read so far (prefixes are at most 10 bytes). */
  protected readonly prefix = Buffer.alloc(10);
  protected prefixLength = 0;
  /** Return split messages as pieces instead of assembling them (see the class comment). */
  protected readonly gather: boolean = false;
  /** The declared length of the message being assembled, -1 when none is. */
  private bodyLength = -1;
  private bodyParts: Buffer[] = [];
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
    return this.prefixLength === 0 && this.bodyLength < 0;
  }

  protected consume(chunk: Buffer): M[] {
    const out: Array<Buffer | Buffer[]> = [];
    let pos = 0;
    const n = chunk.length;
    while (pos < n) {
      if (this.bodyLength >= 0) {
        const take = Math.min(this.bodyLength - this.bodyFilled, n - pos);
        this.bodyParts.push(pos === 0 && take === n ? chunk : chunk.subarray(pos, pos + take));
        this.bodyFilled += take;
        pos += take;
        if (this.bodyFilled === this.bodyLength) {
          out.push(this.gather ? this.bodyParts : Buffer.concat(this.bodyParts, this.bodyLength));
          this.bodyParts = [];
          this.bodyLength = -1;
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
        this.bodyLength = len;
        this.bodyFilled = 0;
      }
    }
    return out as M[];
  }
}
