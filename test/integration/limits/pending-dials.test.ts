/**
 * Pending-dial limits (issue 11, item 8): per frontend connection and per agent on the server, and on the agent
 * itself. Past a limit the new dial is refused at once with a clear error (a DIAL_RSP error on gRPC, 503 on
 * HTTP-CONNECT) and every other dial keeps being served.
 */
import { once } from 'node:events';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { describe, expect, it } from 'vitest';
import {
  Agent,
  ErrorCode,
  PacketType,
  ProxyServer,
  createMemoryPair,
  dialOverStream,
  dialRequest,
  isKonnectivityError,
  memoryConnector,
  tcpDialer,
  type Dialer,
  type Packet,
} from '../../../src/index.js';
import { createHttpConnectFrontend } from '../../../src/server/index.js';
import { createGrpcServer, grpcFrontendConnector } from '../../../src/transport/grpc/index.js';
import { echoServer } from '../../helpers/engine.js';
import { leakCheckedCleanups } from '../../helpers/cleanups.js';
import { until } from '../grpc/helpers.js';

const cleanups = leakCheckedCleanups();

/** `hang:*` never connects (until aborted); everything else is dialed over TCP. */
function hangingDialer(): { dialer: Dialer; hanging: () => number } {
  let n = 0;
  const tcp = tcpDialer();
  const dialer: Dialer = (req) => {
    if (!req.address.startsWith('hang:')) return tcp(req);
    n++;
    return new Promise<Duplex>((_, reject) => req.signal.addEventListener('abort', () => (n--, reject(new Error('aborted'))), { once: true }));
  };
  return { dialer, hanging: () => n };
}

function firstPacket(stream: { once(e: 'packet', f: (p: Packet) => void): unknown }): Promise<Packet> {
  return new Promise((resolve) => stream.once('packet', resolve));
}

async function echoes(socket: Duplex, text: string): Promise<void> {
  socket.write(text);
  const [d] = await once(socket, 'data');
  expect(String(d)).toBe(text);
}

