/**
 * HTTP-CONNECT in front of a ProxyServer binds each client socket straight to its tunnel connection
 * (`openConnection`), not through `dial()` and a relay; what a client sees is the same, over a shared tunnel and
 * over per-connection substreams (where the client's EOF is a half-close).
 */
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createHttpConnectFrontend, type HttpConnectFrontend } from '../../../src/server/frontends/http-connect/index.js';
import { Engine } from '../../helpers/engine.js';
import { expectNoLeaks, snapshotResources, type ResourceSnapshot } from '../../helpers/leaks.js';
import { echoServer, listenTcp, rawConnect, readUntil } from './helpers.js';

let before: ResourceSnapshot;
let engine: Engine;
let frontend: HttpConnectFrontend;

async function start(substreams: boolean, halfClose = true): Promise<number> {
  engine = new Engine({ substreams });
  await engine.agent({ halfClose });
  frontend = createHttpConnectFrontend({ server: engine.server });
  await frontend.listen({ port: 0, host: '127.0.0.1' });
  return (frontend.address() as AddressInfo).port;
}

beforeEach(() => {
  before = snapshotResources();
});

afterEach(async () => {
  await frontend.close({ graceMs: 1000 });
  await engine.close();
  await expectNoLeaks(before);
});

describe.each([false, true])('HTTP-CONNECT bound to the tunnel connection (substreams: %s)', (substreams) => {
  it('opens the connection with openConnection(), never dial(), and relays both ways', async () => {
    const port = await start(substreams);
    const dial = vi.spyOn(engine.server, 'dial');
    const open = vi.spyOn(engine.server, 'openConnection');
    const target = await echoServer();
    engine.defer(() => target.close());
    const { socket, rest } = await rawConnect(port, `127.0.0.1:${target.port}`);
    expect(rest.length).toBe(0);
    socket.write('ping');
    expect((await readUntil(socket, (d) => d.length >= 4)).toString()).toBe('ping');
    expect(open).toHaveBeenCalledTimes(1);
    expect(dial).not.toHaveBeenCalled();
    expect(engine.server.stats.establishedConnections).toBe(1);
    socket.end();
    socket.resume();
    if (!socket.closed) await once(socket, 'close');
    while (engine.server.stats.establishedConnections > 0) await new Promise((r) => setTimeout(r, 5));
  });

  it("the client's EOF reaches the target after its data (over a substream its answer still comes back)", async () => {
    const port = await start(substreams);
    const seenAtEnd: number[] = [];
    const target = await listenTcp((socket) => {
      let n = 0;
      socket.on('data', (d: Buffer) => (n += d.length));
      socket.on('end', () => {
        seenAtEnd.push(n);
        socket.end(`got ${n}`);
      });
    });
    engine.defer(() => target.close());
    const { socket } = await rawConnect(port, `127.0.0.1:${target.port}`);
    socket.end('12345');
    const answer = (await readUntil(socket, () => false)).toString();
    expect(seenAtEnd).toEqual([5]);
    // Our agent hears the half-close (a substream's FIN, or HALF_CLOSE on a shared tunnel), and the answer comes back.
    expect(answer).toBe('got 5');
    socket.destroy();
  });

  // A substream's FIN always carries the half-close; on a shared tunnel it takes the agent's offer.
  it.runIf(!substreams)("toward an agent that cannot hear a half-close, the client's EOF closes the connection after its data", async () => {
    const port = await start(substreams, false);
    const seenAtEnd: number[] = [];
    const target = await listenTcp((socket) => {
      let n = 0;
      socket.on('data', (d: Buffer) => (n += d.length));
      socket.on('end', () => seenAtEnd.push(n));
      socket.on('error', () => {});
    });
    engine.defer(() => target.close());
    const { socket } = await rawConnect(port, `127.0.0.1:${target.port}`);
    socket.end('12345');
    socket.resume();
    if (!socket.closed) await once(socket, 'close');
    // CLOSE_REQ went after the data, as the reference server sends it: the agent flushed, then closed the endpoint.
    while (seenAtEnd.length === 0) await new Promise((r) => setTimeout(r, 5));
    expect(seenAtEnd).toEqual([5]);
  });

  it('a CONNECT keeps one set of shared listeners from its dial to its end: opening the tunnel adds none', async () => {
    const port = await start(substreams);
    const target = await echoServer();
    engine.defer(() => target.close());
    const sockets: Array<{ socket: Duplex; atDial: Map<string, Function[]> }> = [];
    const events = ['data', 'end', 'close', 'error', 'drain'];
    const own = http.createServer();
    own.on('connect', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
      frontend.handleConnect(req, socket, head);
      sockets.push({ socket, atDial: new Map(events.map((e) => [e, socket.listeners(e) as Function[]])) });
    });
    await new Promise<void>((r) => own.listen(0, '127.0.0.1', r));
    engine.defer(() => new Promise<void>((r) => own.close(() => r())));
    const ownPort = (own.address() as AddressInfo).port;
    const clients = [await rawConnect(ownPort, `127.0.0.1:${target.port}`), await rawConnect(ownPort, `127.0.0.1:${target.port}`)];
    for (const { socket } of clients) {
      socket.write('ping');
      expect((await readUntil(socket, (d) => d.length >= 4)).toString()).toBe('ping');
    }
    const [one, two] = sockets;
    for (const e of events) {
      // The same functions once the tunnel is open as while it was dialed, and the same for both sockets.
      expect(one!.socket.listeners(e), e).toEqual(one!.atDial.get(e));
      const mine = one!.socket.listeners(e).filter((f) => !two!.socket.listeners(e).includes(f));
      expect(mine, e).toEqual([]);
    }
    for (const { socket } of clients) {
      socket.end();
      socket.resume();
      if (!socket.closed) await once(socket, 'close');
    }
    while (engine.server.stats.establishedConnections > 0) await new Promise((r) => setTimeout(r, 5));
  });

  it('the server shutting down closes the client', async () => {
    const port = await start(substreams);
    const target = await echoServer();
    engine.defer(() => target.close());
    const { socket } = await rawConnect(port, `127.0.0.1:${target.port}`);
    socket.resume();
    engine.server.destroy();
    await once(socket, 'close');
  });
});
