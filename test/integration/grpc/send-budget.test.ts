/**
 * Two node:http2 peers with windows far above the socket buffers, both pushing bulk data at once: node reads
 * nothing while one of its socket writes is pending, so without the client's send budget (send-budget.ts) both
 * stop reading within the first megabytes and wait for each other for ever. With it, both directions finish.
 */
import { describe, it } from 'vitest';
import { PacketType, dataOf, type DataPacket } from '../../../src/protocol/index.js';
import type { PacketStream } from '../../../src/transport/packet-stream.js';
import { expectNoLeaks, snapshotResources } from '../../helpers/leaks.js';
import { agentLegPair, pushData, type Kind } from './helpers.js';

const WINDOW = 16 * 1024 * 1024;
const TOTAL = 48 * 1024 * 1024;

/** Send `total` bytes of DATA in 64 KiB packets. */
const push = (stream: PacketStream, total: number): Promise<void> => pushData(stream, total, 64 * 1024);

/** Resolves once `stream` received `total` DATA bytes; rejects when nothing arrives for `stallMs`. */
function received(stream: PacketStream, total: number, stallMs: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let got = 0;
    let timer = setTimeout(stalled, stallMs);
    function stalled(): void {
      reject(new Error(`stalled after ${got} of ${total} bytes`));
    }
    stream.on('packet', (p) => {
      if (p.type !== PacketType.DATA) return;
      got += dataOf(p as DataPacket).length;
      clearTimeout(timer);
      if (got >= total) resolve();
      else timer = setTimeout(stalled, stallMs);
    });
  });
}

describe.each<Kind>(['tcp', 'tls'])('two node peers with %s and 16 MiB windows on both ends', (kind) => {
  it('both push bulk data at once and both directions finish', async () => {
    const before = snapshotResources();
    const { a, b, cleanup } = await agentLegPair(kind, { windowBytes: WINDOW, maxWindowBytes: WINDOW });
    try {
      const atServer = received(b, TOTAL, 10_000);
      const atClient = received(a, TOTAL, 10_000);
      await Promise.all([push(a, TOTAL), push(b, TOTAL), atServer, atClient]);
      await Promise.all([a.close(), b.close()]);
    } finally {
      a.destroy();
      b.destroy();
      await cleanup();
    }
    await expectNoLeaks(before, { timeoutMs: 5000 });
  }, 90_000);
});
