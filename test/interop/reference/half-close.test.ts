/**
 * Half-close with the Go reference on the other side (proxy-server and proxy-agent v0.31.4 from the peer kit):
 * neither offers the extension, so HALF_CLOSE is never sent to them; `end()` then stops writing and reads until the
 * peer closes, and `halfCloseTimeoutMs` closes (CLOSE_REQ) a connection whose endpoint waits for an EOF that cannot
 * reach it. Our agent -> Go server (our client on its gRPC frontend), and Go agent -> our server (server.dial() and
 * the HTTP-CONNECT frontend). Our side runs in this process, so its packet counts show what was sent.
 */
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import type net from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from '../../../src/agent/index.js';
import { GrpcProxyClient } from '../../../src/client/index.js';
import { ProxyServer, createHttpConnectFrontend } from '../../../src/server/index.js';
import { createGrpcServer, grpcAgentConnector, type GrpcServer } from '../../../src/transport/grpc/index.js';
import { drain, requestTarget, silentTarget } from '../../helpers/half-close.js';
import { rawConnect, readUntil } from '../../integration/http-connect/helpers.js';
import { describeKit, kit, useKit, type ServerProcess } from './kit.js';

const pem = (file: string): Buffer => readFileSync(file);

let cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const fn of cleanups.reverse()) await fn();
  cleanups = [];
});

describeKit('half-close with the Go reference', () => {
  const fx = useKit('all');

  describe('our agent -> Go proxy-server, our GrpcProxyClient on its gRPC frontend', () => {
    let goServer: ServerProcess;
    let agent: Agent;
    let client: GrpcProxyClient;

    beforeAll(async () => {
      goServer = await fx.server('go', { frontend: 'grpc-uds' });
      agent = new Agent({ agentID: 'ts-agent' });
      const certs = kit!.certs;
      const connector = grpcAgentConnector({
        address: `127.0.0.1:${goServer.ports.agent}`,
        tls: { ca: pem(certs.ca), cert: pem(certs.agentCert), key: pem(certs.agentKey) },
      });
      await agent.connect(connector);
      await goServer.waitReady();
      client = new GrpcProxyClient({ socketPath: goServer.uds! });
    }, 120_000);

    afterAll(() => {
      client?.destroy();
      agent?.destroy();
    });

    it('the Go server confirms nothing: end() sends no HALF_CLOSE, and the answer still arrives', async () => {
      const target = await requestTarget();
      cleanups.push(() => target.close());
      const socket = await client.dial(target.address);
      socket.end('GET /');
      expect(await drain(socket)).toEqual({ text: 'answer to GET /', errored: null });
      // The Go server never sends the extension on to our agent either.
      expect(agent.stats.packets.fromServer['HALF_CLOSE']).toBeUndefined();
      expect(agent.stats.packets.fromServer['CLOSE_REQ']).toBeUndefined();
    });

    it('an endpoint waiting for EOF is closed after halfCloseTimeoutMs, with CLOSE_REQ through the Go server', async () => {
      const target = await silentTarget();
      cleanups.push(() => target.close());
      const before = agent.stats.packets.fromServer['CLOSE_REQ'] ?? 0;
      const socket = await client.dial(target.address, { halfCloseTimeoutMs: 300 });
      socket.end('no EOF will reach you');
      expect(await drain(socket)).toEqual({ text: '', errored: null });
      await target.closed;
      expect(agent.stats.packets.fromServer['CLOSE_REQ']).toBe(before + 1);
      expect(agent.stats.packets.fromServer['HALF_CLOSE']).toBeUndefined();
    });

    it('the Go server counted no packet of an unknown type from our client', async () => {
      const metrics = await goServer.metrics();
      const types = [...metrics.keys()].filter((k) => k.includes('stream_packets_total')).map((k) => /packet_type="([^"]+)"/.exec(k)?.[1]);
      expect(types.length).toBeGreaterThan(0);
      expect(types.filter((t) => !/^(DIAL_REQ|DIAL_RSP|CLOSE_REQ|CLOSE_RSP|DATA|DIAL_CLS|DRAIN)$/.test(t!))).toEqual([]);
    });
  });

  describe('Go proxy-agent -> our server', () => {
    let server: ProxyServer;
    let grpc: GrpcServer;

    beforeAll(async () => {
      const certs = kit!.certs;
      server = new ProxyServer({ serverID: 'ts-1' });
      grpc = await createGrpcServer({
        port: 0,
        tls: { key: pem(certs.serverKey), cert: pem(certs.serverCert), ca: pem(certs.ca) },
        agent: (i) => server.acceptAgent(i),
      });
      const connected = once(server, 'agentConnected');
      await fx.agent('go', { server: { host: '127.0.0.1', port: grpc.port } });
      await connected;
    }, 120_000);

    afterAll(() => {
      server?.destroy();
      grpc?.destroy();
    });

    it('server.dial(): end() sends no HALF_CLOSE to the Go agent, and the answer still arrives', async () => {
      const target = await requestTarget();
      cleanups.push(() => target.close());
      const socket = await server.dial(target.address);
      socket.end('GET /');
      expect(await drain(socket)).toEqual({ text: 'answer to GET /', errored: null });
      expect(server.stats.packets.toAgent['HALF_CLOSE']).toBeUndefined();
    });

    it('an endpoint waiting for EOF is closed after halfCloseTimeoutMs: the Go agent answers our CLOSE_REQ', async () => {
      const target = await silentTarget();
      cleanups.push(() => target.close());
      const socket = await server.dial(target.address, { halfCloseTimeoutMs: 300 });
      socket.end('no EOF will reach you');
      expect(await drain(socket)).toEqual({ text: '', errored: null });
      await target.closed;
      expect(server.stats.packets.toAgent['HALF_CLOSE']).toBeUndefined();
    });

    it("HTTP-CONNECT: a client's FIN is not passed to the Go agent; the frontend closes as the reference does (CLOSE_REQ)", async () => {
      const target = await silentTarget();
      cleanups.push(() => target.close());
      const frontend = createHttpConnectFrontend({ server });
      await frontend.listen({ port: 0, host: '127.0.0.1' });
      cleanups.push(() => frontend.close({ graceMs: 0 }));
      const closeRequests = server.stats.packets.toAgent['CLOSE_REQ'] ?? 0;
      const { socket } = await rawConnect((frontend.address() as net.AddressInfo).port, target.address);
      socket.end('no EOF reaches the endpoint');
      await readUntil(socket, () => false);
      socket.destroy();
      await target.closed;
      expect(server.stats.packets.toAgent['HALF_CLOSE']).toBeUndefined();
      expect(server.stats.packets.toAgent['CLOSE_REQ']).toBe(closeRequests + 1);
    });
  });
});
