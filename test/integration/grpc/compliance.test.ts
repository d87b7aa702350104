/** The shared PacketStream compliance suite over a gRPC agent-leg call: h2c over TCP, mutual TLS, Unix socket. */
import { describePacketStreamCompliance } from '../../compliance/packet-stream.js';
import { DEFAULT_GRPC_UDS_WINDOW_BYTES } from '../../../src/transport/windows.js';
import { agentLegPair, type Kind } from './helpers.js';

// Above what the suite writes in one turn of the event loop (16 x 64 KiB): node counts bytes not yet handed to
// the socket as buffered, so a smaller mark would report (and clear) a transient backlog that is no pushback.
const HWM = 2 * 1024 * 1024;
// The default starting windows (2 MiB over TCP, 128 KiB over a Unix socket), kept from growing so the bound below
// holds (growth is bounded by maxWindowBytes; latency.test.ts covers it); HTTP/2 and the sockets hold the rest.
// Over a Unix socket the window must stay within its small buffers (about 208 KiB): two node:http2 peers that
// both push more than that stop reading while their writes wait, and wait for each other (src/transport/windows.ts).
const WINDOW = 2 * 1024 * 1024;
const maxWindowBytes = (kind: Kind): number => (kind === 'uds' ? DEFAULT_GRPC_UDS_WINDOW_BYTES : WINDOW);
const remoteMetadata = { a: { serverid: ['server-1'], servercount: ['3'] }, b: { agentid: ['agent-1'] } };

for (const kind of ['tcp', 'tls', 'uds'] as Kind[]) {
  describePacketStreamCompliance(
    `grpc agent leg over ${kind}`,
    async () =>
      agentLegPair(kind, {
        highWaterMarkBytes: HWM,
        maxWindowBytes: maxWindowBytes(kind),
        requestMetadata: { agentid: ['agent-1'] },
        responseMetadata: { serverid: ['server-1'], servercount: ['3'] },
      }),
    { highWaterMarkBytes: HWM, inFlightBytes: 2 * WINDOW + 4 * 1024 * 1024, remoteMetadata },
  );
}
