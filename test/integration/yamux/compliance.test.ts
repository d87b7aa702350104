/** The shared PacketStream compliance suite over a yamux tunnel (control stream and substreams): TCP, mTLS, WebSocket. */
import { describePacketStreamCompliance } from '../../compliance/packet-stream.js';
import { CARRIERS, tunnelPair } from './helpers.js';

const remoteMetadata = { a: { serverid: ['server-1'], servercount: ['3'] }, b: { agentid: ['agent-1'] } };
// A yamux stream's writable buffer (64 KiB) plus one 1 MiB packet handed to it; the window (1 MiB, grown to at most
// 2 MiB here) and socket buffers are what may be in flight.
const HWM = 64 * 1024;
const yamux = { streamWindowCeilingBytes: 2 * 1024 * 1024 };

for (const kind of CARRIERS) {
  describePacketStreamCompliance(
    `yamux over ${kind}`,
    async () => {
      const p = await tunnelPair(kind, {
        metadata: { agentid: ['agent-1'] },
        responseMetadata: { serverid: ['server-1'], servercount: ['3'] },
        yamux,
      });
      return { a: p.agent, b: p.server, cleanup: p.close };
    },
    { supportsSubstreams: true, highWaterMarkBytes: HWM, inFlightBytes: 4 * 1024 * 1024, remoteMetadata },
  );
}
