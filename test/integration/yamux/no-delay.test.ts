/**
 * No Nagle on any yamux carrier: both ends of a TCP, TLS and WebSocket carrier have no-delay set, the server's from
 * its listener (so the TLS handshake is covered too). With Nagle on, a small frame waits for the peer's delayed
 * ACK: about 40 ms per dial over TLS.
 */
import { once } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { WebSocketServer } from 'ws';
import type { IncomingPacketStream } from '../../../src/transport/packet-stream.js';
import {
  createYamuxServer,
  serveYamuxCarrier,
  tcpCarrier,
  tlsCarrier,
  webSocketCarrier,
  webSocketDuplex,
  yamuxAgentConnector,
  type CarrierConnect,
} from '../../../src/transport/yamux/index.js';
import { until } from '../../compliance/helpers.js';
import { expectNoLeaks, snapshotResources, type ResourceSnapshot } from '../../helpers/leaks.js';
import { CARRIERS, clientTls, serverTls, type CarrierKind } from './helpers.js';

/** Node keeps a socket's no-delay setting under this private symbol; read it rather than guess from timing. */
function noDelayOf(socket: net.Socket): boolean {
  const sym = Object.getOwnPropertySymbols(socket).find((s) => s.description === 'kSetNoDelay');
  if (!sym) throw new Error('this Node keeps no kSetNoDelay on sockets: update the test');
  return (socket as unknown as Record<symbol, unknown>)[sym] === true;
}

interface Listening {
  connect: CarrierConnect;
  close(): Promise<void>;
}

async function listen(kind: CarrierKind, onTunnel: (i: IncomingPacketStream) => void): Promise<Listening> {
  if (kind === 'ws') {
    const h = http.createServer();
    const wss = new WebSocketServer({ server: h, perMessageDeflate: false });
    wss.on('connection', (ws) => serveYamuxCarrier(webSocketDuplex(ws), { onTunnel }));
    h.listen(0, '127.0.0.1');
    await once(h, 'listening');
    const { port } = h.address() as net.AddressInfo;
    return {
      connect: webSocketCarrier(`ws://127.0.0.1:${port}/`),
      close: async () => {
        for (const c of wss.clients) c.terminate();
        await new Promise<void>((r) => wss.close(() => r()));
        h.closeAllConnections();
        await new Promise<void>((r) => h.close(() => r()));
      },
    };
  }
  const server = createYamuxServer(kind === 'tls' ? { onTunnel, tls: serverTls() } : { onTunnel });
  await server.listen({ host: '127.0.0.1', port: 0 });
  const { port } = server.address() as net.AddressInfo;
  return {
    connect:
      kind === 'tls'
        ? tlsCarrier({ host: '127.0.0.1', port, servername: 'localhost', ...clientTls() })
        : tcpCarrier({ host: '127.0.0.1', port }),
    close: async () => {
      server.destroy();
      await server.close();
    },
  };
}

for (const kind of CARRIERS) {
  describe(`yamux carrier ${kind}`, () => {
    let before: ResourceSnapshot;
    beforeEach(() => {
      before = snapshotResources();
    });
    afterEach(async () => {
      vi.restoreAllMocks();
      await expectNoLeaks(before);
    });

    it('has no-delay set on both ends', async () => {
      // The agent's socket is made inside the carrier (ws makes it itself): catch it where no-delay is set.
      const noDelayCalls: net.Socket[] = [];
      const original = net.Socket.prototype.setNoDelay;
      vi.spyOn(net.Socket.prototype, 'setNoDelay').mockImplementation(function (this: net.Socket, enable?: boolean) {
        if (enable !== false) noDelayCalls.push(this);
        return original.call(this, enable);
      });
      // The server's socket as the kernel gave it (under TLS and WebSocket): every net.Server emits 'connection'.
      const accepted: net.Socket[] = [];
      const emit = net.Server.prototype.emit as (this: net.Server, event: string | symbol, ...args: unknown[]) => boolean;
      vi.spyOn(net.Server.prototype, 'emit').mockImplementation(function (this: net.Server, event: string | symbol, ...args: unknown[]) {
        if (event === 'connection') accepted.push(args[0] as net.Socket);
        return emit.call(this, event, ...args);
      } as typeof net.Server.prototype.emit);
      let incoming: IncomingPacketStream | undefined;
      const l = await listen(kind, (i) => (incoming = i));
      const tunnel = yamuxAgentConnector({ connect: l.connect })({ agentid: ['a'] }, {});
      await until(() => incoming !== undefined, 'the handshake to reach the server');
      const serverEnd = incoming!.accept({ serverid: ['s'] });
      const agentEnd = await tunnel;

      expect(accepted).toHaveLength(1);
      const serverRaw = accepted[0]!;
      expect(noDelayOf(serverRaw)).toBe(true);
      // The agent's end of the same TCP connection.
      const agentSocket = noDelayCalls.find((s) => s.localPort === serverRaw.remotePort);
      expect(agentSocket, 'no-delay set on the agent socket').toBeDefined();
      expect(noDelayOf(agentSocket!)).toBe(true);

      agentEnd.destroy();
      serverEnd.destroy();
      await l.close();
    });
  });
}
