/**
 * The frontend's life: listen (TCP, Unix socket, errors), graceful close() that lets tunnels finish, close() with an
 * expired grace period, destroy() with pending dials and open tunnels, option checks.
 */
import { once } from 'node:events';
import { mkdtempSync, rmSync, statSync, writeFileSync, existsSync } from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import type { Duplex } from 'node:stream';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ErrorCode, KonnectivityError } from '../../../src/protocol/errors.js';
import { createHttpConnectFrontend, type HttpConnectFrontend } from '../../../src/server/frontends/http-connect/index.js';
import { expectNoLeaks, snapshotResources, type ResourceSnapshot } from '../../helpers/leaks.js';
import { echoServer, fakeDialer, rawClient, rawConnect, readUntil, type FakeDialer, type TestServer } from './helpers.js';

let before: ResourceSnapshot;
let dialer: FakeDialer;
let target: TestServer;
let frontend: HttpConnectFrontend;
let dir: string;

beforeEach(async () => {
  before = snapshotResources();
  dialer = fakeDialer();
  target = await echoServer();
  frontend = createHttpConnectFrontend({ server: dialer });
  dir = mkdtempSync(join(tmpdir(), 'knp-http-'));
});

afterEach(async () => {
  frontend.destroy();
  await target.close();
  rmSync(dir, { recursive: true, force: true });
  await expectNoLeaks(before);
});

async function listenTcp(): Promise<number> {
  await frontend.listen({ port: 0, host: '127.0.0.1' });
  return (frontend.address() as net.AddressInfo).port;
}

/** One open tunnel and one dial that never completes; `closed` resolves once both clients have closed. */
async function openTunnelAndPendingDial(port: number): Promise<{ closed: Promise<unknown> }> {
  const { socket } = await rawConnect(port, `127.0.0.1:${target.port}`);
  const pending = await rawClient(port, 'CONNECT hang.test:80 HTTP/1.1\r\n\r\n');
  while (frontend.pendingDials === 0) await new Promise((r) => setImmediate(r));
  const closed = Promise.all([once(socket, 'close'), once(pending, 'close')]);
  socket.resume();
  pending.resume();
  return { closed };
}

function connectError(port: number): Promise<NodeJS.ErrnoException> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      reject(new Error('connected'));
    });
    s.once('error', resolve);
  });
}

