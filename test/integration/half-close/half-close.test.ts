/**
 * `end()` on a TunnelSocket is a half-close, as on a net.Socket: the endpoint sees EOF and its answer still comes
 * back, over every agent leg (an in-memory pair with one shared stream and with substreams, gRPC, yamux on TCP),
 * through the gRPC frontend (GrpcProxyClient) and through the HTTP-CONNECT frontend (the client's FIN). Toward a
 * peer that did not offer the extension (as a Go agent does not) HALF_CLOSE is never sent: `end()` then stops
 * writing and reads until the peer closes, and the bounded wait (`halfCloseTimeoutMs`) ends a peer that never does.
 * Real sockets on loopback, port 0.
 */
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Agent, type AgentOptions } from '../../../src/agent/index.js';
import { GrpcProxyClient } from '../../../src/client/index.js';
import { ProxyServer, createHttpConnectFrontend } from '../../../src/server/index.js';
import { createGrpcServer, grpcAgentConnector } from '../../../src/transport/grpc/index.js';
import { memoryConnector } from '../../../src/transport/memory/index.js';
import type { TunnelConnector } from '../../../src/transport/packet-stream.js';
import { createYamuxServer, tcpCarrier, yamuxAgentConnector } from '../../../src/transport/yamux/index.js';
import { tcpServer } from '../../helpers/engine.js';
import { drain, eofTarget, requestTarget, silentTarget } from '../../helpers/half-close.js';
import { expectNoLeaks, snapshotResources, type ResourceSnapshot } from '../../helpers/leaks.js';
import { listenTcp, rawConnect, readUntil } from '../http-connect/helpers.js';

/** One way for an agent to reach the server; `substreams` when each connection has a stream of its own. */
interface Leg {
  name: string;
  substreams: boolean;
  /** Start the listener (if any) for `server`; returns the agents' connector and how to stop it. */
  start(server: ProxyServer): Promise<{ connector: TunnelConnector; grpcPort?: number; close(): Promise<void> }>;
}

const LEGS: Leg[] = [
  {
    name: 'memory, one shared stream',
    substreams: false,
    start: async (server) => ({
      connector: memoryConnector((i) => void server.acceptAgent(i), { encode: true }),
      close: async () => {},
    }),
  },
  {
    name: 'memory with substreams',
    substreams: true,
    start: async (server) => ({
      connector: memoryConnector((i) => void server.acceptAgent(i), { encode: true, substreams: true }),
      close: async () => {},
    }),
  },
  {
    name: 'gRPC',
    substreams: false,
    start: async (server) => {
      const grpc = await createGrpcServer({ port: 0, agent: (i) => server.acceptAgent(i), frontend: (s) => server.acceptFrontend(s) });
      return {
        connector: grpcAgentConnector({ address: `127.0.0.1:${grpc.port}` }),
        grpcPort: grpc.port,
        close: () => grpc.close({ graceMs: 0 }),
      };
    },
  },
  {
    name: 'yamux over TCP',
    substreams: true,
    start: async (server) => {
      const yamux = createYamuxServer({ onTunnel: (i) => void server.acceptAgent(i) });
      await yamux.listen({ port: 0, host: '127.0.0.1' });
      const { port } = yamux.address() as AddressInfo;
      return { connector: yamuxAgentConnector({ connect: tcpCarrier({ host: '127.0.0.1', port }) }), close: () => yamux.close({ graceMs: 0 }) };
    },
  },
];

let before: ResourceSnapshot;
let cleanups: Array<() => Promise<void> | void>;

beforeEach(() => {
  before = snapshotResources();
  cleanups = [];
});

afterEach(async () => {
  for (const fn of cleanups.reverse()) await fn();
  await expectNoLeaks(before);
});

