/**
 * Every wait at the end of a connection has a deadline (issue 11, item 4): the server's CLOSE_RSP wait after a
 * socket's destroy() or its close timer, and after a gRPC frontend left; the agent's flush before its CLOSE_RSP
 * when the server returns no credit; a half-closed socket whose endpoint goes silent. Peers that never answer are
 * played by hand on one end of an in-memory pair, so the test controls exactly what they send.
 */
import { once } from 'node:events';
import type net from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Agent } from '../../../src/agent/index.js';
import {
  PacketType,
  closeRequest,
  dialRequest,
  dialResponse,
  type DialRequestPacket,
  type Packet,
} from '../../../src/protocol/packet.js';
import { ProxyServer } from '../../../src/server/index.js';
import { createMemoryPair, memoryConnector } from '../../../src/transport/memory/index.js';
import type { PacketStream } from '../../../src/transport/packet-stream.js';
import { WINDOW_METADATA_KEY } from '../../../src/tunnel/flow.js';
import { Engine, tcpServer } from '../../helpers/engine.js';
import { listenTcp } from '../http-connect/helpers.js';
import { expectNoLeaks, snapshotResources, type ResourceSnapshot } from '../../helpers/leaks.js';

/** Wait until `cond()` holds, looking every few ms. */
async function until(cond: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** An agent that answers every DIAL_REQ with connectID 1, 2, ... and then never answers anything again. */
async function deafAgent(server: ProxyServer): Promise<{ stream: PacketStream; seen: Packet[] }> {
  const connect = memoryConnector((incoming) => void server.acceptAgent(incoming), { encode: true });
  const stream = await connect({ agentid: ['deaf'] }, {});
  const seen: Packet[] = [];
  let next = 0n;
  stream.on('error', () => {});
  stream.on('packet', (p) => {
    seen.push(p);
    if (p.type === PacketType.DIAL_REQ) stream.write(dialResponse((p as DialRequestPacket).dialRequest!.random, ++next));
  });
  return { stream, seen };
}

const entries = (server: ProxyServer): number => server.agents().reduce((n, a) => n + a.connections, 0);

describe('the server does not wait for ever for a CLOSE_RSP', () => {
  let before: ResourceSnapshot;
  beforeEach(() => {
    before = snapshotResources();
  });
  afterEach(async () => {
    await expectNoLeaks(before);
  });

  it('destroy(): the connection entry of an agent that never answers is dropped after closeTimeoutMs', async () => {
    const server = new ProxyServer({ closeTimeoutMs: 50 });
    const { stream, seen } = await deafAgent(server);
    const socket = await server.dial('10.0.0.1:80');
    expect(entries(server)).toBe(1);
    socket.destroy();
    await until(() => seen.some((p) => p.type === PacketType.CLOSE_REQ), 'CLOSE_REQ');
    await until(() => entries(server) === 0, 'the entry to be dropped');
    expect(server.stats.establishedConnections).toBe(0);
    stream.destroy();
    server.destroy();
  });

  it("close(): the socket is destroyed at its close timer (no 'error'), and its entry dropped after that", async () => {
    const server = new ProxyServer({ closeTimeoutMs: 50 });
    const { stream, seen } = await deafAgent(server);
    const socket = await server.dial('10.0.0.1:80');
    await socket.close();
    expect(seen.some((p) => p.type === PacketType.CLOSE_REQ)).toBe(true);
    expect(socket.errored).toBeNull();
    await until(() => entries(server) === 0, 'the entry to be dropped');
    stream.destroy();
    server.destroy();
  });

  it("end() to a peer that cannot hear it: CLOSE_REQ after halfCloseTimeoutMs of silence, then the close timer (no 'error')", async () => {
    const server = new ProxyServer({ closeTimeoutMs: 50, halfCloseTimeoutMs: 50 });
    const { stream, seen } = await deafAgent(server);
    const socket = await server.dial('10.0.0.1:80');
    socket.resume();
    socket.end();
    await once(socket, 'close');
    expect(seen.some((p) => p.type === PacketType.CLOSE_REQ)).toBe(true);
    expect(socket.errored).toBeNull();
    await until(() => entries(server) === 0, 'the entry to be dropped');
    stream.destroy();
    server.destroy();
  });

  it('a gRPC frontend that leaves: the entry is dropped after closeTimeoutMs when the agent never answers', async () => {
    const server = new ProxyServer({ closeTimeoutMs: 50 });
    const { stream: agentStream } = await deafAgent(server);
    const [frontend, served] = createMemoryPair({ encode: true });
    frontend.on('error', () => {});
    server.acceptFrontend(served);
    frontend.write(dialRequest('10.0.0.1:80', 7n));
    const [rsp] = (await once(frontend, 'packet')) as [Packet];
    expect(rsp.type).toBe(PacketType.DIAL_RSP);
    expect(entries(server)).toBe(1);
    frontend.destroy();
    await until(() => entries(server) === 0 && server.stats.establishedConnections === 0, 'the entry to be dropped');
    agentStream.destroy();
    server.destroy();
  });
});

describe('the agent does not wait for ever to flush before its CLOSE_RSP', () => {
  it('a server that returns no credit still gets CLOSE_RSP closeTimeoutMs after its CLOSE_REQ', async () => {
    const before = snapshotResources();
    const flood = await tcpServer((s) => {
      const chunk = Buffer.alloc(64 * 1024, 1);
      const pump = (): void => {
        while (s.writable && s.write(chunk));
        if (s.writable) s.once('drain', pump);
      };
      pump();
    });
    // The server end, played by hand: it confirms a 64 KiB credit window and never returns any credit.
    const [agentEnd, serverEnd] = createMemoryPair({
      encode: true,
      metadata: { a: { serverid: ['stingy'], servercount: ['1'], [WINDOW_METADATA_KEY]: ['65536'] } },
    });
    serverEnd.on('error', () => {});
    const agent = new Agent({ agentID: 'a', closeTimeoutMs: 50 });
    const tunnel = agent.serve(agentEnd);
    const got: Packet[] = [];
    serverEnd.on('packet', (p) => got.push(p));
    serverEnd.write(dialRequest(flood.address, 1n));
    await until(() => got.some((p) => p.type === PacketType.DIAL_RSP), 'DIAL_RSP');
    await until(() => got.filter((p) => p.type === PacketType.DATA).length > 0, 'DATA');
    const connectID = (got.find((p) => p.type === PacketType.DIAL_RSP) as { dialResponse: { connectID: bigint } }).dialResponse
      .connectID;
    serverEnd.write(closeRequest(connectID));
    await until(() => got.some((p) => p.type === PacketType.CLOSE_RSP), 'CLOSE_RSP');
    await until(() => tunnel.connectionCount === 0, 'the agent to drop the connection');
    agent.destroy();
    serverEnd.destroy();
    await flood.close();
    await expectNoLeaks(before);
  });
});

describe('a half-closed dial() socket (per-connection streams)', () => {
  let before: ResourceSnapshot;
  let engine: Engine;
  beforeEach(() => {
    before = snapshotResources();
  });
  afterEach(async () => {
    await engine.close();
    await expectNoLeaks(before);
  });

  it('is destroyed when its endpoint goes silent after our FIN, halfCloseTimeoutMs later, and its entry goes', async () => {
    engine = new Engine({ substreams: true, server: { halfCloseTimeoutMs: 100 } });
    const held: net.Socket[] = [];
    // Reads our request to EOF (half-open: it does not end its side then), never answers and never closes.
    const silent = await listenTcp((s) => {
      s.resume();
      held.push(s);
    });
    engine.defer(() => silent.close());
    await engine.agent();
    const socket = await engine.server.dial(`127.0.0.1:${silent.port}`);
    socket.resume();
    socket.end('request');
    await once(socket, 'close');
    expect(socket.errored).toBeNull();
    // The endpoint saw our FIN, and both sides dropped the connection.
    expect(held[0]!.readableEnded).toBe(true);
    await engine.expectIdle();
  });

  it('stays open as long as the answer keeps coming, longer than halfCloseTimeoutMs in all', async () => {
    engine = new Engine({ substreams: true, server: { halfCloseTimeoutMs: 2000 } });
    // After our EOF it answers in 60 pieces, 50 ms apart (3 s in all), then closes.
    const slow = await listenTcp((s) => {
      s.resume();
      s.on('end', () => {
        let n = 0;
        const timer = setInterval(() => {
          s.write('x');
          if (++n === 60) {
            clearInterval(timer);
            s.end();
          }
        }, 50);
        s.once('close', () => clearInterval(timer));
      });
    });
    engine.defer(() => slow.close());
    await engine.agent();
    const socket = await engine.server.dial(`127.0.0.1:${slow.port}`);
    let answer = '';
    socket.on('data', (d: Buffer) => (answer += d.toString()));
    socket.end('request');
    await once(socket, 'close');
    expect(socket.errored).toBeNull();
    expect(answer).toBe('x'.repeat(60));
  });
});
