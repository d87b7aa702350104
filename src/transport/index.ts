/**
 * The PacketStream contract every transport implements. The adapters have entry points of their own
 * (`transport/grpc`, `transport/yamux`, `transport/memory`), so importing the contract loads none of them.
 */
export * from './packet-stream.js';
export { StickyDecoder, DEFAULT_MAX_MESSAGE_BYTES, type FramerOptions } from './framing.js';
