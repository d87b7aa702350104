/**
 * HTTP-CONNECT in front of a ProxyServer binds each client socket straight to its tunnel connection
 * (`openConnection`), not through `dial()` and a relay; what a client sees is the same, over a shared tunnel and
 * over per-connection substreams (where the client's EOF is a half-close).
 */
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
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
