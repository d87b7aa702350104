/**
 * The `raw-data` substream encoding is used exactly when both sides speak it (an older peer never sends the
 * feature, which `rawData: false` stands for), and a tunnel carries the same bytes either way. What goes on the
 * wire is checked by reading the agent's carrier as yamux frames.
 */
import { once } from 'node:events';
import type { Duplex } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Agent } from '../../../src/agent/index.js';
import { decodePacket } from '../../../src/protocol/decode.js';
import { PacketType } from '../../../src/protocol/packet.js';
import { ProxyServer } from '../../../src/server/index.js';
import { FrameDecoder, FrameType } from '../../../src/transport/yamux/frame.js';
import { DelimitedMessageDecoder } from '../../../src/transport/yamux/delimited.js';
import { RecordDecoder, RecordKind } from '../../../src/transport/yamux/records.js';
import { yamuxAgentConnector } from '../../../src/transport/yamux/index.js';
import { until } from '../../compliance/helpers.js';
import { echoServer, receiveAll, sendPattern } from '../../helpers/engine.js';
import { expectNoLeaks, snapshotResources, type ResourceSnapshot } from '../../helpers/leaks.js';
import { listenYamux, type YamuxListener } from './helpers.js';

const MiB = 1024 * 1024;

/** The bytes of every yamux stream that reach `carrier`, by stream ID. */
function tapStreams(carrier: Duplex): Map<number, Buffer[]> {
  const byStream = new Map<number, Buffer[]>();
  const frames = new FrameDecoder();
  carrier.on('data', (chunk: Buffer) => {
    for (const f of frames.push(chunk)) {
      if (f.type !== FrameType.DATA || f.length === 0) continue;
      const parts = byStream.get(f.streamID) ?? [];
      parts.push(Buffer.from(f.payload!));
      byStream.set(f.streamID, parts);
    }
  });
  return byStream;
}

const cases = [
  { agentOffers: true, serverTakes: true, raw: true },
  { agentOffers: true, serverTakes: false, raw: false },
  { agentOffers: false, serverTakes: true, raw: false },
  { agentOffers: false, serverTakes: false, raw: false },
];

for (const c of cases) {
  describe(`raw-data offered by the agent: ${c.agentOffers}, taken by the server: ${c.serverTakes}`, () => {
    let before: ResourceSnapshot;
    let server: ProxyServer;
    let listener: YamuxListener;
    let agent: Agent;

    beforeEach(async () => {
      before = snapshotResources();
      server = new ProxyServer({ serverID: 's1' });
      listener = await listenYamux('tcp', { onTunnel: (i) => void server.acceptAgent(i), rawData: c.serverTakes });
      agent = new Agent({ agentID: 'a1' });
    });

    afterEach(async () => {
      agent.destroy();
      server.destroy();
      await listener.close();
      await expectNoLeaks(before);
    });

    it(`carries a checksummed 4 MiB echo, substreams ${c.raw ? 'as records' : 'as delimited Packets'}`, async () => {
      let tapped: Map<number, Buffer[]> | undefined;
      const connect = async (o: { signal: AbortSignal }): Promise<Duplex> => {
        const carrier = await listener.connect(o);
        tapped = tapStreams(carrier);
        return carrier;
      };
      await agent.connect(yamuxAgentConnector({ connect, rawData: c.agentOffers }));
      await until(() => server.ready, 'the server to register the agent');
      const echo = await echoServer();
      const socket = await server.dial(echo.address);
      const [sent, got] = await Promise.all([sendPattern(socket, 4 * MiB), receiveAll(socket, 4 * MiB)]);
      expect(got).toBe(sent);
      socket.destroy();
      await once(socket, 'close');
      await echo.close();

      // The server opened one substream (ID 2); what it sent the agent: DIAL_REQ, then the 4 MiB as DATA.
      const bytes = Buffer.concat(tapped!.get(2) ?? []);
      const types: number[] = [];
      let payload = 0;
      if (c.raw) {
        for (const r of new RecordDecoder({ maxRecordBytes: 4 * MiB }).push(bytes)) {
          if (r.kind === RecordKind.DATA) {
            types.push(-1);
            payload += r.bytes.length;
          } else {
            const p = decodePacket(r.bytes);
            types.push(p.type);
            if (p.type === PacketType.DATA) payload += (p as { data: { data: Uint8Array } }).data.data.length;
          }
        }
        // One DATA Packet names the connection; every later payload is a Data record.
        expect(types.filter((t) => t === PacketType.DATA)).toHaveLength(1);
        expect(types.filter((t) => t === -1).length).toBeGreaterThan(10);
      } else {
        for (const m of new DelimitedMessageDecoder({ maxMessageBytes: 4 * MiB }).push(bytes)) {
          const p = decodePacket(m);
          types.push(p.type);
          if (p.type === PacketType.DATA) payload += (p as { data: { data: Uint8Array } }).data.data.length;
        }
        expect(types.filter((t) => t === PacketType.DATA).length).toBeGreaterThan(10);
      }
      expect(types[0]).toBe(PacketType.DIAL_REQ);
      // The echo came back whole, so all the client sent had crossed the tapped carrier.
      expect(payload).toBe(4 * MiB);
    });
  });
}
