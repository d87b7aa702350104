export * from './packet-stream.js';
export { StickyDecoder, DEFAULT_MAX_MESSAGE_BYTES, type FramerOptions } from './framing.js';
export * from './memory/index.js';
export * from './yamux/index.js';
export * from './grpc/index.js';
