/**
 * The DATA chunk size an agent sends over a real gRPC tunnel follows what the server confirmed: up to 128 KiB when
 * a konnectivity-ts server confirms `konnectivity-ts-chunk`, 32 KiB for a server that confirms nothing (Go) or only
 * the window (an older konnectivity-ts). The server here is a hand-driven gRPC server, so the packets it gets are
 * exactly what the agent sent.
 */
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { Agent, PacketType, dataOf, dialRequest, type DataPacket, type Metadata, type PacketStream } from '../../../src/index.js';
import { createGrpcServer, grpcAgentConnector } from '../../../src/transport/grpc/index.js';
import { CHUNK_METADATA_KEY, WINDOW_METADATA_KEY, acceptCreditOffer } from '../../../src/tunnel/flow.js';
import { leakCheckedCleanups } from '../../helpers/cleanups.js';
import { packetReader } from '../../helpers/sockets.js';

const cleanups = leakCheckedCleanups();
const KiB = 1024;
/** Within the agent's 1 MiB credit window, so no WINDOW_UPDATE is needed. */
const TOTAL = 512 * KiB;

/** A target that writes TOTAL bytes at once to whoever connects, then ends. */
async function burstTarget(): Promise<string> {
  const target = net.createServer((s) => s.end(Buffer.alloc(TOTAL, 9)));
  await new Promise<void>((r) => target.listen(0, '127.0.0.1', r));
  cleanups.push(() => new Promise<void>((r) => target.close(() => r())));
  return `127.0.0.1:${(target.address() as net.AddressInfo).port}`;
}

/** What the agent offered, and the DATA payload sizes it sends for one dial when the server confirms `respond(offer)`. */
async function sentSizes(respond: (offer: Metadata) => Metadata): Promise<{ offer: Metadata; sizes: number[] }> {
  const target = await burstTarget();
  let offer: Metadata = {};
  let accept: (end: PacketStream) => void;
  const accepted = new Promise<PacketStream>((r) => (accept = r));
  const server = await createGrpcServer({
    port: 0,
    agent: (incoming) => {
      offer = incoming.metadata;
      accept(incoming.accept({ serverid: ['s'], ...respond(incoming.metadata) }));
    },
  });
  cleanups.push(() => server.close({ graceMs: 0 }));
  const agent = new Agent({ agentID: 'a' });
  cleanups.push(() => agent.destroy());
  await agent.connect(grpcAgentConnector({ address: `127.0.0.1:${server.port}` }));
  const end = await accepted;
  const rx = packetReader(end);
  end.write(dialRequest(target, 7n));
  const sizes: number[] = [];
  for (let got = 0; got < TOTAL; ) {
    const p = await rx.next();
    if (p.type === PacketType.DIAL_RSP) expect((p as { dialResponse: { error: string } }).dialResponse.error).toBe('');
    if (p.type !== PacketType.DATA) continue;
    const n = dataOf(p as DataPacket).length;
    sizes.push(n);
    got += n;
  }
  return { offer, sizes };
}

describe('DATA chunk size over gRPC', () => {
  it('a konnectivity-ts server that confirms the chunk offer gets payloads above 32 KiB, none above 128 KiB', async () => {
    const { offer, sizes } = await sentSizes((o) => acceptCreditOffer(o, 1024 * KiB)!.response);
    expect(offer[CHUNK_METADATA_KEY]).toEqual(['131072']);
    // The agent reads its target socket 64 KiB at a time, so a 512 KiB burst yields reads above 32 KiB.
    expect(Math.max(...sizes)).toBeGreaterThan(32 * KiB);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(128 * KiB);
  });

  it('a server that confirms only the window (an older konnectivity-ts) gets 32 KiB at most', async () => {
    const { sizes } = await sentSizes((o) => ({ [WINDOW_METADATA_KEY]: acceptCreditOffer(o, 1024 * KiB)!.response[WINDOW_METADATA_KEY]! }));
    expect(Math.max(...sizes)).toBeLessThanOrEqual(32 * KiB);
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(TOTAL);
  });

  it('a server that confirms nothing (Go) gets 32 KiB at most', async () => {
    const { sizes } = await sentSizes(() => ({}));
    expect(Math.max(...sizes)).toBeLessThanOrEqual(32 * KiB);
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(TOTAL);
  });
});
