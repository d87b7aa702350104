/**
 * The HTTP-CONNECT frontend in front of the real engine: the status paths that depend on the ProxyServer and the
 * Agent (no agent, the agent's Go-style dial error, the agent stream dying mid-dial, the server's dial timeout),
 * and a client that leaves mid-dial.
 */
import { once } from 'node:events';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ProxyServerOptions } from '../../../src/server/index.js';
import { createHttpConnectFrontend, type HttpConnectFrontend } from '../../../src/server/frontends/http-connect/index.js';
import { Engine } from '../../helpers/engine.js';
import { refusedAddress } from '../../helpers/sockets.js';
import { expectNoLeaks, snapshotResources, type ResourceSnapshot } from '../../helpers/leaks.js';
import { echoServer, listenTcp, rawClient, rawConnect, rawExchange, readUntil } from './helpers.js';

const TEXT_UTF8 = 'Content-Type: text/plain; charset=utf-8';

let before: ResourceSnapshot;
let engine: Engine;
let frontend: HttpConnectFrontend;
let port: number;

async function start(server: ProxyServerOptions = {}): Promise<void> {
  engine = new Engine({ server });
  frontend = createHttpConnectFrontend({ server: engine.server });
  await frontend.listen({ port: 0, host: '127.0.0.1' });
  port = (frontend.address() as AddressInfo).port;
}

/** An agent whose endpoint dials never finish; `dials` counts them and `aborted` the ones it was told to drop. */
async function hangingAgent(): Promise<{ dials: number; aborted: number; destroy(): void }> {
  const state = { dials: 0, aborted: 0 };
  const { agent } = await engine.agent({
    dialer: ({ signal }) =>
      new Promise<Duplex>((_resolve, reject) => {
        state.dials += 1;
        signal.addEventListener('abort', () => {
          state.aborted += 1;
          reject(new Error('aborted'));
        });
      }),
  });
  return Object.assign(state, { destroy: () => agent.destroy() });
}

async function until(check: () => boolean): Promise<void> {
  while (!check()) await new Promise((r) => setTimeout(r, 2));
}

beforeEach(() => {
  before = snapshotResources();
});

afterEach(async () => {
  await frontend.close({ graceMs: 1000 });
  await engine.close();
  await expectNoLeaks(before);
});

