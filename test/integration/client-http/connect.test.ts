/**
 * connectViaHttpProxy against the HTTP-CONNECT frontend (TCP, TLS/mTLS, Unix socket) and against hand-written
 * proxies for the answers our frontend never gives; the error codes, statuses and bodies it reports.
 */
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { mkdtempSync, rmSync } from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { connectViaHttpProxy, createHttpConnectDialer, HttpConnectError } from '../../../src/client/http-connect.js';
import { ErrorCode, KonnectivityError } from '../../../src/protocol/errors.js';
import { createHttpConnectFrontend, type HttpConnectFrontend } from '../../../src/server/frontends/http-connect/index.js';
import { expectNoLeaks, snapshotResources, type ResourceSnapshot } from '../../helpers/leaks.js';
import { refusedAddress } from '../../helpers/sockets.js';
import { echoServer, fakeDialer, listenTcp, readUntil, type TestServer } from '../http-connect/helpers.js';

const fixture = (name: string): Buffer => readFileSync(new URL(`../http-connect/fixtures/${name}`, import.meta.url));
const CA = fixture('ca.pem');

let before: ResourceSnapshot;
let target: TestServer;
const cleanups: Array<() => Promise<void> | void> = [];

beforeEach(async () => {
  before = snapshotResources();
  target = await echoServer();
});

afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
  await target.close();
  await expectNoLeaks(before);
});

async function frontend(options: Partial<Parameters<typeof createHttpConnectFrontend>[0]> = {}): Promise<HttpConnectFrontend> {
  const f = createHttpConnectFrontend({ server: fakeDialer(), ...options });
  cleanups.push(() => f.close({ graceMs: 1000 }));
  return f;
}

async function tcpFrontend(options: Partial<Parameters<typeof createHttpConnectFrontend>[0]> = {}): Promise<number> {
  const f = await frontend(options);
  await f.listen({ port: 0, host: '127.0.0.1' });
  return (f.address() as net.AddressInfo).port;
}

/** Echo `text` through a connected socket, then close it. */
async function roundTrip(socket: net.Socket, text: string): Promise<string> {
  socket.write(text);
  const got = await readUntil(socket, (d) => d.length >= text.length);
  socket.end();
  socket.resume();
  if (!socket.closed) await once(socket, 'close');
  return got.toString();
}

async function rejection(p: Promise<unknown>): Promise<KonnectivityError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(KonnectivityError);
    return err as KonnectivityError;
  }
  throw new Error('expected a rejection');
}

