/**
 * Bytes through the HTTP-CONNECT frontend: 64 MiB checksummed each way, 1,000 sequential dials, a stalled client
 * that does not slow another connection, over a fake dialer (TCP straight to the target) and over the real engine
 * (ProxyServer and Agent joined by an in-memory pair, with and without per-connection substreams).
 */
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import type { AddressInfo, Socket } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { connectViaHttpProxy } from '../../../src/client/http-connect.js';
import { createHttpConnectFrontend, type HttpConnectFrontend } from '../../../src/server/frontends/http-connect/index.js';
import { receiveAll, sendPattern } from '../../helpers/engine.js';
import { expectNoLeaks, snapshotResources, type ResourceSnapshot } from '../../helpers/leaks.js';
import { BACKENDS, echoServer, fakeDialer, listenTcp, rawConnect, readUntil, type Backend, type TestServer } from './helpers.js';

const MiB = 1024 * 1024;

describe.each(Object.keys(BACKENDS))('HTTP-CONNECT data over %s', (name) => {
  let before: ResourceSnapshot;
  let backend: Backend;
  let frontend: HttpConnectFrontend;
  let port: number;
  const targets: TestServer[] = [];

  beforeEach(async () => {
    before = snapshotResources();
    backend = await BACKENDS[name]!();
    frontend = createHttpConnectFrontend({ server: backend.dialer });
    await frontend.listen({ port: 0, host: '127.0.0.1' });
    port = (frontend.address() as AddressInfo).port;
  });

  afterEach(async () => {
    await frontend.close({ graceMs: 2000 });
    await backend.close();
    for (const t of targets.splice(0)) await t.close();
    await expectNoLeaks(before);
  });

  it('moves 64 MiB each way, checksummed', async () => {
    const total = 64 * MiB;
    // The target checksums what it receives and sends its own 64 MiB at the same time.
    let targetReceived!: Promise<string>;
    let targetSent!: Promise<string>;
    const target = await listenTcp((socket) => {
      targetReceived = receiveAll(socket, total);
      targetSent = sendPattern(socket, total);
      // Close only when both ways are done: the reference protocol has no half-close.
      void Promise.all([targetReceived, targetSent]).then(() => socket.end());
    });
    targets.push(target);
    const { socket, rest } = await rawConnect(port, `127.0.0.1:${target.port}`);
    // The target speaks first: its first bytes may come in the same read as the 200.
    socket.unshift(rest);
    const receiving = receiveAll(socket, total);
    socket.resume();
    const [sent, received] = await Promise.all([sendPattern(socket, total), receiving]);
    expect(received).toBe(await targetSent);
    expect(await targetReceived).toBe(sent);
    await closeClient(socket);
  });

  it('serves 1,000 sequential CONNECT dials', async () => {
    const target = await echoServer();
    targets.push(target);
    const opened = { count: 0 };
    frontend.on('tunnelOpened', () => (opened.count += 1));
    for (let i = 0; i < 1000; i++) {
      const { socket } = await rawConnect(port, `127.0.0.1:${target.port}`);
      socket.write(`#${i}`);
      const echoed = await readUntil(socket, (d) => d.length >= `#${i}`.length);
      expect(echoed.toString()).toBe(`#${i}`);
      await closeClient(socket);
    }
    expect(opened.count).toBe(1000);
    while (frontend.activeTunnels > 0) await once(frontend, 'tunnelClosed');
  });

  it('a stalled client does not slow another connection', async () => {
    // The flood target writes as long as the kernel and the tunnel take its bytes.
    const floodTotal = 256 * MiB;
    const flood = { accepted: 0, blocked: false };
    const floodTarget = await listenTcp((socket) => {
      const chunk = Buffer.alloc(64 * 1024, 7);
      const pump = (): void => {
        while (flood.accepted < floodTotal && !socket.destroyed) {
          flood.accepted += chunk.length;
          if (!socket.write(chunk)) {
            flood.blocked = true;
            socket.once('drain', pump);
            return;
          }
        }
      };
      pump();
    });
    targets.push(floodTarget);
    const echo = await echoServer();
    targets.push(echo);

    // The stalled client never reads.
    const stalled = await rawConnect(port, `127.0.0.1:${floodTarget.port}`);
    while (!flood.blocked) await new Promise((r) => setTimeout(r, 5));

    const total = 8 * MiB;
    const { socket } = await rawConnect(port, `127.0.0.1:${echo.port}`);
    const receiving = receiveAll(socket, total);
    socket.resume();
    const [sent, received] = await Promise.all([sendPattern(socket, total), receiving]);
    expect(received).toBe(sent);
    // The stalled reader's data is held back at its source, not buffered without bound.
    expect(flood.accepted).toBeLessThan(floodTotal);
    await closeClient(socket);
    stalled.socket.destroy();
  });
});

describe('HTTP-CONNECT half-close (fake dialer: TCP carries it)', () => {
  const fixture = (name: string): Buffer => readFileSync(new URL(`./fixtures/${name}`, import.meta.url));
  it.each(['tcp', 'tls'])('client EOF reaches the target, which still answers (%s)', async (kind) => {
    const before = snapshotResources();
    const frontend = createHttpConnectFrontend({
      server: fakeDialer(),
      ...(kind === 'tls' ? { tls: { key: fixture('server-key.pem'), cert: fixture('server.pem') } } : {}),
    });
    await frontend.listen({ port: 0, host: '127.0.0.1' });
    const target = await listenTcp((socket) => {
      let n = 0;
      socket.on('data', (d: Buffer) => (n += d.length));
      socket.on('end', () => socket.end(`got ${n}`));
    });
    const port = (frontend.address() as AddressInfo).port;
    const socket =
      kind === 'tls'
        ? await connectViaHttpProxy({ proxy: { host: '127.0.0.1', port }, tls: { ca: fixture('ca.pem') }, target: `127.0.0.1:${target.port}` })
        : (await rawConnect(port, `127.0.0.1:${target.port}`)).socket;
    socket.end('12345');
    expect((await readUntil(socket, () => false)).toString()).toBe('got 5');
    socket.destroy();
    await frontend.close();
    await target.close();
    await expectNoLeaks(before);
  });
});

/** End a client socket after its exchange and wait until the tunnel has closed it too. */
async function closeClient(socket: Socket): Promise<void> {
  socket.end();
  socket.resume();
  if (!socket.closed) await once(socket, 'close');
}
