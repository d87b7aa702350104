export * from './packet.js';
export * from './errors.js';
export * from './codec.js';
export * from './framing.js';
export * from './identifiers.js';
export * from './ids.js';
export * from './address.js';
