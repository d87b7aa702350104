/**
 * http and fetch through the programmatic `server.dial()` (and a gRPC client's dial), not only through the
 * HTTP-CONNECT frontend: `createDialAgent` for `http.get(url, { agent })` with keep-alive pooling, and
 * `createDialDispatcher` for `fetch(url, { dispatcher })` with Node's global fetch and no `undici` package: bodies both
 * ways, statuses and headers, a large body, https inside the tunnel, abort, and a failed dial whose Go text reaches
 * the fetch error's `cause`. Real sockets on loopback, port 0.
 */
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Agent } from '../../../src/agent/index.js';
import { GrpcProxyClient, createDialAgent, createDialDispatcher, type DialDispatcher } from '../../../src/client/index.js';
import { ErrorCode } from '../../../src/protocol/index.js';
import { ProxyServer } from '../../../src/server/index.js';
import { createGrpcServer, grpcAgentConnector, type GrpcServer } from '../../../src/transport/grpc/index.js';
import { expectNoLeaks, snapshotResources, type ResourceSnapshot } from '../../helpers/leaks.js';

const fixture = (name: string): Buffer => readFileSync(new URL(`../http-connect/fixtures/${name}`, import.meta.url));

let before: ResourceSnapshot;
let cleanups: Array<() => Promise<void> | void>;
let server: ProxyServer;
let grpc: GrpcServer;
let base: string;
/** The target's connections, to see keep-alive reuse. */
let connections: number;

/** What the target answers: `/echo` sends the request body back, `/big` 1 MiB, `/missing` 404, else a greeting. */
function handle(req: http.IncomingMessage, res: http.ServerResponse): void {
  if (req.url === '/echo') {
    res.setHeader('x-method', req.method ?? '');
    req.pipe(res);
  } else if (req.url === '/big') {
    res.end(Buffer.alloc(1024 * 1024, 7));
  } else if (req.url === '/missing') {
    res.statusCode = 404;
    res.end('no such thing');
  } else {
    res.setHeader('x-seen-header', String(req.headers['x-test'] ?? ''));
    res.end(`hello from behind the tunnel: ${req.url}`);
  }
}

async function listen(srv: http.Server | https.Server): Promise<number> {
  srv.on('connection', () => (connections += 1));
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        srv.closeAllConnections();
        srv.close(() => resolve());
      }),
  );
  return (srv.address() as AddressInfo).port;
}

beforeEach(async () => {
  before = snapshotResources();
  cleanups = [];
  connections = 0;
  base = `http://127.0.0.1:${await listen(http.createServer(handle))}`;
  server = new ProxyServer({ serverID: 'fetch' });
  grpc = await createGrpcServer({ port: 0, agent: (i) => server.acceptAgent(i), frontend: (s) => server.acceptFrontend(s) });
  const agent = new Agent({ agentID: 'fetch-agent' });
  await agent.connect(grpcAgentConnector({ address: `127.0.0.1:${grpc.port}` }));
  cleanups.push(async () => {
    agent.destroy();
    server.destroy();
    grpc.destroy();
  });
});

afterEach(async () => {
  for (const fn of cleanups.reverse()) await fn();
  await expectNoLeaks(before);
});

function get(url: string, agent: http.Agent): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { agent }, (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (s: string) => (body += s)).on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      })
      .on('error', reject);
  });
}

describe('http.get through server.dial() (createDialAgent)', () => {
  it('reaches the target, and keep-alive reuses the tunnel', async () => {
    const agent = createDialAgent({ dial: (address, o) => server.dial(address, o), keepAlive: true });
    cleanups.push(() => agent.destroy());
    expect(await get(`${base}/one`, agent)).toEqual({ status: 200, body: 'hello from behind the tunnel: /one' });
    expect(await get(`${base}/two`, agent)).toEqual({ status: 200, body: 'hello from behind the tunnel: /two' });
    expect(connections).toBe(1);
  });

  it('works with a gRPC client dial as well', async () => {
    const client = new GrpcProxyClient({ address: `127.0.0.1:${grpc.port}` });
    cleanups.push(() => client.destroy());
    const agent = createDialAgent({ dial: (address, o) => client.dial(address, o) });
    cleanups.push(() => agent.destroy());
    expect(await get(`${base}/grpc`, agent)).toEqual({ status: 200, body: 'hello from behind the tunnel: /grpc' });
  });
});

