/**
 * Shared pieces for the yamux integration tests: a tunnel pair (agent end, server end) over a real carrier on
 * loopback, port 0: TCP, TLS with client certificates, or WebSocket.
 */
import { readFileSync } from 'node:fs';
import { once } from 'node:events';
import http from 'node:http';
import type net from 'node:net';
import { fileURLToPath } from 'node:url';
import { WebSocketServer } from 'ws';
import type { IncomingPacketStream, Metadata, PacketStream } from '../../../src/transport/packet-stream.js';
import {
  createYamuxServer,
  serveYamuxCarrier,
  tcpCarrier,
  tlsCarrier,
  webSocketCarrier,
  webSocketDuplex,
  yamuxAgentConnector,
  type CarrierConnect,
  type YamuxServerOptions,
  type YamuxSessionOptions,
} from '../../../src/transport/yamux/index.js';

export type CarrierKind = 'tcp' | 'tls' | 'ws';
export const CARRIERS: readonly CarrierKind[] = ['tcp', 'tls', 'ws'];

const fixtures = fileURLToPath(new URL('../http-connect/fixtures/', import.meta.url));
const pem = (name: string): Buffer => readFileSync(fixtures + name);

/** Server-side TLS options with client certificates required. */
export function serverTls(): { key: Buffer; cert: Buffer; ca: Buffer; requestCert: true; rejectUnauthorized: true } {
  return { key: pem('server-key.pem'), cert: pem('server.pem'), ca: pem('ca.pem'), requestCert: true, rejectUnauthorized: true };
}

/** Client-side TLS options (client certificate CN=client). */
export function clientTls(): { key: Buffer; cert: Buffer; ca: Buffer } {
  return { key: pem('client-key.pem'), cert: pem('client.pem'), ca: pem('ca.pem') };
}

export interface YamuxListener {
  /** How an agent reaches the listener. */
  connect: CarrierConnect;
  close(): Promise<void>;
}

/** Listen on 127.0.0.1:0 with the given carrier; every finished handshake goes to `options.onTunnel`. */
export async function listenYamux(kind: CarrierKind, options: YamuxServerOptions): Promise<YamuxListener> {
  if (kind === 'ws') {
    const httpServer = http.createServer();
    const wss = new WebSocketServer({ server: httpServer, perMessageDeflate: false });
    wss.on('connection', (ws, req) => serveYamuxCarrier(webSocketDuplex(ws, `${req.socket.remoteAddress}:${req.socket.remotePort}`), options));
    httpServer.listen(0, '127.0.0.1');
    await once(httpServer, 'listening');
    const { port } = httpServer.address() as net.AddressInfo;
    return {
      connect: webSocketCarrier(`ws://127.0.0.1:${port}/tunnel`),
      close: async () => {
        for (const c of wss.clients) c.terminate();
        await new Promise<void>((r) => wss.close(() => r()));
        httpServer.closeAllConnections();
        await new Promise<void>((r) => httpServer.close(() => r()));
      },
    };
  }
  const server = createYamuxServer(kind === 'tls' ? { ...options, tls: serverTls() } : options);
  await server.listen({ port: 0, host: '127.0.0.1' });
  const { port } = server.address() as net.AddressInfo;
  return {
    connect:
      kind === 'tls'
        ? tlsCarrier({ host: '127.0.0.1', port, servername: 'localhost', ...clientTls() })
        : tcpCarrier({ host: '127.0.0.1', port }),
    close: () => server.close({ graceMs: 0 }),
  };
}

export interface TunnelPair {
  agent: PacketStream;
  server: PacketStream;
  incoming: IncomingPacketStream;
  close(): Promise<void>;
}

/** One tunnel: the agent end (from the connector) and the server end (accepted with `responseMetadata`). */
export async function tunnelPair(
  kind: CarrierKind,
  opts: { metadata: Metadata; responseMetadata: Metadata; yamux?: YamuxSessionOptions },
): Promise<TunnelPair> {
  let got: (i: IncomingPacketStream) => void = () => undefined;
  const arrived = new Promise<IncomingPacketStream>((r) => (got = r));
  const listener = await listenYamux(kind, { onTunnel: (i) => got(i), yamux: opts.yamux ?? {} });
  const connector = yamuxAgentConnector({ connect: listener.connect, yamux: opts.yamux ?? {} });
  const agentP = connector(opts.metadata, {});
  const incoming = await arrived;
  const server = incoming.accept(opts.responseMetadata);
  const agent = await agentP;
  return { agent, server, incoming, close: () => listener.close() };
}
