/**
 * The reference's start-up dump of its options at -v=1 (`ServerCert set to "".`, `Keepalive time set to 1h0m0s.`),
 * line for line in its order and wording, read off the v0.31.4 binaries, so a log that is compared or grepped
 * across a swap reads the same. Each line is a Go format with one verb: %q (a quoted string, or a list of them),
 * %s/%v (the value as Go prints it: durations `1m30s`, lists `[a b]`), %d, %f (six decimals).
 */
import { leaseLabelSelector } from './agent-options.js';
import { formatGoDuration, type FlagSpec, type FlagValue, type ParsedFlags } from './flags.js';

/** One line: the Go format and the flag whose value it prints. */
type OptionLine = readonly [format: string, flag: string];

const SERVER_LINES: readonly OptionLine[] = [
  ['ServerCert set to %q.', 'server-cert'],
  ['ServerKey set to %q.', 'server-key'],
  ['ServerCACert set to %q.', 'server-ca-cert'],
  ['ClusterCert set to %q.', 'cluster-cert'],
  ['ClusterKey set to %q.', 'cluster-key'],
  ['ClusterCACert set to %q.', 'cluster-ca-cert'],
  ['Mode set to %q.', 'mode'],
  ['UDSName set to %q.', 'uds-name'],
  ['DeleteUDSFile set to %v.', 'delete-existing-uds-file'],
  ['Server port set to %d.', 'server-port'],
  ['Server bind address set to %q.', 'server-bind-address'],
  ['Agent port set to %d.', 'agent-port'],
  ['Agent bind address set to %q.', 'agent-bind-address'],
  ['Admin port set to %d.', 'admin-port'],
  ['Admin bind address set to %q.', 'admin-bind-address'],
  ['Health port set to %d.', 'health-port'],
  ['Health bind address set to %q.', 'health-bind-address'],
  ['Keepalive time set to %v.', 'keepalive-time'],
  ['Frontend keepalive time set to %v.', 'frontend-keepalive-time'],
  ['EnableProfiling set to %v.', 'enable-profiling'],
  ['EnableContentionProfiling set to %v.', 'enable-contention-profiling'],
  ['ServerID set to %s.', 'server-id'],
  ['ServerCount set to %d.', 'server-count'],
  ['AgentNamespace set to %q.', 'agent-namespace'],
  ['AgentServiceAccount set to %q.', 'agent-service-account'],
  ['AuthenticationAudience set to %q.', 'authentication-audience'],
  ['KubeconfigPath set to %q.', 'kubeconfig'],
  ['KubeconfigQPS set to %f.', 'kubeconfig-qps'],
  ['KubeconfigBurst set to %d.', 'kubeconfig-burst'],
  ['APIContentType set to %s.', 'kube-api-content-type'],
  ['ProxyStrategies set to %q.', 'proxy-strategies'],
  ['EnableLeaseController set to %v.', 'enable-lease-controller'],
  ['LeaseNamespace set to %s.', 'lease-namespace'],
  ['LeaseLabel set to %s.', 'lease-label'],
  ['CipherSuites set to %q.', 'cipher-suites'],
  ['XfrChannelSize set to %d.', 'xfr-channel-size'],
];

const AGENT_LINES: readonly OptionLine[] = [
  ['AgentCert set to %q.', 'agent-cert'],
  ['AgentKey set to %q.', 'agent-key'],
  ['CACert set to %q.', 'ca-cert'],
  ['ProxyServerHost set to %q.', 'proxy-server-host'],
  ['ProxyServerPort set to %d.', 'proxy-server-port'],
  ['ALPNProtos set to %v.', 'alpn-proto'],
  // No full stop: the reference's own line.
  ['HealthServerHost set to %s', 'health-server-host'],
  ['HealthServerPort set to %d.', 'health-server-port'],
  ['Admin bind address set to %q.', 'admin-bind-address'],
  ['AdminServerPort set to %d.', 'admin-server-port'],
  ['EnableProfiling set to %v.', 'enable-profiling'],
  ['EnableContentionProfiling set to %v.', 'enable-contention-profiling'],
  ['AgentID set to %s.', 'agent-id'],
  ['SyncInterval set to %v.', 'sync-interval'],
  ['ProbeInterval set to %v.', 'probe-interval'],
  ['SyncIntervalCap set to %v.', 'sync-interval-cap'],
  ['Keepalive time set to %v.', 'keepalive-time'],
  ['ServiceAccountTokenPath set to %q.', 'service-account-token-path'],
  ['AgentIdentifiers set to %s.', 'agent-identifiers'],
  ['WarnOnChannelLimit set to %v.', 'warn-on-channel-limit'],
  ['SyncForever set to %v.', 'sync-forever'],
  ['CountServerLeases set to %v.', 'count-server-leases'],
  ['LeaseNamespace set to %s.', 'lease-namespace'],
  ['LeaseLabel set to %s.', 'lease-label'],
  ['ServerCountSource set to %s.', 'server-count-source'],
  ['ChannelSize set to %d.', 'xfr-channel-size'],
  ['APIContentType set to %s.', 'kube-api-content-type'],
];

/** Go's `%q` of a string (JSON's escaping is the same for the strings flags hold). */
function goQuote(s: string): string {
  return JSON.stringify(s);
}

/** One value under one verb, as Go's fmt prints it. */
function formatValue(verb: string, value: FlagValue, type: FlagSpec['type']): string {
  if (Array.isArray(value)) return `[${value.map((v) => (verb === 'q' ? goQuote(v) : v)).join(' ')}]`;
  if (type === 'duration') return formatGoDuration(value as number);
  if (verb === 'q') return goQuote(String(value));
  if (verb === 'f') return (value as number).toFixed(6);
  return String(value);
}

/**
 * `--agent-identifiers` as the reference prints it: the parsed query, `key=value` joined by commas (Go's map
 * order is random; ours groups by key in the order the keys first appear).
 */
function identifiersText(raw: string): string {
  const byKey = new Map<string, string[]>();
  for (const [k, v] of new URLSearchParams(raw)) byKey.set(k, [...(byKey.get(k) ?? []), v]);
  return [...byKey].flatMap(([k, vs]) => vs.map((v) => `${k}=${v}`)).join(',');
}

function optionLines(table: readonly OptionLine[], specs: readonly FlagSpec[], values: Record<string, FlagValue>): string[] {
  const types = new Map(specs.map((s) => [s.name, s.type]));
  return table.map(([format, flag]) => {
    const verb = /%([qsvdf])/.exec(format)![1]!;
    return format.replace(`%${verb}`, formatValue(verb, values[flag] ?? '', types.get(flag) ?? 'string'));
  });
}

/** The server's lines, with the server ID in use (generated when not given). */
export function serverOptionLines(specs: readonly FlagSpec[], parsed: ParsedFlags, serverID: string): string[] {
  return optionLines(SERVER_LINES, specs, { ...parsed.values, 'server-id': serverID });
}

/** The agent's lines, with the agent ID in use and the lease label selector of either of its two flags. */
export function agentOptionLines(specs: readonly FlagSpec[], parsed: ParsedFlags, agentID: string): string[] {
  return optionLines(AGENT_LINES, specs, {
    ...parsed.values,
    'agent-id': agentID,
    'lease-label': leaseLabelSelector(parsed),
    'agent-identifiers': identifiersText(String(parsed.values['agent-identifiers'] ?? '')),
  });
}
