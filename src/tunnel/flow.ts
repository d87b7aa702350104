/**
 * Flow-control settings shared by both roles.
 *
 * Two regimes, chosen per tunnel stream:
 * - credit: both peers are konnectivity-ts and agreed a per-connection window through the `konnectivity-ts-window`
 *   metadata key. A sender never has more than the window unacknowledged on a connection; the receiver returns
 *   credit (WINDOW_UPDATE) as bytes leave its buffers. One slow reader never holds the shared stream.
 * - legacy: the peer is the Go reference (or a stream that carries a single connection). The receiver pauses the
 *   stream while a connection holds more than its buffer limit, which is what the reference does too.
 */
import { ErrorCode, KonnectivityError } from '../protocol/errors.js';
import { metadataValue, type Metadata } from '../transport/packet-stream.js';

/** Metadata key that offers (agent, in its request) and confirms (server, in its response) the credit regime. */
export const WINDOW_METADATA_KEY = 'konnectivity-ts-window';

/** Default per-connection buffer and credit window: 1 MiB. */
export const DEFAULT_CONNECTION_BUFFER_BYTES = 1024 * 1024;

/** Largest DATA payload we send: far below gRPC's 4 MiB limit, small enough to interleave connections fairly. */
export const MAX_DATA_CHUNK_BYTES = 32 * 1024;

const MIN_WINDOW_BYTES = 64 * 1024;
const MAX_WINDOW_BYTES = 64 * 1024 * 1024;

/** The window a peer offered in its metadata, or undefined when it did not offer one (a Go peer) or it is invalid. */
export function offeredWindow(metadata: Metadata): number | undefined {
  const raw = metadataValue(metadata, WINDOW_METADATA_KEY);
  if (raw === undefined || !/^\d{1,12}$/.test(raw)) return undefined;
  const n = Number(raw);
  return n >= MIN_WINDOW_BYTES && n <= MAX_WINDOW_BYTES ? n : undefined;
}

/** Check a configured buffer size. */
export function validBufferBytes(n: number | undefined, name: string): number {
  const v = n ?? DEFAULT_CONNECTION_BUFFER_BYTES;
  if (!Number.isInteger(v) || v < MIN_WINDOW_BYTES || v > MAX_WINDOW_BYTES) {
    throw new KonnectivityError(
      ErrorCode.INVALID_OPTION,
      `${name} must be an integer between ${MIN_WINDOW_BYTES} and ${MAX_WINDOW_BYTES}, got ${v}`);
  }
  return v;
}
