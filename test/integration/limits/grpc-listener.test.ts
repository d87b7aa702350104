/**
 * The gRPC listener's limits (issue 11, items 8-10): a deadline for the TLS handshake and the HTTP/2 preface,
 * connections per listener, and the bytes held in partial gRPC messages per connection. Each refusal is reported
 * as `connectionRefused` (or fails only the call that went past the limit), and every other connection is served.
 */
import { once } from 'node:events';
import http2 from 'node:http2';
import { describe, expect, it } from 'vitest';
import { dataPacket, type PacketStream } from '../../../src/index.js';
import { createGrpcServer, grpcFrontendConnector, type GrpcServer, type GrpcServerOptions } from '../../../src/transport/grpc/index.js';
import { leakCheckedCleanups } from '../../helpers/cleanups.js';
import { rawConnect } from '../../helpers/sockets.js';
import { testPki, until } from '../grpc/helpers.js';

const cleanups = leakCheckedCleanups();

type Refusal = { remoteAddress: string; reason: string; message: string };

/** A frontend listener whose calls echo every packet back, and the refusals it reports. */
async function echoListener(options: Partial<GrpcServerOptions> = {}): Promise<{ server: GrpcServer; refusals: Refusal[]; calls: PacketStream[] }> {
  const calls: PacketStream[] = [];
  const server = await createGrpcServer({
    port: 0,
    host: '127.0.0.1',
    ...options,
    frontend: (s) => {
      calls.push(s);
      s.on('error', () => {});
      s.on('packet', (p) => s.write(p));
      s.on('end', () => void s.close().catch(() => {}));
    },
  });
  const refusals: Refusal[] = [];
  server.on('connectionRefused', (r) => refusals.push(r));
  cleanups.push(() => server.close({ graceMs: 0 }));
  return { server, refusals, calls };
}

/**
 * A connection that has carried one round trip. The tests' handshake deadlines are short, and on a loaded machine
 * they can cut an honest handshake too: it is tried again (what a real client does), a few times.
 */
async function honestConnection(server: GrpcServer, tlsOptions?: { ca: Buffer; cert: Buffer; key: Buffer }) {
  for (let attempt = 1; ; attempt++) {
    const conn = grpcFrontendConnector({ address: `127.0.0.1:${server.port}`, ...(tlsOptions ? { tls: tlsOptions } : {}) })();
    const roundTrip = async (text: string): Promise<void> => {
      const call = conn.openProxyStream();
      call.on('error', () => {});
      const got = new Promise<{ data: { data: Uint8Array } }>((resolve, reject) => {
        call.once('packet', (p) => resolve(p as { data: { data: Uint8Array } }));
        call.once('close', (err) => reject(err ?? new Error('closed')));
      });
      call.write(dataPacket(1n, Buffer.from(text)));
      const p = await got;
      expect(Buffer.from(p.data.data).toString()).toBe(text);
      call.destroy();
    };
    try {
      await roundTrip('hello');
      cleanups.push(() => conn.destroy());
      return { roundTrip };
    } catch (err) {
      conn.destroy();
      if (attempt === 5) throw err;
    }
  }
}

/** One echo round trip on a new call of a new connection: the listener still serves. */
async function stillServes(server: GrpcServer, tlsOptions?: { ca: Buffer; cert: Buffer; key: Buffer }): Promise<void> {
  const conn = grpcFrontendConnector({ address: `127.0.0.1:${server.port}`, ...(tlsOptions ? { tls: tlsOptions } : {}) })();
  try {
    const call = conn.openProxyStream();
    call.on('error', () => {});
    const got = once(call, 'packet');
    call.write(dataPacket(1n, Buffer.from('ok')));
    const [p] = (await got) as [{ data: { data: Uint8Array } }];
    expect(Buffer.from(p.data.data).toString()).toBe('ok');
    call.destroy();
  } finally {
    conn.destroy();
  }
}

/** The error a stream closed with ('error' comes first; events.once would reject on it). */
function closed(stream: PacketStream): Promise<Error | undefined> {
  return new Promise((resolve) => stream.once('close', resolve));
}


