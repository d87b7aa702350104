/**
 * The programs' lifecycle log lines in the reference's wording, keys and verbosity (read off the v0.31.4 binaries
 * at -v=0..5), so an operator's greps and alerts keep working: "Agent connected", "DIAL_RSP contains failure",
 * "cannot connect once", "change detected in proxy server count (...)", and so on. Durations are printed as Go
 * prints them (`dialDuration="1.306274ms"`). Lines the reference has no counterpart for keep our own wording.
 */
import type { Logger } from '../ops/logger.js';
import { formatDuration } from '../ops/logger.js';
import { servedStreamErrorCode } from '../ops/metric-families.js';
import type { PacketStream } from '../transport/packet-stream.js';
import type { ProxyServer } from '../server/index.js';
import type { HttpConnectFrontend } from '../server/frontends/http-connect/index.js';
import type { Agent, AgentTunnel } from '../agent/index.js';
import type { AgentClientSet } from '../agent/client-set.js';
import type { ServerLeaseController, ServerLeaseCounter } from '../kube/index.js';

/** Go's name of a signal (`os.Signal.String()`): `terminated`, `interrupt`. */
export function goSignalName(signal: NodeJS.Signals): string {
  return signal === 'SIGTERM' ? 'terminated' : signal === 'SIGINT' ? 'interrupt' : signal;
}

/** The server engine's events. */
export function logServerEvents(proxy: ProxyServer, log: Logger): void {
  const serverID = proxy.serverID;
  proxy.on('agentRefused', (r) => log.error('Agent refused', r.error, { agentID: r.agentID, remoteAddress: r.remoteAddress, code: r.error.code }));
  proxy.on('agentConnected', (info) => {
    log.v(2).info('Agent connected', { agentID: info.agentID, serverID });
    log.v(2).info('Register backend for agent', { agentID: info.agentID });
  });
  proxy.on('agentDisconnected', (info, err) => {
    if (err) log.error('Stream read from agent failure', err, { agentID: info.agentID });
    else log.v(2).info('Stream read from agent cancelled', { agentID: info.agentID });
    log.v(2).info('Remove connection for agent', { agentID: info.agentID });
  });
  proxy.on('agentDraining', (info) => log.v(2).info('agent is draining', { agentID: info.agentID }));
  // Per-dial and per-connection lines: listened to only at a verbosity that prints them, so a dial at the default
  // verbosity builds no fields and formats no duration.
  if (log.enabled(3)) proxy.on('dialSucceeded', (e) =>
    log.v(3).info('Proxy connection established', {
      dialID: e.dialID,
      connectionID: e.connectionID,
      agentID: e.agentID,
      dialAddress: e.address,
      dialDuration: formatDuration(e.durationMs),
    }),
  );
  proxy.on('dialFailed', (e) => {
    switch (e.reason) {
      case 'no_agent':
        log.error('Failed to get a backend', e.error, { dialID: e.dialID });
        return;
      case 'error_response':
        log.error('DIAL_RSP contains failure', e.error, { dialID: e.dialID, agentID: e.agentID });
        return;
      case 'frontend_close':
        log.v(2).info('Frontend connection closed before being established', { host: e.address, dialID: e.dialID });
        return;
      default:
        log.error('Dial failed', e.error, { dialID: e.dialID, dialAddress: e.address, reason: e.reason, frontend: e.frontend });
    }
  });
  if (log.enabled(4)) proxy.on('connectionClosed', (e) =>
    log.v(4).info('Connection closed', { agentID: e.agentID, connectionID: e.connectID, bytesFromAgent: e.bytesFromAgent, bytesToAgent: e.bytesToAgent }),
  );
}

/** A gRPC frontend stream's end, as the reference words it: a clean end, a cancel (a client that leaves: the usual end), a failure. */
export function logFrontendStream(stream: PacketStream, log: Logger): void {
  const userAgent = stream.remoteMetadata['user-agent'] ?? [];
  stream.once('close', (err?: Error) => {
    if (!err) log.v(2).info('Receive stream from frontend closed', { userAgent });
    else if (servedStreamErrorCode(err) === 'Canceled') log.v(2).info('Stream read from frontend cancelled', { userAgent });
    else log.error('Stream read from frontend failure', err, { userAgent });
  });
}

