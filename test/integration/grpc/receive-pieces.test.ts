/**
 * The gRPC receive path keeps a DATA payload in the pieces node:http2 handed over (one per HTTP/2 DATA frame, 16 KiB
 * at most) instead of copying them into one buffer, and a packet forwarded unchanged to another call goes out as
 * the same bytes.
 */
import { expect, it } from 'vitest';
import { PacketType, dataOf, dataPacket, payloadOf, type DataPacket, type Packet } from '../../../src/protocol/index.js';
import { createGrpcServer, grpcAgentConnector } from '../../../src/transport/grpc/index.js';
import type { PacketStream } from '../../../src/transport/packet-stream.js';
import { expectNoLeaks, snapshotResources } from '../../helpers/leaks.js';

function pattern(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i + seed) % 251;
  return b;
}

it('delivers a large DATA payload as views of the received frames, and forwards it byte for byte', async () => {
  const before = snapshotResources();
  // Server A receives from the client and forwards every packet to server B over a second call.
  const atB: Packet[] = [];
  let endB: PacketStream | undefined;
  const serverB = await createGrpcServer({
    port: 0,
    agent: (incoming) => {
      endB = incoming.accept({});
      endB.on('packet', (p) => atB.push(p));
      endB.on('end', () => void endB!.close());
    },
  });
  const toB = await grpcAgentConnector({ address: `127.0.0.1:${serverB.port}` })({ agentid: ['fwd'] }, {});
  const atA: Packet[] = [];
  let endA: PacketStream | undefined;
  const serverA = await createGrpcServer({
    port: 0,
    agent: (incoming) => {
      endA = incoming.accept({});
      endA.on('packet', (p) => {
        atA.push(p);
        toB.write(p);
      });
      endA.on('end', () => void endA!.close());
    },
  });
  try {
    const client = await grpcAgentConnector({ address: `127.0.0.1:${serverA.port}` })({ agentid: ['c'] }, {});
    const sizes = [100_000, 32 * 1024, 10, 65_536];
    sizes.forEach((n, i) => client.write(dataPacket(BigInt(i + 1), pattern(n, i))));
    await client.close();
    await new Promise<void>((resolve) => {
      const check = (): void => (atB.length === sizes.length ? resolve() : void setTimeout(check, 10));
      check();
    });
    await toB.close();
    for (const [i, n] of sizes.entries()) {
      for (const got of [atA[i]!, atB[i]!]) {
        expect(got.type).toBe(PacketType.DATA);
        expect((got as DataPacket).data!.connectID).toBe(BigInt(i + 1));
        expect(Buffer.from(dataOf(got as DataPacket)).equals(pattern(n, i))).toBe(true);
      }
    }
    // 100 kB spans several 16 KiB frames: the payload is their views, not a copy.
    const big = payloadOf(atA[0] as DataPacket);
    expect(Array.isArray(big)).toBe(true);
    expect((big as Uint8Array[]).length).toBeGreaterThan(2);
  } finally {
    await serverA.close({ graceMs: 1000 });
    await serverB.close({ graceMs: 1000 });
  }
  await expectNoLeaks(before, { timeoutMs: 5000 });
});
