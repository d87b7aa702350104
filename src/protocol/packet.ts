/**
 * The Konnectivity Packet, as a TypeScript discriminated union on `type`.
 *
 * Int64 rule: every int64 field of the wire schema (`random`, `connectID`) is a `bigint`, always. The Go client
 * draws `random` from rand.Int63(), which does not fit a JS number; using bigint for `connectID` too keeps one rule
 * and one code path. `bigint`s are primitives, so they work as Map keys.
 *
 * Payload members are optional because the wire allows a packet without one (Go getters then read zero values);
 * use the accessors below rather than reading the members directly when a zero default is what you want.
 */

import { PiecewiseData, isPieces, payloadLength, type Payload } from './payload.js';

/** The packet types of the contract. Values are the wire numbers. */
export const PacketType = {
  DIAL_REQ: 0,
  DIAL_RSP: 1,
  CLOSE_REQ: 2,
  CLOSE_RSP: 3,
  DATA: 4,
  DIAL_CLS: 5,
  DRAIN: 6,
  /**
   * konnectivity-ts extension, not in the reference: per-connection flow-control credit. Sent only to peers that
   * announced the `konnectivity-ts-window` metadata key, so Go peers never see it (they would ignore it anyway).
   */
  WINDOW_UPDATE: 64,
  /**
   * konnectivity-ts extension, not in the reference: the sender has ended its direction of a connection (what a TCP
   * FIN says); the other direction goes on until CLOSE_REQ/CLOSE_RSP. Sent only to peers that announced the
   * `konnectivity-ts-half-close` metadata key, so Go peers never see it.
   */
  HALF_CLOSE: 65,
} as const;
/** A packet type's wire number: one of the {@link PacketType} values (or another number, for an unknown type). */
export type PacketType = (typeof PacketType)[keyof typeof PacketType];

/** Names of the known packet types, indexed by wire number (for logs and metrics labels). */
export const PACKET_TYPE_NAMES: readonly string[] = [
  'DIAL_REQ',
  'DIAL_RSP',
  'CLOSE_REQ',
  'CLOSE_RSP',
  'DATA',
  'DIAL_CLS',
  'DRAIN',
];

/** The name of a packet type of the contract or of our extensions, undefined for any other number. */
export function knownPacketTypeName(type: number): string | undefined {
  if (type === PacketType.WINDOW_UPDATE) return 'WINDOW_UPDATE';
  if (type === PacketType.HALF_CLOSE) return 'HALF_CLOSE';
  return PACKET_TYPE_NAMES[type];
}

/** The name of a packet type, or `UNKNOWN(n)` for a number outside the enum. */
export function packetTypeName(type: number): string {
  return knownPacketTypeName(type) ?? `UNKNOWN(${type})`;
}

/** DIAL_REQ's payload: open a connection to `address`. */
export interface DialRequest {
  /** Only "tcp" is carried end to end. */
  protocol: string;
  /** `host:port` of the endpoint the agent dials. */
  address: string;
  /** The dial ID (int64). */
  random: bigint;
}

/** DIAL_RSP's payload: the agent's answer to a DIAL_REQ. */
export interface DialResponse {
  /** Empty on success; otherwise the agent's dial error text (Go form, e.g. `dial tcp …: connect: connection refused`). */
  error: string;
  /** Agent-allocated connection ID (int64); 0 when the dial failed. */
  connectID: bigint;
  /** Echo of the request's `random`. */
  random: bigint;
}

/** CLOSE_REQ's payload: close connection `connectID`. */
export interface CloseRequest {
  /** The connection to close. */
  connectID: bigint;
}

/** CLOSE_RSP's payload: connection `connectID` is closed. */
export interface CloseResponse {
  /** Empty, or why the close failed (e.g. `Unknown connectID`). */
  error: string;
  /** The connection that closed. */
  connectID: bigint;
}

/** DIAL_CLS's payload: give up the dial `random`. */
export interface CloseDial {
  /** The dial ID of the DIAL_REQ to drop. */
  random: bigint;
}

/** DRAIN carries no fields. */
export type Drain = Record<string, never>;

/** Extension: the receiver of connection `connectID` has consumed `increment` more bytes of DATA payload. */
export interface WindowUpdate {
  /** The connection the credit is for. */
  connectID: bigint;
  /** Bytes of DATA payload consumed since the last update. */
  increment: bigint;
}

