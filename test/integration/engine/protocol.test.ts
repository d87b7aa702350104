/** The engine against hand-driven peers: exact packets on the wire for each rule of PROTOCOL.md §2.3. */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { once } from 'node:events';
import { echoServer, tcpServer } from '../../helpers/engine.js';
import { expectNoLeaks, snapshotResources, type ResourceSnapshot } from '../../helpers/leaks.js';
import { packetReader, refusedAddress } from '../../helpers/sockets.js';
import {
  Agent,
  ErrorCode,
  HALF_CLOSE_METADATA,
  PacketType,
  ProxyServer,
  WINDOW_METADATA_KEY,
  closeDial,
  closeRequest,
  createMemoryPair,
  dataPacket,
  dialRequest,
  dialResponse,
  dialOverStream,
  isKonnectivityError,
  memoryConnector,
  type PacketStream,
} from '../../../src/index.js';


let before: ResourceSnapshot;
const cleanups: Array<() => unknown> = [];
beforeEach(() => {
  before = snapshotResources();
});
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  await expectNoLeaks(before);
});

describe('agent, driven by a hand-written server', () => {
  async function setup() {
    const agent = new Agent({ agentID: 'a1', credits: false });
    const [server, agentSide] = createMemoryPair({ encode: true, metadata: { b: { serverid: ['s'], servercount: ['3'] } } });
    const tunnel = agent.serve(agentSide);
    cleanups.push(() => agent.destroy());
    return { agent, tunnel, server, rx: packetReader(server) };
  }

  it('answers unknown connectIDs and ignores unknown types', async () => {
    const { server, rx, tunnel } = await setup();
    expect(tunnel).toMatchObject({ serverID: 's', serverCount: 3 });
    server.write({ type: 99, unknown: true });
    server.write(dataPacket(0n, Buffer.from('x')));
    server.write(dataPacket(7n, Buffer.from('x')));
    expect(await rx.next()).toEqual({ type: PacketType.CLOSE_RSP, closeResponse: { connectID: 7n, error: 'unrecognized connectID' } });
    server.write(closeRequest(9n));
    expect(await rx.next()).toEqual({ type: PacketType.CLOSE_RSP, closeResponse: { connectID: 9n, error: 'Unknown connectID' } });
    expect(rx.pending()).toBe(0);
  });

  it('allocates connectIDs from 1 (failed dials use one), closes on CLOSE_REQ, and reports endpoint EOF', async () => {
    const echo = await echoServer();
    cleanups.push(() => echo.close());
    let endNext = false;
    const closer = await tcpServer((s) => endNext && s.end());
    cleanups.push(() => closer.close());
    const { server, rx, agent } = await setup();

    server.write(dialRequest(echo.address, 11n));
    expect(await rx.next()).toMatchObject({ type: PacketType.DIAL_RSP, dialResponse: { random: 11n, connectID: 1n, error: '' } });
    const refused = await refusedAddress();
    server.write(dialRequest(refused, 12n));
    const failed = await rx.next();
    expect(failed).toMatchObject({ type: PacketType.DIAL_RSP, dialResponse: { random: 12n, connectID: 0n } });
    expect((failed as { dialResponse: { error: string } }).dialResponse.error).toBe(`dial tcp ${refused}: connect: connection refused`);

    server.write(dataPacket(1n, Buffer.from('ping')));
    const echoed = await rx.next();
    expect(echoed.type).toBe(PacketType.DATA);
    expect(Buffer.from((echoed as { data: { data: Uint8Array } }).data.data).toString()).toBe('ping');
    server.write(closeRequest(1n));
    expect(await rx.next()).toEqual({ type: PacketType.CLOSE_RSP, closeResponse: { connectID: 1n, error: '' } });

    endNext = true;
    server.write(dialRequest(closer.address, 13n));
    expect(await rx.next()).toMatchObject({ type: PacketType.DIAL_RSP, dialResponse: { random: 13n, connectID: 3n } });
    // The endpoint ends: an unsolicited CLOSE_RSP.
    expect(await rx.next()).toEqual({ type: PacketType.CLOSE_RSP, closeResponse: { connectID: 3n, error: '' } });

    agent.drain();
    expect(await rx.next()).toEqual({ type: PacketType.DRAIN, drain: {} });
  });
});

