/**
 * gRPC metadata <-> HTTP/2 headers. Repeated keys stay separate values (a Go server counts `agentid` values),
 * which is why incoming metadata is built from the raw header list rather than node's joined header object.
 */
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http2';
import type { Metadata } from '../packet-stream.js';

/**
 * Response header by which our server tells a client that it is node:http2, whose sessions read nothing while a
 * socket write is pending (window-tuner.ts says why a client then keeps its window). A Go server does not send it.
 */
export const NODE_PEER_HEADER = 'konnectivity-ts-http2';
export const NODE_PEER_VALUE = 'node';

/** Headers that belong to HTTP/2 or gRPC itself (or to this transport), never surfaced as metadata. */
const RESERVED = new Set([
  'content-type',
  'te',
  'grpc-status',
  'grpc-message',
  'grpc-encoding',
  'grpc-accept-encoding',
  'grpc-timeout',
  NODE_PEER_HEADER,
]);

/** Metadata from node's raw header list (`[name, value, name, value, ...]`). */
export function metadataFromRawHeaders(raw: readonly string[]): Metadata {
  const md: Record<string, string[]> = {};
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const key = raw[i]!.toLowerCase();
    if (key.startsWith(':') || RESERVED.has(key)) continue;
    (md[key] ??= []).push(raw[i + 1]!);
  }
  return md;
}

/** Metadata from node's header object, when no raw list is at hand (joined duplicates stay one value). */
export function metadataFromHeaders(headers: IncomingHttpHeaders): Metadata {
  const md: Record<string, string[]> = {};
  for (const [key, value] of Object.entries(headers)) {
    if (key.startsWith(':') || RESERVED.has(key) || value === undefined) continue;
    md[key] = Array.isArray(value) ? [...value] : [String(value)];
  }
  return md;
}

/** Outgoing headers for metadata: each value of a repeated key becomes its own header field. */
export function headersFromMetadata(md: Metadata | undefined, into: OutgoingHttpHeaders = {}): OutgoingHttpHeaders {
  if (!md) return into;
  for (const [key, values] of Object.entries(md)) {
    const k = key.toLowerCase();
    if (values.length === 0) continue;
    into[k] = values.length === 1 ? values[0]! : [...values];
  }
  return into;
}

/** The single value of a header (first one if node gave a list). */
export function headerValue(headers: IncomingHttpHeaders, key: string): string | undefined {
  const v = headers[key];
  if (v === undefined) return undefined;
  return Array.isArray(v) ? v[0] : String(v);
}
