/** Operational surface: health/admin HTTP servers, Prometheus metrics, structured logs. */
export * from './health.js';
export * from './logger.js';
export * from './metrics.js';