describe('HTTP-CONNECT frontend lifecycle', () => {
  it('close() stops listening, lets open tunnels finish, then resolves', async () => {
    const port = await listenTcp();
    const { socket } = await rawConnect(port, `127.0.0.1:${target.port}`);
    let closed = false;
    const closing = frontend.close({ graceMs: 60_000 }).then(() => (closed = true));
    expect((await connectError(port)).code).toBe('ECONNREFUSED');
    // The open tunnel still works.
    socket.write('still open');
    expect((await readUntil(socket, (d) => d.length >= 10)).toString()).toBe('still open');
    expect(closed).toBe(false);
    socket.end();
    socket.resume();
    await closing;
    expect(frontend.activeTunnels).toBe(0);
    expect(await frontend.close()).toBeUndefined(); // idempotent
  });

  it('close() destroys what is left when the grace period ends', async () => {
    const clients = await openTunnelAndPendingDial(await listenTcp());
    await frontend.close({ graceMs: 20 });
    await clients.closed;
    expect(dialer.aborted).toBe(1);
  });

  it('destroy() closes open tunnels and aborts pending dials at once', async () => {
    const clients = await openTunnelAndPendingDial(await listenTcp());
    frontend.destroy();
    frontend.destroy(); // idempotent
    await clients.closed;
    expect(dialer.aborted).toBe(1);
    expect(dialer.sockets.every((s) => s.destroyed)).toBe(true);
  });

  it('close() is not held by an idle keep-alive client', async () => {
    const port = await listenTcp();
    const client = await rawClient(port, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    await readUntil(client, (d) => d.includes('passthrough\n'));
    client.resume();
    await frontend.close({ graceMs: 60_000 });
    client.destroy();
  });

  it('listens on a Unix socket with mode 0770 and removes it on close', async () => {
    const path = join(dir, 'proxy.sock');
    await frontend.listen({ path });
    expect(statSync(path).mode & 0o777).toBe(0o770);
    const socket = net.connect(path);
    socket.end(`CONNECT 127.0.0.1:${target.port} HTTP/1.1\r\n\r\nuds`);
    const response = await readUntil(socket, () => false);
    expect(response.toString()).toBe('HTTP/1.1 200 Connection Established\r\n\r\nuds');
    socket.destroy();
    await frontend.close();
    expect(existsSync(path)).toBe(false);
  });

  it('never deletes a regular file in place of a stale socket', async () => {
    const path = join(dir, 'not-a-socket');
    writeFileSync(path, 'keep me');
    await expect(frontend.listen({ path })).rejects.toMatchObject({ code: 'EADDRINUSE' });
    expect(existsSync(path)).toBe(true);
  });

  it('rejects a port in use, and can listen again afterwards', async () => {
    const other = createHttpConnectFrontend({ server: dialer });
    const port = await listenTcp();
    await expect(other.listen({ port, host: '127.0.0.1' })).rejects.toMatchObject({ code: 'EADDRINUSE' });
    await other.listen({ port: 0, host: '127.0.0.1' });
    await other.close();
  });

  it.each([
    [{}],
    [{ server: dialer0(), maxHeaderSize: 0 }],
    [{ server: dialer0(), lingerMs: -1 }],
    [{ server: dialer0(), dialTimeoutMs: Number.NaN }],
  ])('refuses bad options %#', (options) => {
    expect(() => createHttpConnectFrontend(options as never)).toThrow(KonnectivityError);
    try {
      createHttpConnectFrontend(options as never);
    } catch (err) {
      expect((err as KonnectivityError).code).toBe(ErrorCode.INVALID_OPTION);
    }
  });
});

function dialer0(): FakeDialer {
  return fakeDialer();
}

describe('HTTP-CONNECT header timeout', () => {
  it('drops a client that never finishes its header, never an open tunnel', async () => {
    const before = snapshotResources();
    const target = await echoServer();
    const frontend = createHttpConnectFrontend({ server: fakeDialer(), headersTimeoutMs: 200 });
    await frontend.listen({ port: 0, host: '127.0.0.1' });
    const port = (frontend.address() as net.AddressInfo).port;
    const { socket } = await rawConnect(port, `127.0.0.1:${target.port}`);
    const slow = await rawClient(port, 'CONNECT 127.0.0.1:1 HTTP/1.1\r\nX-Slow: ');
    slow.resume();
    await once(slow, 'close');
    // The tunnel opened before the slow client has outlived the check that dropped it.
    socket.write('alive');
    expect((await readUntil(socket, (d) => d.length >= 5)).toString()).toBe('alive');
    socket.destroy();
    await frontend.close();
    await target.close();
    await expectNoLeaks(before);
  });
});

describe('HTTP-CONNECT embedded in a server the caller owns', () => {
  it('serves CONNECTs handed over by handleConnect after the caller’s own check', async () => {
    const before = snapshotResources();
    const target = await echoServer();
    const frontend = createHttpConnectFrontend({ server: fakeDialer() });
    const own = http.createServer();
    own.on('connect', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
      if (req.headers['proxy-authorization'] !== 'Bearer good') {
        socket.end('HTTP/1.1 407 Proxy Authentication Required\r\n\r\n');
        return;
      }
      frontend.handleConnect(req, socket, head);
    });
    own.listen(0, '127.0.0.1');
    await once(own, 'listening');
    const port = (own.address() as net.AddressInfo).port;

    const refused = await rawClient(port, `CONNECT 127.0.0.1:${target.port} HTTP/1.1\r\n\r\n`);
    expect((await readUntil(refused, () => false)).toString()).toMatch(/^HTTP\/1\.1 407 /);
    refused.destroy();

    const socket = await rawClient(port, `CONNECT 127.0.0.1:${target.port} HTTP/1.1\r\nProxy-Authorization: Bearer good\r\n\r\nok`);
    const expected = 'HTTP/1.1 200 Connection Established\r\n\r\nok';
    expect((await readUntil(socket, (d) => d.length >= expected.length)).toString()).toBe(expected);
    expect(frontend.activeTunnels).toBe(1);
    const closed = once(socket, 'close');
    socket.resume();
    frontend.destroy();
    await closed;
    own.close();
    await once(own, 'close');
    await target.close();
    await expectNoLeaks(before);
  });
});