describe('HTTP-CONNECT over the engine', () => {
  it('500 when no agent is connected', async () => {
    await start();
    const response = await rawExchange(port, 'CONNECT 127.0.0.1:80 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    expect(response).toBe(
      'HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\n\r\n' +
        'currently no tunnels available: No agent available',
    );
  });

  it("502 with the agent's Go-style text for a refused endpoint", async () => {
    await start();
    await engine.agent();
    const failed = new Promise<{ frontend: string; reason: string }>((resolve) => engine.server.once('dialFailed', resolve));
    const refused = await refusedAddress();
    const response = await rawExchange(port, `CONNECT ${refused} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
    expect(response).toBe(`HTTP/1.1 502 Bad Gateway\r\n${TEXT_UTF8}\r\n\r\ndial tcp ${refused}: connect: connection refused`);
    // The engine's events (and so the metrics and logs) name the HTTP-CONNECT frontend, not `programmatic`.
    expect(await failed).toMatchObject({ frontend: 'http-connect', reason: 'error_response' });
  });

  it('502 Backend context error when the agent stream dies during the dial', async () => {
    await start();
    const agent = await hangingAgent();
    const socket = await rawClient(port, 'CONNECT 10.0.0.1:443 HTTP/1.1\r\n\r\n');
    await until(() => agent.dials === 1);
    agent.destroy();
    const response = (await readUntil(socket, () => false)).toString();
    socket.destroy();
    expect(response).toMatch(new RegExp(`^HTTP/1\\.1 502 Bad Gateway\\r\\n${TEXT_UTF8}\\r\\n\\r\\nBackend context error: `));
  });

  it("504 Backend dial timeout when the agent's DIAL_RSP does not come in time", async () => {
    await start({ dialTimeoutMs: 50 });
    await hangingAgent();
    const response = await rawExchange(port, 'CONNECT 10.0.0.1:443 HTTP/1.1\r\n\r\n');
    expect(response).toBe(
      `HTTP/1.1 504 Gateway Timeout\r\n${TEXT_UTF8}\r\n\r\nBackend dial timeout: timed out waiting for backend dial`,
    );
  });

  it('a client that leaves mid-dial releases the pending dial', async () => {
    await start();
    const agent = await hangingAgent();
    const socket = await rawClient(port, 'CONNECT 10.0.0.1:443 HTTP/1.1\r\n\r\n');
    await until(() => engine.server.stats.pendingDials === 1 && agent.dials === 1);
    const failed = new Promise<{ statusCode: number | undefined }>((resolve) => frontend.once('dialFailed', resolve));
    socket.destroy();
    expect((await failed).statusCode).toBeUndefined();
    expect(engine.server.stats.pendingDials).toBe(0);
    expect(frontend.activeTunnels).toBe(0);
  });

  it('forwards bytes pipelined with the CONNECT header through the agent', async () => {
    await start();
    await engine.agent();
    const target = await echoServer();
    engine.defer(() => target.close());
    const succeeded = new Promise<{ frontend: string }>((resolve) => engine.server.once('dialSucceeded', resolve));
    const socket = await rawClient(port, `CONNECT 127.0.0.1:${target.port} HTTP/1.1\r\n\r\nfirst bytes`);
    expect((await succeeded).frontend).toBe('http-connect');
    const expected = 'HTTP/1.1 200 Connection Established\r\n\r\nfirst bytes';
    const got = await readUntil(socket, (d) => d.length >= expected.length);
    expect(got.toString()).toBe(expected);
    socket.destroy();
  });

  it("client EOF reaches the endpoint as its EOF (half-close), and the endpoint's close closes the client", async () => {
    await start();
    await engine.agent();
    const endpoints: Socket[] = [];
    const target = await listenTcp((s) => endpoints.push(s));
    engine.defer(() => target.close());

    // Client EOF: HALF_CLOSE to the agent, which ends the endpoint's write side; the endpoint may still answer.
    const first = await rawConnect(port, `127.0.0.1:${target.port}`);
    await until(() => endpoints.length === 1);
    const endpointEnded = once(endpoints[0]!, 'end');
    first.socket.end();
    await endpointEnded;
    endpoints[0]!.end('answer after EOF');
    const answer = await readUntil(first.socket, () => false);
    expect(Buffer.concat([first.rest, answer]).toString()).toBe('answer after EOF');
    if (!first.socket.closed) await once(first.socket, 'close');

    // Endpoint close: CLOSE_RSP from the agent, and the frontend closes the client.
    const second = await rawConnect(port, `127.0.0.1:${target.port}`);
    await until(() => endpoints.length === 2);
    endpoints[1]!.end('bye');
    const rest = await readUntil(second.socket, () => false);
    expect(Buffer.concat([second.rest, rest]).toString()).toBe('bye');
    if (!second.socket.closed) await once(second.socket, 'close');
  });

  it('serves 100 concurrent CONNECTs', async () => {
    await start();
    await engine.agent();
    const target = await echoServer();
    engine.defer(() => target.close());
    await Promise.all(
      Array.from({ length: 100 }, async (_, i) => {
        const { socket } = await rawConnect(port, `127.0.0.1:${target.port}`);
        socket.write(`conn ${i}`);
        expect((await readUntil(socket, (d) => d.length >= `conn ${i}`.length)).toString()).toBe(`conn ${i}`);
        socket.end();
        socket.resume();
        if (!socket.closed) await once(socket, 'close');
      }),
    );
  });
});
