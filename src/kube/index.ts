/** The Kubernetes API: client and config, Leases, the server's lease controller and the agent's lease counter. */
export * from './config.js';
export * from './client.js';
export * from './leases.js';
export * from './lease-controller.js';
export * from './lease-counter.js';
