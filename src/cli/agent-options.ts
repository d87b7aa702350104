/**
 * The konnectivity-agent flag table: the reference proxy-agent's names and defaults (PROTOCOL.md §6.2), the flags
 * we accept and ignore, and our own additions, each marked in --help.
 */
import { randomUUID } from 'node:crypto';
import { FlagError, connectionBufferFromFlags, parseFlags, validateWith, xfrChannelSizeFlag, type FlagSpec, type FlagValue, type ParsedFlags } from './flags.js';
import { klogFlags, klogOptions, type KlogOptions } from './klog-flags.js';
import { parseHostPort } from '../protocol/address.js';
import { parseAgentIdentifiersFlag as parseAgentIdentifiers, type AgentIdentifiers } from '../protocol/identifiers.js';

export type { AgentIdentifiers };
/** `--agent-identifiers`, checked as the reference agent checks it (the library's parser for the flag form). */
export { parseAgentIdentifiers };

/** Everything the agent program needs, typed. Durations are in milliseconds. */
export interface AgentOptions {
  proxyServerHost: string;
  proxyServerPort: number;
  /** Server list mode: one tunnel to each `host:port` (empty: load-balancer mode on host:port). */
  proxyServerAddresses: Array<{ host: string; port: number }>;
  caCert: string;
  agentCert: string;
  agentKey: string;
  agentID: string;
  identifiers: AgentIdentifiers;
  serviceAccountTokenPath: string;
  healthServerHost: string;
  healthServerPort: number;
  adminBindAddress: string;
  adminServerPort: number;
  syncIntervalMs: number;
  syncIntervalCapMs: number;
  probeIntervalMs: number;
  keepaliveTimeMs: number;
  /** `--keepalive-timeout`: how long a keepalive ping may stay unanswered (gRPC transport). */
  keepaliveTimeoutMs: number;
  /** `--endpoint-dial-timeout`: how long the agent waits for an endpoint connection. */
  endpointDialTimeoutMs: number;
  syncForever: boolean;
  transport: 'grpc' | 'yamux';
  /** From `--xfr-channel-size` when given; otherwise the library default (1 MiB). */
  connectionBufferBytes: number | undefined;
  /** `--alpn-proto`: ALPN protocols offered before the transport's own. */
  alpnProtocols: string[];
  /** Lease counting (`--count-server-leases`), with where the leases are. */
  leases: { namespace: string; labelSelector: string } | undefined;
  /** `--server-count-source`: `default` (leases when counted, else the servers' headers) or `max` (the larger). */
  serverCountSource: 'default' | 'max';
  /** `--kubeconfig` (empty: in-cluster), for lease counting. */
  kubeconfig: string;
  verbosity: number;
  logFormat: 'text' | 'json';
  log: KlogOptions;
}

const port = (v: FlagValue): string | undefined =>
  (v as number) < 0 || (v as number) > 65535 ? 'must be a port number 0-65535 (0 picks a free port)' : undefined;
const positive = (v: FlagValue): string | undefined => ((v as number) <= 0 ? 'must be positive' : undefined);

/** Parse `host:port,host:port` (IPv6 in brackets). */
export function parseServerAddresses(text: string): Array<{ host: string; port: number }> {
  if (text.trim() === '') return [];
  return text.split(',').map((entry) => {
    const parsed = parseHostPort(entry.trim());
    if (!parsed || parsed.host === '' || !(parsed.port > 0 && parsed.port < 65536)) throw new Error(`"${entry}" is not host:port`);
    return parsed;
  });
}