/** Extension: the sender of connection `connectID` sends no more DATA on it (half-close). */
export interface HalfClose {
  /** The connection whose sender ended its direction. */
  connectID: bigint;
}

/** DATA's payload: bytes of one connection. */
export interface Data {
  /** The connection the bytes belong to. */
  connectID: bigint;
  /** Never set or read by the reference; kept for round trips. */
  error: string;
  /**
   * The payload. A decoded packet's `data` is a view into the received buffer, not a copy. A payload received in
   * pieces ({@link PiecewiseData}) is joined on first read; the hot path reads {@link payloadOf} instead.
   */
  data: Uint8Array;
}

/** A DIAL_REQ packet (frontend or server to agent). */
export interface DialRequestPacket {
  /** Always `PacketType.DIAL_REQ`. */
  type: typeof PacketType.DIAL_REQ;
  /** Absent when the wire carried none (Go reads zero values then). */
  dialRequest?: DialRequest;
}
/** A DIAL_RSP packet (agent to server, server to frontend). */
export interface DialResponsePacket {
  /** Always `PacketType.DIAL_RSP`. */
  type: typeof PacketType.DIAL_RSP;
  /** Absent when the wire carried none. */
  dialResponse?: DialResponse;
}
/** A CLOSE_REQ packet. */
export interface CloseRequestPacket {
  /** Always `PacketType.CLOSE_REQ`. */
  type: typeof PacketType.CLOSE_REQ;
  /** Absent when the wire carried none. */
  closeRequest?: CloseRequest;
}
/** A CLOSE_RSP packet. */
export interface CloseResponsePacket {
  /** Always `PacketType.CLOSE_RSP`. */
  type: typeof PacketType.CLOSE_RSP;
  /** Absent when the wire carried none. */
  closeResponse?: CloseResponse;
}
/** A DATA packet. */
export interface DataPacket {
  /** Always `PacketType.DATA`. */
  type: typeof PacketType.DATA;
  /** Absent when the wire carried none; {@link dataOf} reads the payload either way. */
  data?: Data;
}
/** A DIAL_CLS packet. */
export interface CloseDialPacket {
  /** Always `PacketType.DIAL_CLS`. */
  type: typeof PacketType.DIAL_CLS;
  /** Absent when the wire carried none. */
  closeDial?: CloseDial;
}
/** A DRAIN packet (agent to server: prefer other agents). */
export interface DrainPacket {
  /** Always `PacketType.DRAIN`. */
  type: typeof PacketType.DRAIN;
  /** Absent when the wire carried none. */
  drain?: Drain;
}
/** A WINDOW_UPDATE packet (extension, type 64). */
export interface WindowUpdatePacket {
  /** Always `PacketType.WINDOW_UPDATE`. */
  type: typeof PacketType.WINDOW_UPDATE;
  /** Absent when the wire carried none. */
  windowUpdate?: WindowUpdate;
}
/** A HALF_CLOSE packet (extension, type 65). */
export interface HalfClosePacket {
  /** Always `PacketType.HALF_CLOSE`. */
  type: typeof PacketType.HALF_CLOSE;
  /** Absent when the wire carried none. */
  halfClose?: HalfClose;
}
/**
 * A packet whose type is outside the enum (a newer peer). It decodes, keeps its number, and receivers ignore it.
 * Payload members it may have carried are dropped.
 */
export interface UnknownPacket {
  /** The wire number, outside the known types. */
  type: number;
  /** Marks the packet as of an unknown type. */
  unknown: true;
}

/** A packet of one of the known types. */
export type KnownPacket =
  | DialRequestPacket
  | DialResponsePacket
  | CloseRequestPacket
  | CloseResponsePacket
  | DataPacket
  | CloseDialPacket
  | DrainPacket
  | WindowUpdatePacket
  | HalfClosePacket;

/** Any packet, known type or not: the union the codec reads and writes. */
export type Packet = KnownPacket | UnknownPacket;

/** True for a packet whose type is outside the known ones. */
export function isUnknownPacket(p: Packet): p is UnknownPacket {
  return (p as UnknownPacket).unknown === true;
}

// Builders: the engine builds packets only through these, so every packet it sends has both `type` and payload set,
// as the reference's senders do.

