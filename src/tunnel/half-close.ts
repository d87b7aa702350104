/**
 * Negotiating half-close, the konnectivity-ts extension that carries `end()` across a tunnel (PROTOCOL.md §11 has
 * no half-close: the reference ends a connection with CLOSE_REQ/CLOSE_RSP only).
 *
 * The peer that would receive HALF_CLOSE packets offers the `konnectivity-ts-half-close` metadata key (the agent in
 * its Connect request; a client in its Proxy request); the server confirms it in its response. Only then does the
 * sender use HALF_CLOSE (packet type 65): "I send no more DATA on this connection". A Go peer never offers or
 * confirms the key and never receives the packet. Where the transport gives each connection a stream of its own
 * (yamux), the stream's FIN carries the half-close and no negotiation is needed.
 */
import { metadataValue, type Metadata } from '../transport/packet-stream.js';

/** Metadata key that offers (request) and confirms (response) half-close. Its value is `1`. */
export const HALF_CLOSE_METADATA_KEY = 'konnectivity-ts-half-close';

/** The metadata entry that offers or confirms half-close. */
export const HALF_CLOSE_METADATA: Metadata = { [HALF_CLOSE_METADATA_KEY]: ['1'] };

/** True when `metadata` offers (or confirms) half-close. */
export function offersHalfClose(metadata: Metadata): boolean {
  return metadataValue(metadata, HALF_CLOSE_METADATA_KEY) === '1';
}

/**
 * How a tunnel carries the end of one direction of a connection:
 * - `stream`: the connection has a stream of its own (a yamux substream), whose end is the half-close;
 * - `packet`: the peer confirmed the extension, and HALF_CLOSE packets say it;
 * - undefined: it cannot be carried (a Go peer); `end()` then only stops writing.
 */
export type HalfCloseMode = 'stream' | 'packet' | undefined;
