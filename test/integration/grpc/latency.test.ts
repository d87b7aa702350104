/**
 * Through a link with added latency, a gRPC tunnel is not held to 64 KiB per round trip (HTTP/2's default window,
 * which grpc-js keeps): our windows let far more be in flight, and the server's grows with bandwidth x delay.
 * Asserted on window sizes and bytes in flight, never on speed.
 */
import { expect, it } from 'vitest';
import { PacketType, dataOf, type DataPacket } from '../../../src/protocol/index.js';
import { createGrpcServer, grpcAgentConnector, type GrpcServer } from '../../../src/transport/grpc/index.js';
import type { PacketStream } from '../../../src/transport/packet-stream.js';
import { expectNoLeaks, snapshotResources } from '../../helpers/leaks.js';
import { startDelayRelay } from './delay-relay.js';
import { pushData as push } from './helpers.js';

type Measured = PacketStream & { receiveWindowBytes?: number; roundTripMs?: number };

/** A gRPC server that counts the DATA bytes its agent call receives and closes when the agent ends. */
async function countingServer(): Promise<{ server: GrpcServer; received: () => number; end: () => Measured | undefined }> {
  let received = 0;
  let serverEnd: Measured | undefined;
  const server = await createGrpcServer({
    port: 0,
    agent: (incoming) => {
      serverEnd = incoming.accept({ serverid: ['s'] });
      serverEnd.on('packet', (p) => (received += p.type === PacketType.DATA ? dataOf(p as DataPacket).length : 0));
      serverEnd.on('end', () => void serverEnd!.close());
    },
  });
  return { server, received: () => received, end: () => serverEnd };
}

it('keeps more than 64 KiB in flight over a 20 ms link', async () => {
  const before = snapshotResources();
  const { server, received } = await countingServer();
  const relay = await startDelayRelay(server.port, 20);
  try {
    const stream = await grpcAgentConnector({ address: `127.0.0.1:${relay.port}` })({ agentid: ['a'] }, {});
    const total = 8 * 1024 * 1024;
    await push(stream, total);
    await stream.close();
    expect(received()).toBe(total);
    // A 64 KiB window would keep this at about 64 KiB.
    expect(relay.maxHeldUp).toBeGreaterThan(512 * 1024);
  } finally {
    await relay.close();
    await server.close({ graceMs: 1000 });
  }
  await expectNoLeaks(before, { timeoutMs: 5000 });
});

it('grows the server window with bandwidth x delay on a 100 ms link', async () => {
  // 100 ms, so that 2 MiB per round trip (20 MB/s) is what limits the sender even on a busy machine.
  const before = snapshotResources();
  const { server, received, end } = await countingServer();
  const relay = await startDelayRelay(server.port, 50);
  try {
    const stream = await grpcAgentConnector({ address: `127.0.0.1:${relay.port}` })({ agentid: ['a'] }, {});
    const client = stream as Measured;
    await push(stream, 48 * 1024 * 1024);
    const serverWindow = end()!.receiveWindowBytes;
    const roundTripMs = end()!.roundTripMs;
    const clientWindow = client.receiveWindowBytes;
    await stream.close();
    expect(received()).toBe(48 * 1024 * 1024);
    // The path's round trip is at least the relay's 100 ms.
    expect(roundTripMs).toBeGreaterThanOrEqual(99);
    // The window the server announces grew beyond its 2 MiB start, within its 16 MiB bound, and the sender used
    // it: more than the starting window was in flight at once.
    expect(serverWindow).toBeGreaterThan(2 * 1024 * 1024);
    expect(serverWindow).toBeLessThanOrEqual(16 * 1024 * 1024);
    expect(relay.maxHeldUp).toBeGreaterThan(2 * 1024 * 1024 + 512 * 1024);
    // The client received no DATA, so its window had nothing to grow from.
    expect(clientWindow).toBe(2 * 1024 * 1024);
  } finally {
    await relay.close();
    await server.close({ graceMs: 1000 });
  }
  await expectNoLeaks(before, { timeoutMs: 5000 });
});

it('a node client that receives bulk data on a 100 ms link grows its window past 4 MiB against a node server, and gives it back when it sends', async () => {
  // Past 4 MiB only behind its send budget (send-budget.ts); when it then sends bulk data and little arrives, the
  // budget would hold it, so the window goes back to 4 MiB and the budget stops applying.
  const before = snapshotResources();
  const total = 48 * 1024 * 1024;
  let serverPush: Promise<void> | undefined;
  let atServer = 0;
  const server = await createGrpcServer({
    port: 0,
    agent: (incoming) => {
      const serverEnd = incoming.accept({ serverid: ['s'] });
      serverEnd.on('packet', (p) => (atServer += p.type === PacketType.DATA ? dataOf(p as DataPacket).length : 0));
      serverPush = push(serverEnd, total);
      serverEnd.on('end', () => void serverPush!.then(() => serverEnd.close()));
    },
  });
  const relay = await startDelayRelay(server.port, 50);
  try {
    const stream = (await grpcAgentConnector({ address: `127.0.0.1:${relay.port}` })({ agentid: ['a'] }, {})) as Measured;
    let atClient = 0;
    const done = new Promise<void>((resolve) => {
      stream.on('packet', (p) => {
        atClient += p.type === PacketType.DATA ? dataOf(p as DataPacket).length : 0;
        if (atClient === total) resolve();
      });
    });
    await done;
    const grownWindow = stream.receiveWindowBytes;
    expect(stream.roundTripMs).toBeGreaterThanOrEqual(99);
    await push(stream, total);
    const givenBack = stream.receiveWindowBytes;
    await stream.close();
    expect(atServer).toBe(total);
    expect(grownWindow).toBeGreaterThan(4 * 1024 * 1024);
    expect(grownWindow).toBeLessThanOrEqual(16 * 1024 * 1024);
    expect(givenBack).toBe(4 * 1024 * 1024);
  } finally {
    await relay.close();
    await server.close({ graceMs: 1000 });
  }
  await expectNoLeaks(before, { timeoutMs: 5000 });
}, 90_000);

it('two node peers both pushing bulk data finish when the server window is far above the socket buffers', async () => {
  // With 6 MiB or more on both ends, node:http2 peers that both push stop reading and wait for ever; the client
  // keeping to its bound (4 MiB) is what lets this finish, however large the server's window.
  const before = snapshotResources();
  const total = 48 * 1024 * 1024;
  let atServer = 0;
  let serverEnd: PacketStream | undefined;
  let serverPush: Promise<void> | undefined;
  const server = await createGrpcServer({
    port: 0,
    windowBytes: 64 * 1024 * 1024,
    agent: (incoming) => {
      serverEnd = incoming.accept({ serverid: ['s'] });
      serverEnd.on('packet', (p) => (atServer += p.type === PacketType.DATA ? dataOf(p as DataPacket).length : 0));
      serverPush = push(serverEnd, total);
      serverEnd.on('end', () => void serverPush!.then(() => serverEnd!.close()));
    },
  });
  try {
    const stream = await grpcAgentConnector({ address: `127.0.0.1:${server.port}`, windowBytes: 4 * 1024 * 1024 })({ agentid: ['a'] }, {});
    let atClient = 0;
    stream.on('packet', (p) => (atClient += p.type === PacketType.DATA ? dataOf(p as DataPacket).length : 0));
    await push(stream, total);
    await stream.close();
    expect(atServer).toBe(total);
    expect(atClient).toBe(total);
  } finally {
    await server.close({ graceMs: 1000 });
  }
  await expectNoLeaks(before, { timeoutMs: 5000 });
}, 60_000);
