/**
 * One listener convention for the gRPC server, the yamux server and the HTTP-CONNECT frontend (src/transport/
 * listener.ts): `listen(target)` resolves once bound and rejects with the listen error, `address()` is net.Server's,
 * `close()` and `destroy()` are idempotent; loopback by default, Unix sockets with mode 0770, a stale socket file
 * replaced, any other file left alone.
 */
import { mkdtempSync, linkSync, lstatSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ProxyServer, createHttpConnectFrontend } from '../../../src/server/index.js';
import type { Listener } from '../../../src/transport/index.js';
import { GrpcServer } from '../../../src/transport/grpc/index.js';
import { createYamuxServer } from '../../../src/transport/yamux/index.js';
import { expectNoLeaks, snapshotResources, type ResourceSnapshot } from '../../helpers/leaks.js';

const dir = mkdtempSync(join(tmpdir(), 'konnectivity-listeners-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const socketPath = (): string => join(dir, `l${++n}.sock`);

/** A socket file no process listens on, as one that died leaves behind. */
async function staleSocket(path: string): Promise<void> {
  const origin = `${path}.origin`;
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(origin, resolve));
  linkSync(origin, path);
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

function connects(where: net.NetConnectOpts): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(where, () => {
      socket.destroy();
      resolve();
    });
    socket.once('error', reject);
  });
}

const proxy = new ProxyServer({ serverID: 'listeners' });
afterAll(() => proxy.destroy());

const kinds: Array<[name: string, make: () => Listener]> = [
  ['the gRPC server', () => new GrpcServer({ agent: (incoming) => void proxy.acceptAgent(incoming) })],
  ['the yamux server', () => createYamuxServer({ onTunnel: (incoming) => void proxy.acceptAgent(incoming) })],
  ['the HTTP-CONNECT frontend', () => createHttpConnectFrontend({ server: proxy })],
];

describe.each(kinds)('%s', (_name, make) => {
  let before: ResourceSnapshot;
  let listener: Listener;
  beforeEach(() => {
    before = snapshotResources();
    listener = make();
  });
  afterEach(async () => {
    listener.destroy();
    await listener.close();
    await expectNoLeaks(before);
  });

  it('listens on loopback TCP by default, says where, and close() is idempotent', async () => {
    expect(listener.address()).toBeNull();
    await listener.listen({ port: 0 });
    const a = listener.address();
    expect(a).toMatchObject({ address: '127.0.0.1', family: 'IPv4', port: expect.any(Number) });
    const port = (a as net.AddressInfo).port;
    expect(port).toBeGreaterThan(0);
    await connects({ host: '127.0.0.1', port });
    const closing = listener.close();
    expect(listener.close()).toBe(closing);
    await closing;
    expect(listener.address()).toBeNull();
    await expect(connects({ host: '127.0.0.1', port })).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    listener.destroy();
    listener.destroy();
  });

  it('listens on a Unix socket with mode 0770, replacing a stale socket file', async () => {
    const path = socketPath();
    await staleSocket(path);
    expect(lstatSync(path).isSocket()).toBe(true);
    await listener.listen({ path });
    expect(listener.address()).toBe(path);
    expect(lstatSync(path).mode & 0o777).toBe(0o770);
    await connects({ path });
  });

  it('never deletes a file that is not a socket, and can listen elsewhere afterwards', async () => {
    const path = socketPath();
    writeFileSync(path, 'keep me');
    await expect(listener.listen({ path })).rejects.toMatchObject({ code: 'EADDRINUSE' });
    expect(readFileSync(path, 'utf8')).toBe('keep me');
    await listener.listen({ port: 0, host: '127.0.0.1' });
    expect(listener.address()).toMatchObject({ address: '127.0.0.1' });
  });

  it('rejects a port in use with EADDRINUSE, and a second listen() with ERR_INVALID_OPTION', async () => {
    const busy = net.createServer();
    await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
    const { port } = busy.address() as net.AddressInfo;
    try {
      await expect(listener.listen({ port, host: '127.0.0.1' })).rejects.toMatchObject({ code: 'EADDRINUSE' });
    } finally {
      await new Promise<void>((resolve) => busy.close(() => resolve()));
    }
    await listener.listen({ port: 0 });
    await expect(listener.listen({ port: 0 })).rejects.toMatchObject({ code: 'ERR_INVALID_OPTION' });
  });

  it('close({ graceMs, signal }): a connection still open is destroyed when the signal aborts', async () => {
    await listener.listen({ port: 0 });
    const { port } = listener.address() as net.AddressInfo;
    // A client that connects and then says nothing and reads nothing: open work the grace period would wait for.
    const silent = net.connect({ host: '127.0.0.1', port });
    silent.on('error', () => {});
    silent.pause();
    await new Promise<void>((resolve) => silent.once('connect', () => resolve()));
    await new Promise((r) => setTimeout(r, 20));
    const ac = new AbortController();
    const closing = listener.close({ graceMs: 600_000, signal: ac.signal });
    ac.abort();
    await closing;
    expect(listener.address()).toBeNull();
    silent.destroy();
    await expect(listener.close({ graceMs: -1 })).resolves.toBeUndefined();
  });

  it('close() before listen() resolves, and a closed listener does not listen again', async () => {
    await listener.close();
    expect(listener.address()).toBeNull();
    await expect(listener.listen({ port: 0 })).rejects.toMatchObject({ code: 'ERR_INVALID_OPTION' });
  });
});
