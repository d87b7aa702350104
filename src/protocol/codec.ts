/**
 * The hot-path Packet codec: a hand-written protobuf encoder and decoder for the eight messages of the contract.
 * Pure: bytes in, packets out. protobufjs generated from proto/ is the reference oracle in the tests.
 *
 * Encoding follows what protoc emits: fields in number order, proto3 defaults (0, "", empty bytes) omitted,
 * a present payload message always emitted (even when empty, e.g. DRAIN's `42 00`).
 * Decoding accepts any field order, skips unknown fields, keeps unknown packet types, and never returns a
 * half-filled packet: malformed input throws KonnectivityError(ERR_MALFORMED_PACKET).
 * DATA payloads decode as views into the input (no copy).
 */
import { ErrorCode, KonnectivityError } from './errors.js';
import {
  PacketType,
  type CloseDial,
  type CloseRequest,
  type CloseResponse,
  type Data,
  type DialRequest,
  type DialResponse,
  type Packet,
  type WindowUpdate,
} from './packet.js';

const WIRE_VARINT = 0;
const WIRE_FIXED64 = 1;
const WIRE_LEN = 2;
const WIRE_FIXED32 = 5;
/** Packet oneof field of the WINDOW_UPDATE extension. */
const WINDOW_UPDATE_FIELD = 64;

/**
 * Decoded packets that came off the wire keep their encoded bytes under this key, so a relay can forward a packet
 * it did not change without encoding it again. Packets must be treated as immutable.
 */
export const ENCODED = Symbol('konnectivity.encoded');
interface WithEncoded {
  [ENCODED]?: Uint8Array;
}

// ---------------------------------------------------------------------------------------------------------------
// Sizes

