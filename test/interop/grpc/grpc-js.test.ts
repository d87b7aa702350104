/**
 * Interop with @grpc/grpc-js, an independent gRPC implementation: its client against our server (both services,
 * refusals, the message limit) and its server against our client (agent connector and Proxy streams). Messages are
 * serialized with our codec; grpc-js does the gRPC framing, metadata and status handling.
 */
import * as grpc from '@grpc/grpc-js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  ErrorCode,
  KonnectivityError,
  PacketType,
  dataOf,
  dataPacket,
  decodePacket,
  dialRequest,
  dialResponse,
  encodePacket,
  type DataPacket,
  type Packet,
} from '../../../src/protocol/index.js';
import {
  AGENT_CONNECT_PATH,
  PROXY_PATH,
  createGrpcServer,
  grpcAgentConnector,
  openProxyStream,
  type GrpcServer,
} from '../../../src/transport/grpc/index.js';
import type { IncomingPacketStream, PacketStream } from '../../../src/transport/packet-stream.js';
import { expectNoLeaks, snapshotResources, type ResourceSnapshot } from '../../helpers/leaks.js';
import { startDelayRelay } from '../../integration/grpc/delay-relay.js';

const serialize = (p: Packet): Buffer => encodePacket(p);
const deserialize = (b: Buffer): Packet => decodePacket(b);

function nextPackets(stream: PacketStream, n: number): Promise<Packet[]> {
  return new Promise((resolve, reject) => {
    const got: Packet[] = [];
    const onPacket = (p: Packet): void => {
      got.push(p);
      if (got.length === n) {
        stream.off('packet', onPacket);
        resolve(got);
      }
    };
    stream.on('packet', onPacket);
    stream.once('close', (err) => reject(err ?? new Error('closed early')));
  });
}

function callPackets(call: grpc.ClientDuplexStream<Packet, Packet> | grpc.ServerDuplexStream<Packet, Packet>, n: number): Promise<Packet[]> {
  return new Promise((resolve, reject) => {
    const got: Packet[] = [];
    const onData = (p: Packet): void => {
      got.push(p);
      if (got.length === n) {
        call.off('data', onData);
        resolve(got);
      }
    };
    call.on('data', onData);
    call.once('error', reject);
  });
}

function callStatus(call: grpc.ClientDuplexStream<Packet, Packet>): Promise<grpc.StatusObject> {
  return new Promise((resolve) => {
    call.on('error', () => {});
    call.on('status', resolve);
  });
}

