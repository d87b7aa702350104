/**
 * Negotiating the per-connection flow-control regime, shared by both roles. The windows themselves (this one, and
 * the HTTP/2 and yamux ones under it) are all in ../transport/windows.ts.
 *
 * Two regimes, chosen per tunnel stream:
 * - credit: both peers are konnectivity-ts and agreed a per-connection window through the `konnectivity-ts-window`
 *   metadata key. A sender never has more than the window unacknowledged on a connection; the receiver returns
 *   credit (WINDOW_UPDATE) as bytes leave its buffers. One slow reader never holds the shared stream.
 * - legacy: the peer is the Go reference (or a stream that carries a single connection). The receiver pauses the
 *   stream while a connection holds more than its buffer limit, which is what the reference does too.
 */
import { checkNumber } from '../protocol/options.js';
import { metadataValue, type Metadata } from '../transport/packet-stream.js';
import {
  DEFAULT_CONNECTION_BUFFER_BYTES,
  DEFAULT_TS_DATA_CHUNK_BYTES,
  MAX_CONNECTION_WINDOW_BYTES,
  MAX_DATA_CHUNK_BYTES,
  MIN_CONNECTION_WINDOW_BYTES,
} from '../transport/windows.js';

export { DEFAULT_CONNECTION_BUFFER_BYTES, DEFAULT_CONNECTION_WINDOW_MAX_BYTES, MAX_DATA_CHUNK_BYTES } from '../transport/windows.js';

/** Metadata key that offers (agent, in its request) and confirms (server, in its response) the credit regime. */
export const WINDOW_METADATA_KEY = 'konnectivity-ts-window';

/**
 * Metadata key that offers (agent) and confirms (server) the largest DATA payload each end sends, next to the
 * window; without it a peer gets MAX_DATA_CHUNK_BYTES (a Go peer, or an older konnectivity-ts).
 */
export const CHUNK_METADATA_KEY = 'konnectivity-ts-chunk';

/** What two konnectivity-ts peers agreed for the credit regime. */
export interface CreditTerms {
  /** The per-connection window each end starts with, in bytes. */
  windowBytes: number;
  /** The largest DATA payload each end sends, in bytes. */
  chunkBytes: number;
}

/** The agent's offer: its buffer as the window, and the chunk size it sends and takes. */
export function creditOffer(bufferBytes: number): Record<string, string[]> {
  return { [WINDOW_METADATA_KEY]: [String(bufferBytes)], [CHUNK_METADATA_KEY]: [String(DEFAULT_TS_DATA_CHUNK_BYTES)] };
}

/**
 * The server's side: the terms for an agent's offer (the smaller window and chunk of the two ends) and the
 * response metadata that confirms them; undefined when the agent offered none (a Go agent).
 */
export function acceptCreditOffer(metadata: Metadata, bufferBytes: number): { terms: CreditTerms; response: Record<string, string[]> } | undefined {
  const window = offeredWindow(metadata);
  if (window === undefined) return undefined;
  const terms = { windowBytes: Math.min(window, bufferBytes), chunkBytes: Math.min(offeredChunk(metadata), DEFAULT_TS_DATA_CHUNK_BYTES) };
  const response: Record<string, string[]> = { [WINDOW_METADATA_KEY]: [String(terms.windowBytes)] };
  if (terms.chunkBytes > MAX_DATA_CHUNK_BYTES) response[CHUNK_METADATA_KEY] = [String(terms.chunkBytes)];
  return { terms, response };
}

/** The agent's side: the terms the server confirmed, or undefined for the legacy regime (a Go server). */
export function agreedCreditTerms(metadata: Metadata): CreditTerms | undefined {
  const windowBytes = offeredWindow(metadata);
  return windowBytes === undefined ? undefined : { windowBytes, chunkBytes: offeredChunk(metadata) };
}

/** A chunk size in `metadata` within [32 KiB, 128 KiB]; 32 KiB when absent or out of range. */
function offeredChunk(metadata: Metadata): number {
  const raw = metadataValue(metadata, CHUNK_METADATA_KEY);
  const n = raw !== undefined && /^\d{1,9}$/.test(raw) ? Number(raw) : 0;
  return n >= MAX_DATA_CHUNK_BYTES && n <= DEFAULT_TS_DATA_CHUNK_BYTES ? n : MAX_DATA_CHUNK_BYTES;
}

/** The window a peer offered in its metadata, or undefined when it did not offer one (a Go peer) or it is invalid. */
export function offeredWindow(metadata: Metadata): number | undefined {
  const raw = metadataValue(metadata, WINDOW_METADATA_KEY);
  if (raw === undefined || !/^\d{1,12}$/.test(raw)) return undefined;
  const n = Number(raw);
  return n >= MIN_CONNECTION_WINDOW_BYTES && n <= MAX_CONNECTION_WINDOW_BYTES ? n : undefined;
}

/** Check a configured buffer size (default 1 MiB); throws ERR_INVALID_OPTION. */
export function validBufferBytes(n: number | undefined, name: string): number {
  return checkNumber(name, n ?? DEFAULT_CONNECTION_BUFFER_BYTES, {
    integer: true,
    min: MIN_CONNECTION_WINDOW_BYTES,
    max: MAX_CONNECTION_WINDOW_BYTES,
  });
}
