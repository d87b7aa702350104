/**
 * `konnectivity-agent`: the reference proxy-agent's command line (PROTOCOL.md §4, §6.2) on the library.
 *
 * Keeps tunnels to the proxy servers with the HA client set: behind a load balancer at
 * `--proxy-server-host:--proxy-server-port` (one tunnel per distinct `serverid` up to the server count: the
 * servers' `servercount`, or their leases with `--count-server-leases`), or to each address of
 * `--proxy-server-addresses`. TLS files are read again (when changed) before each new tunnel's handshake.
 * Serves the health port (`/healthz`, `/readyz`, `/ready`, `/metrics`) and the admin port (`/metrics` redirects
 * to the health port). Each listener logs `"listening" listener=<name> address=<a> port=<p>`. First
 * SIGTERM/SIGINT: DRAIN on every tunnel, stop dialling, keep serving; the second one closes and exits 0.
 */
import { Registry } from 'prom-client';
import { Agent, type AgentTunnel } from '../agent/index.js';
import { AgentClientSet } from '../agent/client-set.js';
import { grpcAgentConnector } from '../transport/grpc/index.js';
import type { TunnelConnector } from '../transport/packet-stream.js';
import { agentAdminHandler, agentHealthHandler, listenOps, type OpsServer } from '../ops/health.js';
import type { Logger } from '../ops/logger.js';
import { instrumentAgent } from '../ops/metrics.js';
import { DEFAULT_CONNECTION_BUFFER_BYTES } from '../transport/windows.js';
import { KubeClient, ServerLeaseCounter, kubeApiConfig } from '../kube/index.js';
import { agentFlagSpecs, parseAgentOptions, type AgentOptions } from './agent-options.js';
import { agentOptionLines } from './option-lines.js';
import { goSignalName, logAgentEvents, logLeaseCounterEvents, serverCountLogger } from './event-logs.js';
import { joinHostPort, listenOnBindAddress } from './listen.js';
import { processIO, runProgram, tokenFileReader, type ProgramIO } from './process.js';
import { reloadingClientTls, type ClientTlsOptions } from './tls.js';
import { yamuxConnector } from './yamux.js';

const PROGRAM = 'konnectivity-agent';
const SUMMARY =
  'The Konnectivity agent: keeps tunnels to the proxy servers and dials endpoints for them. Flags and defaults ' +
  'follow the reference proxy-agent.';

/** A Go server refuses keepalive pings more often than every 30 s (GOAWAY too_many_pings). */
const MIN_KEEPALIVE_MS = 30_000;

/** A started agent. */
export interface RunningAgent {
  readonly agent: Agent;
  readonly clientSet: AgentClientSet<AgentTunnel>;
  readonly registry: Registry;
  readonly ports: { health: number; admin: number };
  /** The lease counter, with `--count-server-leases`. */
  readonly leases: ServerLeaseCounter | undefined;
  /** Send DRAIN on every tunnel and stop dialling (the first signal). Idempotent. */
  drain(): void;
  /** Close the tunnels, the agent and the ops servers. Idempotent. */
  shutdown(): Promise<void>;
}

/**
 * The TLS material for each new tunnel: the files are read again when they changed, so a rotated certificate is
 * used by the next handshake; a broken file is logged and the last good material used.
 */
function tlsForEachTunnel(o: AgentOptions, log: Logger): (() => ClientTlsOptions) | undefined {
  const tls = reloadingClientTls(
    { ca: o.caCert, cert: o.agentCert, key: o.agentKey, alpnProtocols: o.alpnProtocols },
    {
      onReload: (_t, paths) => log.info('Reloaded TLS certificate', { files: paths.join(',') }),
      onError: (err, paths) => log.error('Could not reload TLS certificate, keeping the old one', err, { files: paths.join(',') }),
    },
  );
  return tls ? () => tls.refresh() : undefined;
}

/** One connector per server address (server-list mode) or one for the load balancer. */
function connectors(o: AgentOptions, log: Logger): { connector: TunnelConnector } | { connectors: TunnelConnector[] } {
  // The server is verified as the host dialled (--proxy-server-host, or each list entry), as the reference does.
  const tls = tlsForEachTunnel(o, log);
  if (!tls) log.warn('connecting without TLS: no --ca-cert given (the reference agent always uses TLS)');
  let keepaliveTimeMs = o.keepaliveTimeMs;
  if (keepaliveTimeMs < MIN_KEEPALIVE_MS) {
    log.warn('--keepalive-time raised to 30s: a Go server refuses more frequent pings', { requested: keepaliveTimeMs });
    keepaliveTimeMs = MIN_KEEPALIVE_MS;
  }
  const make = (host: string, port: number): TunnelConnector =>
    o.transport === 'yamux'
      ? yamuxConnector(host, port, tls)
      : grpcAgentConnector({ address: joinHostPort(host, port), ...(tls ? { tls } : {}), keepaliveTimeMs, keepaliveTimeoutMs: o.keepaliveTimeoutMs });
  if (o.proxyServerAddresses.length > 0) return { connectors: o.proxyServerAddresses.map((a) => make(a.host, a.port)) };
  return { connector: make(o.proxyServerHost, o.proxyServerPort) };
}

/**
 * The server count in use, from `--server-count-source`: `default` is the leases' count when counting leases,
 * else the servers' `servercount`; `max` the larger of the two.
 */
