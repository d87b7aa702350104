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
  MAX_CONNECTION_WINDOW_BYTES,
  MIN_CONNECTION_WINDOW_BYTES,
} from '../transport/windows.js';

export { DEFAULT_CONNECTION_BUFFER_BYTES, DEFAULT_CONNECTION_WINDOW_MAX_BYTES, MAX_DATA_CHUNK_BYTES } from '../transport/windows.js';

/** Metadata key that offers (agent, in its request) and confirms (server, in its response) the credit regime. */
export const WINDOW_METADATA_KEY = 'konnectivity-ts-window';

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