describe('grpc-js client against our server', () => {
  let before: ResourceSnapshot;
  let server: GrpcServer;
  let client: grpc.Client;
  let agentHandler: (incoming: IncomingPacketStream) => void | Promise<void>;
  let frontendStreams: PacketStream[];

  beforeEach(async () => {
    before = snapshotResources();
    frontendStreams = [];
    server = await createGrpcServer({
      port: 0,
      maxMessageBytes: 1024 * 1024,
      agent: (incoming) => agentHandler(incoming),
      frontend: (stream) => {
        frontendStreams.push(stream);
        stream.on('error', () => {});
        // Echo every packet back, end when the client ends.
        stream.on('packet', (p) => stream.write(p));
        stream.on('end', () => void stream.close());
      },
    });
    client = new grpc.Client(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure());
  });
  afterEach(async () => {
    client.close();
    await server.close({ graceMs: 1000 });
    await expectNoLeaks(before, { timeoutMs: 5000 });
  });

  it('Connect: metadata both ways, response headers before any message, packets both ways, OK status', async () => {
    let serverEnd: PacketStream | undefined;
    let seen: IncomingPacketStream | undefined;
    agentHandler = (incoming) => {
      seen = incoming;
      serverEnd = incoming.accept({ serverid: ['server-7'], servercount: ['3'] });
      serverEnd.on('end', () => void serverEnd!.close());
    };
    const md = new grpc.Metadata();
    md.add('agentid', 'agent-1');
    md.add('agentidentifiers', 'host=node1&ipv4=10.0.0.5');
    const call = client.makeBidiStreamRequest<Packet, Packet>(AGENT_CONNECT_PATH, serialize, deserialize, md);
    // A Go agent blocks on the headers before sending anything: so must they come without any message from us.
    const headers = await new Promise<grpc.Metadata>((resolve) => call.once('metadata', resolve));
    expect(headers.get('serverid')).toEqual(['server-7']);
    expect(headers.get('servercount')).toEqual(['3']);
    expect(seen!.metadata.agentid).toEqual(['agent-1']);
    expect(seen!.metadata.agentidentifiers).toEqual(['host=node1&ipv4=10.0.0.5']);

    const random = (1n << 62n) + 12345n;
    const fromClient = callPackets(call, 2);
    const atServer = nextPackets(serverEnd!, 2);
    call.write(dialRequest('127.0.0.1:80', random));
    call.write(dataPacket(7n, Buffer.alloc(300_000, 5)));
    const [dial, data] = await atServer;
    expect(dial).toEqual(dialRequest('127.0.0.1:80', random));
    expect(dataOf(data as DataPacket).length).toBe(300_000);
    serverEnd!.write(dialResponse(random, 1n));
    serverEnd!.write(dataPacket(1n, Buffer.from('hello')));
    const got = await fromClient;
    expect(got[0]).toEqual(dialResponse(random, 1n));
    expect(Buffer.from(dataOf(got[1] as DataPacket)).toString()).toBe('hello');
    const status = callStatus(call);
    call.end();
    expect((await status).code).toBe(grpc.status.OK);
  });

  it('Connect refused by the handler: the status and message reach the client', async () => {
    agentHandler = (incoming) => incoming.reject(new KonnectivityError(ErrorCode.UNAUTHENTICATED, 'bad token: nope'));
    const call = client.makeBidiStreamRequest<Packet, Packet>(AGENT_CONNECT_PATH, serialize, deserialize, new grpc.Metadata());
    const status = await callStatus(call);
    expect(status.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(status.details).toBe('bad token: nope');
  });

  it('Connect refused by a throwing async handler, with a message that needs percent-encoding', async () => {
    agentHandler = async () => {
      throw new KonnectivityError(ErrorCode.PROTOCOL, 'expected one agentid, got 2 — ünïcode 100%');
    };
    const call = client.makeBidiStreamRequest<Packet, Packet>(AGENT_CONNECT_PATH, serialize, deserialize, new grpc.Metadata());
    const status = await callStatus(call);
    expect(status.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(status.details).toBe('expected one agentid, got 2 — ünïcode 100%');
  });

  it('Proxy: many concurrent calls on one connection, each its own stream', async () => {
    const calls = Array.from({ length: 10 }, () =>
      client.makeBidiStreamRequest<Packet, Packet>(PROXY_PATH, serialize, deserialize, new grpc.Metadata()),
    );
    const echoed = calls.map((c) => callPackets(c, 1));
    calls.forEach((c, i) => c.write(dataPacket(BigInt(i + 1), Buffer.alloc(1000 + i, i))));
    const results = await Promise.all(echoed);
    results.forEach(([p], i) => expect((p as DataPacket).data?.connectID).toBe(BigInt(i + 1)));
    expect(frontendStreams).toHaveLength(10);
    const statuses = calls.map(callStatus);
    calls.forEach((c) => c.end());
    for (const s of await Promise.all(statuses)) expect(s.code).toBe(grpc.status.OK);
  });

  it('a message over the limit gets RESOURCE_EXHAUSTED and the server keeps serving', async () => {
    const call = client.makeBidiStreamRequest<Packet, Packet>(PROXY_PATH, serialize, deserialize, new grpc.Metadata());
    const status = callStatus(call);
    call.write(dataPacket(1n, Buffer.alloc(2 * 1024 * 1024, 1)));
    const s = await status;
    expect(s.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(s.details).toMatch(/larger than max/);
    // Another call on the same connection still works.
    const ok = client.makeBidiStreamRequest<Packet, Packet>(PROXY_PATH, serialize, deserialize, new grpc.Metadata());
    const echoed = callPackets(ok, 1);
    ok.write(dataPacket(2n, Buffer.from('still here')));
    expect(Buffer.from(dataOf((await echoed)[0] as DataPacket)).toString()).toBe('still here');
    const okStatus = callStatus(ok);
    ok.end();
    expect((await okStatus).code).toBe(grpc.status.OK);
  });

  it('an unknown method gets UNIMPLEMENTED', async () => {
    const call = client.makeBidiStreamRequest<Packet, Packet>('/ProxyService/Nope', serialize, deserialize, new grpc.Metadata());
    expect((await callStatus(call)).code).toBe(grpc.status.UNIMPLEMENTED);
    const pkg = client.makeBidiStreamRequest<Packet, Packet>('/konnectivity.ProxyService/Proxy', serialize, deserialize, new grpc.Metadata());
    expect((await callStatus(pkg)).code).toBe(grpc.status.UNIMPLEMENTED);
  });
});

describe('our client against a grpc-js server', () => {
  let before: ResourceSnapshot;
  let server: grpc.Server;
  let port: number;
  let connectHandler: (call: grpc.ServerDuplexStream<Packet, Packet>) => void;

  beforeEach(async () => {
    before = snapshotResources();
    server = new grpc.Server();
    const echo = (call: grpc.ServerDuplexStream<Packet, Packet>): void => {
      call.on('data', (p: Packet) => call.write(p));
      call.on('end', () => call.end());
      call.on('error', () => {});
    };
    server.register(AGENT_CONNECT_PATH, (call: grpc.ServerDuplexStream<Packet, Packet>) => connectHandler(call), serialize, deserialize, 'bidi');
    server.register(PROXY_PATH, echo, serialize, deserialize, 'bidi');
    port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
    );
  });
  afterEach(async () => {
    await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
    server.forceShutdown();
    await expectNoLeaks(before, { timeoutMs: 5000 });
  });

  it('the agent connector sends metadata, reads serverid/servercount, and exchanges packets', async () => {
    let received: grpc.Metadata | undefined;
    connectHandler = (call) => {
      received = call.metadata;
      const md = new grpc.Metadata();
      md.add('serverid', 'go-like-server');
      md.add('servercount', '2');
      call.sendMetadata(md);
      call.on('data', (p: Packet) => call.write(p));
      call.on('end', () => call.end());
      call.on('error', () => {});
    };
    const connect = grpcAgentConnector({ address: `127.0.0.1:${port}` });
    const stream = await connect({ agentid: ['agent-9'], agentidentifiers: ['host=n1'] }, {});
    expect(stream.remoteMetadata.serverid).toEqual(['go-like-server']);
    expect(stream.remoteMetadata.servercount).toEqual(['2']);
    expect(received!.get('agentid')).toEqual(['agent-9']);
    expect(received!.get('agentidentifiers')).toEqual(['host=n1']);
    const echoed = nextPackets(stream, 3);
    const sent = [dialResponse(5n, 1n), dataPacket(1n, Buffer.alloc(500_000, 9)), { type: PacketType.DRAIN, drain: {} } as Packet];
    for (const p of sent) stream.write(p);
    const got = await echoed;
    expect(got[0]).toEqual(sent[0]);
    expect(dataOf(got[1] as DataPacket).length).toBe(500_000);
    expect(got[2]!.type).toBe(PacketType.DRAIN);
    await stream.close();
  });

  it('a refusal becomes ERR_UNAUTHENTICATED with the server message', async () => {
    connectHandler = (call) => {
      call.on('error', () => {});
      call.emit('error', { code: grpc.status.UNAUTHENTICATED, details: 'invalid token' });
    };
    const connect = grpcAgentConnector({ address: `127.0.0.1:${port}` });
    const err = await connect({ agentid: ['a'] }, {}).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(KonnectivityError);
    expect((err as KonnectivityError).code).toBe(ErrorCode.UNAUTHENTICATED);
    expect((err as KonnectivityError).message).toMatch(/invalid token/);
  });

  it('a Proxy stream (single-use) round-trips packets and closes cleanly', async () => {
    const stream = openProxyStream({ address: `127.0.0.1:${port}` });
    const echoed = nextPackets(stream, 2);
    stream.write(dialRequest('10.0.0.1:443', 42n));
    stream.write(dataPacket(3n, Buffer.from('ping')));
    const got = await echoed;
    expect(got[0]).toEqual(dialRequest('10.0.0.1:443', 42n));
    await stream.close();
  });

  it('against a server that reads while it writes (no konnectivity-ts-http2 header), the client window grows', async () => {
    const total = 24 * 1024 * 1024;
    connectHandler = (call) => {
      call.sendMetadata(new grpc.Metadata());
      call.on('error', () => {});
      const chunk = Buffer.alloc(32 * 1024, 3);
      let sent = 0;
      const pump = (): void => {
        while (sent < total) {
          sent += chunk.length;
          if (!call.write(dataPacket(1n, chunk))) {
            call.once('drain', pump);
            return;
          }
        }
        call.end();
      };
      pump();
    };
    const relay = await startDelayRelay(port, 50);
    try {
      const stream = (await grpcAgentConnector({ address: `127.0.0.1:${relay.port}` })({ agentid: ['a'] }, {})) as PacketStream & {
        receiveWindowBytes?: number;
      };
      let got = 0;
      let window = 0;
      await new Promise<void>((resolve, reject) => {
        stream.on('packet', (p) => {
          got += dataOf(p as DataPacket).length;
          window = Math.max(window, stream.receiveWindowBytes ?? 0);
        });
        stream.once('end', () => resolve());
        stream.once('close', (err) => (err ? reject(err) : resolve()));
      });
      await stream.close();
      expect(got).toBe(total);
      expect(window).toBeGreaterThan(2 * 1024 * 1024);
    } finally {
      await relay.close();
    }
  }, 60_000);
});
