/**
 * The konnectivity-server flag table: the reference proxy-server's names and defaults (PROTOCOL.md §6.1), the flags
 * we accept and ignore, and our own additions, each marked in --help.
 */
import { randomUUID } from 'node:crypto';
import { FlagError, connectionBufferFromFlags, parseFlags, validateWith, xfrChannelSizeFlag, type FlagSpec, type FlagValue, type ParsedFlags } from './flags.js';
import { klogFlags, klogOptions, type KlogOptions } from './klog-flags.js';
import { opensslCiphers } from './tls.js';
import { parseLabels } from '../kube/leases.js';

/** Everything the server program needs, typed. Durations are in milliseconds. */
export interface ServerOptions {
  mode: 'grpc' | 'http-connect';
  udsName: string;
  deleteExistingUdsFile: boolean;
  serverPort: number;
  serverBindAddress: string;
  serverCert: string;
  serverKey: string;
  serverCaCert: string;
  agentPort: number;
  agentBindAddress: string;
  clusterCert: string;
  clusterKey: string;
  clusterCaCert: string;
  healthPort: number;
  healthBindAddress: string;
  adminPort: number;
  adminBindAddress: string;
  serverID: string;
  serverCount: number;
  proxyStrategies: Array<'default' | 'destHost' | 'defaultRoute'>;
  keepaliveTimeMs: number;
  frontendKeepaliveTimeMs: number;
  backendDialTimeoutMs: number;
  gracefulShutdownTimeoutMs: number;
  tlsMinVersion: string;
  agentTransport: 'grpc' | 'yamux';
  agentTokenFile: string;
  /** From `--xfr-channel-size` when given; otherwise the library default (1 MiB). */
  connectionBufferBytes: number | undefined;
  /** TokenReview agent authentication, when `--agent-namespace` etc. are given. */
  tokenReview: { namespace: string; serviceAccount: string; audience: string } | undefined;
  /** `--kubeconfig` (empty: in-cluster), for TokenReview and the lease controller. */
  kubeconfig: string;
  /** `--kubeconfig-qps` and `--kubeconfig-burst` (0: client-go's 5 and 10). */
  kubeconfigQps: number;
  kubeconfigBurst: number;
  /** The lease controller, when `--enable-lease-controller`. */
  leases: { namespace: string; labels: Record<string, string> } | undefined;
  /** OpenSSL cipher list from `--cipher-suites`; undefined: Node's defaults. */
  ciphers: string | undefined;
  verbosity: number;
  logFormat: 'text' | 'json';
  log: KlogOptions;
}

const port = (v: FlagValue): string | undefined =>
  (v as number) < 0 || (v as number) > 65535 ? 'must be a port number 0-65535 (0 picks a free port)' : undefined;
const nonNegative = (v: FlagValue): string | undefined => ((v as number) < 0 ? 'must not be negative' : undefined);

const STRATEGIES = ['default', 'destHost', 'defaultRoute'];
const TLS_VERSIONS: Record<string, string> = { '': 'TLSv1.2', VersionTLS10: 'TLSv1', VersionTLS11: 'TLSv1.1', VersionTLS12: 'TLSv1.2', VersionTLS13: 'TLSv1.3' };

