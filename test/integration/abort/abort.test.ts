/**
 * Abort follows Node: every dial API (server.dial, GrpcProxyClient.dial, dialOverStream, connectViaHttpProxy, the
 * HTTP-CONNECT tunnel agents) rejects an aborted dial with an AbortError (`name` AbortError, `code` ABORT_ERR, the
 * signal's reason as `cause`, still a KonnectivityError), and aborting once the dial resolved destroys the socket
 * with one, as `net.connect({ signal })` does. Real sockets on loopback, port 0.
 */
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Agent } from '../../../src/agent/index.js';
import { GrpcProxyClient, connectViaHttpProxy, createTunnelAgent } from '../../../src/client/index.js';
import { AbortError, ErrorCode, KonnectivityError, isKonnectivityError } from '../../../src/protocol/index.js';
import { ProxyServer, createHttpConnectFrontend } from '../../../src/server/index.js';
import { createGrpcServer, grpcAgentConnector, type GrpcServer } from '../../../src/transport/grpc/index.js';
import { echoServer } from '../../helpers/engine.js';
import { expectNoLeaks, snapshotResources, type ResourceSnapshot } from '../../helpers/leaks.js';
import { listenTcp } from '../http-connect/helpers.js';

/** What every aborted dial must look like: Node's AbortError shape, and our error class and code. */
function expectAbortError(err: unknown, reason: unknown): void {
  expect(err).toBeInstanceOf(AbortError);
  expect(err).toBeInstanceOf(KonnectivityError);
  expect(isKonnectivityError(err, ErrorCode.ABORTED)).toBe(true);
  expect(err).toMatchObject({ name: 'AbortError', code: 'ABORT_ERR', reason: 'context' });
  expect((err as Error).cause).toBe(reason);
}

let before: ResourceSnapshot;
let cleanups: Array<() => Promise<void> | void>;
let server: ProxyServer;
let grpc: GrpcServer;

/** A server with a gRPC listener (agents and frontends) and an agent whose dials to `hang.test` never finish. */
async function setup(): Promise<void> {
  server = new ProxyServer({ serverID: 'abort' });
  grpc = await createGrpcServer({ port: 0, agent: (i) => server.acceptAgent(i), frontend: (s) => server.acceptFrontend(s) });
  const agent = new Agent({
    agentID: 'abort-agent',
    dialer: async (request) => {
      if (request.address.startsWith('hang.test:')) return new Promise<Duplex>((_resolve, reject) => request.signal.addEventListener('abort', () => reject(new Error('aborted'))));
      const { tcpDialer } = await import('../../../src/agent/dialer.js');
      return tcpDialer()(request);
    },
  });
  cleanups.push(async () => {
    agent.destroy();
    server.destroy();
    grpc.destroy();
  });
  await agent.connect(grpcAgentConnector({ address: `127.0.0.1:${grpc.port}` }));
}

beforeEach(async () => {
  before = snapshotResources();
  cleanups = [];
  await setup();
});

afterEach(async () => {
  for (const fn of cleanups.reverse()) await fn();
  await expectNoLeaks(before);
});

describe('an aborted dial rejects with an AbortError', () => {
  it('server.dial(): already aborted, and aborted while the agent dials', async () => {
    const reason = new Error('the caller gave up');
    expectAbortError(await server.dial('hang.test:1', { signal: AbortSignal.abort(reason) }).catch((e: unknown) => e), reason);
    const ac = new AbortController();
    const pending = server.dial('hang.test:1', { signal: ac.signal });
    while (server.stats.pendingDials === 0) await new Promise((r) => setTimeout(r, 2));
    ac.abort(reason);
    expectAbortError(await pending.catch((e: unknown) => e), reason);
    expect(server.stats.pendingDials).toBe(0);
  });

  it('GrpcProxyClient.dial() (dialOverStream underneath)', async () => {
    const client = new GrpcProxyClient({ address: `127.0.0.1:${grpc.port}` });
    cleanups.push(() => client.destroy());
    const ac = new AbortController();
    const pending = client.dial('hang.test:1', { signal: ac.signal });
    while (server.stats.pendingDials === 0) await new Promise((r) => setTimeout(r, 2));
    ac.abort('enough');
    expectAbortError(await pending.catch((e: unknown) => e), 'enough');
  });

  it('connectViaHttpProxy() to a proxy that never answers', async () => {
    const proxy = await listenTcp((s) => s.resume());
    cleanups.push(() => proxy.close());
    const ac = new AbortController();
    const pending = connectViaHttpProxy({ proxy: { host: '127.0.0.1', port: proxy.port }, target: 'x.test:1', signal: ac.signal });
    ac.abort('stop');
    expectAbortError(await pending.catch((e: unknown) => e), 'stop');
  });
});