function serverCountOf(o: AgentOptions, leases: ServerLeaseCounter | undefined): ((fromResponses: number) => number) | undefined {
  if (!leases) return undefined;
  return (fromResponses) => (o.serverCountSource === 'max' ? Math.max(leases.count(), fromResponses) : leases.count());
}

/** Start the agent, its tunnels and its ops servers. */
export async function startAgent(o: AgentOptions, log: Logger): Promise<RunningAgent> {
  const registry = new Registry();
  const agent = new Agent({
    agentID: o.agentID,
    identifiers: o.identifiers,
    dialTimeoutMs: o.endpointDialTimeoutMs,
    ...(o.serviceAccountTokenPath ? { token: tokenFileReader(o.serviceAccountTokenPath) } : {}),
    ...(o.connectionBufferBytes ? { connectionBufferBytes: o.connectionBufferBytes } : {}),
  });
  const kube = o.leases ? new KubeClient(await kubeApiConfig(o.kubeconfig)) : undefined;
  const leases = o.leases && kube ? new ServerLeaseCounter({ client: kube, namespace: o.leases.namespace, labelSelector: o.leases.labelSelector }) : undefined;
  const serverCount = serverCountOf(o, leases);
  const clientSet = new AgentClientSet(agent, {
    ...connectors(o, log),
    syncIntervalMs: o.syncIntervalMs,
    syncIntervalCapMs: o.syncIntervalCapMs,
    syncForever: o.syncForever,
    probeIntervalMs: o.probeIntervalMs,
    ...(serverCount ? { serverCount } : {}),
  });
  // Server-list mode knows its servers from the list; behind a load balancer, from the count in use.
  const listed = o.proxyServerAddresses.length;
  const knownServerCount = (): number => (listed > 0 ? listed : clientSet.serverCount);
  const metrics = instrumentAgent(agent, registry, {
    knownServerCount,
    defaultMetrics: true,
    connectionBufferBytes: o.connectionBufferBytes ?? DEFAULT_CONNECTION_BUFFER_BYTES,
  });
  const detachSet = metrics.trackClientSet(clientSet);
  logAgentEvents(agent, clientSet, log);
  const countChanged = serverCountLogger(log, knownServerCount, leases ? 'KNP lease count' : 'KNP server response headers');
  // The set takes a new server's count once the tunnel is added: look right after.
  clientSet.on('tunnelAdded', () => setImmediate(countChanged));
  let detachLeases = (): void => undefined;
  if (leases) {
    logLeaseCounterEvents(leases, log);
    detachLeases = metrics.trackLeaseCounter(leases);
    leases.on('change', () => {
      countChanged();
      clientSet.recount();
    });
  }

  const servers: OpsServer[] = [];
  const stopAll = async (): Promise<void> => {
    await leases?.stop();
    await clientSet.close();
    await agent.close();
    await Promise.all(servers.map((s) => s.close()));
    metrics.detach();
    detachSet();
    detachLeases();
    kube?.close();
  };
  try {
    const health = await listenOnBindAddress(o.healthServerHost, (host) =>
      listenOps(agentHealthHandler({ ready: () => clientSet.ready, registry }), host, o.healthServerPort),
    );
    servers.push(health);
    log.info('listening', { listener: 'health', address: health.address, port: health.port });
    const admin = await listenOnBindAddress(o.adminBindAddress, (host) => listenOps(agentAdminHandler(() => health.port), host, o.adminServerPort));
    servers.push(admin);
    log.info('listening', { listener: 'admin', address: admin.address, port: admin.port });
    leases?.start();
    clientSet.start();
    let stopping: Promise<void> | undefined;
    return {
      agent,
      clientSet,
      registry,
      leases,
      ports: { health: health.port, admin: admin.port },
      drain: () => clientSet.drain(),
      shutdown() {
        stopping ??= stopAll();
        return stopping;
      },
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

/** The program: parse flags, start, drain on the first signal, exit on the second. */
export function main(argv: readonly string[] = process.argv.slice(2), io: ProgramIO = processIO): Promise<void> {
  return runProgram<AgentOptions, RunningAgent>(
    {
      program: PROGRAM,
      summary: SUMMARY,
      specs: agentFlagSpecs,
      parse: (a) => parseAgentOptions(a),
      name: 'agent',
      optionLines: (o, parsed) => agentOptionLines(agentFlagSpecs(), parsed, o.agentID),
      start: async (o, log) => {
        const running = await startAgent(o, log);
        const list = o.proxyServerAddresses.map((a) => joinHostPort(a.host, a.port)).join(',');
        log.info('agent started', { agentID: o.agentID, proxyServer: list || joinHostPort(o.proxyServerHost, o.proxyServerPort), transport: o.transport });
        return running;
      },
      onFirstSignal: (running, signal, log) => {
        log.v(2).info('Received first signal', { signal: goSignalName(signal) });
        log.info('Draining: DRAIN sent on every tunnel; send the signal again to exit');
        running.drain();
      },
      onSecondSignal: (running, signal, log, exit) => {
        log.v(2).info('Received second signal', { signal: goSignalName(signal) });
        log.v(1).infoText('Shutting down agent.');
        void running.shutdown().finally(() => {
          log.info('agent stopped');
          exit(0);
        });
      },
    },
    argv,
    io,
  );
}