/** The server's flags, in --help order. */
export function serverFlagSpecs(): FlagSpec[] {
  const ign = (name: string, type: FlagSpec['type'], def: FlagValue, usage: string): FlagSpec => ({ name, type, default: def, usage, ignored: true });
  return [
    { name: 'mode', type: 'string', default: 'grpc', usage: 'frontend mode: grpc or http-connect', validate: (v) => (v === 'grpc' || v === 'http-connect' ? undefined : 'must be grpc or http-connect') },
    { name: 'uds-name', type: 'string', default: '', usage: 'serve the frontend on this Unix domain socket instead of TCP' },
    { name: 'delete-existing-uds-file', type: 'bool', default: true, usage: 'delete an existing file at --uds-name before listening' },
    { name: 'server-port', type: 'int', default: 8090, usage: 'frontend TCP port (0 with --uds-name; 0 otherwise picks a free port)', validate: port },
    { name: 'server-bind-address', type: 'string', default: '', usage: 'frontend bind address (empty: all interfaces)' },
    { name: 'server-cert', type: 'string', default: '', usage: 'frontend TLS certificate file' },
    { name: 'server-key', type: 'string', default: '', usage: 'frontend TLS key file' },
    { name: 'server-ca-cert', type: 'string', default: '', usage: 'CA for frontend client certificates (mTLS)' },
    { name: 'agent-port', type: 'int', default: 8091, usage: 'agent listener port (0 picks a free port)', validate: port },
    { name: 'agent-bind-address', type: 'string', default: '', usage: 'agent listener bind address (empty: all interfaces)' },
    { name: 'cluster-cert', type: 'string', default: '', usage: 'agent listener TLS certificate file' },
    { name: 'cluster-key', type: 'string', default: '', usage: 'agent listener TLS key file' },
    { name: 'cluster-ca-cert', type: 'string', default: '', usage: 'CA for agent client certificates (mTLS)' },
    { name: 'health-port', type: 'int', default: 8092, usage: 'health server port: /healthz /readyz /ready /metrics', validate: port },
    { name: 'health-bind-address', type: 'string', default: '', usage: 'health server bind address' },
    { name: 'admin-port', type: 'int', default: 8095, usage: 'admin server port: /metrics', validate: port },
    { name: 'admin-bind-address', type: 'string', default: '127.0.0.1', usage: 'admin server bind address' },
    { name: 'server-id', type: 'string', default: '', usage: 'this server\'s ID (default $PROXY_SERVER_ID, otherwise a random UUID)' },
    { name: 'server-count', type: 'int', default: 1, usage: 'number of servers in the HA group, sent to agents', validate: (v) => ((v as number) < 1 ? 'must be >= 1' : undefined) },
    {
      name: 'proxy-strategies',
      type: 'string',
      default: 'default',
      usage: 'ordered, comma-separated agent selection strategies: default, destHost, defaultRoute',
      validate: (v) => {
        const list = String(v).split(',').map((s) => s.trim());
        return list.length > 0 && list.every((s) => STRATEGIES.includes(s)) ? undefined : `unknown proxy strategy in "${v}"`;
      },
    },
    { name: 'keepalive-time', type: 'duration', default: 3_600_000, usage: 'keepalive ping interval on the agent listener', validate: nonNegative },
    { name: 'frontend-keepalive-time', type: 'duration', default: 3_600_000, usage: 'keepalive ping interval on the frontend', validate: nonNegative },
    { name: 'backend-dial-timeout', type: 'duration', default: 0, usage: 'fail a dial the agent has not answered in this time (0 = off)', validate: nonNegative },
    { name: 'graceful-shutdown-timeout', type: 'duration', default: 0, usage: 'on SIGTERM, wait this long for connections before closing (0 = at once)', validate: nonNegative },
    { name: 'tls-min-version', type: 'string', default: '', usage: 'minimum TLS version: VersionTLS10..VersionTLS13 (empty: TLS 1.2)', validate: (v) => (String(v) in TLS_VERSIONS ? undefined : 'must be VersionTLS10, VersionTLS11, VersionTLS12 or VersionTLS13') },
    xfrChannelSizeFlag(10),
    {
      name: 'cipher-suites',
      type: 'strings',
      default: [],
      usage: 'comma-separated Go names of the allowed TLS 1.2 cipher suites (no effect on TLS 1.3; empty: the defaults)',
      validate: validateWith((v) => opensslCiphers(v as string[])),
    },
    { name: 'agent-namespace', type: 'string', default: '', usage: 'authenticate agents by TokenReview: their service account namespace' },
    { name: 'agent-service-account', type: 'string', default: '', usage: 'authenticate agents by TokenReview: their service account' },
    { name: 'authentication-audience', type: 'string', default: '', usage: 'authenticate agents by TokenReview: the token audience' },
    { name: 'kubeconfig', type: 'string', default: '', usage: 'kubeconfig for TokenReview and the lease controller (empty: in-cluster configuration)' },
    { name: 'kubeconfig-qps', type: 'float', default: 0, usage: 'maximum Kubernetes client QPS (0: 5)', validate: (v) => (Number.isNaN(v as number) ? 'must be a number' : undefined) },
    { name: 'kubeconfig-burst', type: 'int', default: 0, usage: 'maximum Kubernetes client burst (0: 10)', validate: nonNegative },
    ign('kube-api-content-type', 'string', 'application/vnd.kubernetes.protobuf', 'Kubernetes API content type (requests are always JSON)'),
    { name: 'enable-lease-controller', type: 'bool', default: false, usage: 'keep a lease for this server (30 s, renewed every 15 s) and delete expired server leases, for agents that count them' },
    { name: 'lease-namespace', type: 'string', default: 'kube-system', usage: 'the namespace of the server leases' },
    { name: 'lease-label', type: 'string', default: 'k8s-app=konnectivity-server', usage: 'the labels of the server leases (k=v,k2=v2)', validate: validateWith((v) => parseLabels(String(v))) },
    ign('enable-profiling', 'bool', false, 'serve /debug/pprof'),
    ign('enable-contention-profiling', 'bool', false, 'contention profiling'),
    ign('warn-on-channel-limit', 'bool', false, 'deprecated in the reference, does nothing'),
    {
      name: 'agent-transport',
      type: 'string',
      default: 'grpc',
      usage: 'agent listener transport: grpc (Go-compatible) or yamux [konnectivity-ts]',
      validate: (v) => (v === 'grpc' || v === 'yamux' ? undefined : 'must be grpc or yamux'),
    },
    { name: 'agent-token-file', type: 'string', default: '', usage: 'file of accepted agent bearer tokens, one per line; agents without one are refused [konnectivity-ts]' },
    ...klogFlags(),
  ];
}