describe('server, driven by a hand-written agent', () => {
  it('sends serverid/servercount, confirms credits only when offered, and closes stray connectIDs', async () => {
    const server = new ProxyServer({ serverID: 'srv', serverCount: 2 });
    cleanups.push(() => server.destroy());
    const connect = memoryConnector((incoming) => void server.acceptAgent(incoming), { encode: true });
    const legacy = await connect({ agentid: ['go-agent'] }, {});
    expect(legacy.remoteMetadata).toEqual({ serverid: ['srv'], servercount: ['2'] });
    const modern = await connect({ agentid: ['ts-agent'], [WINDOW_METADATA_KEY]: ['262144'] }, {});
    expect(modern.remoteMetadata[WINDOW_METADATA_KEY]).toEqual(['262144']);
    expect(server.agentCount).toBe(2);

    const rx = packetReader(legacy);
    legacy.write(dialResponse(424242n, 5n));
    expect(await rx.next()).toEqual({ type: PacketType.CLOSE_REQ, closeRequest: { connectID: 5n } });
    legacy.write(dataPacket(6n, Buffer.from('?')));
    expect(await rx.next()).toEqual({ type: PacketType.CLOSE_REQ, closeRequest: { connectID: 6n } });
    legacy.destroy();
    modern.destroy();
  });
});

describe('frontend leg (gRPC-style stream) with dialOverStream', () => {
  async function setup() {
    const server = new ProxyServer();
    const agent = new Agent({ agentID: 'a' });
    cleanups.push(() => server.destroy());
    cleanups.push(() => agent.destroy());
    // A konnectivity-ts client: it offers half-close, and the server's confirmation is what its side sees.
    const frontend = (): PacketStream => {
      const [serverSide, clientSide] = createMemoryPair({ encode: true, metadata: { a: HALF_CLOSE_METADATA, b: HALF_CLOSE_METADATA } });
      expect(server.acceptFrontend(serverSide)).toEqual(HALF_CLOSE_METADATA);
      return clientSide;
    };
    return { server, agent, frontend };
  }

  it('dials, echoes and closes; the stream ends with the connection', async () => {
    const echo = await echoServer();
    cleanups.push(() => echo.close());
    const { server, agent, frontend } = await setup();
    await agent.connect(memoryConnector((i) => void server.acceptAgent(i), { encode: true }));
    const stream = frontend();
    const socket = await dialOverStream(stream, echo.address);
    socket.write('hello');
    const [d] = await once(socket, 'data');
    expect(String(d)).toBe('hello');
    expect(server.stats.packets.toFrontend['DIAL_RSP']).toBe(1);
    socket.end();
    await once(socket, 'close');
    if (!stream.closed) await once(stream, 'close');
    expect(server.stats.establishedConnections).toBe(0);
  });

  it('no agent: DIAL_RSP error "No agent available"', async () => {
    const { frontend } = await setup();
    const err = await dialOverStream(frontend(), '127.0.0.1:1').catch((e: unknown) => e);
    expect(isKonnectivityError(err, ErrorCode.DIAL_FAILED)).toBe(true);
    expect((err as Error).message).toBe('No agent available');
  });

  it('CLOSE_REQ before any dial: CLOSE_RSP "backend uninitialized"; DATA: "backend not initialized"', async () => {
    const { frontend } = await setup();
    const stream = frontend();
    const rx = packetReader(stream);
    stream.write(closeRequest(3n));
    expect(await rx.next()).toEqual({ type: PacketType.CLOSE_RSP, closeResponse: { connectID: 3n, error: 'backend uninitialized' } });
    stream.write(dataPacket(4n, Buffer.from('x')));
    expect(await rx.next()).toEqual({ type: PacketType.CLOSE_RSP, closeResponse: { connectID: 4n, error: 'backend not initialized' } });
    stream.destroy();
  });

  it("a frontend's DIAL_CLS reaches the agent (reference issue #404)", async () => {
    const { server, frontend } = await setup();
    let aborted!: Promise<unknown>;
    let dialing!: () => void;
    const started = new Promise<void>((r) => (dialing = r));
    const slow = new Agent({
      agentID: 'slow',
      dialer: ({ signal }) => {
        aborted = once(signal, 'abort');
        dialing();
        return new Promise(() => {});
      },
    });
    cleanups.push(() => slow.destroy());
    await slow.connect(memoryConnector((i) => void server.acceptAgent(i), { encode: true }));
    const stream = frontend();
    stream.on('error', () => {});
    stream.write(dialRequest('10.1.1.1:80', 77n));
    await started;
    const failed = once(server, 'dialFailed');
    stream.write(closeDial(77n));
    await aborted;
    const [e] = await failed;
    expect(e).toMatchObject({ reason: 'frontend_close', frontend: 'grpc', dialID: 77n });
    expect(server.stats.pendingDials).toBe(0);
    stream.destroy();
  });
});
