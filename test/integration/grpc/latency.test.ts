/**
 * Through a link with added latency, a gRPC tunnel is not held to 64 KiB per round trip (HTTP/2's default window,
 * which grpc-js keeps): our windows let far more be in flight. Asserted on bytes in flight, never on speed.
 */
import { expect, it } from 'vitest';
import { PacketType, dataOf, dataPacket, type DataPacket } from '../../../src/protocol/index.js';
import { createGrpcServer, grpcAgentConnector } from '../../../src/transport/grpc/index.js';
import type { PacketStream } from '../../../src/transport/packet-stream.js';
import { expectNoLeaks, snapshotResources } from '../../helpers/leaks.js';
import { startDelayRelay } from './delay-relay.js';

it('keeps more than 64 KiB in flight over a 20 ms link', async () => {
  const before = snapshotResources();
  let received = 0;
  let serverEnd: PacketStream | undefined;
  const server = await createGrpcServer({
    port: 0,
    agent: (incoming) => {
      serverEnd = incoming.accept({ serverid: ['s'] });
      serverEnd.on('packet', (p) => (received += p.type === PacketType.DATA ? dataOf(p as DataPacket).length : 0));
      serverEnd.on('end', () => void serverEnd!.close());
    },
  });
  const relay = await startDelayRelay(server.port, 20);
  try {
    const stream = await grpcAgentConnector({ address: `127.0.0.1:${relay.port}` })({ agentid: ['a'] }, {});
    const total = 8 * 1024 * 1024;
    const chunk = 32 * 1024;
    for (let sent = 0; sent < total; sent += chunk) {
      if (!stream.write(dataPacket(1n, Buffer.alloc(chunk, 7)))) await new Promise<void>((r) => stream.once('drain', () => r()));
    }
    await stream.close();
    expect(received).toBe(total);
    // A 64 KiB window would keep this at about 64 KiB.
    expect(relay.maxHeldUp).toBeGreaterThan(512 * 1024);
  } finally {
    await relay.close();
    await server.close({ graceMs: 1000 });
  }
  await expectNoLeaks(before, { timeoutMs: 5000 });
});
