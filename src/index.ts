/**
 * konnectivity-ts: the public surface (re-exports only). Each folder below is also an entry point of its own
 * (`konnectivity-ts/client`, `konnectivity-ts/transport/grpc`, ...) that loads only what it needs.
 */
export * from './protocol/index.js';
export * from './transport/index.js';
export * from './transport/memory/index.js';
export * from './transport/yamux/index.js';
export * from './transport/grpc/index.js';
export * from './tunnel/index.js';
export * from './server/index.js';
export * from './agent/index.js';
export * from './client/index.js';
export * from './ops/index.js';
export * from './kube/index.js';
