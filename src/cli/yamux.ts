/**
 * The yamux agent leg for the programs (`--agent-transport=yamux` on the server, `--transport=yamux` on the
 * agent): a TCP or TLS listener whose every connection carries one yamux tunnel, and the matching connector.
 */
import { createServer as createTcpServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { serveYamuxCarrier, tcpCarrier, tlsCarrier, yamuxAgentConnector } from '../transport/yamux/index.js';
import type { IncomingPacketStream, TunnelConnector } from '../transport/packet-stream.js';
import type { ClientTlsOptions, ServerTlsOptions } from './tls.js';

/** A listening yamux agent listener. */
export interface YamuxAgentListener {
  readonly address: string;
  readonly port: number;
  /** Stop accepting; after `graceMs` destroy the carriers still open. Idempotent. */
  close(graceMs: number): Promise<void>;
}

/** Options of {@link listenYamuxAgents}. */
export interface YamuxAgentListenerOptions {
  host: string;
  port: number;
  tls?: ServerTlsOptions;
  /** Each tunnel once its handshake arrived (give it to `ProxyServer.acceptAgent`). */
  onIncoming: (incoming: IncomingPacketStream) => void | Promise<void>;
  /** A carrier whose handshake failed (bad peer, timeout). */
  onRefused?: (err: Error, remoteAddress: string) => void;
}

/** Listen for agents speaking yamux over TCP, or TLS when `tls` is given (mTLS with its CA). */
export function listenYamuxAgents(options: YamuxAgentListenerOptions): Promise<YamuxAgentListener> {
  const carriers = new Set<Socket>();
  const onCarrier = (socket: Socket): void => {
    carriers.add(socket);
    socket.once('close', () => carriers.delete(socket));
    socket.setNoDelay(true);
    const remote = `${socket.remoteAddress ?? ''}:${socket.remotePort ?? ''}`;
    serveYamuxCarrier(socket, {
      onTunnel: (incoming) => void Promise.resolve(options.onIncoming(incoming)).catch(() => undefined),
      onError: (err) => options.onRefused?.(err, remote),
    });
  };
  const server: Server = options.tls ? createTlsServer(options.tls, onCarrier) : createTcpServer(onCarrier);
  // A failed TLS handshake is the peer's problem, not ours.
  server.on('tlsClientError', () => undefined);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: options.host, port: options.port }, () => {
      server.off('error', reject);
      const a = server.address() as AddressInfo;
      let closing: Promise<void> | undefined;
      resolve({
        address: a.address,
        port: a.port,
        close(graceMs) {
          closing ??= new Promise<void>((done) => {
            server.close(() => done());
            const cut = (): void => {
              for (const c of carriers) c.destroy();
            };
            if (graceMs > 0 && carriers.size > 0) setTimeout(cut, graceMs).unref();
            else cut();
          });
          return closing;
        },
      });
    });
  });
}

/** The agent side: a new TCP or TLS carrier per tunnel attempt, so a load balancer can spread them. */
export function yamuxConnector(host: string, port: number, tls: ClientTlsOptions | undefined): TunnelConnector {
  return yamuxAgentConnector({ connect: tls ? tlsCarrier({ host, port, ...tls }) : tcpCarrier({ host, port }) });
}