describe('gRPC listener limits', () => {
  it('checks its options', async () => {
    await expect(createGrpcServer({ port: 0, handshakeTimeoutMs: 0 })).rejects.toThrow(/handshakeTimeoutMs must be an integer in \[1, /);
    await expect(createGrpcServer({ port: 0, maxConnections: 0 })).rejects.toThrow(/maxConnections/);
    await expect(createGrpcServer({ port: 0, maxMessageBytes: 1024, maxPartialMessageBytes: 1000 })).rejects.toThrow(
      /maxPartialMessageBytes must be an integer in \[1024, /,
    );
  });

  it('half an HTTP/2 preface, or nothing at all, is closed at the handshake deadline', async () => {
    const { server, refusals } = await echoListener({ handshakeTimeoutMs: 500 });
    const honest = await honestConnection(server);
    const half = await rawConnect(server.port);
    half.write('PRI * HTTP/2.0\r\n');
    const silent = await rawConnect(server.port);
    await Promise.all([once(half, 'close'), once(silent, 'close')]);
    expect(refusals.filter((r) => r.reason === 'handshake_timeout').length).toBeGreaterThanOrEqual(2);
    expect(refusals[0]!.message).toBe('no HTTP/2 preface within 500 ms');
    expect(refusals[0]!.remoteAddress).toMatch(/^127\.0\.0\.1:\d+$/);
    await honest.roundTrip('after');
    // One deadline timer serves every connection: with none waiting it stopped, and a new one starts it again.
    const late = await rawConnect(server.port);
    await once(late, 'close');
    expect(refusals.filter((r) => r.reason === 'handshake_timeout').length).toBeGreaterThanOrEqual(3);
    await honest.roundTrip('still');
  });

  it('random bytes close the connection; the listener keeps serving', async () => {
    const { server } = await echoListener({ handshakeTimeoutMs: 5000 });
    const junk = await rawConnect(server.port);
    junk.write(Buffer.from('a3f0c4ffee00000000000000000000000000000000000000000000deadbeef', 'hex'));
    await once(junk, 'close');
    await stillServes(server);
  });

  it('TLS: a client that never finishes its handshake is closed at the deadline, reported with its address', async () => {
    const p = testPki();
    const { server, refusals } = await echoListener({ handshakeTimeoutMs: 1000, tls: { key: p.serverKey, cert: p.serverCert, ca: p.ca } });
    const honest = await honestConnection(server, { ca: p.ca, cert: p.clientCert, key: p.clientKey });
    const stalled = await rawConnect(server.port);
    stalled.write(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x80])); // the record header of a ClientHello, and no more
    await once(stalled, 'close');
    await until(() => refusals.some((r) => r.reason === 'handshake_timeout'), 'the refusal reported');
    expect(refusals.find((r) => r.reason === 'handshake_timeout')!.remoteAddress).toMatch(/^127\.0\.0\.1:\d+$/);
    await honest.roundTrip('after');
  });

  it('TLS: a client certificate from another CA is refused with the reason, to the peer and in the report', async () => {
    const p = testPki();
    const { server, refusals, calls } = await echoListener({ tls: { key: p.serverKey, cert: p.serverCert, ca: p.ca } });
    const rogue = grpcFrontendConnector({ address: `127.0.0.1:${server.port}`, tls: { ca: p.ca, cert: p.rogueCert, key: p.rogueKey } })();
    cleanups.push(() => rogue.destroy());
    const call = rogue.openProxyStream();
    call.on('error', () => {});
    call.write(dataPacket(1n, Buffer.from('x')));
    const err = await closed(call);
    expect(err?.message).toBe('UNAUTHENTICATED: client certificate refused: certificate signed by unknown authority');
    expect(calls).toHaveLength(0);
    expect(refusals).toEqual([
      { reason: 'client_certificate', message: 'client certificate refused: certificate signed by unknown authority', remoteAddress: expect.stringMatching(/^127\.0\.0\.1:\d+$/) },
    ]);
    const none = grpcFrontendConnector({ address: `127.0.0.1:${server.port}`, tls: { ca: p.ca } })();
    cleanups.push(() => none.destroy());
    const bare = none.openProxyStream();
    bare.on('error', () => {});
    const err2 = await closed(bare);
    expect(err2?.message).toBe('UNAUTHENTICATED: no client certificate presented');
    await stillServes(server, { ca: p.ca, cert: p.clientCert, key: p.clientKey });
  });

  it('maxConnections: the connection past the limit is closed at once; the others are served', async () => {
    const { server, refusals } = await echoListener({ maxConnections: 2 });
    const a = grpcFrontendConnector({ address: `127.0.0.1:${server.port}` })();
    const b = grpcFrontendConnector({ address: `127.0.0.1:${server.port}` })();
    cleanups.push(() => a.destroy(), () => b.destroy());
    for (const c of [a, b]) {
      const call = c.openProxyStream();
      call.on('error', () => {});
      call.write(dataPacket(1n, Buffer.from('x')));
      await once(call, 'packet');
    }
    const third = await rawConnect(server.port);
    await once(third, 'close');
    await until(() => refusals.length === 1, 'the refusal reported');
    expect(refusals[0]).toMatchObject({ reason: 'too_many_connections', message: 'more than 2 connections' });
    const call = a.openProxyStream();
    call.on('error', () => {});
    call.write(dataPacket(2n, Buffer.from('y')));
    await once(call, 'packet');
    a.destroy();
    await until(() => server.connectionCount === 1, 'a gone');
    await stillServes(server);
  });

  it('partial messages: the call that takes a connection past its budget fails; the others go on', async () => {
    const maxMessageBytes = 256 * 1024;
    const { server, calls } = await echoListener({ maxMessageBytes, maxPartialMessageBytes: 512 * 1024 });
    const client = http2.connect(`http://127.0.0.1:${server.port}`);
    client.on('error', () => {});
    cleanups.push(() => client.destroy());
    const open = (): http2.ClientHttp2Stream => {
      const s = client.request({ ':method': 'POST', ':path': '/ProxyService/Proxy', 'content-type': 'application/grpc', te: 'trailers' });
      s.on('error', () => {});
      return s;
    };
    /** The prefix of a message of `declared` bytes and `sent` bytes of it. */
    const partial = (declared: number, sent: number): Buffer => {
      const b = Buffer.alloc(5 + sent);
      b.writeUInt32BE(declared, 1);
      return b;
    };
    const holders = [open(), open()];
    for (const h of holders) h.write(partial(maxMessageBytes, 200 * 1024));
    await until(() => calls.length === 2, 'two calls served');
    const over = open();
    const status = new Promise<string | undefined>((resolve) => over.on('trailers', (t) => resolve(t['grpc-status'] as string | undefined)).on('response', (h) => h['grpc-status'] && resolve(h['grpc-status'] as string)));
    over.write(partial(maxMessageBytes, 200 * 1024));
    expect(await status).toBe('8'); // RESOURCE_EXHAUSTED
    await until(() => calls[2]?.closed === true, 'the third call closed');
    expect(calls[2]!.errored?.message).toBe('partial gRPC messages on this connection exceed 524288 bytes');
    expect(calls[0]!.closed || calls[1]!.closed).toBe(false);

    // A call that ends gives its bytes back: without that, a new call's 200 KiB would go past the budget again.
    holders[0]!.close(http2.constants.NGHTTP2_CANCEL);
    await until(() => calls[0]!.closed, 'the first call closed');
    const again = open();
    again.write(partial(maxMessageBytes, 200 * 1024));
    await until(() => calls.length === 4, 'a fourth call served');
    await new Promise((r) => setTimeout(r, 50));
    expect(calls[3]!.closed).toBe(false);
    for (const s of [...holders, over, again]) s.close(http2.constants.NGHTTP2_CANCEL);
    client.close();
    await stillServes(server);
  });
});