/** A DIAL_REQ for `address` (`host:port`) with dial ID `random`. */
export function dialRequest(address: string, random: bigint, protocol = 'tcp'): DialRequestPacket {
  return { type: PacketType.DIAL_REQ, dialRequest: { protocol, address, random } };
}
/** A DIAL_RSP: `connectID` on success, or `error` (then `connectID` 0). */
export function dialResponse(random: bigint, connectID: bigint, error = ''): DialResponsePacket {
  return { type: PacketType.DIAL_RSP, dialResponse: { error, connectID, random } };
}
/** A CLOSE_REQ for connection `connectID`. */
export function closeRequest(connectID: bigint): CloseRequestPacket {
  return { type: PacketType.CLOSE_REQ, closeRequest: { connectID } };
}
/** A CLOSE_RSP for connection `connectID`, with the error text if the close failed. */
export function closeResponse(connectID: bigint, error = ''): CloseResponsePacket {
  return { type: PacketType.CLOSE_RSP, closeResponse: { error, connectID } };
}
/** A DATA packet; a payload in pieces stays in pieces ({@link PiecewiseData}). */
export function dataPacket(connectID: bigint, data: Payload): DataPacket {
  if (!isPieces(data)) return { type: PacketType.DATA, data: { connectID, error: '', data } };
  return { type: PacketType.DATA, data: new PiecewiseData(connectID, data, payloadLength(data)) };
}
/** A DIAL_CLS for dial ID `random`. */
export function closeDial(random: bigint): CloseDialPacket {
  return { type: PacketType.DIAL_CLS, closeDial: { random } };
}
/** A DRAIN packet. */
export function drainPacket(): DrainPacket {
  return { type: PacketType.DRAIN, drain: {} };
}
/** A WINDOW_UPDATE returning `increment` bytes of credit for connection `connectID`. */
export function windowUpdate(connectID: bigint, increment: number): WindowUpdatePacket {
  return { type: PacketType.WINDOW_UPDATE, windowUpdate: { connectID, increment: BigInt(increment) } };
}

/** A HALF_CLOSE for connection `connectID`: the sender sends no more DATA on it. */
export function halfClosePacket(connectID: bigint): HalfClosePacket {
  return { type: PacketType.HALF_CLOSE, halfClose: { connectID } };
}

const EMPTY = new Uint8Array(0);

/** The connectID a packet refers to (DIAL_RSP, CLOSE_REQ, CLOSE_RSP, DATA, WINDOW_UPDATE, HALF_CLOSE), 0n when it has none. */
export function connectIDOf(p: Packet): bigint {
  switch (p.type) {
    case PacketType.DIAL_RSP:
      return (p as DialResponsePacket).dialResponse?.connectID ?? 0n;
    case PacketType.CLOSE_REQ:
      return (p as CloseRequestPacket).closeRequest?.connectID ?? 0n;
    case PacketType.CLOSE_RSP:
      return (p as CloseResponsePacket).closeResponse?.connectID ?? 0n;
    case PacketType.DATA:
      return (p as DataPacket).data?.connectID ?? 0n;
    case PacketType.WINDOW_UPDATE:
      return (p as WindowUpdatePacket).windowUpdate?.connectID ?? 0n;
    case PacketType.HALF_CLOSE:
      return (p as HalfClosePacket).halfClose?.connectID ?? 0n;
    default:
      return 0n;
  }
}

/** The dial ID a packet refers to (DIAL_REQ, DIAL_RSP, DIAL_CLS), 0n when it has none. */
export function randomOf(p: Packet): bigint {
  switch (p.type) {
    case PacketType.DIAL_REQ:
      return (p as DialRequestPacket).dialRequest?.random ?? 0n;
    case PacketType.DIAL_RSP:
      return (p as DialResponsePacket).dialResponse?.random ?? 0n;
    case PacketType.DIAL_CLS:
      return (p as CloseDialPacket).closeDial?.random ?? 0n;
    default:
      return 0n;
  }
}

/** The payload bytes of a DATA packet as one buffer (empty when absent; a payload in pieces is joined, a copy). */
export function dataOf(p: DataPacket): Uint8Array {
  return p.data?.data ?? EMPTY;
}

/** The payload of a DATA packet as it is held: pieces stay pieces (no copy). Empty when absent. */
export function payloadOf(p: DataPacket): Payload {
  const d = p.data;
  if (d === undefined) return EMPTY;
  return d instanceof PiecewiseData ? d.pieces : d.data;
}

/** Payload bytes of a DATA packet, without joining pieces. */
export function payloadLengthOf(p: DataPacket): number {
  const d = p.data;
  if (d === undefined) return 0;
  return d instanceof PiecewiseData ? d.length : d.data.length;
}