describe('fetch through server.dial() (createDialDispatcher)', () => {
  let dispatcher: DialDispatcher;
  beforeEach(() => {
    dispatcher = createDialDispatcher({ dial: (address, o) => server.dial(address, o) });
    cleanups.push(() => dispatcher.destroy());
  });

  it('the global fetch takes it as its dispatcher: status, headers, body', async () => {
    // TypeScript's RequestInit wants the whole of undici's Dispatcher type; JavaScript passes it as it is.
    const init = { dispatcher, headers: { 'x-test': 'yes' } } as unknown as RequestInit;
    const res = await fetch(`${base}/hi`, init);
    expect(res.status).toBe(200);
    expect(res.headers.get('x-seen-header')).toBe('yes');
    expect(await res.text()).toBe('hello from behind the tunnel: /hi');
    const again = await dispatcher.fetch(`${base}/again`);
    expect(await again.text()).toBe('hello from behind the tunnel: /again');
    expect(connections).toBe(1);
  });

  it('sends request bodies (text and a stream) and reads a 404 and a 1 MiB body', async () => {
    const posted = await dispatcher.fetch(`${base}/echo`, { method: 'POST', body: 'the request body' });
    expect([posted.headers.get('x-method'), await posted.text()]).toEqual(['POST', 'the request body']);
    const streamed = await dispatcher.fetch(`${base}/echo`, {
      method: 'PUT',
      body: Readable.toWeb(Readable.from([Buffer.from('one '), Buffer.from('two')])) as ReadableStream,
      duplex: 'half',
    } as RequestInit);
    expect(await streamed.text()).toBe('one two');
    const missing = await dispatcher.fetch(`${base}/missing`);
    expect([missing.status, await missing.text()]).toEqual([404, 'no such thing']);
    const big = Buffer.from(await (await dispatcher.fetch(`${base}/big`)).arrayBuffer());
    expect(big.length).toBe(1024 * 1024);
    expect(big.every((b) => b === 7)).toBe(true);
  });

  it("a failed dial: 'fetch failed' with the agent's Go error text as the cause", async () => {
    const closed = http.createServer();
    closed.listen(0, '127.0.0.1');
    await once(closed, 'listening');
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const err = (await dispatcher.fetch(`http://127.0.0.1:${port}/`).catch((e: unknown) => e)) as Error;
    expect(err).toBeInstanceOf(TypeError);
    expect(err.message).toBe('fetch failed');
    expect(err.cause).toMatchObject({ code: ErrorCode.DIAL_FAILED, message: `dial tcp 127.0.0.1:${port}: connect: connection refused` });
  });

  it('an aborted fetch rejects with an AbortError', async () => {
    const slow = http.createServer((_req, res) => {
      const late = setTimeout(() => res.end('late'), 5000);
      // The aborted request's connection closes: its answer is never due.
      res.once('close', () => clearTimeout(late));
    });
    const port = await listen(slow);
    const ac = new AbortController();
    const pending = dispatcher.fetch(`http://127.0.0.1:${port}/`, { signal: ac.signal });
    setTimeout(() => ac.abort(), 50);
    expect(await pending.catch((e: unknown) => e)).toMatchObject({ name: 'AbortError' });
  });

  it('https: TLS to the endpoint inside the tunnel', async () => {
    const port = await listen(https.createServer({ key: fixture('server-key.pem'), cert: fixture('server.pem') }, handle));
    const secure = createDialDispatcher({ dial: (address, o) => server.dial(address, o), tls: { ca: fixture('ca.pem') } });
    cleanups.push(() => secure.destroy());
    const res = await secure.fetch(`https://localhost:${port}/tls`);
    expect(await res.text()).toBe('hello from behind the tunnel: /tls');
  });
});