/** Parse the server command line into typed options (plus the raw parse for help and warnings). */
export function parseServerOptions(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): { options: ServerOptions; parsed: ParsedFlags } {
  const parsed = parseFlags(serverFlagSpecs(), argv);
  const v = parsed.values;
  const options: ServerOptions = {
    mode: v['mode'] as ServerOptions['mode'],
    udsName: v['uds-name'] as string,
    deleteExistingUdsFile: v['delete-existing-uds-file'] as boolean,
    serverPort: v['server-port'] as number,
    serverBindAddress: v['server-bind-address'] as string,
    serverCert: v['server-cert'] as string,
    serverKey: v['server-key'] as string,
    serverCaCert: v['server-ca-cert'] as string,
    agentPort: v['agent-port'] as number,
    agentBindAddress: v['agent-bind-address'] as string,
    clusterCert: v['cluster-cert'] as string,
    clusterKey: v['cluster-key'] as string,
    clusterCaCert: v['cluster-ca-cert'] as string,
    healthPort: v['health-port'] as number,
    healthBindAddress: v['health-bind-address'] as string,
    adminPort: v['admin-port'] as number,
    adminBindAddress: v['admin-bind-address'] as string,
    serverID: (v['server-id'] as string) || env['PROXY_SERVER_ID'] || randomUUID(),
    serverCount: v['server-count'] as number,
    proxyStrategies: String(v['proxy-strategies']).split(',').map((s) => s.trim()) as ServerOptions['proxyStrategies'],
    keepaliveTimeMs: v['keepalive-time'] as number,
    frontendKeepaliveTimeMs: v['frontend-keepalive-time'] as number,
    backendDialTimeoutMs: v['backend-dial-timeout'] as number,
    gracefulShutdownTimeoutMs: v['graceful-shutdown-timeout'] as number,
    tlsMinVersion: TLS_VERSIONS[v['tls-min-version'] as string]!,
    agentTransport: v['agent-transport'] as ServerOptions['agentTransport'],
    agentTokenFile: v['agent-token-file'] as string,
    connectionBufferBytes: connectionBufferFromFlags(parsed),
    tokenReview: v['agent-namespace'] || v['agent-service-account'] || v['authentication-audience']
      ? {
          namespace: v['agent-namespace'] as string,
          serviceAccount: v['agent-service-account'] as string,
          audience: v['authentication-audience'] as string,
        }
      : undefined,
    kubeconfig: v['kubeconfig'] as string,
    kubeconfigQps: v['kubeconfig-qps'] as number,
    kubeconfigBurst: v['kubeconfig-burst'] as number,
    leases: v['enable-lease-controller']
      ? { namespace: v['lease-namespace'] as string, labels: parseLabels(v['lease-label'] as string) }
      : undefined,
    ciphers: opensslCiphers(v['cipher-suites'] as string[]),
    verbosity: v['v'] as number,
    logFormat: v['log-format'] as ServerOptions['logFormat'],
    log: klogOptions(parsed),
  };
  if (!parsed.help) validateServer(options, parsed);
  return { options, parsed };
}

function validateServer(o: ServerOptions, parsed: ParsedFlags): void {
  if (o.udsName) {
    if (parsed.set.has('server-port') && o.serverPort !== 0) throw new FlagError('--server-port must be 0 when --uds-name is set');
    if (o.serverCert || o.serverKey || o.serverCaCert) throw new FlagError('--server-cert, --server-key and --server-ca-cert cannot be used with --uds-name');
  }
  if (Boolean(o.serverCert) !== Boolean(o.serverKey)) throw new FlagError('--server-cert and --server-key must be given together');
  if (Boolean(o.clusterCert) !== Boolean(o.clusterKey)) throw new FlagError('--cluster-cert and --cluster-key must be given together');
  if (o.serverCaCert && !o.serverCert) throw new FlagError('--server-ca-cert needs --server-cert and --server-key');
  if (o.clusterCaCert && !o.clusterCert) throw new FlagError('--cluster-ca-cert needs --cluster-cert and --cluster-key');
  const tr = o.tokenReview;
  if (tr) {
    // As the reference: the three go together, and agents are checked by TokenReview or by mTLS, not both.
    if (!tr.namespace || !tr.serviceAccount || !tr.audience) {
      throw new FlagError('--agent-namespace, --agent-service-account and --authentication-audience must be given together');
    }
    if (o.clusterCaCert) throw new FlagError('--agent-namespace (TokenReview) cannot be used with --cluster-ca-cert');
    if (o.agentTokenFile) throw new FlagError('--agent-namespace (TokenReview) cannot be used with --agent-token-file');
  }
}
