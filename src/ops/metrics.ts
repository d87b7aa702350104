/**
 * Prometheus metrics with the reference's families (see metric-families.ts): the server's and the agent's
 * instrumentation and what they share.
 */
export * from './metric-families.js';
export * from './server-metrics.js';
export * from './agent-metrics.js';
