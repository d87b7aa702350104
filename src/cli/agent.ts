/**
 * `konnectivity-agent`: the reference proxy-agent's command line (PROTOCOL.md §4, §6.2) on the library.
 *
 * Keeps tunnels to the proxy servers with the HA client set: behind a load balancer at
 * `--proxy-server-host:--proxy-server-port` (one tunnel per distinct `serverid` up to `servercount`), or to each
 * address of `--proxy-server-addresses`. Serves the health port (`/healthz`, `/readyz`, `/ready`, `/metrics`) and
 * the admin port (`/metrics` redirects to the health port). Each listener logs
 * `"listening" listener=<name> address=<a> port=<p>`. First SIGTERM/SIGINT: DRAIN on every tunnel, stop dialling,
 * keep serving; the second one closes and exits 0.
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
import { agentFlagSpecs, parseAgentOptions, type AgentOptions } from './agent-options.js';
import { joinHostPort, listenOnBindAddress } from './listen.js';
import { processIO, runProgram, tokenFileReader, type ProgramIO } from './process.js';
import { loadClientTls } from './tls.js';
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
  /** Send DRAIN on every tunnel and stop dialling (the first signal). Idempotent. */
  drain(): void;
  /** Close the tunnels, the agent and the ops servers. Idempotent. */
  shutdown(): Promise<void>;
}

/** One connector per server address (server-list mode) or one for the load balancer. */
function connectors(o: AgentOptions, log: Logger): { connector: TunnelConnector } | { connectors: TunnelConnector[] } {
  // The server is verified as the host dialled (--proxy-server-host, or each list entry), as the reference does.
  const tls = loadClientTls({ ca: o.caCert, cert: o.agentCert, key: o.agentKey });
  if (!tls) log.warn('connecting without TLS: no --ca-cert given (the reference agent always uses TLS)');
  let keepaliveTimeMs = o.keepaliveTimeMs;
  if (keepaliveTimeMs < MIN_KEEPALIVE_MS) {
    log.warn('--keepalive-time raised to 30s: a Go server refuses more frequent pings', { requestedMs: keepaliveTimeMs });
    keepaliveTimeMs = MIN_KEEPALIVE_MS;
  }
  const make = (host: string, port: number): TunnelConnector =>
    o.transport === 'yamux'
      ? yamuxConnector(host, port, tls)
      : grpcAgentConnector({ address: joinHostPort(host, port), ...(tls ? { tls } : {}), keepaliveTimeMs });
  if (o.proxyServerAddresses.length > 0) return { connectors: o.proxyServerAddresses.map((a) => make(a.host, a.port)) };
  return { connector: make(o.proxyServerHost, o.proxyServerPort) };
}

function logAgentEvents(agent: Agent, clientSet: AgentClientSet<AgentTunnel>, log: Logger): void {
  clientSet.on('tunnelAdded', (t) => log.v(2).info('connected to proxy server', { serverID: t.serverID, serverCount: t.serverCount }));
  clientSet.on('tunnelRemoved', (t, err) => log.v(2).info('tunnel to proxy server closed', { serverID: t.serverID, err: err?.message }));
  clientSet.on('duplicate', (serverID) => log.v(3).info('tunnel reached a server already connected; closed it', { serverID }));
  clientSet.on('connectFailed', (err, retryInMs) => log.error('cannot connect to a proxy server', err, { retryInMs: Math.round(retryInMs) }));
  clientSet.on('probeFailed', (t) => log.v(2).info('probe: connection to proxy server not ready; closing the tunnel', { serverID: t.serverID }));
  clientSet.on('readyChange', (ready) => log.info(ready ? 'ready: a tunnel is up' : 'not ready: no tunnel is up'));
  agent.on('connectionOpened', (e) => log.v(3).info('endpoint connection opened', { dialID: e.dialID, dialAddress: e.address, connectionID: e.connectID }));
  agent.on('dialFailed', (e) => log.v(2).info('endpoint dial failed', { dialID: e.dialID, dialAddress: e.address, err: e.error }));
  agent.on('connectionClosed', (e) => log.v(4).info('endpoint connection closed', { dialAddress: e.address, connectionID: e.connectID }));
}

/** Start the agent, its tunnels and its ops servers. */
export async function startAgent(o: AgentOptions, log: Logger): Promise<RunningAgent> {
  const registry = new Registry();
  const agent = new Agent({
    agentID: o.agentID,
    identifiers: o.identifiers,
    ...(o.serviceAccountTokenPath ? { token: tokenFileReader(o.serviceAccountTokenPath) } : {}),
    ...(o.connectionBufferBytes ? { connectionBufferBytes: o.connectionBufferBytes } : {}),
  });
  const clientSet = new AgentClientSet(agent, {
    ...connectors(o, log),
    syncIntervalMs: o.syncIntervalMs,
    syncIntervalCapMs: o.syncIntervalCapMs,
    syncForever: o.syncForever,
    probeIntervalMs: o.probeIntervalMs,
  });
  // Server-list mode knows its servers from the list; behind a load balancer, from the `servercount` received.
  const listed = o.proxyServerAddresses.length;
  const knownServerCount = (): number => (listed > 0 ? listed : clientSet.serverCount);
  const metrics = instrumentAgent(agent, registry, {
    knownServerCount,
    defaultMetrics: true,
    connectionBufferBytes: o.connectionBufferBytes ?? DEFAULT_CONNECTION_BUFFER_BYTES,
  });
  const detachSet = metrics.trackClientSet(clientSet);
  logAgentEvents(agent, clientSet, log);

  const servers: OpsServer[] = [];
  const stopAll = async (): Promise<void> => {
    await clientSet.close();
    await agent.close();
    await Promise.all(servers.map((s) => s.close()));
    metrics.detach();
    detachSet();
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
    clientSet.start();
    let stopping: Promise<void> | undefined;
    return {
      agent,
      clientSet,
      registry,
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
      logFields: (o) => ({ agentID: o.agentID }),
      start: async (o, log) => {
        const running = await startAgent(o, log);
        const list = o.proxyServerAddresses.map((a) => joinHostPort(a.host, a.port)).join(',');
        log.info('agent started', { proxyServer: list || joinHostPort(o.proxyServerHost, o.proxyServerPort), transport: o.transport });
        return running;
      },
      onFirstSignal: (running, signal, log) => {
        log.info('draining: sending DRAIN on every tunnel; send the signal again to exit', { signal });
        running.drain();
      },
      onSecondSignal: (running, signal, log, exit) => {
        log.info('second signal, shutting down', { signal });
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
