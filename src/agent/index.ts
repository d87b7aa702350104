export { Agent, type AgentOptions, type AgentEvents, type AgentStats } from './agent.js';
export { AgentTunnel, type AgentConnectionEvent, type AgentDialFailure } from './agent-tunnel.js';
export { tcpDialer, goDialError, DEFAULT_DIAL_TIMEOUT_MS, type Dialer, type DialRequestInfo, type TcpDialerOptions } from './dialer.js';
export * from './client-set.js';
export { Backoff, jitter, type BackoffOptions } from './backoff.js';
