/**
 * The yamux agent leg for the programs (`--agent-transport=yamux` on the server, `--transport=yamux` on the
 * agent): a TCP or TLS listener whose every connection carries one yamux tunnel, and the matching connector.
 */
import { createYamuxServer, tcpCarrier, tlsCarrier, yamuxAgentConnector, type YamuxServer } from '../transport/yamux/index.js';
import type { ConnectionOptions } from 'node:tls';
import type { IncomingPacketStream, TunnelConnector } from '../transport/packet-stream.js';
import type { ClientTlsOptions, ServerTlsOptions } from './tls.js';

/** Options of {@link listenYamuxAgents}. */
export interface YamuxAgentListenerOptions {
  host: string;
  port: number;
  tls?: ServerTlsOptions;
  /** Each tunnel once its handshake arrived (give it to `ProxyServer.acceptAgent`). */
  onIncoming: (incoming: IncomingPacketStream) => void | Promise<void>;
  /** A carrier whose handshake failed (bad peer, timeout), or the listener could not accept one (no address). */
  onRefused?: (err: Error, remoteAddress: string) => void;
}

/** Listen for agents speaking yamux over TCP, or TLS when `tls` is given (mTLS with its CA). */
export async function listenYamuxAgents(options: YamuxAgentListenerOptions): Promise<YamuxServer> {
  const server = createYamuxServer({
    ...(options.tls ? { tls: options.tls } : {}),
    onTunnel: (incoming) => void Promise.resolve(options.onIncoming(incoming)).catch(() => undefined),
    onError: (err, remoteAddress) => options.onRefused?.(err, remoteAddress ?? ''),
  });
  await server.listen({ host: options.host, port: options.port });
  return server;
}

/** The agent side: a new TCP or TLS carrier per tunnel attempt, so a load balancer can spread them. */
export function yamuxConnector(host: string, port: number, tls: (() => ClientTlsOptions) | undefined): TunnelConnector {
  // The TLS material is asked for each carrier, so rotated files are used by the next handshake.
  const options = (): ConnectionOptions => {
    const { alpnProtocols, ...t } = tls!();
    return { host, port, ...t, ...(alpnProtocols ? { ALPNProtocols: alpnProtocols } : {}) };
  };
  return yamuxAgentConnector({ connect: tls ? tlsCarrier(options) : tcpCarrier({ host, port }) });
}
