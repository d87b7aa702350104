/**
 * The HTTP-CONNECT frontend's answers, byte for byte, with a raw client: the 200 only after the dial, every error
 * status of PROTOCOL.md §3.1, and the refusals (405, 400, 431) that leave the server serving everyone else.
 */
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createHttpConnectFrontend, type HttpConnectFrontend } from '../../../src/server/frontends/http-connect/index.js';
import { expectNoLeaks, snapshotResources, type ResourceSnapshot } from '../../helpers/leaks.js';
import { refusedAddress } from '../../helpers/sockets.js';
import {
  echoServer,
  fakeDialer,
  pattern,
  rawClient,
  rawConnect,
  rawExchange,
  readHeader,
  readUntil,
  sha256,
  type FakeDialer,
  type TestServer,
} from './helpers.js';

let before: ResourceSnapshot;
let dialer: FakeDialer;
let frontend: HttpConnectFrontend;
let port: number;
let target: TestServer;

beforeEach(async () => {
  before = snapshotResources();
  dialer = fakeDialer();
  frontend = createHttpConnectFrontend({ server: dialer, maxHeaderSize: 4096 });
  await frontend.listen({ port: 0, host: '127.0.0.1' });
  port = (frontend.address() as AddressInfo).port;
  target = await echoServer();
});

afterEach(async () => {
  await frontend.close({ graceMs: 1000 });
  await target.close();
  await expectNoLeaks(before);
});

const TEXT_UTF8 = 'Content-Type: text/plain; charset=utf-8';

