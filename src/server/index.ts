export { ProxyServer, type ProxyServerOptions, type ProxyServerEvents, type ServerStats } from './proxy-server.js';
export { AgentBackend, type AgentInfo } from './agent-backend.js';
export type { FrontendKind, DialFailureKind, DialHandle } from './dials.js';
export type { AgentAuthContext } from './auth/agent-auth.js';
export { AgentRegistry, AGENT_STRATEGIES, parseStrategies, hostOf, type AgentStrategy } from './agent-registry.js';
export * from './frontends/http-connect/index.js';
export * from './auth/token-review.js';
