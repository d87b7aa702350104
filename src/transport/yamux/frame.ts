/**
 * The yamux frame: a 12-byte big-endian header, and for Data frames a payload of `length` bytes.
 * Pure: no sockets, no timers. `FrameDecoder.push(chunk)` takes bytes split at any offset and returns the frames
 * they complete. Payloads are never copied: a Data frame split across chunks comes out as several Data frames, one
 * per chunk, each a view of its chunk (SYN and ACK on the first, FIN and RST on the last), which means the same on
 * a byte stream and counts the same against the window.
 */
import { ErrorCode, KonnectivityError } from '../../protocol/errors.js';
import { checkNumber } from '../../protocol/options.js';
import { StickyDecoder } from '../framing.js';

/** The only protocol version. */
export const YAMUX_VERSION = 0;
/** Size of a frame header in bytes. */
export const HEADER_BYTES = 12;

/** Frame types. */
export const FrameType = {
  DATA: 0,
  WINDOW_UPDATE: 1,
  PING: 2,
  GO_AWAY: 3,
} as const;
export type FrameType = (typeof FrameType)[keyof typeof FrameType];

/** Header flags (a bit set). */
export const Flag = {
  SYN: 0x1,
  ACK: 0x2,
  FIN: 0x4,
  RST: 0x8,
} as const;

/** Go Away codes. */
export const GoAwayCode = {
  NORMAL: 0,
  PROTOCOL_ERROR: 1,
  INTERNAL_ERROR: 2,
} as const;
export type GoAwayCode = (typeof GoAwayCode)[keyof typeof GoAwayCode];

/** One frame header. `length` is the payload size (Data), window delta (Window Update), opaque value (Ping) or code (Go Away). */
export interface FrameHeader {
  type: number;
  flags: number;
  streamID: number;
  length: number;
}

/** A decoded frame; `payload` is present (possibly empty) on Data frames only. */
export interface Frame extends FrameHeader {
  payload?: Buffer;
}

/** Write a header into `buf` at `offset`. */
export function writeHeader(buf: Buffer, h: FrameHeader, offset = 0): void {
  buf[offset] = YAMUX_VERSION;
  buf[offset + 1] = h.type;
  buf.writeUInt16BE(h.flags, offset + 2);
  buf.writeUInt32BE(h.streamID >>> 0, offset + 4);
  buf.writeUInt32BE(h.length >>> 0, offset + 8);
}

/** Encode a header as its own 12-byte buffer. */
export function encodeHeader(h: FrameHeader): Buffer {
  const b = Buffer.allocUnsafe(HEADER_BYTES);
  writeHeader(b, h);
  return b;
}

/** Decode a header from the 12 bytes at `offset`. Throws ERR_PROTOCOL on an unknown version or type. */
export function decodeHeader(buf: Uint8Array, offset = 0): FrameHeader {
  const b = Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const version = b[offset]!;
  if (version !== YAMUX_VERSION) throw new KonnectivityError(ErrorCode.PROTOCOL, `yamux: unsupported version ${version}`);
  const type = b[offset + 1]!;
  if (type > FrameType.GO_AWAY) throw new KonnectivityError(ErrorCode.PROTOCOL, `yamux: unknown frame type ${type}`);
  return {
    type,
    flags: b.readUInt16BE(offset + 2),
    streamID: b.readUInt32BE(offset + 4),
    length: b.readUInt32BE(offset + 8),
  };
}

/** A complete frame as one buffer (header then payload); for tests and small control frames. */
export function encodeFrame(f: Frame): Buffer {
  const payload = f.type === FrameType.DATA ? (f.payload ?? Buffer.alloc(0)) : undefined;
  const len = payload ? payload.length : f.length;
  const b = Buffer.allocUnsafe(HEADER_BYTES + (payload?.length ?? 0));
  writeHeader(b, { type: f.type, flags: f.flags, streamID: f.streamID, length: len });
  if (payload) b.set(payload, HEADER_BYTES);
  return b;
}

export interface FrameDecoderOptions {
  /** Largest Data payload accepted, in bytes; a larger one is refused before it is buffered (default 16 MiB). */
  maxPayloadBytes?: number;
}

const DEFAULT_MAX_PAYLOAD = 16 * 1024 * 1024;
/** Flags that end a stream: they belong on the last piece of a split Data frame. */
const END_FLAGS = Flag.FIN | Flag.RST;

/** Sans-I/O frame parser. After it throws once, it keeps throwing: the byte stream is out of step for good. */
export class FrameDecoder extends StickyDecoder<Frame> {
  private readonly maxPayloadBytes: number;
  private readonly head = Buffer.alloc(HEADER_BYTES);
  private headFilled = 0;
  /** The Data frame whose payload is being read: its ID, its FIN/RST, flags not yet passed on, bytes to come. */
  private current: FrameHeader | undefined;
  private startFlags = 0;
  private remaining = 0;

  constructor(options: FrameDecoderOptions = {}) {
    super();
    this.maxPayloadBytes = checkNumber('maxPayloadBytes', options.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD, { integer: true, min: 0, max: 0xffffffff });
  }

  /** Bytes held for a frame not yet complete (only a partial header: payloads pass through). */
  get bufferedBytes(): number {
    return this.headFilled;
  }

  /** True when no partial frame is held. */
  get idle(): boolean {
    return this.headFilled === 0 && this.current === undefined;
  }

  protected consume(chunk: Buffer): Frame[] {
    const out: Frame[] = [];
    let pos = 0;
    const n = chunk.length;
    while (pos < n) {
      if (this.current !== undefined) {
        const h = this.current;
        const take = Math.min(this.remaining, n - pos);
        this.remaining -= take;
        const last = this.remaining === 0;
        const flags = this.startFlags | (last ? h.flags & END_FLAGS : 0);
        this.startFlags = 0;
        out.push({ type: FrameType.DATA, flags, streamID: h.streamID, length: take, payload: chunk.subarray(pos, pos + take) });
        pos += take;
        if (last) this.current = undefined;
        continue;
      }
      let h: FrameHeader;
      if (this.headFilled === 0 && n - pos >= HEADER_BYTES) {
        h = decodeHeader(chunk, pos);
        pos += HEADER_BYTES;
      } else {
        const take = Math.min(HEADER_BYTES - this.headFilled, n - pos);
        chunk.copy(this.head, this.headFilled, pos, pos + take);
        this.headFilled += take;
        pos += take;
        if (this.headFilled < HEADER_BYTES) continue;
        this.headFilled = 0;
        h = decodeHeader(this.head);
      }
      if (h.type !== FrameType.DATA) {
        out.push(h);
        continue;
      }
      if (h.length > this.maxPayloadBytes) {
        throw new KonnectivityError(
          ErrorCode.PROTOCOL,
          `yamux: data frame of ${h.length} bytes exceeds the maximum ${this.maxPayloadBytes}`,
        );
      }
      if (n - pos >= h.length) {
        out.push({ ...h, payload: chunk.subarray(pos, pos + h.length) });
        pos += h.length;
      } else {
        // The rest of this chunk now, the rest of the frame as it comes.
        this.current = h;
        this.remaining = h.length;
        this.startFlags = h.flags & ~END_FLAGS;
        if (pos < n) {
          const take = n - pos;
          this.remaining -= take;
          out.push({ type: FrameType.DATA, flags: this.startFlags, streamID: h.streamID, length: take, payload: chunk.subarray(pos) });
          this.startFlags = 0;
          pos = n;
        }
      }
    }
    return out;
  }
}
