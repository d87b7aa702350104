export * from './packet.js';
export * from './errors.js';
export { AbortError } from './abort.js';
export * from './encode.js';
export * from './decode.js';
export { ENCODED } from './wire.js';
export * from './identifiers.js';
export * from './ids.js';
export * from './address.js';