/** The agent's flags, in --help order. */
export function agentFlagSpecs(): FlagSpec[] {
  const ign = (name: string, type: FlagSpec['type'], def: FlagValue, usage: string, hidden = false): FlagSpec => ({
    name,
    type,
    default: def,
    usage,
    ignored: true,
    hidden,
  });
  return [
    { name: 'proxy-server-host', type: 'string', default: '127.0.0.1', usage: 'the proxy server (or its load balancer) host' },
    { name: 'proxy-server-port', type: 'int', default: 8091, usage: 'the proxy server (or its load balancer) agent port', validate: port },
    { name: 'ca-cert', type: 'string', default: '', usage: 'CA that signed the server certificate (empty: plaintext, with a warning)' },
    { name: 'agent-cert', type: 'string', default: '', usage: 'client certificate file for mTLS' },
    { name: 'agent-key', type: 'string', default: '', usage: 'client key file for mTLS' },
    { name: 'agent-id', type: 'string', default: '', usage: 'this agent\'s ID (default $PROXY_AGENT_ID, otherwise a random UUID)' },
    {
      name: 'agent-identifiers',
      type: 'string',
      default: '',
      usage: 'identifiers in URL query syntax, e.g. host=node1&ipv4=10.0.0.5&default-route=true (keys ipv4, ipv6, host, cidr, default-route)',
      validate: validateWith((v) => parseAgentIdentifiers(String(v))),
    },
    { name: 'service-account-token-path', type: 'string', default: '', usage: 'file holding a bearer token, re-read on every connect' },
    { name: 'health-server-host', type: 'string', default: '', usage: 'health server bind address' },
    { name: 'health-server-port', type: 'int', default: 8093, usage: 'health server port: /healthz /readyz /ready /metrics', validate: port },
    { name: 'admin-bind-address', type: 'string', default: '127.0.0.1', usage: 'admin server bind address' },
    { name: 'admin-server-port', type: 'int', default: 8094, usage: 'admin server port (/metrics redirects to the health port)', validate: port },
    { name: 'sync-interval', type: 'duration', default: 1000, usage: 'interval between attempts to open a tunnel', validate: positive },
    { name: 'sync-interval-cap', type: 'duration', default: 10_000, usage: 'maximum interval between attempts after errors', validate: positive },
    { name: 'probe-interval', type: 'duration', default: 1000, usage: 'interval between checks of each tunnel\'s health', validate: positive },
    { name: 'keepalive-time', type: 'duration', default: 3_600_000, usage: 'keepalive ping interval to the server (never below 30s on gRPC)', validate: positive },
    { name: 'keepalive-timeout', type: 'duration', default: 20_000, usage: 'drop the tunnel when a keepalive ping is not answered within this (gRPC transport) [konnectivity-ts]', validate: positive },
    { name: 'endpoint-dial-timeout', type: 'duration', default: 5000, usage: 'how long to wait for an endpoint connection before the server hears "i/o timeout" [konnectivity-ts]', validate: positive },
    { name: 'sync-forever', type: 'bool', default: false, usage: 'keep dialling to discover new servers after --server-count is reached' },
    {
      name: 'alpn-proto',
      type: 'strings',
      default: [],
      usage: 'ALPN protocols to offer the server before the transport\'s own (h2 for gRPC), e.g. for a load balancer that routes by ALPN',
    },
    { name: 'count-server-leases', type: 'bool', default: false, usage: 'count the servers\' leases to know how many servers to hold tunnels to' },
    { name: 'lease-namespace', type: 'string', default: 'kube-system', usage: 'the namespace of the server leases' },
    { name: 'lease-label-selector', type: 'string', default: 'k8s-app=konnectivity-server', usage: 'the label selector of the server leases' },
    { name: 'lease-label', type: 'string', default: 'k8s-app=konnectivity-server', usage: 'the same as --lease-label-selector (its name in the reference v0.31)' },
    {
      name: 'server-count-source',
      type: 'string',
      default: 'default',
      usage: 'how to combine the counts from leases and from server responses: default (leases when counted, else responses) or max (the larger)',
      validate: (v) => (v === 'default' || v === 'max' ? undefined : 'must be default or max'),
    },
    { name: 'kubeconfig', type: 'string', default: '', usage: 'kubeconfig for lease counting (empty: in-cluster configuration)' },
    ign('kube-api-content-type', 'string', 'application/vnd.kubernetes.protobuf', 'Kubernetes API content type (requests are always JSON)'),
    xfrChannelSizeFlag(150),
    ign('warn-on-channel-limit', 'bool', false, 'warn when a queue is full'),
    ign('enable-profiling', 'bool', false, 'serve /debug/pprof'),
    ign('enable-contention-profiling', 'bool', false, 'contention profiling'),
    {
      name: 'transport',
      type: 'string',
      default: 'grpc',
      usage: 'tunnel transport: grpc (Go-compatible) or yamux [konnectivity-ts]',
      validate: (v) => (v === 'grpc' || v === 'yamux' ? undefined : 'must be grpc or yamux'),
    },
    {
      name: 'proxy-server-addresses',
      type: 'string',
      default: '',
      usage: 'comma-separated host:port list; keep one tunnel to each (no load balancer needed) [konnectivity-ts]',
      validate: validateWith((v) => parseServerAddresses(String(v))),
    },
    ...klogFlags(),
  ];
}

