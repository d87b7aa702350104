/** The shared PacketStream compliance suite over the in-memory pair: plain, through the codec, and with substreams. */
import { createMemoryPair } from '../../../../src/transport/memory/index.js';
import { describePacketStreamCompliance } from '../../../compliance/packet-stream.js';

const HWM = 256 * 1024;
const metadata = { a: { serverid: ['s-1'], servercount: ['2'] }, b: { agentid: ['agent-1'] } };

describePacketStreamCompliance(
  'memory pair',
  async () => {
    const [a, b] = createMemoryPair({ highWaterMarkBytes: HWM, metadata });
    return { a, b };
  },
  { highWaterMarkBytes: HWM, remoteMetadata: metadata },
);

describePacketStreamCompliance(
  'memory pair through the codec',
  async () => {
    const [a, b] = createMemoryPair({ highWaterMarkBytes: HWM, metadata, encode: true });
    return { a, b };
  },
  { highWaterMarkBytes: HWM, remoteMetadata: metadata },
);

describePacketStreamCompliance(
  'memory pair with substreams',
  async () => {
    const [a, b] = createMemoryPair({ highWaterMarkBytes: HWM, metadata, substreams: true });
    return { a, b };
  },
  { highWaterMarkBytes: HWM, remoteMetadata: metadata, supportsSubstreams: true },
);