/** The HTTP-CONNECT frontend's events (its `clientError`s are the server program's refused connections). */
export function logHttpConnectEvents(frontend: HttpConnectFrontend, log: Logger): void {
  if (log.enabled(4)) frontend.on('tunnelOpened', (e) => log.v(4).info('Connection established, sent 200 OK', { host: e.address, remoteAddress: e.remoteAddress }));
  if (log.enabled(2)) frontend.on('tunnelClosed', (e) =>
    log.v(2).info('EOF from host', { host: e.address, remoteAddress: e.remoteAddress, bytesFromClient: e.bytesFromClient, bytesToClient: e.bytesToClient }),
  );
  frontend.on('dialFailed', (e) => log.v(2).info('CONNECT failed', { host: e.address, remoteAddress: e.remoteAddress, status: e.statusCode, err: e.error.message }));
}

/** The server's lease controller. */
export function logLeaseControllerEvents(c: ServerLeaseController, log: Logger): void {
  c.on('acquired', (lease) => log.v(2).info('Created server lease', { lease: lease.metadata.name, namespace: c.namespace }));
  c.on('renewFailed', (err, retryInMs) => log.errorText(`failed to ensure lease exists, will retry in ${formatDuration(retryInMs)}, error: ${err.message}`));
  c.on('gcFailed', (err, name) =>
    name === undefined ? log.errorText(`Could not list leases to garbage collect: ${err.message}`) : log.errorText(`Could not delete lease ${name}: ${err.message}`),
  );
  c.on('alreadyDeleted', (name) => log.v(4).infoText(`Lease ${name} was already deleted`));
  c.on('culled', (name) => log.v(2).infoText(`Deleted expired lease ${name}`));
  c.on('releasing', (name) => log.infoText(`Cleaning up server lease ${JSON.stringify(name)}`));
  c.on('releaseFailed', (err) => log.errorText(`Could not delete server lease ${c.leaseName}: ${err.message}`));
}

/** The agent engine's and its client set's events. */
export function logAgentEvents(agent: Agent, clientSet: AgentClientSet<AgentTunnel>, log: Logger): void {
  const agentID = agent.agentID;
  clientSet.on('tunnelAdded', (t) => {
    log.v(2).info('Connect to server', { serverID: t.serverID });
    log.v(2).info('sync added client connecting to proxy server', { serverID: t.serverID });
    log.v(2).info('Start serving', { serverID: t.serverID, agentID });
  });
  clientSet.on('tunnelRemoved', (t, err) => {
    if (err) log.error('could not read stream', err, { serverID: t.serverID, agentID });
    log.v(2).info('cleanup all of conn contexts when client exits');
  });
  clientSet.on('duplicate', (serverID) => log.v(3).info('Closing the tunnel: already connected to this server', { serverID }));
  clientSet.on('connectFailed', (err) => log.error('cannot connect once', err));
  clientSet.on('probeFailed', (t) => log.v(2).info('Closing the tunnel: its connection is not ready', { serverID: t.serverID }));
  clientSet.on('readyChange', (ready) => log.v(2).info(ready ? 'Ready: a tunnel is up' : 'Not ready: no tunnel is up'));
  if (log.enabled(3)) agent.on('connectionOpened', (e) => log.v(3).info('Endpoint connection established', { dialID: e.dialID, connectionID: e.connectID, dialAddress: e.address }));
  agent.on('dialFailed', (e) => {
    // A refusal is ours (no Go counterpart): at the default verbosity, as the server's refusals are.
    if (e.refused) log.info('dial refused', { reason: e.refused, err: e.error, dialID: e.dialID, dialAddress: e.address, serverID: e.serverID });
    else log.v(2).info('error dialing backend', { error: e.error, dialID: e.dialID, connectionID: e.connectID, dialAddress: e.address });
  });
  if (log.enabled(4)) agent.on('connectionClosed', (e) => log.v(4).info('close connection', { dialID: e.dialID, connectionID: e.connectID, dialAddress: e.address }));
}

/**
 * The agent's "change detected in proxy server count" warning, as the reference words it; call `check` whenever
 * the count may have changed.
 */
export function serverCountLogger(log: Logger, count: () => number, source: string): () => void {
  let last = 0;
  return () => {
    const now = count();
    if (now === last) return;
    log.warnText(`change detected in proxy server count (was: ${last}, now: ${now}, source: ${JSON.stringify(source)})`);
    last = now;
  };
}

/** The agent's lease counter. */
export function logLeaseCounterEvents(c: ServerLeaseCounter, log: Logger): void {
  c.on('noValidLeases', () => log.warnText('No valid leases found, assuming server count of 1'));
  c.on('failed', (err, retryInMs) =>
    log.errorText(`could not list leases to update server count, using fallback count (${c.count()}), retrying in ${formatDuration(retryInMs)}: ${err.message}`),
  );
}
