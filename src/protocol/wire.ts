/**
 * Protobuf wire-format primitives shared by the Packet encoder (encode.ts) and decoder (decode.ts): wire types,
 * varint sizes, and the byte Writer and Reader the hot path runs on. Pure: no I/O, no Node built-in module.
 */
import { ErrorCode, KonnectivityError } from './errors.js';
import type { Payload } from './payload.js';

export const WIRE_VARINT = 0;
export const WIRE_FIXED64 = 1;
export const WIRE_LEN = 2;
export const WIRE_FIXED32 = 5;
/** Packet oneof field of the WINDOW_UPDATE extension. */
export const WINDOW_UPDATE_FIELD = 64;
/** Packet oneof field of the HALF_CLOSE extension. */
export const HALF_CLOSE_FIELD = 65;

/**
 * Decoded packets that came off the wire keep their encoded bytes under this key, so a relay can forward a packet
 * it did not change without encoding it again: one buffer, or the pieces the message arrived in. Packets must be
 * treated as immutable.
 */
export const ENCODED = Symbol('konnectivity.encoded');
export interface WithEncoded {
  [ENCODED]?: Payload;
}

/** A Buffer view of the same bytes (no copy). */
export function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

// ---------------------------------------------------------------------------------------------------------------
// Sizes

export function varint32Size(v: number): number {
  // v is an unsigned 32-bit value here.
  if (v < 0x80) return 1;
  if (v < 0x4000) return 2;
  if (v < 0x200000) return 3;
  if (v < 0x10000000) return 4;
  return 5;
}

const TWO_32 = 0x1_0000_0000n;
const INT64_MAX = 0x7fff_ffff_ffff_ffffn;
const INT64_MIN = -0x8000_0000_0000_0000n;

/** Size of an int64 (two's complement, as protobuf encodes negative int64) varint. */
export function int64Size(v: bigint): number {
  if (v >= 0n && v < 0x80000000n) return varint32Size(Number(v));
  if (v < INT64_MIN || v > INT64_MAX) {
    // Wrapping would put a different ID on the wire.
    throw new KonnectivityError(ErrorCode.INVALID_PACKET, `int64 field out of range: ${v}`);
  }
  let u = BigInt.asUintN(64, v);
  let n = 0;
  if (u >= TWO_32) {
    // Count the high part in 7-bit groups after the low 28 bits.
    n = 4;
    u >>= 28n;
  }
  let x = u;
  do {
    n++;
    x >>= 7n;
  } while (x > 0n);
  return n;
}

// ---------------------------------------------------------------------------------------------------------------
// Writer

export class Writer {
  pos: number;
  constructor(
    readonly buf: Buffer,
    start: number,
  ) {
    this.pos = start;
  }

  byte(b: number): void {
    this.buf[this.pos++] = b;
  }

  varint32(v: number): void {
    const buf = this.buf;
    let pos = this.pos;
    while (v > 0x7f) {
      buf[pos++] = (v & 0x7f) | 0x80;
      v >>>= 7;
    }
    buf[pos++] = v;
    this.pos = pos;
  }

  int64(v: bigint): void {
    if (v >= 0n && v < 0x80000000n) {
      this.varint32(Number(v));
      return;
    }
    const u = BigInt.asUintN(64, v);
    let lo = Number(u & 0xffffffffn);
    let hi = Number(u >> 32n);
    const buf = this.buf;
    let pos = this.pos;
    // Emit 7-bit groups across the 64-bit value held in two 32-bit halves.
    while (hi > 0 || lo > 0x7f) {
      buf[pos++] = (lo & 0x7f) | 0x80;
      lo = ((lo >>> 7) | (hi << 25)) >>> 0;
      hi >>>= 7;
    }
    buf[pos++] = lo;
    this.pos = pos;
  }

  string(s: string, len: number): void {
    this.varint32(len);
    this.pos += this.buf.write(s, this.pos, len, 'utf8');
  }

  bytes(b: Uint8Array): void {
    this.varint32(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Reader

export function malformed(msg: string): never {
  throw new KonnectivityError(ErrorCode.MALFORMED_PACKET, `malformed packet: ${msg}`);
}

export class Reader {
  pos: number;
  constructor(
    readonly buf: Buffer,
    start: number,
    readonly end: number,
  ) {
    this.pos = start;
  }

  /** A varint as an unsigned 32-bit number (higher bits dropped, as protobuf does for 32-bit fields). */
  uint32(): number {
    const buf = this.buf;
    let pos = this.pos;
    let result = 0;
    for (let shift = 0; shift < 70; shift += 7) {
      if (pos >= this.end) malformed('truncated varint');
      const b = buf[pos++]!;
      if (shift < 32) result |= (b & 0x7f) << shift;
      if (b < 0x80) {
        this.pos = pos;
        return result >>> 0;
      }
    }
    return malformed('varint longer than 10 bytes');
  }

  /** A varint as a signed int64 bigint. */
  int64(): bigint {
    const buf = this.buf;
    let pos = this.pos;
    // The value is gathered in two 32-bit halves; bigints are made once at the end.
    let lo = 0;
    let hi = 0;
    for (let i = 0; i < 10; i++) {
      if (pos >= this.end) malformed('truncated varint');
      const b = buf[pos++]!;
      if (i < 4) lo |= (b & 0x7f) << (7 * i);
      else if (i === 4) {
        lo |= (b & 0x0f) << 28;
        hi |= (b & 0x7f) >> 4;
      } else hi |= (b & 0x7f) << (7 * i - 32);
      if (b < 0x80) {
        this.pos = pos;
        if (hi === 0 && lo >= 0) return BigInt(lo);
        return BigInt.asIntN(64, (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0));
      }
    }
    return malformed('varint longer than 10 bytes');
  }

  /** Bounds of a length-delimited field. */
  length(): number {
    const len = this.uint32();
    if (len > this.end - this.pos) malformed(`length ${len} past the end of the message`);
    return len;
  }

  string(): string {
    const len = this.length();
    const s = len === 0 ? '' : this.buf.toString('utf8', this.pos, this.pos + len);
    this.pos += len;
    return s;
  }

  skip(wireType: number): void {
    switch (wireType) {
      case WIRE_VARINT:
        this.uint32();
        return;
      case WIRE_FIXED64:
        if (this.end - this.pos < 8) malformed('truncated fixed64');
        this.pos += 8;
        return;
      case WIRE_LEN: {
        const len = this.length(); // read before `this.pos` is, since it advances it
        this.pos += len;
        return;
      }
      case WIRE_FIXED32:
        if (this.end - this.pos < 4) malformed('truncated fixed32');
        this.pos += 4;
        return;
      default:
        malformed(`unsupported wire type ${wireType}`);
    }
  }

  /** Reads a tag: `field << 3 | wireType` (field 0 is malformed). */
  tag(): number {
    const t = this.uint32();
    const field = t >>> 3;
    if (field === 0) malformed('field number 0');
    return t;
  }
}