describe('aborting after the dial resolved destroys the socket, as net.connect({ signal }) does', () => {
  async function expectDestroyedByAbort(socket: Duplex, abort: (reason: unknown) => void): Promise<void> {
    const reason = new Error('cancelled later');
    // Not events.once: it rejects on the 'error' that comes first.
    const closed = new Promise((resolve) => socket.once('close', resolve));
    socket.on('error', () => {});
    abort(reason);
    await closed;
    expectAbortError(socket.errored, reason);
  }

  it('server.dial()', async () => {
    const echo = await echoServer();
    cleanups.push(() => echo.close());
    const ac = new AbortController();
    const socket = await server.dial(echo.address, { signal: ac.signal });
    await expectDestroyedByAbort(socket, (r) => ac.abort(r));
    // The agent's side went too.
    while (server.stats.establishedConnections > 0) await new Promise((r) => setTimeout(r, 2));
  });

  it('GrpcProxyClient.dial()', async () => {
    const echo = await echoServer();
    cleanups.push(() => echo.close());
    const client = new GrpcProxyClient({ address: `127.0.0.1:${grpc.port}` });
    cleanups.push(() => client.destroy());
    const ac = new AbortController();
    const socket = await client.dial(echo.address, { signal: ac.signal });
    await expectDestroyedByAbort(socket, (r) => ac.abort(r));
  });

  it('connectViaHttpProxy() through the HTTP-CONNECT frontend', async () => {
    const echo = await echoServer();
    cleanups.push(() => echo.close());
    const frontend = createHttpConnectFrontend({ server });
    await frontend.listen({ port: 0, host: '127.0.0.1' });
    cleanups.push(() => frontend.close({ graceMs: 0 }));
    const ac = new AbortController();
    const { port } = frontend.address() as AddressInfo;
    const socket = await connectViaHttpProxy({ proxy: { host: '127.0.0.1', port }, target: echo.address, signal: ac.signal });
    await expectDestroyedByAbort(socket, (r) => ac.abort(r));
  });

  it('the tunnel agents: a request\'s abort is the request\'s (Node\'s ClientRequest), and a pooled socket outlives the signal of the request that opened it', async () => {
    const target = http.createServer((req, res) => res.end(`hi ${req.url}`));
    target.listen(0, '127.0.0.1');
    await once(target, 'listening');
    cleanups.push(() => new Promise<void>((r) => target.close(() => r())));
    const frontend = createHttpConnectFrontend({ server });
    await frontend.listen({ port: 0, host: '127.0.0.1' });
    cleanups.push(() => frontend.close({ graceMs: 0 }));
    const agent = createTunnelAgent({ proxy: { host: '127.0.0.1', port: (frontend.address() as AddressInfo).port }, keepAlive: true });
    cleanups.push(() => agent.destroy());
    const url = `http://127.0.0.1:${(target.address() as AddressInfo).port}`;
    const get = (path: string, signal?: AbortSignal): Promise<{ body: string; socket: unknown }> =>
      new Promise((resolve, reject) => {
        http
          .get(`${url}${path}`, { agent, ...(signal ? { signal } : {}) }, (res) => {
            let body = '';
            res.setEncoding('utf8').on('data', (s: string) => (body += s)).on('end', () => resolve({ body, socket: res.socket }));
          })
          .on('error', reject);
      });
    const ac = new AbortController();
    const first = await get('/one', ac.signal);
    ac.abort();
    const second = await get('/two');
    expect([first.body, second.body]).toEqual(['hi /one', 'hi /two']);
    expect(second.socket).toBe(first.socket);
  });
});
