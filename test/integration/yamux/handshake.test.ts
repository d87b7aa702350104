/** The control-stream handshake: what the server does with a bad or missing handshake, and the agent's view. */
import { once } from 'node:events';
import net from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ErrorCode, KonnectivityError } from '../../../src/protocol/errors.js';
import { delimitedPrefix } from '../../../src/transport/yamux/delimited.js';
import { dataPacket } from '../../../src/protocol/packet.js';
import type { IncomingPacketStream } from '../../../src/transport/packet-stream.js';
import { acceptYamuxTunnel, createYamuxServer, tcpCarrier, yamuxAgentConnector, YamuxSession } from '../../../src/transport/yamux/index.js';
import { expectNoLeaks, snapshotResources, type ResourceSnapshot } from '../../helpers/leaks.js';

function delimited(text: string): Buffer {
  const body = Buffer.from(text);
  return Buffer.concat([delimitedPrefix(body.length), body]);
}

describe('yamux tunnel handshake', () => {
  let before: ResourceSnapshot;
  let server: net.Server;
  let port: number;
  let accepted: Promise<IncomingPacketStream>;
  let handshakeTimeoutMs = 10_000;

  beforeEach(async () => {
    before = snapshotResources();
    handshakeTimeoutMs = 10_000;
    let resolve!: (p: Promise<IncomingPacketStream>) => void;
    const first = new Promise<Promise<IncomingPacketStream>>((r) => (resolve = r));
    accepted = first.then((p) => p);
    accepted.catch(() => undefined);
    server = net.createServer((socket) => resolve(acceptYamuxTunnel(socket, { handshakeTimeoutMs })));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    port = (server.address() as net.AddressInfo).port;
  });

  afterEach(async () => {
    await new Promise<void>((r) => server.close(() => r()));
    await expectNoLeaks(before);
  });

  async function rawClient(): Promise<YamuxSession> {
    const socket = net.connect(port, '127.0.0.1');
    await once(socket, 'connect');
    return new YamuxSession(socket, { client: true, keepAliveIntervalMs: 0 });
  }

  it('passes metadata both ways, and packets the agent sent right behind its handshake', async () => {
    const connect = yamuxAgentConnector({ connect: tcpCarrier({ host: '127.0.0.1', port }) });
    const agentSide = connect({ agentid: ['a1'], agentidentifiers: ['host=n1'] }, {});
    const incoming = await accepted;
    expect(incoming.metadata).toEqual({ agentid: ['a1'], agentidentifiers: ['host=n1'] });
    expect(incoming.remoteAddress).toMatch(/^127\.0\.0\.1:\d+$/);
    const serverSide = incoming.accept({ serverid: ['s1'], servercount: ['2'] });
    const agent = await agentSide;
    expect(agent.remoteMetadata).toEqual({ serverid: ['s1'], servercount: ['2'] });
    agent.write(dataPacket(7n, Buffer.from('hi')));
    const [p] = (await once(serverSide, 'packet')) as [{ data: { connectID: bigint; data: Uint8Array } }];
    expect(p.data.connectID).toBe(7n);
    expect(Buffer.from(p.data.data).toString()).toBe('hi');
    await Promise.all([agent.close(), serverSide.close()]);
  });

  it('refuses a handshake that is not JSON with ERR_PROTOCOL, and tells the peer why', async () => {
    const c = await rawClient();
    const st = c.open();
    st.write(delimited('hello, I am not JSON'));
    await expect(accepted).rejects.toMatchObject({ code: 'ERR_PROTOCOL', message: expect.stringMatching(/not JSON/) });
    const reply: Buffer[] = [];
    for await (const chunk of st) reply.push(chunk as Buffer);
    expect(Buffer.concat(reply).toString()).toMatch(/"code":"ERR_PROTOCOL"/);
    c.destroy();
  });

  it('gives up on a peer that never opens the control stream after handshakeTimeoutMs', async () => {
    handshakeTimeoutMs = 50;
    const c = await rawClient();
    const closed = new Promise((r) => c.once('close', r));
    await expect(accepted).rejects.toMatchObject({ code: 'ERR_TUNNEL_CLOSED', message: expect.stringMatching(/timed out/) });
    await closed;
  });

  it('the agent side times out when the server never answers', async () => {
    const connect = yamuxAgentConnector({ connect: tcpCarrier({ host: '127.0.0.1', port }), handshakeTimeoutMs: 50 });
    await expect(connect({ agentid: ['a1'] }, {})).rejects.toMatchObject({ code: 'ERR_TUNNEL_CLOSED', message: expect.stringMatching(/timed out/) });
    // The server saw the handshake but never answered; its side goes when the carrier does.
    const incoming = await accepted;
    incoming.reject(new KonnectivityError(ErrorCode.SHUTTING_DOWN, 'bye'));
  });

  it('bad yamux options fail when the connector or server is made', () => {
    expect(() => yamuxAgentConnector({ connect: tcpCarrier({ port }), yamux: { acceptBacklog: -1 } })).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_OPTION' }),
    );
    expect(() => createYamuxServer({ onTunnel: () => undefined, yamux: { maxStreamWindowBytes: 1 } })).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_OPTION' }),
    );
  });

  it('an aborted connect rejects with ABORT_ERR', async () => {
    const connect = yamuxAgentConnector({ connect: tcpCarrier({ host: '127.0.0.1', port }) });
    const ctl = new AbortController();
    const p = connect({ agentid: ['a1'] }, { signal: ctl.signal });
    const incoming = await accepted;
    ctl.abort();
    await expect(p).rejects.toMatchObject({ code: 'ABORT_ERR' });
    incoming.reject(new KonnectivityError(ErrorCode.SHUTTING_DOWN, 'bye'));
  });
});
