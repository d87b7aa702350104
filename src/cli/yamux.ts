/**
 * The yamux agent leg for the programs (`--agent-transport=yamux` on the server, `--transport=yamux` on the
 * agent): a TCP or TLS listener whose every connection carries one yamux tunnel, and the matching connector.
 */
import { createServer as createTcpServer, connect as tcpConnect, type AddressInfo, type Server, type Socket } from 'node:net';
import { connect as tlsConnect, createServer as createTlsServer } from 'node:tls';
import type { Duplex } from 'node:stream';
import { acceptYamuxTunnel, yamuxAgentConnector } from '../transport/yamux/tunnel.js';
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
    const remote = `${socket.remoteAddress ?? ''}:${socket.remotePort ?? ''}`;
    acceptYamuxTunnel(socket)
      .then((incoming) => options.onIncoming(incoming))
      .catch((err: unknown) => options.onRefused?.(err as Error, remote));
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
  return yamuxAgentConnector({
    connect: ({ signal }) =>
      new Promise<Duplex>((resolve, reject) => {
        const socket = tls ? tlsConnect({ host, port, ...tls }) : tcpConnect({ host, port });
        const onAbort = (): void => {
          socket.destroy();
          reject(signal.reason as Error);
        };
        signal.addEventListener('abort', onAbort, { once: true });
        socket.once(tls ? 'secureConnect' : 'connect', () => {
          signal.removeEventListener('abort', onAbort);
          socket.off('error', onError);
          resolve(socket);
        });
        const onError = (err: Error): void => {
          signal.removeEventListener('abort', onAbort);
          reject(err);
        };
        socket.once('error', onError);
      }),
  });
}
