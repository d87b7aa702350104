/** The shared PacketStream compliance suite over the in-memory pair: plain, through the codec, and with substreams. */
import { createMemoryPair, type MemoryPairOptions } from '../../../../src/transport/memory/index.js';
import { describePacketStreamCompliance } from '../../../compliance/packet-stream.js';

const HWM = 256 * 1024;
const metadata = { a: { serverid: ['s-1'], servercount: ['2'] }, b: { agentid: ['agent-1'] } };

const variants: Array<[string, MemoryPairOptions]> = [
  ['memory pair', {}],
  ['memory pair through the codec', { encode: true }],
  ['memory pair with substreams', { substreams: true }],
];

for (const [name, extra] of variants) {
  describePacketStreamCompliance(
    name,
    async () => {
      const [a, b] = createMemoryPair({ highWaterMarkBytes: HWM, metadata, ...extra });
      return { a, b };
    },
    { highWaterMarkBytes: HWM, remoteMetadata: metadata, supportsSubstreams: extra.substreams ?? false },
  );
}
