/** Shared helpers for the protocol tests: the golden vectors file and a comparable form of packets. */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { PacketType, PiecewiseData, type Packet } from '../../../src/protocol/index.js';
import { ROOT, findShared } from '../../helpers/shared.js';

export { ROOT };

/** The golden vectors, committed as a test fixture so a clone with nothing beside it runs them. */
export const VECTORS_PATH = resolve(ROOT, 'test/fixtures/vectors/packets.json');

/**
 * The shared original the fixture was copied from, when it can be found: `$KONNECTIVITY_VECTORS`, else
 * `../shared/vectors/packets.json` beside this checkout, beside the main checkout of a git worktree, or beside the
 * checkout it was cloned from (test/helpers/shared.ts). Undefined when none exists.
 */
export const SHARED_VECTORS_PATH = findShared('vectors/packets.json', process.env['KONNECTIVITY_VECTORS']);

export interface JsonPacket {
  type: string | number;
  [member: string]: unknown;
}
export interface ValidVector {
  name: string;
  packet: JsonPacket;
  hex: string;
  grpcFrameHex: string;
  delimitedHex: string;
}
export interface DecodeOnlyVector {
  name: string;
  about: string;
  hex: string;
  packet: JsonPacket;
}
export interface InvalidVector {
  name: string;
  hex: string;
  about: string;
}
export interface VectorFile {
  valid: ValidVector[];
  decodeOnly: DecodeOnlyVector[];
  invalid: InvalidVector[];
}

export function loadVectors(): VectorFile {
  return JSON.parse(readFileSync(VECTORS_PATH, 'utf8')) as VectorFile;
}

const INT64_FIELDS = new Set(['random', 'connectID']);

/**
 * A vector's JSON packet as our Packet: type names to numbers, int64 decimal strings to bigints, `dataHex` to
 * bytes. An unknown type number becomes `{ type, unknown: true }`, as the codec keeps it.
 */
export function packetFromJson(j: JsonPacket): Packet {
  const type = typeof j.type === 'number' ? j.type : PacketType[j.type as keyof typeof PacketType];
  if (type === undefined) throw new Error(`unknown type name ${String(j.type)}`);
  if (type < 0 || type > PacketType.DRAIN) return { type, unknown: true };
  const out: Record<string, unknown> = { type };
  for (const [key, value] of Object.entries(j)) {
    if (key === 'type') continue;
    const member: Record<string, unknown> = {};
    for (const [f, v] of Object.entries(value as Record<string, unknown>)) {
      if (f === 'dataHex') member.data = Buffer.from(v as string, 'hex');
      else if (INT64_FIELDS.has(f)) member[f] = BigInt(v as string);
      else member[f] = v;
    }
    out[key] = member;
  }
  return out as unknown as Packet;
}

/**
 * A deep-comparable form of a packet: byte arrays become hex strings (so a Buffer view and a Uint8Array with the
 * same bytes compare equal), bigints stay bigints (compared exactly), symbol keys are dropped.
 */
export function canon(value: unknown): unknown {
  // A payload held in pieces is the same packet as one with the joined payload.
  if (value instanceof PiecewiseData) return canon({ connectID: value.connectID, error: value.error, data: value.data });
  if (value instanceof Uint8Array) return `hex:${Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('hex')}`;
  if (Array.isArray(value)) return value.map(canon);
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = canon(v);
    return out;
  }
  return value;
}

export function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}
