/** konnectivity-ts: the public surface (re-exports only). */
export * from './protocol/index.js';
export * from './transport/index.js';
export * from './tunnel/index.js';
export * from './server/index.js';
export * from './agent/index.js';
export * from './client/index.js';
export * from './ops/index.js';
