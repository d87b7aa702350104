export {
  ProxyServer,
  AgentBackend,
  type ProxyServerOptions,
  type ProxyServerEvents,
  type AgentInfo,
  type AgentAuthContext,
  type FrontendKind,
  type DialFailureKind,
  type ServerStats,
  type DialHandle,
} from './proxy-server.js';
export { AgentRegistry, AGENT_STRATEGIES, parseStrategies, hostOf, type AgentStrategy } from './agent-registry.js';
export * from './frontends/http-connect/index.js';
export * from './token-review.js';
