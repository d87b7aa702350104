export { ProxyServer, type ProxyServerOptions, type ProxyServerEvents, type ServerStats, type AgentRefusal } from './proxy-server.js';
export { AGENT_CERTIFICATE_BINDINGS, checkCertificateBinding, type AgentCertificateBinding } from './auth/certificate-binding.js';
export { AgentBackend, type AgentInfo } from './agent-backend.js';
export type { FrontendKind, DialFailureKind, DialHandle } from './dials.js';
export type { ConnectionOwner, OpenCallbacks, ProgrammaticDialOptions } from './frontends/programmatic.js';
export type { AgentAuthContext } from './auth/agent-auth.js';
export { AgentRegistry, AGENT_STRATEGIES, parseStrategies, hostOf, type AgentStrategy } from './agent-registry.js';
export * from './frontends/http-connect/index.js';
export * from './auth/token-review.js';
