/**
 * The PacketStream contract every transport implements, and the listener convention of their servers. The adapters
 * have entry points of their own (`transport/grpc`, `transport/yamux`, `transport/memory`), so importing the
 * contract loads none of them.
 */
export * from './packet-stream.js';
export { StickyDecoder, DEFAULT_MAX_MESSAGE_BYTES, type FramerOptions } from './framing.js';
export type { Listener, ListenerCloseOptions, ListenTarget, UnixSocketOptions } from './listener.js';
export type { CloseOptions } from './grace.js';
