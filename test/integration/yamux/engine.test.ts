/**
 * End to end over yamux: a TS agent connects to a TS ProxyServer through a real carrier (TCP, mTLS, WebSocket);
 * server.dial() reaches loopback targets through the agent, each connection on its own yamux substream.
 */
import { once } from 'node:events';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Agent } from '../../../src/agent/index.js';
import { ErrorCode, KonnectivityError } from '../../../src/protocol/errors.js';
import { ProxyServer } from '../../../src/server/index.js';
import { yamuxAgentConnector } from '../../../src/transport/yamux/index.js';
import { until } from '../../compliance/helpers.js';
import { echoServer, receiveAll, sendPattern, tcpServer } from '../../helpers/engine.js';
import { expectNoLeaks, snapshotResources, type ResourceSnapshot } from '../../helpers/leaks.js';
import { CARRIERS, listenYamux, type YamuxListener } from './helpers.js';

const MiB = 1024 * 1024;

for (const kind of CARRIERS) {
  describe(`engine over yamux on ${kind}`, () => {
    let before: ResourceSnapshot;
    let server: ProxyServer;
    let listener: YamuxListener;
    let agent: Agent;
    let peerCommonName: string | undefined;
    const cleanups: Array<() => Promise<void>> = [];

    beforeEach(async () => {
      before = snapshotResources();
      peerCommonName = undefined;
      server = new ProxyServer({
        serverID: 'server-1',
        serverCount: 1,
        connectionBufferBytes: 256 * 1024,
        authenticateAgent: (ctx) => void (peerCommonName = ctx.peerCommonName),
      });
      listener = await listenYamux(kind, { onTunnel: (incoming) => void server.acceptAgent(incoming) });
      agent = new Agent({ agentID: 'agent-1', connectionBufferBytes: 256 * 1024 });
    });

    afterEach(async () => {
      agent.destroy();
      server.destroy();
      for (const c of cleanups.splice(0).reverse()) await c();
      await listener.close();
      await expectNoLeaks(before);
    });

    it('registers the agent with the server metadata and carries a checksummed 8 MiB echo', async () => {
      const tunnel = await agent.connect(yamuxAgentConnector({ connect: listener.connect }));
      expect(tunnel.serverID).toBe('server-1');
      expect(tunnel.serverCount).toBe(1);
      await until(() => server.ready, 'the server to register the agent');
      expect(server.agents().map((a) => a.agentID)).toEqual(['agent-1']);
      expect(tunnel.stream.substreams).toBeDefined();
      // mTLS: the server sees the agent certificate's common name.
      expect(peerCommonName).toBe(kind === 'tls' ? 'client' : undefined);

      const echo = await echoServer();
      cleanups.push(() => echo.close());
      const socket = await server.dial(echo.address);
      const [sent, got] = await Promise.all([sendPattern(socket, 8 * MiB), receiveAll(socket, 8 * MiB)]);
      expect(got).toBe(sent);
      socket.destroy();
      await once(socket, 'close');
    });

    it('one stalled connection does not stall another on the same tunnel', async () => {
      await agent.connect(yamuxAgentConnector({ connect: listener.connect }));
      await until(() => server.ready, 'the server to register the agent');
      // Target A sends 64 MiB that nobody reads; target B serves 16 MiB that are read.
      const flood = await tcpServer((s) => void sendPattern(s, 64 * MiB).catch(() => undefined));
      cleanups.push(() => flood.close());
      let served!: Promise<string>;
      const bulk = await tcpServer((s) => (served = sendPattern(s, 16 * MiB)));
      cleanups.push(() => bulk.close());

      const a = await server.dial(flood.address);
      a.pause();
      await until(() => a.bytesRead > 0, 'the flood to start');
      const b = await server.dial(bulk.address);
      expect(await receiveAll(b, 16 * MiB)).toBe(await served);
      // The stalled connection got only what its buffers hold (the engine's limit, one yamux window, sockets).
      expect(a.bytesRead).toBeLessThan(8 * MiB);
      a.destroy();
      b.destroy();
      await Promise.all([once(a, 'close'), once(b, 'close')]);
    });

    it("end() is a half-close: the endpoint sees EOF and its answer still flows back", async () => {
      await agent.connect(yamuxAgentConnector({ connect: listener.connect }));
      await until(() => server.ready, 'the server to register the agent');
      const target = await tcpServer((s) => {
        let n = 0;
        s.on('data', (d: Buffer) => (n += d.length));
        s.on('end', () => s.end(`got ${n} bytes`));
      });
      cleanups.push(() => target.close());
      const socket = await server.dial(target.address);
      const chunks: Buffer[] = [];
      socket.on('data', (d: Buffer) => chunks.push(d));
      socket.end(Buffer.alloc(3 * MiB, 7));
      await once(socket, 'close');
      expect(Buffer.concat(chunks).toString()).toBe(`got ${3 * MiB} bytes`);
    });

    it('a graceful server close ends the tunnel cleanly on both sides', async () => {
      const tunnel = await agent.connect(yamuxAgentConnector({ connect: listener.connect }));
      await until(() => server.ready, 'the server to register the agent');
      const echo = await echoServer();
      cleanups.push(() => echo.close());
      const socket = await server.dial(echo.address);
      socket.write('ping');
      await once(socket, 'data');
      socket.destroy();
      await once(socket, 'close');
      await server.close({ graceMs: 1000 });
      expect(await tunnel.done).toBeUndefined();
    });

    it('a refused agent gets the server error code through the handshake', async () => {
      server.destroy();
      server = new ProxyServer({
        authenticateAgent: () => {
          throw new KonnectivityError(ErrorCode.UNAUTHENTICATED, 'bad token');
        },
      });
      await listener.close();
      listener = await listenYamux(kind, { onTunnel: (incoming) => void server.acceptAgent(incoming) });
      await expect(agent.connect(yamuxAgentConnector({ connect: listener.connect }))).rejects.toMatchObject({
        code: ErrorCode.UNAUTHENTICATED,
        message: expect.stringContaining('bad token'),
      });
    });
  });
}