describe('pending-dial limits', () => {
  it('checks the options at construction', () => {
    expect(() => new ProxyServer({ maxPendingDialsPerAgent: 0 })).toThrow(/maxPendingDialsPerAgent must be an integer >= 1, got 0/);
    expect(() => new ProxyServer({ maxPendingDialsPerFrontend: 1.5 })).toThrow(/maxPendingDialsPerFrontend/);
    expect(() => new Agent({ agentID: 'a', maxPendingDials: -1 })).toThrow(/maxPendingDials must be an integer >= 1, got -1/);
  });

  it('per HTTP/2 frontend connection: the call past the limit gets a DIAL_RSP error; other connections dial', async () => {
    const echo = await echoServer();
    cleanups.push(() => echo.close());
    const server = new ProxyServer({ maxPendingDialsPerFrontend: 4 });
    cleanups.push(() => server.destroy());
    const { dialer, hanging } = hangingDialer();
    const agent = new Agent({ agentID: 'a', dialer });
    cleanups.push(() => agent.destroy());
    await agent.connect(memoryConnector((i) => void server.acceptAgent(i), { encode: true }));
    const grpc = await createGrpcServer({ port: 0, host: '127.0.0.1', frontend: (s) => server.acceptFrontend(s) });
    cleanups.push(() => grpc.close({ graceMs: 0 }));
    const connect = grpcFrontendConnector({ address: `127.0.0.1:${grpc.port}` });

    const greedy = connect();
    cleanups.push(() => greedy.destroy());
    const calls = Array.from({ length: 4 }, () => greedy.openProxyStream());
    for (const [i, call] of calls.entries()) {
      call.on('error', () => {});
      call.write(dialRequest(`hang:${i}`, BigInt(i + 1)));
    }
    await until(() => hanging() === 4, 'four dials pending on the agent');
    const fifth = greedy.openProxyStream();
    fifth.on('error', () => {});
    const answer = firstPacket(fifth);
    fifth.write(dialRequest(echo.address, 99n));
    expect(await answer).toMatchObject({
      type: PacketType.DIAL_RSP,
      dialResponse: { random: 99n, connectID: 0n, error: 'too many pending dials on this frontend connection (limit 4)' },
    });
    expect(server.stats.pendingDials).toBe(4);

    const other = connect();
    cleanups.push(() => other.destroy());
    const socket = await dialOverStream(other.openProxyStream(), echo.address);
    await echoes(socket, 'served');
    socket.destroy();

    // Once one of the greedy connection's dials is gone, it may dial again.
    calls[0]!.destroy();
    await until(() => server.stats.pendingDials === 3, 'the cancelled dial forgotten');
    const again = await dialOverStream(greedy.openProxyStream(), echo.address);
    await echoes(again, 'again');
    again.destroy();
    for (const c of [...calls, fifth]) c.destroy();
  });

  it('per agent: a full agent is passed over; when all are full the dial is refused (503 over HTTP-CONNECT)', async () => {
    const server = new ProxyServer({ maxPendingDialsPerAgent: 2 });
    cleanups.push(() => server.destroy());
    const hangingOn: Array<() => number> = [];
    for (const id of ['a', 'b']) {
      const h = hangingDialer();
      const agent = new Agent({ agentID: id, dialer: h.dialer });
      cleanups.push(() => agent.destroy());
      await agent.connect(memoryConnector((i) => void server.acceptAgent(i), { encode: true }));
      hangingOn.push(h.hanging);
    }
    const hanging = (i: number): number => hangingOn[i]!();
    const ac = new AbortController();
    const dials = Array.from({ length: 4 }, (_, i) => server.dial(`hang:${i}`, { signal: ac.signal, timeoutMs: 0 }).catch((e: unknown) => e));
    await until(() => hanging(0) === 2 && hanging(1) === 2, 'two dials pending on each agent');
    const refused = await server.dial('hang:5').catch((e: unknown) => e);
    expect(isKonnectivityError(refused, ErrorCode.LIMIT_EXCEEDED)).toBe(true);
    expect((refused as Error).message).toBe('too many pending dials on the agents for hang:5 (limit 2 per agent)');

    const frontend = createHttpConnectFrontend({ server });
    await frontend.listen({ port: 0, host: '127.0.0.1' });
    cleanups.push(() => frontend.close({ graceMs: 0 }));
    const port = (frontend.address() as net.AddressInfo).port;
    const client = net.connect(port, '127.0.0.1');
    client.write('CONNECT hang:6 HTTP/1.1\r\nHost: hang:6\r\n\r\n');
    let response = '';
    client.on('data', (d: Buffer) => (response += d.toString()));
    await once(client, 'close');
    expect(response).toMatch(/^HTTP\/1\.1 503 Service Unavailable\r\n/);
    expect(response).toContain('too many pending dials');

    ac.abort();
    await Promise.all(dials);
    await until(() => server.stats.pendingDials === 0, 'the aborted dials forgotten');
  });

  it('on the agent: a DIAL_REQ past maxPendingDials gets a DIAL_RSP error at once; the slot comes back', async () => {
    const echo = await echoServer();
    cleanups.push(() => echo.close());
    const { dialer, hanging } = hangingDialer();
    const agent = new Agent({ agentID: 'a1', dialer, maxPendingDials: 2, dialTimeoutMs: 60_000 });
    cleanups.push(() => agent.destroy());
    const [server, agentSide] = createMemoryPair({ encode: true });
    cleanups.push(() => server.destroy());
    agent.serve(agentSide);
    const failures: Array<{ address: string; refused?: string }> = [];
    agent.on('dialFailed', (e) => failures.push(e));
    const got: Packet[] = [];
    server.on('packet', (p) => got.push(p));
    server.on('error', () => {});
    server.write(dialRequest('hang:1', 1n));
    server.write(dialRequest('hang:2', 2n));
    await until(() => hanging() === 2, 'two endpoint dials in progress');
    server.write(dialRequest(echo.address, 3n));
    await until(() => got.length === 1, 'an answer to the third dial');
    expect(got[0]).toMatchObject({
      type: PacketType.DIAL_RSP,
      dialResponse: { random: 3n, connectID: 0n, error: 'too many pending dials on the agent (limit 2)' },
    });
    expect(failures).toEqual([expect.objectContaining({ address: echo.address, refused: 'too_many_pending_dials' })]);
    // DIAL_CLS for one of the hanging dials frees its slot.
    server.write({ type: PacketType.DIAL_CLS, closeDial: { random: 1n } });
    await until(() => hanging() === 1, 'the closed dial aborted');
    server.write(dialRequest(echo.address, 4n));
    await until(() => got.length === 2, 'an answer to the fourth dial');
    expect(got[1]).toMatchObject({ type: PacketType.DIAL_RSP, dialResponse: { random: 4n, error: '' } });
  });
});
