/**
 * The gRPC server's life: Unix socket file handling, graceful close (GOAWAY), grace expiry, destroy, non-gRPC
 * requests, keepalive pings, option checks.
 */
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ErrorCode, KonnectivityError, dataPacket } from '../../../src/protocol/index.js';
import {
  GrpcConnection,
  createGrpcServer,
  grpcAgentConnector,
  openProxyStream,
  parseGrpcAddress,
  type GrpcServer,
} from '../../../src/transport/grpc/index.js';
import type { PacketStream } from '../../../src/transport/packet-stream.js';
import { expectNoLeaks, snapshotResources, type ResourceSnapshot } from '../../helpers/leaks.js';
import { tempSocketPath, until } from './helpers.js';

function closeEvent(stream: PacketStream): Promise<Error | undefined> {
  return new Promise((resolve) => (stream.closed && !stream.listenerCount('close') ? resolve(stream.errored) : stream.once('close', resolve)));
}

describe('gRPC server lifecycle', () => {
  let before: ResourceSnapshot;
  let server: GrpcServer | undefined;
  let accepted: PacketStream[];

  beforeEach(() => {
    before = snapshotResources();
    accepted = [];
  });
  afterEach(async () => {
    server?.destroy();
    await server?.close();
    server = undefined;
    await expectNoLeaks(before, { timeoutMs: 5000 });
  });

  async function start(extra: Parameters<typeof createGrpcServer>[0] = {}): Promise<GrpcServer> {
    server = await createGrpcServer({
      port: 0,
      agent: (incoming) => {
        const s = incoming.accept({ serverid: ['s'] });
        s.on('error', () => {});
        s.on('end', () => void s.close());
        accepted.push(s);
      },
      ...extra,
    });
    return server;
  }

  it('creates the Unix socket with mode 0770 and replaces a stale socket file', async () => {
    const path = tempSocketPath();
    // A socket file left by a process that died (Python binds and exits without unlinking).
    const py = spawnSync('/usr/bin/python3', ['-c', `import socket; socket.socket(socket.AF_UNIX).bind(${JSON.stringify(path)})`]);
    if (py.status === 0) expect(fs.lstatSync(path).isSocket()).toBe(true);
    await start({ socketPath: path });
    expect(fs.statSync(path).mode & 0o777).toBe(0o770);
    const stream = await grpcAgentConnector({ socketPath: path })({ agentid: ['a'] }, {});
    expect(stream.remoteAddress).toBe(`unix:${path}`);
    await stream.close();
  });

  it('refuses to remove a file that is not a socket', async () => {
    const path = tempSocketPath();
    fs.writeFileSync(path, 'not a socket');
    await expect(createGrpcServer({ socketPath: path })).rejects.toThrow();
    expect(fs.readFileSync(path, 'utf8')).toBe('not a socket');
  });

  it('close() lets open calls finish and refuses new connections', async () => {
    const srv = await start();
    const connect = grpcAgentConnector({ address: `127.0.0.1:${srv.port}` });
    const stream = await connect({ agentid: ['a'] }, {});
    stream.on('error', () => {});
    const closing = srv.close({ graceMs: 10_000 });
    // The call keeps working during the grace period.
    const echoed = new Promise((resolve) => accepted[0]!.once('packet', resolve));
    stream.write(dataPacket(1n, Buffer.from('still open')));
    await echoed;
    await expect(connect({ agentid: ['b'] }, {})).rejects.toBeInstanceOf(KonnectivityError);
    await stream.close();
    await closing;
  });

  it("a call's transport is no longer ready once the server sends GOAWAY, while the call itself still works", async () => {
    const srv = await start();
    const stream = await grpcAgentConnector({ address: `127.0.0.1:${srv.port}` })({ agentid: ['a'] }, {});
    stream.on('error', () => {});
    expect(stream.transportReady).toBe(true);
    const closing = srv.close({ graceMs: 10_000 });
    while (stream.transportReady) await new Promise((r) => setTimeout(r, 5));
    expect(stream.closed).toBe(false);
    const echoed = new Promise((resolve) => accepted[0]!.once('packet', resolve));
    stream.write(dataPacket(1n, Buffer.from('still open')));
    await echoed;
    await stream.close();
    await closing;
  });

  it('close() destroys calls still open when the grace period ends', async () => {
    const srv = await start();
    const stream = await grpcAgentConnector({ address: `127.0.0.1:${srv.port}` })({ agentid: ['a'] }, {});
    stream.on('error', () => {});
    const closed = closeEvent(stream);
    await srv.close({ graceMs: 50 });
    expect(await closed).toBeInstanceOf(KonnectivityError);
  });

  it('a client that ends its side and then resets the call (it gave up waiting) closes the server end', async () => {
    // This server's handler never ends its side when the client does.
    const held: PacketStream[] = [];
    server = await createGrpcServer({
      port: 0,
      agent: (incoming) => {
        const s = incoming.accept({ serverid: ['s'] });
        s.on('error', () => {});
        held.push(s);
      },
    });
    const stream = await grpcAgentConnector({ address: `127.0.0.1:${server.port}` })({ agentid: ['a'] }, {});
    stream.on('error', () => {});
    void stream.close();
    while (held.length === 0) await new Promise((r) => setTimeout(r, 5));
    const serverEnd = held[0]!;
    await new Promise<void>((r) => serverEnd.once('end', () => r()));
    stream.destroy();
    const err = await closeEvent(serverEnd);
    expect(err).toMatchObject({ code: ErrorCode.STREAM_CLOSED });
    // Ending our side afterwards finishes at once instead of waiting for a call that is gone.
    await serverEnd.close().catch(() => undefined);
  });

  it('destroy() ends every call at once with an error on the client', async () => {
    const srv = await start();
    const stream = await grpcAgentConnector({ address: `127.0.0.1:${srv.port}` })({ agentid: ['a'] }, {});
    stream.on('error', () => {});
    const closed = closeEvent(stream);
    srv.destroy();
    const err = await closed;
    expect(err).toBeInstanceOf(KonnectivityError);
  });

  it('answers non-gRPC requests with HTTP errors and a call to a missing handler with UNIMPLEMENTED', async () => {
    const srv = await start();
    const session = http2.connect(`http://127.0.0.1:${srv.port}`);
    const status = (headers: http2.OutgoingHttpHeaders): Promise<http2.IncomingHttpHeaders> =>
      new Promise((resolve, reject) => {
        const req = session.request(headers);
        req.on('response', resolve);
        req.on('error', reject);
        req.resume();
        req.end();
      });
    expect((await status({ ':method': 'GET', ':path': '/AgentService/Connect' }))[':status']).toBe(405);
    expect((await status({ ':method': 'POST', ':path': '/AgentService/Connect', 'content-type': 'text/plain' }))[':status']).toBe(415);
    const unimplemented = await status({ ':method': 'POST', ':path': '/ProxyService/Proxy', 'content-type': 'application/grpc' });
    expect(unimplemented['grpc-status']).toBe('12');
    session.close();
    // Through our own client: a frontend call to a server that only serves agents.
    const proxy = openProxyStream({ address: `127.0.0.1:${srv.port}` });
    proxy.on('error', () => {});
    await expect(proxy.ready).rejects.toMatchObject({ code: ErrorCode.PROTOCOL, message: expect.stringMatching(/UNIMPLEMENTED/) });
  });

  it('answers garbage with an error status and keeps serving', async () => {
    const srv = await start({ frontend: (s) => void s.on('error', () => {}) });
    const session = http2.connect(`http://127.0.0.1:${srv.port}`);
    const call = (body: Buffer): Promise<string | undefined> =>
      new Promise((resolve, reject) => {
        const req = session.request({ ':method': 'POST', ':path': '/ProxyService/Proxy', 'content-type': 'application/grpc', te: 'trailers' });
        req.on('trailers', (t) => resolve(t['grpc-status'] as string | undefined));
        req.on('response', (h) => h['grpc-status'] !== undefined && resolve(h['grpc-status'] as string));
        req.on('error', reject);
        req.resume();
        req.end(body);
      });
    // A compressed message (none was negotiated), a message that is not a Packet (INTERNAL, as grpc-go answers a
    // message it cannot unmarshal), and a truncated message.
    expect(await call(Buffer.from([1, 0, 0, 0, 1, 0]))).toBe(String(3));
    expect(await call(Buffer.from([0, 0, 0, 0, 2, 0xff, 0xff]))).toBe(String(13));
    expect(await call(Buffer.from([0, 0, 0, 0, 9, 8]))).toBe(String(3));
    session.close();
    const stream = await grpcAgentConnector({ address: `127.0.0.1:${srv.port}` })({ agentid: ['a'] }, {});
    await stream.close();
  });

  it('pings clients every keepaliveTimeMs', async () => {
    const srv = await start({ keepaliveTimeMs: 20 });
    const session = http2.connect(`http://127.0.0.1:${srv.port}`);
    await new Promise<void>((resolve) => session.once('ping', () => resolve()));
    session.close();
  });

  it('checks options', async () => {
    await expect(createGrpcServer({ port: 70000 })).rejects.toMatchObject({ code: ErrorCode.INVALID_OPTION });
    await expect(createGrpcServer({ socketPath: '/tmp/x.sock', tls: { key: '', cert: '' } })).rejects.toMatchObject({
      code: ErrorCode.INVALID_OPTION,
    });
    await expect(createGrpcServer({ windowBytes: 10 })).rejects.toMatchObject({ code: ErrorCode.INVALID_OPTION });
    expect(() => grpcAgentConnector({})).toThrow(KonnectivityError);
    expect(() => grpcAgentConnector({ address: '127.0.0.1:1', socketPath: '/x' })).toThrow(/exactly one/);
    expect(() => grpcAgentConnector({ address: '127.0.0.1:1', keepaliveTimeMs: 1000 })).toThrow(/keepaliveTimeMs/);
    expect(() => new GrpcConnection({ address: 'nohost' })).toThrow(/host:port/);
    expect(parseGrpcAddress('[::1]:8091')).toEqual({ host: '::1', port: 8091 });
    expect(parseGrpcAddress('example.com:443')).toEqual({ host: 'example.com', port: 443 });
  });

  it('GrpcConnection.close() ends a call its server never finishes once graceMs has passed, and checks graceMs', async () => {
    // A bare HTTP/2 server that answers the call's headers and then neither ends nor resets it.
    const h2 = http2.createServer();
    const held: http2.ServerHttp2Stream[] = [];
    h2.on('stream', (stream) => {
      held.push(stream);
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' });
    });
    h2.listen(0, '127.0.0.1');
    await once(h2, 'listening');
    const conn = new GrpcConnection({ address: `127.0.0.1:${(h2.address() as AddressInfo).port}` });
    try {
      const call = conn.openProxyStream();
      call.on('error', () => {});
      let callClosed = false;
      call.once('close', () => (callClosed = true));
      await until(() => held.length === 1, 'the call to reach the server');
      await expect(conn.close({ graceMs: -1 })).rejects.toMatchObject({ code: ErrorCode.INVALID_OPTION });
      const t0 = Date.now();
      await conn.close({ graceMs: 200 });
      expect(Date.now() - t0).toBeGreaterThanOrEqual(150);
      await until(() => callClosed, 'the call to close');
    } finally {
      conn.destroy();
      for (const s of held) s.destroy();
      await new Promise<void>((resolve) => h2.close(() => resolve()));
    }
  });
});
