/**
 * The HTTP-CONNECT listener's limits (issue 11, items 8, 10, 13): the TLS handshake deadline, the request-head
 * deadline (also for a client that sends nothing), connections per listener, and unauthorized client certificates
 * reported with their reason. The listener keeps serving the others.
 */
import { once } from 'node:events';
import net from 'node:net';
import tls from 'node:tls';
import { describe, expect, it } from 'vitest';
import { Agent, ErrorCode, ProxyServer, memoryConnector } from '../../../src/index.js';
import { createHttpConnectFrontend, type HttpConnectFrontendOptions } from '../../../src/server/index.js';
import { echoServer } from '../../helpers/engine.js';
import { leakCheckedCleanups } from '../../helpers/cleanups.js';
import { rawConnect } from '../../helpers/sockets.js';
import { testPki, until } from '../grpc/helpers.js';

const cleanups = leakCheckedCleanups();

async function frontend(options: Partial<HttpConnectFrontendOptions> = {}) {
  const echo = await echoServer();
  cleanups.push(() => echo.close());
  const server = new ProxyServer();
  cleanups.push(() => server.destroy());
  const agent = new Agent({ agentID: 'a' });
  cleanups.push(() => agent.destroy());
  await agent.connect(memoryConnector((i) => void server.acceptAgent(i), { encode: true }));
  const f = createHttpConnectFrontend({ server, ...options });
  await f.listen({ port: 0, host: '127.0.0.1' });
  cleanups.push(() => f.close({ graceMs: 0 }));
  const errors: Array<{ message: string; code?: string; remoteAddress: string }> = [];
  f.on('clientError', (err, remoteAddress) => errors.push({ message: err.message, code: (err as { code?: string }).code, remoteAddress }));
  return { f, port: (f.address() as net.AddressInfo).port, errors, echo };
}

/** The next chunk `socket` reads; rejects if it closes first. */
function nextData(socket: net.Socket): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const onClose = (): void => reject(new Error('closed'));
    socket.once('close', onClose);
    socket.once('data', (d: Buffer) => {
      socket.off('close', onClose);
      resolve(d);
    });
  });
}

/** CONNECT through `socket` (already connected) and check one echo. */
async function tunnelEchoes(socket: net.Socket, target: string): Promise<void> {
  socket.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`);
  const head = await nextData(socket);
  expect(head.toString()).toMatch(/^HTTP\/1\.1 200 /);
  socket.write('ping');
  expect((await nextData(socket)).toString()).toBe('ping');
  socket.destroy();
}


describe('HTTP-CONNECT listener limits', () => {
  it('a client that sends nothing, or half a request head, is closed at headersTimeoutMs', async () => {
    const { port, echo, errors } = await frontend({ headersTimeoutMs: 300 });
    const silent = await rawConnect(port);
    silent.resume();
    const half = await rawConnect(port);
    half.resume();
    half.write('CONNECT 127.0.0.1:1 HTTP/1.1\r\nHost: x');
    await Promise.all([once(silent, 'close'), once(half, 'close')]);
    expect(errors.map((e) => e.message)).toContain('no request header within 300 ms');
    // So short a deadline can cut an honest client on a loaded machine too; it would connect again.
    for (let attempt = 1; ; attempt++) {
      const ok = await tunnelEchoes(await rawConnect(port), echo.address).then(() => true, () => false);
      if (ok || attempt === 5) {
        expect(ok).toBe(true);
        break;
      }
    }
  });

  it('TLS: a stalled handshake is closed at handshakeTimeoutMs and reported with the address', async () => {
    const p = testPki();
    const { port, errors } = await frontend({ handshakeTimeoutMs: 300, tls: { key: p.serverKey, cert: p.serverCert, ca: p.ca } });
    const stalled = await rawConnect(port);
    stalled.resume();
    stalled.write(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x80]));
    await once(stalled, 'close');
    await until(() => errors.length > 0, 'the refusal reported');
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ code: 'ERR_TLS_HANDSHAKE_TIMEOUT', remoteAddress: expect.stringMatching(/^127\.0\.0\.1:\d+$/) });
  });

  it('TLS: a client certificate from another CA is refused and reported with the reason', async () => {
    const p = testPki();
    const { port, errors, echo } = await frontend({ tls: { key: p.serverKey, cert: p.serverCert, ca: p.ca } });
    const rogue = tls.connect({ host: '127.0.0.1', port, ca: p.ca, servername: 'localhost', cert: p.rogueCert, key: p.rogueKey });
    rogue.on('error', () => {});
    let answer = '';
    rogue.on('data', (d: Buffer) => (answer += d.toString()));
    rogue.write(`CONNECT ${echo.address} HTTP/1.1\r\nHost: ${echo.address}\r\n\r\n`);
    await once(rogue, 'close');
    // The client is told why, and nothing is dialed for it.
    expect(answer).toMatch(/^HTTP\/1\.1 403 Forbidden\r\n[^]*\r\n\r\nclient certificate refused: certificate signed by unknown authority$/);
    await until(() => errors.length === 1, 'the refusal reported');
    expect(errors[0]).toMatchObject({
      code: ErrorCode.UNAUTHENTICATED,
      message: 'client certificate refused: certificate signed by unknown authority',
      remoteAddress: expect.stringMatching(/^127\.0\.0\.1:\d+$/),
    });
    const good = tls.connect({ host: '127.0.0.1', port, ca: p.ca, servername: 'localhost', cert: p.clientCert, key: p.clientKey });
    await once(good, 'secureConnect');
    await tunnelEchoes(good as unknown as net.Socket, echo.address);
  });

  it('maxConnections: the connection past the limit is closed at once and reported', async () => {
    const { port, errors, echo } = await frontend({ maxConnections: 1 });
    const first = await rawConnect(port);
    const second = await rawConnect(port);
    second.resume();
    await once(second, 'close');
    await until(() => errors.length === 1, 'the refusal reported');
    expect(errors[0]).toMatchObject({ code: ErrorCode.LIMIT_EXCEEDED, message: 'more than 1 connections' });
    await tunnelEchoes(first, echo.address);
  });
});
