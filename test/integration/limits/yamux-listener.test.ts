/**
 * The yamux listener's limits (issue 11, items 8, 10, 13): a deadline for the TLS handshake and for the yamux
 * handshake, connections per listener, and unauthorized client certificates refused with their reason, which the
 * agent is told. Each refusal reaches `onError` with the peer's address; the listener keeps serving.
 */
import { once } from 'node:events';
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { ErrorCode, isKonnectivityError, type IncomingPacketStream } from '../../../src/index.js';
import { createYamuxServer, tcpCarrier, tlsCarrier, yamuxAgentConnector, type YamuxServerOptions } from '../../../src/transport/yamux/index.js';
import { leakCheckedCleanups } from '../../helpers/cleanups.js';
import { rawConnect } from '../../helpers/sockets.js';
import { testPki, until } from '../grpc/helpers.js';

const cleanups = leakCheckedCleanups();

async function listener(options: Partial<YamuxServerOptions> = {}) {
  const errors: Array<{ message: string; code?: string; remoteAddress: string | undefined }> = [];
  const tunnels: IncomingPacketStream[] = [];
  const server = createYamuxServer({
    ...options,
    onTunnel: (incoming) => {
      tunnels.push(incoming);
      const stream = incoming.accept({ serverid: ['s'] });
      stream.on('error', () => {});
      cleanups.push(() => stream.destroy());
    },
    onError: (err, remoteAddress) => errors.push({ message: err.message, code: (err as { code?: string }).code, remoteAddress }),
  });
  await server.listen({ port: 0, host: '127.0.0.1' });
  cleanups.push(() => server.close({ graceMs: 0 }));
  const port = (server.address() as net.AddressInfo).port;
  return { server, port, errors, tunnels };
}


describe('yamux listener limits', () => {
  it('a carrier that never sends its yamux handshake is closed at the deadline and reported', async () => {
    const { port, errors, tunnels } = await listener({ handshakeTimeoutMs: 1000 });
    // The honest agent first: on a loaded machine so short a deadline could cut its handshake too.
    const stream = await yamuxAgentConnector({ connect: tcpCarrier({ port, host: '127.0.0.1' }) })({ agentid: ['ok'] }, {});
    expect(stream.remoteMetadata).toEqual({ serverid: ['s'] });
    const silent = await rawConnect(port);
    await once(silent, 'close');
    await until(() => errors.length === 1, 'the refusal reported');
    expect(errors[0]).toMatchObject({ message: 'yamux handshake: waiting for the agent timed out after 1000 ms', remoteAddress: expect.stringMatching(/^127\.0\.0\.1:\d+$/) });
    expect(tunnels).toHaveLength(1);
    expect(stream.closed).toBe(false);
    stream.destroy();
  });

  it('TLS: half a ClientHello is closed at the deadline and reported', async () => {
    const p = testPki();
    const { port, errors } = await listener({ handshakeTimeoutMs: 200, tls: { key: p.serverKey, cert: p.serverCert, ca: p.ca, requestCert: true } });
    const stalled = await rawConnect(port);
    stalled.write(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x80]));
    await once(stalled, 'close');
    await until(() => errors.length === 1, 'the refusal reported');
    expect(errors[0]!.remoteAddress).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(errors[0]!.code).toBe('ERR_TLS_HANDSHAKE_TIMEOUT');
  });

  it('TLS: an expired or foreign client certificate is refused, and the agent is told why', async () => {
    const p = testPki();
    const { port, errors, tunnels } = await listener({ tls: { key: p.serverKey, cert: p.serverCert, ca: p.ca, requestCert: true } });
    const connect = (cert?: { cert: Buffer; key: Buffer }) =>
      yamuxAgentConnector({ connect: tlsCarrier({ host: '127.0.0.1', port, ca: p.ca, servername: 'localhost', ...(cert ?? {}) }) })({ agentid: ['a'] }, {});
    const rogue = await connect({ cert: p.rogueCert, key: p.rogueKey }).catch((e: unknown) => e);
    expect(isKonnectivityError(rogue, ErrorCode.UNAUTHENTICATED)).toBe(true);
    expect((rogue as Error).message).toBe('client certificate refused: certificate signed by unknown authority');
    const anonymous = await connect().catch((e: unknown) => e);
    expect((anonymous as Error).message).toBe('no client certificate presented');
    expect(tunnels).toHaveLength(0);
    expect(errors.map((e) => e.message)).toEqual(['client certificate refused: certificate signed by unknown authority', 'no client certificate presented']);
    const good = await connect({ cert: p.clientCert, key: p.clientKey });
    expect(tunnels).toHaveLength(1);
    good.destroy();
  });

  it('maxConnections: the carrier past the limit is closed at once and reported', async () => {
    const { port, errors } = await listener({ maxConnections: 1 });
    const first = await yamuxAgentConnector({ connect: tcpCarrier({ port, host: '127.0.0.1' }) })({ agentid: ['a'] }, {});
    const second = await rawConnect(port);
    await once(second, 'close');
    await until(() => errors.length === 1, 'the refusal reported');
    expect(errors[0]).toMatchObject({ code: ErrorCode.LIMIT_EXCEEDED, message: 'more than 1 connections' });
    expect(first.closed).toBe(false);
    first.destroy();
  });

  it('checks its options', () => {
    expect(() => createYamuxServer({ onTunnel: () => {}, maxConnections: 0 })).toThrow(/maxConnections/);
    expect(() => createYamuxServer({ onTunnel: () => {}, handshakeTimeoutMs: -5 })).toThrow(/handshakeTimeoutMs/);
  });
});
