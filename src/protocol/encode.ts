/**
 * The hot-path Packet encoder: hand-written protobuf for the nine messages of the contract. Pure: packets in,
 * bytes out. protobufjs generated from proto/ is the reference oracle in the tests.
 *
 * Encoding follows what protoc emits: fields in number order, proto3 defaults (0, "", empty bytes) omitted,
 * a present payload message always emitted (even when empty, e.g. DRAIN's `42 00`).
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
  type HalfClose,
  type Packet,
  type WindowUpdate,
} from './packet.js';
import { joinPayload } from './payload.js';
import {
  ENCODED,
  HALF_CLOSE_FIELD,
  WINDOW_UPDATE_FIELD,
  WIRE_LEN,
  Writer,
  int64Size,
  toBuffer,
  varint32Size,
  type WithEncoded,
} from './wire.js';

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

/** Options of {@link encodePacket}. */
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
    return toBuffer(joinPayload(kept));
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
    case PacketType.HALF_CLOSE: {
      const m = (p as { halfClose?: HalfClose }).halfClose;
      if (m) {
        field = HALF_CLOSE_FIELD;
        bodySize = m.connectID !== 0n ? 1 + int64Size(m.connectID) : 0;
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
      case HALF_CLOSE_FIELD: {
        const m = (p as { halfClose: HalfClose }).halfClose;
        if (m.connectID !== 0n) (w.byte(0x08), w.int64(m.connectID));
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
 * A DATA packet's envelope (everything but the payload bytes), for a framer that writes the payload separately:
 * type, payload tag and length, connectID, data tag and length, after `reserve` free bytes.
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