describe('HTTP-CONNECT statuses', () => {
  it('answers exactly the 200 after the dial, then relays', async () => {
    const { socket, rest } = await rawConnect(port, `127.0.0.1:${target.port}`);
    expect(rest.length).toBe(0);
    socket.write('ping');
    const echoed = await readUntil(socket, (d) => d.length >= 4);
    expect(echoed.toString()).toBe('ping');
    socket.end();
    await readUntil(socket, () => false);
    socket.destroy();
    expect(dialer.addresses).toEqual([`127.0.0.1:${target.port}`]);
  });

  it('500 with the reference text when no agent fits', async () => {
    const response = await rawExchange(port, 'CONNECT no-agent.test:443 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    expect(response).toBe(
      'HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\n\r\n' +
        'currently no tunnels available: No agent available',
    );
  });

  it('502 with the agent error text for a refused target', async () => {
    const refused = await refusedAddress();
    const response = await rawExchange(port, `CONNECT ${refused} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
    expect(response).toBe(
      `HTTP/1.1 502 Bad Gateway\r\n${TEXT_UTF8}\r\n\r\ndial tcp ${refused}: connect: connection refused`,
    );
  });

  it.each([
    ['io-timeout.test:443', 504, 'Gateway Timeout', 'dial tcp 10.255.255.1:443: i/o timeout'],
    ['emfile.test:80', 503, 'Service Unavailable', 'dial tcp 127.0.0.1:80: socket: too many open files'],
    ['tunnel-closed.test:80', 502, 'Bad Gateway', 'Backend context error: tunnel closed'],
    ['dial-timeout.test:80', 504, 'Gateway Timeout', 'Backend dial timeout: timed out waiting for backend dial'],
    ['shutting-down.test:80', 503, 'Service Unavailable', 'the server is shutting down'],
  ])('CONNECT %s -> %i', async (authority, status, text, body) => {
    const response = await rawExchange(port, `CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n\r\n`);
    expect(response).toBe(`HTTP/1.1 ${status} ${text}\r\n${TEXT_UTF8}\r\n\r\n${body}`);
  });

  it('405 for a method other than CONNECT', async () => {
    const response = await rawExchange(port, 'GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    expect(response).toMatch(/^HTTP\/1\.1 405 Method Not Allowed\r\n/);
    expect(response).toContain(`${TEXT_UTF8}\r\n`);
    expect(response.endsWith('\r\n\r\nthis proxy only supports CONNECT passthrough\n')).toBe(true);
    expect(dialer.addresses).toEqual([]);
  });

  it('400 and a close for a garbage request line', async () => {
    const response = await rawExchange(port, 'HELLO\r\n\r\n');
    expect(response).toBe(`HTTP/1.1 400 Bad Request\r\n${TEXT_UTF8}\r\nConnection: close\r\n\r\n400 Bad Request`);
  });

  it.each(['example.com', 'example.com:0', 'example.com:65536', '::1:80', 'http://x:80/', '[::1]', 'a b:80'])(
    '400 for the CONNECT target %j',
    async (authority) => {
      const response = await rawExchange(port, `CONNECT ${authority} HTTP/1.1\r\nHost: x\r\n\r\n`);
      expect(response).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
      expect(dialer.addresses).toEqual([]);
    },
  );

  it('431 and a close for an oversized header', async () => {
    const big = `CONNECT 127.0.0.1:${target.port} HTTP/1.1\r\nX-Big: ${'a'.repeat(8192)}\r\n\r\n`;
    const response = await rawExchange(port, big);
    expect(response).toBe(
      `HTTP/1.1 431 Request Header Fields Too Large\r\n${TEXT_UTF8}\r\nConnection: close\r\n\r\n` +
        '431 Request Header Fields Too Large',
    );
  });

  it('keeps serving others after malformed requests', async () => {
    const bad = await Promise.all([
      rawExchange(port, 'HELLO\r\n\r\n'),
      rawExchange(port, '\x00\x01\x02\xff\r\n\r\n'),
      rawExchange(port, 'CONNECT  HTTP/1.1\r\n\r\n'),
      rawExchange(port, 'CONNECT x:1 HTTP/9.9\r\n\r\n'),
    ]);
    for (const response of bad) expect(response).toMatch(/^HTTP\/1\.1 (400|405|505) /);
    const { socket } = await rawConnect(port, `127.0.0.1:${target.port}`);
    socket.end('still here');
    expect((await readUntil(socket, () => false)).toString()).toBe('still here');
    socket.destroy();
  });

  it('forwards the bytes sent in the same write as the header, first', async () => {
    const socket = await rawClient(port, `CONNECT 127.0.0.1:${target.port} HTTP/1.1\r\nHost: x\r\n\r\nhello, `);
    socket.write('world');
    const { header, rest } = await readHeader(socket);
    expect(header).toBe('HTTP/1.1 200 Connection Established\r\n\r\n');
    const more = rest.length >= 12 ? rest : Buffer.concat([rest, await readUntil(socket, (d) => rest.length + d.length >= 12)]);
    expect(more.toString()).toBe('hello, world');
    socket.destroy();
  });

  it('keeps the bytes a client sends while the dial is pending', async () => {
    // The dial takes a while (a real agent round trip); the client does not wait for the 200.
    const slow = createHttpConnectFrontend({
      server: { dial: (address, opts) => new Promise((r) => setTimeout(r, 50)).then(() => dialer.dial(address, opts)) },
    });
    await slow.listen({ port: 0, host: '127.0.0.1' });
    const slowPort = (slow.address() as AddressInfo).port;
    const socket = await rawClient(slowPort, `CONNECT 127.0.0.1:${target.port} HTTP/1.1\r\n\r\nA`);
    socket.write('B');
    socket.end('C');
    const all = await readUntil(socket, () => false);
    expect(all.toString()).toBe('HTTP/1.1 200 Connection Established\r\n\r\nABC');
    socket.destroy();
    await slow.close();
  });

  it('holds 1 MiB sent before the 200 (past the early-data cap) and forwards all of it', async () => {
    const slow = createHttpConnectFrontend({
      server: { dial: (address, opts) => new Promise((r) => setTimeout(r, 50)).then(() => dialer.dial(address, opts)) },
      maxEarlyDataBytes: 16 * 1024,
    });
    await slow.listen({ port: 0, host: '127.0.0.1' });
    const data = pattern(1024 * 1024);
    const header = 'HTTP/1.1 200 Connection Established\r\n\r\n';
    const socket = await rawClient((slow.address() as AddressInfo).port, `CONNECT 127.0.0.1:${target.port} HTTP/1.1\r\n\r\n`);
    socket.write(data);
    const all = await readUntil(socket, (d) => d.length >= header.length + data.length);
    expect(all.subarray(0, header.length).toString()).toBe(header);
    expect(sha256(all.subarray(header.length))).toBe(sha256(data));
    socket.destroy();
    await slow.close();
  });

  it('aborts the dial when the client disconnects mid-dial', async () => {
    const failed = new Promise((resolve) => frontend.once('dialFailed', resolve));
    const socket = await rawClient(port, 'CONNECT hang.test:80 HTTP/1.1\r\n\r\n');
    while (frontend.pendingDials === 0) await new Promise((r) => setImmediate(r));
    socket.destroy();
    const info = (await failed) as { statusCode: number | undefined; error: Error };
    expect(info.statusCode).toBeUndefined();
    expect(dialer.aborted).toBe(1);
    expect(frontend.pendingDials).toBe(0);
  });

  it('502 when the dialer throws instead of rejecting, and serves on', async () => {
    const throwing = createHttpConnectFrontend({
      server: {
        dial: (address, opts) => {
          if (address.startsWith('boom')) throw new Error('dialer bug');
          return dialer.dial(address, opts);
        },
      },
    });
    await throwing.listen({ port: 0, host: '127.0.0.1' });
    const throwingPort = (throwing.address() as AddressInfo).port;
    const response = await rawExchange(throwingPort, 'CONNECT boom.test:80 HTTP/1.1\r\n\r\n');
    expect(response).toBe(`HTTP/1.1 502 Bad Gateway\r\n${TEXT_UTF8}\r\n\r\nFailed to tunnel dial request: dialer bug`);
    const { socket } = await rawConnect(throwingPort, `127.0.0.1:${target.port}`);
    socket.destroy();
    await throwing.close();
  });
});