describe('connectViaHttpProxy', () => {
  it('opens a tunnel over TCP', async () => {
    const port = await tcpFrontend();
    const socket = await connectViaHttpProxy({ proxy: { host: '127.0.0.1', port }, target: `127.0.0.1:${target.port}` });
    expect(await roundTrip(socket as net.Socket, 'over tcp')).toBe('over tcp');
  });

  it('opens a tunnel over a Unix socket', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'knp-http-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const socketPath = join(dir, 'proxy.sock');
    const f = await frontend();
    await f.listen({ path: socketPath });
    expect(f.address()).toBe(socketPath);
    const socket = await connectViaHttpProxy({ proxy: { socketPath }, target: `127.0.0.1:${target.port}` });
    expect(await roundTrip(socket as net.Socket, 'over uds')).toBe('over uds');
  });

  it('opens a tunnel over mTLS and refuses clients without a certificate from the CA', async () => {
    const port = await tcpFrontend({ tls: { key: fixture('server-key.pem'), cert: fixture('server.pem'), ca: CA } });
    const proxy = { host: '127.0.0.1', port };
    const socket = await connectViaHttpProxy({
      proxy,
      tls: { ca: CA, cert: fixture('client.pem'), key: fixture('client-key.pem') },
      target: `127.0.0.1:${target.port}`,
    });
    expect(await roundTrip(socket as net.Socket, 'over mtls')).toBe('over mtls');

    const anonymous = await rejection(connectViaHttpProxy({ proxy, tls: { ca: CA }, target: `127.0.0.1:${target.port}` }));
    expect(anonymous.code).toBe(ErrorCode.UNAUTHENTICATED);
    const stranger = await rejection(
      connectViaHttpProxy({
        proxy,
        tls: { ca: CA, cert: fixture('other.pem'), key: fixture('other-key.pem') },
        target: `127.0.0.1:${target.port}`,
      }),
    );
    // The server answers 403 with the reason.
    expect(stranger.code).toBe(ErrorCode.UNAUTHENTICATED);
    expect(stranger.message).toMatch(/403 Forbidden: client certificate refused: certificate signed by unknown authority/);
  });

  it('opens a tunnel over server-only TLS when no CA is given', async () => {
    const port = await tcpFrontend({ tls: { key: fixture('server-key.pem'), cert: fixture('server.pem') } });
    const socket = await connectViaHttpProxy({ proxy: { host: '127.0.0.1', port }, tls: { ca: CA }, target: `127.0.0.1:${target.port}` });
    expect(await roundTrip(socket as net.Socket, 'over tls')).toBe('over tls');
  });

  it.each([
    ['no-agent.test:80', ErrorCode.NO_AGENT, 500, 'currently no tunnels available: No agent available'],
    ['<refused>', ErrorCode.DIAL_FAILED, 502, 'dial tcp <refused>: connect: connection refused'],
    ['io-timeout.test:443', ErrorCode.DIAL_FAILED, 504, 'dial tcp 10.255.255.1:443: i/o timeout'],
    ['emfile.test:80', ErrorCode.DIAL_FAILED, 503, 'dial tcp 127.0.0.1:80: socket: too many open files'],
    ['dial-timeout.test:80', ErrorCode.DIAL_TIMEOUT, 504, 'Backend dial timeout: timed out waiting for backend dial'],
    ['tunnel-closed.test:80', ErrorCode.TUNNEL_CLOSED, 502, 'Backend context error: tunnel closed'],
  ])('%s -> %s (%i)', async (label, code, status, text) => {
    // <refused> stands for a loopback port nothing listens on, found when the case runs.
    const refused = label === '<refused>' ? await refusedAddress() : undefined;
    const authority = refused ?? label;
    const body = refused ? text.replace('<refused>', refused) : text;
    const port = await tcpFrontend();
    const err = await rejection(connectViaHttpProxy({ proxy: { host: '127.0.0.1', port }, target: authority }));
    expect(err).toBeInstanceOf(HttpConnectError);
    expect(err.code).toBe(code);
    expect((err as HttpConnectError).statusCode).toBe(status);
    expect((err as HttpConnectError).body).toBe(body);
    if (code === ErrorCode.DIAL_FAILED) expect(err.message).toBe(body);
  });

  it('createHttpConnectDialer chains one frontend behind another', async () => {
    const innerPort = await tcpFrontend();
    const outerPort = await tcpFrontend({ server: createHttpConnectDialer({ proxy: { host: '127.0.0.1', port: innerPort } }) });
    const socket = await connectViaHttpProxy({ proxy: { host: '127.0.0.1', port: outerPort }, target: `127.0.0.1:${target.port}` });
    expect(await roundTrip(socket as net.Socket, 'two hops')).toBe('two hops');
    // The inner proxy's refusal reaches the outer one as ERR_DIAL_FAILED with the agent's text, and so the client.
    const refused = await refusedAddress();
    const err = await rejection(connectViaHttpProxy({ proxy: { host: '127.0.0.1', port: outerPort }, target: refused }));
    expect((err as HttpConnectError).statusCode).toBe(502);
    expect(err.message).toBe(`dial tcp ${refused}: connect: connection refused`);
  });

  it('keeps bytes that arrive with the 200 (an endpoint that speaks first)', async () => {
    const proxy = await listenTcp((socket) => {
      socket.once('data', () => socket.end('HTTP/1.1 200 Connection Established\r\n\r\nSSH-2.0-banner\r\n'));
    });
    cleanups.push(() => proxy.close());
    const socket = await connectViaHttpProxy({ proxy: { host: '127.0.0.1', port: proxy.port }, target: 'example.test:22' });
    const data: Buffer[] = [];
    socket.on('data', (d: Buffer) => data.push(d));
    await once(socket, 'end');
    expect(Buffer.concat(data).toString()).toBe('SSH-2.0-banner\r\n');
    socket.destroy();
  });

  it('sends the CONNECT line, Host and extra headers', async () => {
    let request = '';
    const proxy = await listenTcp((socket) => {
      socket.on('data', (d: Buffer) => {
        request += d.toString();
        if (request.includes('\r\n\r\n')) socket.end('HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 4\r\n\r\nauth');
      });
    });
    cleanups.push(() => proxy.close());
    const err = await rejection(
      connectViaHttpProxy({ proxy: { host: '127.0.0.1', port: proxy.port }, target: '[::1]:443', headers: { 'Proxy-Authorization': 'Bearer t' } }),
    );
    expect(request).toBe('CONNECT [::1]:443 HTTP/1.1\r\nHost: [::1]:443\r\nProxy-Authorization: Bearer t\r\n\r\n');
    expect(err.code).toBe(ErrorCode.UNAUTHENTICATED);
    expect((err as HttpConnectError).statusCode).toBe(407);
    expect((err as HttpConnectError).body).toBe('auth');
  });

  it('reports an error status whose body never ends once the timeout expires', async () => {
    const proxy = await listenTcp((socket) => {
      socket.once('data', () => socket.write('HTTP/1.1 403 Forbidden\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nnope!\r\n'));
    });
    cleanups.push(() => proxy.close());
    const err = await rejection(
      connectViaHttpProxy({ proxy: { host: '127.0.0.1', port: proxy.port }, target: 'x.test:1', timeoutMs: 100 }),
    );
    expect(err.code).toBe(ErrorCode.UNAUTHENTICATED);
    expect((err as HttpConnectError).statusCode).toBe(403);
  });

  it('fails with ERR_PROTOCOL when the proxy does not speak HTTP', async () => {
    const proxy = await listenTcp((socket) => socket.end('SSH-2.0-OpenSSH\r\n\r\n'));
    cleanups.push(() => proxy.close());
    const err = await rejection(connectViaHttpProxy({ proxy: { host: '127.0.0.1', port: proxy.port }, target: 'x.test:1' }));
    expect(err.code).toBe(ErrorCode.PROTOCOL);
  });

  it('times out (ERR_DIAL_TIMEOUT) and aborts (ABORT_ERR) when the proxy never answers', async () => {
    const proxy = await listenTcp(() => {});
    cleanups.push(() => proxy.close());
    const timedOut = await rejection(
      connectViaHttpProxy({ proxy: { host: '127.0.0.1', port: proxy.port }, target: 'x.test:1', timeoutMs: 50 }),
    );
    expect(timedOut.code).toBe(ErrorCode.DIAL_TIMEOUT);
    expect(timedOut.reason).toBe('timeout');

    const abort = new AbortController();
    const pending = connectViaHttpProxy({ proxy: { host: '127.0.0.1', port: proxy.port }, target: 'x.test:1', signal: abort.signal });
    abort.abort();
    const aborted = await rejection(pending);
    expect(aborted.code).toBe(ErrorCode.ABORTED);
    expect(aborted.reason).toBe('context');
  });

  it('fails with ERR_TUNNEL_CLOSED when the proxy cannot be reached or closes without answering', async () => {
    const gone = await listenTcp(() => {});
    const port = gone.port;
    await gone.close();
    const refused = await rejection(connectViaHttpProxy({ proxy: { host: '127.0.0.1', port }, target: 'x.test:1' }));
    expect(refused.code).toBe(ErrorCode.TUNNEL_CLOSED);

    const rude = await listenTcp((socket) => socket.end());
    cleanups.push(() => rude.close());
    const closed = await rejection(connectViaHttpProxy({ proxy: { host: '127.0.0.1', port: rude.port }, target: 'x.test:1' }));
    expect(closed.code).toBe(ErrorCode.TUNNEL_CLOSED);
  });

  it.each(['no-port', 'a b:80', 'x:80\r\nEvil: 1', '::1:80', ''])('refuses the target %j', async (bad) => {
    const err = await rejection(connectViaHttpProxy({ proxy: { host: '127.0.0.1', port: 1 }, target: bad }));
    expect(err.code).toBe(ErrorCode.INVALID_OPTION);
  });

  it('refuses header injection', async () => {
    const err = await rejection(
      connectViaHttpProxy({ proxy: { host: '127.0.0.1', port: 1 }, target: 'x:1', headers: { 'X-A': 'b\r\nEvil: 1' } }),
    );
    expect(err.code).toBe(ErrorCode.INVALID_OPTION);
  });
});