/** The lease label selector: whichever of the two names was given; --lease-label-selector wins when both were. */
export function leaseLabelSelector(parsed: ParsedFlags): string {
  const v = parsed.values;
  return (parsed.set.has('lease-label-selector') || !parsed.set.has('lease-label') ? v['lease-label-selector'] : v['lease-label']) as string;
}

/** Parse the agent command line into typed options (plus the raw parse for help and warnings). */
export function parseAgentOptions(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): { options: AgentOptions; parsed: ParsedFlags } {
  const parsed = parseFlags(agentFlagSpecs(), argv);
  const v = parsed.values;
  const options: AgentOptions = {
    proxyServerHost: v['proxy-server-host'] as string,
    proxyServerPort: v['proxy-server-port'] as number,
    proxyServerAddresses: parseServerAddresses(v['proxy-server-addresses'] as string),
    caCert: v['ca-cert'] as string,
    agentCert: v['agent-cert'] as string,
    agentKey: v['agent-key'] as string,
    agentID: (v['agent-id'] as string) || env['PROXY_AGENT_ID'] || randomUUID(),
    identifiers: parseAgentIdentifiers(v['agent-identifiers'] as string),
    serviceAccountTokenPath: v['service-account-token-path'] as string,
    healthServerHost: v['health-server-host'] as string,
    healthServerPort: v['health-server-port'] as number,
    adminBindAddress: v['admin-bind-address'] as string,
    adminServerPort: v['admin-server-port'] as number,
    syncIntervalMs: v['sync-interval'] as number,
    syncIntervalCapMs: v['sync-interval-cap'] as number,
    probeIntervalMs: v['probe-interval'] as number,
    keepaliveTimeMs: v['keepalive-time'] as number,
    keepaliveTimeoutMs: v['keepalive-timeout'] as number,
    endpointDialTimeoutMs: v['endpoint-dial-timeout'] as number,
    syncForever: v['sync-forever'] as boolean,
    transport: v['transport'] as AgentOptions['transport'],
    connectionBufferBytes: connectionBufferFromFlags(parsed),
    alpnProtocols: (v['alpn-proto'] as string[]).filter((p) => p !== ''),
    leases: v['count-server-leases']
      ? {
          namespace: v['lease-namespace'] as string,
          labelSelector: leaseLabelSelector(parsed),
        }
      : undefined,
    serverCountSource: v['server-count-source'] as AgentOptions['serverCountSource'],
    kubeconfig: v['kubeconfig'] as string,
    verbosity: v['v'] as number,
    logFormat: v['log-format'] as AgentOptions['logFormat'],
    log: klogOptions(parsed),
  };
  if (!parsed.help) {
    if (Boolean(options.agentCert) !== Boolean(options.agentKey)) throw new FlagError('--agent-cert and --agent-key must be given together');
    if (options.syncIntervalCapMs < options.syncIntervalMs) throw new FlagError('--sync-interval-cap must not be less than --sync-interval');
  }
  return { options, parsed };
}
