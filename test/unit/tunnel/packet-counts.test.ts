/** Packet counts: a peer that sends many unknown packet types grows the table by one key, not one per type. */
import { describe, expect, it } from 'vitest';
import { dataPacket, dialRequest, type Packet } from '../../../src/index.js';
import { PacketCounts, UNKNOWN_PACKET_TYPE } from '../../../src/tunnel/packet-counts.js';

describe('PacketCounts', () => {
  it('counts known types by name and every unknown type under one key', () => {
    const counts = new PacketCounts(['fromAgent'] as const);
    counts.count('fromAgent', dialRequest('127.0.0.1:1', 1n));
    counts.count('fromAgent', dataPacket(1n, Buffer.from('x')));
    counts.count('fromAgent', { type: 64 } as Packet);
    counts.count('fromAgent', { type: 65 } as Packet);
    for (let type = 7; type < 5007; type++) {
      if (type === 64 || type === 65) continue;
      counts.count('fromAgent', { type, unknown: true } as Packet);
    }
    const snap = counts.snapshot().fromAgent;
    expect(Object.keys(snap).sort()).toEqual(['DATA', 'DIAL_REQ', 'HALF_CLOSE', UNKNOWN_PACKET_TYPE, 'WINDOW_UPDATE'].sort());
    expect(snap[UNKNOWN_PACKET_TYPE]).toBe(4998);
  });
});
