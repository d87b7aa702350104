/**
 * The hot-path Packet decoder: hand-written protobuf for the nine messages of the contract. Pure: bytes in,
 * packets out. protobufjs generated from proto/ is the reference oracle in the tests.
 *
 * Decoding accepts any field order, skips unknown fields, keeps unknown packet types, and never returns a
 * half-filled packet: malformed input throws KonnectivityError(ERR_MALFORMED_PACKET).
 * DATA payloads decode as views into the input (no copy); a message that arrived in pieces keeps them
 * (decodePacketPieces).
 */
import {
  PacketType,
  type Data,
  type DialRequest,
  type DialResponse,
  type Packet,
  type HalfClose,
  type WindowUpdate,
} from './packet.js';
import { PiecewiseData, isPieces, joinPayload, payloadLength, slicePayload, type Payload } from './payload.js';
import { ENCODED, HALF_CLOSE_FIELD, Reader, WINDOW_UPDATE_FIELD, WIRE_LEN, WIRE_VARINT, malformed, toBuffer } from './wire.js';

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

const EMPTY = Buffer.alloc(0);

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

/** Options of {@link decodePacket}. */
export interface DecodeOptions {
  /** Keep the encoded bytes on the packet (see {@link ENCODED}) so a relay can forward it without re-encoding. */
  keepEncoded?: boolean;
}

/**
 * Decode one Packet message, held as one buffer or as the pieces it arrived in (see decodePacketPieces). Throws
 * KonnectivityError(ERR_MALFORMED_PACKET) on malformed input.
 */
export function decodePacket(bytes: Payload, options?: DecodeOptions): Packet {
  if (isPieces(bytes)) return decodePacketPieces(bytes, payloadLength(bytes), options);
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
    } else if ((f >= 2 && f <= 8) || f === WINDOW_UPDATE_FIELD || f === HALF_CLOSE_FIELD) {
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
  if (type === PacketType.HALF_CLOSE) {
    return member?.field === HALF_CLOSE_FIELD ? { type, halfClose: member.value as HalfClose } : { type };
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
    case HALF_CLOSE_FIELD:
      value = { connectID: decodeIdMessage(r, end, 1, 'HalfClose.connectID').id };
      break;
    default:
      while (r.pos < end) r.skip(r.tag() & 7);
      value = {};
  }
  return { field, value };
}

/** Longest DATA envelope the piecewise decoder reads in place: type, member, connectID and data tags and lengths. */
const DATA_ENVELOPE_MAX_BYTES = 32;

/**
 * Decode one Packet message that arrived in `pieces` (views of a transport's receive buffers, in order, `length`
 * bytes in all). A DATA packet laid out as every encoder writes it (ours and Go's: type, then the Data member with
 * connectID and the payload last, no error text) keeps its payload as views of the pieces: nothing is copied.
 * Anything else is joined once and decoded as usual.
 */
export function decodePacketPieces(pieces: readonly Uint8Array[], length: number, options?: DecodeOptions): Packet {
  const first = pieces[0];
  if (pieces.length > 1 && first !== undefined) {
    const headLength = Math.min(length, DATA_ENVELOPE_MAX_BYTES);
    const head = first.length >= headLength ? toBuffer(first) : toBuffer(joinPayload(slicePayload(pieces, 0, headLength), headLength));
    const envelope = dataEnvelope(head, Math.min(head.length, headLength), length);
    if (envelope !== undefined) {
      const payload = slicePayload(pieces, envelope.payloadStart, length);
      const data = new PiecewiseData(envelope.connectID, payload instanceof Uint8Array ? [payload] : payload, length - envelope.payloadStart);
      const p: Packet = { type: PacketType.DATA, data };
      if (options?.keepEncoded) Object.defineProperty(p, ENCODED, { value: pieces, writable: true, configurable: true });
      return p;
    }
  }
  return decodePacket(joinPayload(pieces, length), options);
}

/**
 * Where the payload of a DATA message of `length` bytes starts, read from its first `end` bytes in `head`; undefined
 * when the message is not laid out as `08 04 22 <len> [08 <connectID>] 1a <len> <payload>` with both lengths
 * reaching the end of the message (the general decoder then handles it).
 */
function dataEnvelope(head: Buffer, end: number, length: number): { connectID: bigint; payloadStart: number } | undefined {
  if (end < 5 || head[0] !== 0x08 || head[1] !== PacketType.DATA || head[2] !== ((4 << 3) | WIRE_LEN)) return undefined;
  try {
    const r = new Reader(head, 3, end);
    const memberLength = r.uint32();
    if (r.pos + memberLength !== length) return undefined;
    let connectID = 0n;
    let t = r.uint32();
    if (t === 0x08) {
      connectID = r.int64();
      t = r.uint32();
    }
    if (t !== 0x1a) return undefined;
    const dataLength = r.uint32();
    if (r.pos + dataLength !== length) return undefined;
    return { connectID, payloadStart: r.pos };
  } catch {
    // The envelope runs past the bytes read in place (or is malformed): the general decoder decides.
    return undefined;
  }
}
