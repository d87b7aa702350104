/**
 * `http.get` and `https.get` through the tunnel agents: a local HTTP(S) server reached through the HTTP-CONNECT
 * frontend, over a fake dialer and over the real engine (ProxyServer + Agent on an in-memory pair).
 */
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createHttpsTunnelAgent, createTunnelAgent } from '../../../src/client/http-agent.js';
import { ErrorCode } from '../../../src/protocol/errors.js';
import { createHttpConnectFrontend, type HttpConnectFrontend } from '../../../src/server/frontends/http-connect/index.js';
import { expectNoLeaks, snapshotResources, type ResourceSnapshot } from '../../helpers/leaks.js';
import { refusedAddress } from '../../helpers/sockets.js';
import { BACKENDS, fakeDialer, type Backend } from '../http-connect/helpers.js';

const fixture = (name: string): Buffer => readFileSync(new URL(`../http-connect/fixtures/${name}`, import.meta.url));

/** GET `url` and resolve with the status and body. */
function get(url: string, options: https.RequestOptions): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const mod = url.startsWith('https:') ? https : http;
    const req = mod.get(url, options, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

function handler(req: http.IncomingMessage, res: http.ServerResponse): void {
  res.writeHead(200, { 'Content-Type': 'text/plain' });
  res.end(`hello ${req.url} from ${req.headers.host}`);
}

describe.each(Object.keys(BACKENDS))('tunnel agents over %s', (name) => {
  let before: ResourceSnapshot;
  let backend: Backend;
  let frontend: HttpConnectFrontend;
  let proxy: { host: string; port: number };

  beforeEach(async () => {
    before = snapshotResources();
    backend = await BACKENDS[name]!();
    frontend = createHttpConnectFrontend({ server: backend.dialer });
    await frontend.listen({ port: 0, host: '127.0.0.1' });
    proxy = { host: '127.0.0.1', port: (frontend.address() as AddressInfo).port };
  });

  afterEach(async () => {
    await frontend.close({ graceMs: 2000 });
    await backend.close();
    await expectNoLeaks(before);
  });

  it('http.get reaches a local HTTP server, reusing one tunnel with keepAlive', async () => {
    const server = http.createServer(handler);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as AddressInfo).port;
    const agent = createTunnelAgent({ proxy, keepAlive: true, maxSockets: 1 });
    let opened = 0;
    frontend.on('tunnelOpened', () => (opened += 1));

    for (const path of ['/a', '/b', '/c']) {
      const res = await get(`http://127.0.0.1:${port}${path}`, { agent });
      expect(res).toEqual({ status: 200, body: `hello ${path} from 127.0.0.1:${port}` });
    }
    expect(opened).toBe(1);

    agent.destroy();
    server.closeAllConnections();
    server.close();
    await once(server, 'close');
  });

  it('https.get runs TLS to the endpoint inside the tunnel', async () => {
    const server = https.createServer({ key: fixture('server-key.pem'), cert: fixture('server.pem') }, handler);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as AddressInfo).port;
    const agent = createHttpsTunnelAgent({ proxy, ca: fixture('ca.pem') });

    const res = await get(`https://localhost:${port}/secure`, { agent });
    expect(res).toEqual({ status: 200, body: `hello /secure from localhost:${port}` });

    agent.destroy();
    server.closeAllConnections();
    server.close();
    await once(server, 'close');
  });

  it('a failed dial fails the request with the proxy error', async () => {
    const agent = createTunnelAgent({ proxy });
    const err = (await get(`http://${await refusedAddress()}/`, { agent }).catch((e: unknown) => e)) as { code?: string; statusCode?: number };
    expect(err.code).toBe(ErrorCode.DIAL_FAILED);
    expect(err.statusCode).toBe(502);
    agent.destroy();
  });
});

describe('tunnel agents through an mTLS proxy', () => {
  it('http.get with proxyTls (client certificate to the proxy) and a proxy header', async () => {
    const before = snapshotResources();
    const frontend = createHttpConnectFrontend({
      server: fakeDialer(),
      tls: { key: fixture('server-key.pem'), cert: fixture('server.pem'), ca: fixture('ca.pem') },
    });
    await frontend.listen({ port: 0, host: '127.0.0.1' });
    const server = http.createServer(handler);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as AddressInfo).port;
    const agent = createTunnelAgent({
      proxy: { host: '127.0.0.1', port: (frontend.address() as AddressInfo).port },
      proxyTls: { ca: fixture('ca.pem'), cert: fixture('client.pem'), key: fixture('client-key.pem') },
      proxyHeaders: { 'User-Agent': 'konnectivity-ts-test' },
    });
    const res = await get(`http://127.0.0.1:${port}/mtls`, { agent });
    expect(res).toEqual({ status: 200, body: `hello /mtls from 127.0.0.1:${port}` });
    agent.destroy();
    server.closeAllConnections();
    server.close();
    await once(server, 'close');
    await frontend.close({ graceMs: 1000 });
    await expectNoLeaks(before);
  });
});

