/** Operational surface: health/admin HTTP servers, Prometheus metrics, structured logs and where they go. */
export * from './health.js';
export * from './logger.js';
export * from './log-output.js';
export * from './metrics.js';