describe.each(LEGS)('half-close over $name', (leg) => {
  async function setup(agentOptions: Partial<AgentOptions> = {}) {
    const server = new ProxyServer({ serverID: 'hc-server' });
    const listener = await leg.start(server);
    const agent = new Agent({ agentID: 'hc-agent', ...agentOptions });
    cleanups.push(async () => {
      agent.destroy();
      server.destroy();
      await listener.close();
    });
    await agent.connect(listener.connector);
    return { server, agent, grpcPort: listener.grpcPort };
  }

  it('server.dial(): end(data) reaches the endpoint as EOF, and its answer comes back', async () => {
    const target = await eofTarget();
    cleanups.push(() => target.close());
    const { server } = await setup();
    const socket = await server.dial(target.address);
    socket.end('x'.repeat(100_000));
    expect(socket.halfCloseCarried).toBe(true);
    expect(await drain(socket)).toEqual({ text: 'got 100000 bytes', errored: null });
    // A shared stream says it with one HALF_CLOSE; a substream with its FIN.
    expect(server.stats.packets.toAgent['HALF_CLOSE'] ?? 0).toBe(leg.substreams ? 0 : 1);
  });

  it('destroy() after end() closes at once', async () => {
    // The target reads (so it sees the connection end) and never answers.
    const target = await tcpServer((s) => s.resume());
    cleanups.push(() => target.close());
    const { server } = await setup();
    const socket = await server.dial(target.address);
    socket.end('half');
    await once(socket, 'finish');
    socket.destroy();
    await once(socket, 'close');
    expect(socket.errored).toBeNull();
    // The endpoint goes too.
    while (target.sockets.size > 0) await new Promise((r) => setTimeout(r, 5));
  });

  it.skipIf(leg.substreams)('toward an agent that did not offer it (a Go agent), no HALF_CLOSE: end() only stops writing, reads go on', async () => {
    const target = await requestTarget();
    cleanups.push(() => target.close());
    const { server } = await setup({ halfClose: false });
    const socket = await server.dial(target.address);
    expect(socket.halfCloseCarried).toBe(false);
    socket.end('GET /');
    expect(await drain(socket)).toEqual({ text: 'answer to GET /', errored: null });
    expect(server.stats.packets.toAgent['HALF_CLOSE']).toBeUndefined();
  });

  it.skipIf(leg.substreams)("HTTP-CONNECT toward such an agent: the client's FIN closes the connection as the reference does (CLOSE_REQ)", async () => {
    const target = await silentTarget();
    cleanups.push(() => target.close());
    const { server } = await setup({ halfClose: false });
    const frontend = createHttpConnectFrontend({ server });
    await frontend.listen({ port: 0, host: '127.0.0.1' });
    cleanups.push(() => frontend.close({ graceMs: 0 }));
    const { socket } = await rawConnect((frontend.address() as AddressInfo).port, target.address);
    socket.end('no EOF reaches the endpoint');
    const answer = await readUntil(socket, () => false);
    socket.destroy();
    expect(answer.length).toBe(0);
    await target.closed;
    expect(server.stats.packets.toAgent['HALF_CLOSE']).toBeUndefined();
    expect(server.stats.packets.toAgent['CLOSE_REQ']).toBe(1);
  });

  it.skipIf(leg.substreams)('toward such an agent, an endpoint that waits for EOF is closed after halfCloseTimeoutMs (CLOSE_REQ)', async () => {
    const target = await silentTarget();
    cleanups.push(() => target.close());
    const { server } = await setup({ halfClose: false });
    const socket = await server.dial(target.address, { halfCloseTimeoutMs: 200 });
    socket.end('waiting for an EOF that never comes');
    // Readers get a clean EOF once the agent answered the CLOSE_REQ.
    expect(await drain(socket)).toEqual({ text: '', errored: null });
    await target.closed;
    expect(server.stats.packets.toAgent['HALF_CLOSE']).toBeUndefined();
    expect(server.stats.packets.toAgent['CLOSE_REQ']).toBe(1);
  });

  it('the wait after end() starts again with each chunk from the peer, so a slow answer is not cut', async () => {
    // Four chunks 250 ms apart, with a wait of 600 ms: each arrives well inside the wait its predecessor restarted.
    // The target stays open for writing after our FIN, where it is carried (allowHalfOpen).
    const target = await listenTcp((s) => {
      s.once('data', () => {
        let n = 0;
        const timer = setInterval(() => {
          n += 1;
          s.write(`chunk ${n};`);
          if (n === 4) {
            clearInterval(timer);
            s.end();
          }
        }, 250);
        s.once('close', () => clearInterval(timer));
      });
    });
    cleanups.push(() => target.close());
    const { server } = await setup({ halfClose: false });
    const socket = await server.dial(`127.0.0.1:${target.port}`, { halfCloseTimeoutMs: 600 });
    socket.end('go');
    expect(await drain(socket)).toEqual({ text: 'chunk 1;chunk 2;chunk 3;chunk 4;', errored: null });
  });

  it('close(): CLOSE_REQ after the queued data, whether or not the peer hears half-closes, and the socket closes', async () => {
    const target = await silentTarget();
    cleanups.push(() => target.close());
    const { server } = await setup({ halfClose: false });
    const socket = await server.dial(target.address);
    socket.write('queued first');
    await socket.close();
    expect(socket.errored).toBeNull();
    await target.closed;
    expect(server.stats.packets.toAgent['CLOSE_REQ']).toBe(1);
    expect(server.stats.packets.toAgent['DATA']).toBe(1);
  });

  it('close() after end() does not wait for halfCloseTimeoutMs', async () => {
    const target = await silentTarget();
    cleanups.push(() => target.close());
    const { server } = await setup();
    const socket = await server.dial(target.address);
    socket.end('half');
    await once(socket, 'finish');
    await socket.close();
    expect(socket.errored).toBeNull();
    await target.closed;
  });

  it('refuses a bad halfCloseTimeoutMs', async () => {
    const { server } = await setup();
    const err = await server.dial('127.0.0.1:1', { halfCloseTimeoutMs: -1 }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ERR_INVALID_OPTION' });
  });

  it.runIf(leg.name === 'gRPC')('GrpcProxyClient: end(data) passes through the gRPC frontend to the endpoint', async () => {
    const target = await eofTarget();
    cleanups.push(() => target.close());
    const { server, grpcPort } = await setup();
    const client = new GrpcProxyClient({ address: `127.0.0.1:${grpcPort!}` });
    cleanups.push(() => client.destroy());
    const socket = await client.dial(target.address);
    socket.end('y'.repeat(70_000));
    expect(await drain(socket)).toEqual({ text: 'got 70000 bytes', errored: null });
    expect(server.stats.packets.fromFrontend['HALF_CLOSE']).toBe(1);
    expect(server.stats.packets.toAgent['HALF_CLOSE']).toBe(1);
  });

  it.runIf(leg.name === 'gRPC')('GrpcProxyClient with halfClose: false offers nothing and sends no HALF_CLOSE', async () => {
    const target = await requestTarget();
    cleanups.push(() => target.close());
    const { server, grpcPort } = await setup();
    const client = new GrpcProxyClient({ address: `127.0.0.1:${grpcPort!}`, halfClose: false });
    cleanups.push(() => client.destroy());
    const socket = await client.dial(target.address);
    socket.end('ping');
    expect(await drain(socket)).toEqual({ text: 'answer to ping', errored: null });
    expect(server.stats.packets.fromFrontend['HALF_CLOSE']).toBeUndefined();
    expect(server.stats.packets.toAgent['HALF_CLOSE']).toBeUndefined();
  });

  it("HTTP-CONNECT: the client's FIN reaches the endpoint as EOF, and its answer comes back", async () => {
    const target = await eofTarget();
    cleanups.push(() => target.close());
    const { server } = await setup();
    const frontend = createHttpConnectFrontend({ server });
    await frontend.listen({ port: 0, host: '127.0.0.1' });
    cleanups.push(() => frontend.close({ graceMs: 0 }));
    const { socket, rest } = await rawConnect((frontend.address() as AddressInfo).port, target.address);
    expect(rest.length).toBe(0);
    socket.end('z'.repeat(50_000));
    const answer = await readUntil(socket, () => false);
    socket.destroy();
    expect(answer.toString()).toBe('got 50000 bytes');
  });
});
