export * from './packet-stream.js';
export * from './memory/index.js';
export * from './yamux/index.js';
export * from './grpc/index.js';
