/** konnectivity-ts: the public surface (re-exports only). */
export * from './protocol/index.js';
export * from './transport/index.js';