function varint32Size(v: number): number {
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
function int64Size(v: bigint): number {
  if (v >= 0n && v < 0x80000000n) return varint32Size(Number(v));
  if (v < INT64_MIN || v > INT64_MAX) {
    // Wrapping would put a different ID on the wire.
    throw new KonnectivityError(ErrorCode.INVALID_OPTION, `int64 field out of range: ${v}`);
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

function stringSize(s: string): number {
  return s.length === 0 ? 0 : Buffer.byteLength(s, 'utf8');
}

/** Tag + length prefix + body for a length-delimited field of `len` bytes (field numbers < 16). */
function lenFieldSize(len: number): number {
  return 1 + varint32Size(len) + len;
}

function dialRequestSize(m: DialRequest, ps: number, as: number): number {
  return (ps ? lenFieldSize(ps) : 0) + (as ? lenFieldSize(as) : 0) + (m.random !== 0n ? 1 + int64Size(m.random) : 0);
}

// ---------------------------------------------------------------------------------------------------------------
// Writer

class Writer {
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
// Encoding

export interface EncodeOptions {
  /** Leave this many bytes free at the start of the returned buffer (e.g. 5 for a gRPC message prefix). */
  reserve?: number;
}

/**
 * Encode a packet to protobuf bytes. With `reserve`, the message starts at that offset, so a framer can fill its
 * prefix in place. A packet decoded with its encoding kept (see {@link ENCODED}) is returned as is when no
 * reserve is asked for.
 */
export function encodePacket(p: Packet, options?: EncodeOptions): Buffer {
  const reserve = options?.reserve ?? 0;
  const kept = (p as WithEncoded)[ENCODED];
  if (kept !== undefined && reserve === 0) {
    return Buffer.isBuffer(kept) ? kept : Buffer.from(kept.buffer, kept.byteOffset, kept.byteLength);
  }
  const type = p.type;
  const typeSize = type === 0 ? 0 : 1 + (type > 0 ? varint32Size(type >>> 0) : 10);
  let size = typeSize;
  let field = 0;
  let bodySize = 0;
  // Precomputed string byte lengths, to avoid measuring twice.
  let s1 = 0;
  let s2 = 0;
  switch (type) {
    case PacketType.DIAL_REQ: {
      const m = (p as { dialRequest?: DialRequest }).dialRequest;
      if (m) {
        field = 2;
        s1 = stringSize(m.protocol);
        s2 = stringSize(m.address);
        bodySize = dialRequestSize(m, s1, s2);
      }
      break;
    }
    case PacketType.DIAL_RSP: {
      const m = (p as { dialResponse?: DialResponse }).dialResponse;
      if (m) {
        field = 3;
        s1 = stringSize(m.error);
        bodySize =
          (s1 ? lenFieldSize(s1) : 0) +
          (m.connectID !== 0n ? 1 + int64Size(m.connectID) : 0) +
          (m.random !== 0n ? 1 + int64Size(m.random) : 0);
      }
      break;
    }
    case PacketType.DATA: {
      const m = (p as { data?: Data }).data;
      if (m) {
        field = 4;
        s1 = stringSize(m.error);
        bodySize =
          (m.connectID !== 0n ? 1 + int64Size(m.connectID) : 0) +
          (s1 ? lenFieldSize(s1) : 0) +
          (m.data.length ? lenFieldSize(m.data.length) : 0);
      }
      break;
    }
    case PacketType.CLOSE_REQ: {
      const m = (p as { closeRequest?: CloseRequest }).closeRequest;
      if (m) {
        field = 5;
        bodySize = m.connectID !== 0n ? 1 + int64Size(m.connectID) : 0;
      }
      break;
    }
    case PacketType.CLOSE_RSP: {
      const m = (p as { closeResponse?: CloseResponse }).closeResponse;
      if (m) {
        field = 6;
        s1 = stringSize(m.error);
        bodySize = (s1 ? lenFieldSize(s1) : 0) + (m.connectID !== 0n ? 1 + int64Size(m.connectID) : 0);
      }
      break;
    }
    case PacketType.DIAL_CLS: {
      const m = (p as { closeDial?: CloseDial }).closeDial;
      if (m) {
        field = 7;
        bodySize = m.random !== 0n ? 1 + int64Size(m.random) : 0;
      }
      break;
    }
    case PacketType.DRAIN: {
      if ((p as { drain?: object }).drain) field = 8;
      break;
    }
    case PacketType.WINDOW_UPDATE: {
      const m = (p as { windowUpdate?: WindowUpdate }).windowUpdate;
      if (m) {
        field = WINDOW_UPDATE_FIELD;
        bodySize =
          (m.connectID !== 0n ? 1 + int64Size(m.connectID) : 0) + (m.increment !== 0n ? 1 + int64Size(m.increment) : 0);
      }
      break;
    }
    default:
      break;
  }
  if (field !== 0) size += lenFieldSize(bodySize) + (field >= 16 ? 1 : 0);

  const buf = Buffer.allocUnsafe(reserve + size);
  const w = new Writer(buf, reserve);
  if (typeSize) {
    w.byte(0x08);
    if (type > 0) w.varint32(type >>> 0);
    else w.int64(BigInt(type));
  }
  if (field !== 0) {
    w.varint32((field << 3) | WIRE_LEN);
    w.varint32(bodySize);
    switch (field) {
      case 2: {
        const m = (p as { dialRequest: DialRequest }).dialRequest;
        if (s1) (w.byte(0x0a), w.string(m.protocol, s1));
        if (s2) (w.byte(0x12), w.string(m.address, s2));
        if (m.random !== 0n) (w.byte(0x18), w.int64(m.random));
        break;
      }
      case 3: {
        const m = (p as { dialResponse: DialResponse }).dialResponse;
        if (s1) (w.byte(0x0a), w.string(m.error, s1));
        if (m.connectID !== 0n) (w.byte(0x10), w.int64(m.connectID));
        if (m.random !== 0n) (w.byte(0x18), w.int64(m.random));
        break;
      }
      case 4: {
        const m = (p as { data: Data }).data;
        if (m.connectID !== 0n) (w.byte(0x08), w.int64(m.connectID));
        if (s1) (w.byte(0x12), w.string(m.error, s1));
        if (m.data.length) (w.byte(0x1a), w.bytes(m.data));
        break;
      }
      case 5: {
        const m = (p as { closeRequest: CloseRequest }).closeRequest;
        if (m.connectID !== 0n) (w.byte(0x08), w.int64(m.connectID));
        break;
      }
      case 6: {
        const m = (p as { closeResponse: CloseResponse }).closeResponse;
        if (s1) (w.byte(0x0a), w.string(m.error, s1));
        if (m.connectID !== 0n) (w.byte(0x10), w.int64(m.connectID));
        break;
      }
      case 7: {
        const m = (p as { closeDial: CloseDial }).closeDial;
        if (m.random !== 0n) (w.byte(0x08), w.int64(m.random));
        break;
      }
      case WINDOW_UPDATE_FIELD: {
        const m = (p as { windowUpdate: WindowUpdate }).windowUpdate;
        if (m.connectID !== 0n) (w.byte(0x08), w.int64(m.connectID));
        if (m.increment !== 0n) (w.byte(0x10), w.int64(m.increment));
        break;
      }
      default:
        break; // DRAIN: empty body
    }
  }
  if (w.pos !== buf.length) {
    throw new KonnectivityError(ErrorCode.PROTOCOL, `codec size mismatch: wrote ${w.pos} of ${buf.length} bytes`);
  }
  return buf;
}

/**
 * The encoded size of a DATA packet's envelope (everything but the payload bytes), for a framer that writes the
 * payload separately. Returns the header bytes: type, payload tag and length, connectID, data tag and length.
 */
export function encodeDataHeader(connectID: bigint, payloadLength: number, reserve = 0): Buffer {
  const idSize = connectID !== 0n ? 1 + int64Size(connectID) : 0;
  const dataField = payloadLength ? 1 + varint32Size(payloadLength) : 0;
  const body = idSize + dataField + payloadLength;
  const headerSize = 2 + 1 + varint32Size(body) + idSize + dataField;
  const buf = Buffer.allocUnsafe(reserve + headerSize);
  const w = new Writer(buf, reserve);
  w.byte(0x08);
  w.byte(PacketType.DATA);
  w.byte((4 << 3) | WIRE_LEN);
  w.varint32(body);
  if (idSize) (w.byte(0x08), w.int64(connectID));
  if (dataField) (w.byte(0x1a), w.varint32(payloadLength));
  return buf;
}

// ---------------------------------------------------------------------------------------------------------------
// Decoding

function malformed(msg: string): never {
  throw new KonnectivityError(ErrorCode.MALFORMED_PACKET, `malformed packet: ${msg}`);
}

class Reader {
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

  /** Reads a tag; returns [field, wireType]. */
  tag(): number {
    const t = this.uint32();
    const field = t >>> 3;
    if (field === 0) malformed('field number 0');
    return t;
  }
}

function expectWire(actual: number, expected: number, what: string): void {
  if (actual !== expected) malformed(`${what} has wire type ${actual}, expected ${expected}`);
}

function decodeDialRequest(r: Reader, end: number): DialRequest {
  const m: DialRequest = { protocol: '', address: '', random: 0n };
  while (r.pos < end) {
    const t = r.tag();
    const wt = t & 7;
    switch (t >>> 3) {
      case 1:
        expectWire(wt, WIRE_LEN, 'DialRequest.protocol');
        m.protocol = r.string();
        break;
      case 2:
        expectWire(wt, WIRE_LEN, 'DialRequest.address');
        m.address = r.string();
        break;
      case 3:
        expectWire(wt, WIRE_VARINT, 'DialRequest.random');
        m.random = r.int64();
        break;
      default:
        r.skip(wt);
    }
  }
  return m;
}

function decodeDialResponse(r: Reader, end: number): DialResponse {
  const m: DialResponse = { error: '', connectID: 0n, random: 0n };
  while (r.pos < end) {
    const t = r.tag();
    const wt = t & 7;
    switch (t >>> 3) {
      case 1:
        expectWire(wt, WIRE_LEN, 'DialResponse.error');
        m.error = r.string();
        break;
      case 2:
        expectWire(wt, WIRE_VARINT, 'DialResponse.connectID');
        m.connectID = r.int64();
        break;
      case 3:
        expectWire(wt, WIRE_VARINT, 'DialResponse.random');
        m.random = r.int64();
        break;
      default:
        r.skip(wt);
    }
  }
  return m;
}

function decodeData(r: Reader, end: number): Data {
  const m: Data = { connectID: 0n, error: '', data: EMPTY };
  while (r.pos < end) {
    const t = r.tag();
    const wt = t & 7;
    switch (t >>> 3) {
      case 1:
        expectWire(wt, WIRE_VARINT, 'Data.connectID');
        m.connectID = r.int64();
        break;
      case 2:
        expectWire(wt, WIRE_LEN, 'Data.error');
        m.error = r.string();
        break;
      case 3: {
        expectWire(wt, WIRE_LEN, 'Data.data');
        const len = r.length();
        m.data = r.buf.subarray(r.pos, r.pos + len);
        r.pos += len;
        break;
      }
      default:
        r.skip(wt);
    }
  }
  return m;
}

/** Decodes a message with one int64 field (`number` is its field number) and optionally an error string field 1. */
function decodeIdMessage(r: Reader, end: number, idField: number, what: string): { id: bigint; error: string } {
  let id = 0n;
  let error = '';
  while (r.pos < end) {
    const t = r.tag();
    const wt = t & 7;
    const f = t >>> 3;
    if (f === idField) {
      expectWire(wt, WIRE_VARINT, what);
      id = r.int64();
    } else if (f === 1 && idField !== 1) {
      expectWire(wt, WIRE_LEN, `${what} error`);
      error = r.string();
    } else r.skip(wt);
  }
  return { id, error };
}

const EMPTY = Buffer.alloc(0);

function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

export interface DecodeOptions {
  /** Keep the encoded bytes on the packet (see {@link ENCODED}) so a relay can forward it without re-encoding. */
  keepEncoded?: boolean;
}

/** Decode one Packet message. Throws KonnectivityError(ERR_MALFORMED_PACKET) on malformed input. */
export function decodePacket(bytes: Uint8Array, options?: DecodeOptions): Packet {
  const buf = toBuffer(bytes);
  const end = buf.length;
  const r = new Reader(buf, 0, end);
  let type = 0;
  // The last oneof member seen wins, as in protobuf; it is decoded once the type is known (any field order).
  let member = 0;
  let memberStart = 0;
  let memberEnd = 0;
  while (r.pos < end) {
    const t = r.tag();
    const wt = t & 7;
    const f = t >>> 3;
    if (f === 1) {
      expectWire(wt, WIRE_VARINT, 'Packet.type');
      type = r.uint32() | 0; // an enum is an int32
    } else if ((f >= 2 && f <= 8) || f === WINDOW_UPDATE_FIELD) {
      expectWire(wt, WIRE_LEN, 'Packet payload');
      const len = r.length();
      member = f;
      memberStart = r.pos;
      memberEnd = r.pos + len;
      r.pos = memberEnd;
    } else r.skip(wt);
  }
  const p = buildPacket(type, member === 0 ? undefined : decodeMember(buf, member, memberStart, memberEnd));
  // Not enumerable: the kept bytes are a transport detail, invisible to equality checks and spreads.
  if (options?.keepEncoded) Object.defineProperty(p, ENCODED, { value: buf, writable: true, configurable: true });
  return p;
}

/** The oneof field number that carries each known type's payload. */
const MEMBER_OF_TYPE: readonly number[] = [2, 3, 5, 6, 4, 7, 8];
const MEMBER_KEY: Record<number, string> = {
  2: 'dialRequest',
  3: 'dialResponse',
  4: 'data',
  5: 'closeRequest',
  6: 'closeResponse',
  7: 'closeDial',
  8: 'drain',
};

/**
 * A Go receiver reads the getter for the packet's type, which gives zero values when another member is set; so a
 * member that does not match the type is validated (above) and then dropped.
 */
function buildPacket(type: number, member: { field: number; value: object } | undefined): Packet {
  if (type === PacketType.WINDOW_UPDATE) {
    return member?.field === WINDOW_UPDATE_FIELD ? { type, windowUpdate: member.value as WindowUpdate } : { type };
  }
  if (type < 0 || type >= MEMBER_OF_TYPE.length) return { type, unknown: true };
  if (member === undefined || MEMBER_OF_TYPE[type] !== member.field) return { type } as Packet;
  return { type, [MEMBER_KEY[member.field]!]: member.value } as Packet;
}

function decodeMember(buf: Buffer, field: number, start: number, end: number): { field: number; value: object } {
  const r = new Reader(buf, start, end);
  let value: object;
  switch (field) {
    case 2:
      value = decodeDialRequest(r, end);
      break;
    case 3:
      value = decodeDialResponse(r, end);
      break;
    case 4:
      value = decodeData(r, end);
      break;
    case 5:
      value = { connectID: decodeIdMessage(r, end, 1, 'CloseRequest.connectID').id };
      break;
    case 6: {
      const { id, error } = decodeIdMessage(r, end, 2, 'CloseResponse.connectID');
      value = { error, connectID: id };
      break;
    }
    case 7:
      value = { random: decodeIdMessage(r, end, 1, 'CloseDial.random').id };
      break;
    case WINDOW_UPDATE_FIELD: {
      let connectID = 0n;
      let increment = 0n;
      while (r.pos < end) {
        const t = r.tag();
        if (t >>> 3 === 1) (expectWire(t & 7, WIRE_VARINT, 'WindowUpdate.connectID'), (connectID = r.int64()));
        else if (t >>> 3 === 2) (expectWire(t & 7, WIRE_VARINT, 'WindowUpdate.increment'), (increment = r.int64()));
        else r.skip(t & 7);
      }
      value = { connectID, increment };
      break;
    }
    default:
      while (r.pos < end) r.skip(r.tag() & 7);
      value = {};
  }
  return { field, value };
}
