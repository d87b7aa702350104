/**
 * A stalled connection on a yamux substream holds at most the substream's window: the engine's per-connection buffer
 * is the yamux window itself (TunnelGroup serves substreams with `holdUntilConsumed`), not a buffer beside it.
 * Real tunnels over TCP on loopback; asserts bytes held, never speed.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { dataPacket, type Packet } from '../../../src/protocol/packet.js';
import type { PacketStream } from '../../../src/transport/packet-stream.js';
import type { Tunnel, TunnelConnection } from '../../../src/tunnel/tunnel.js';
import { TunnelGroup } from '../../../src/tunnel/tunnel-group.js';
import { until } from '../../compliance/helpers.js';
import { expectNoLeaks, snapshotResources, type ResourceSnapshot } from '../../helpers/leaks.js';
import { tunnelPair, type TunnelPair } from './helpers.js';

const KiB = 1024;
const MiB = 1024 * KiB;
/** The substreams' window, far below the engine's per-connection buffer: the window must be what bounds. */
const WINDOW = 256 * KiB;
const BUFFER = 4 * MiB;
const yamux = { maxStreamWindowBytes: WINDOW, streamWindowCeilingBytes: WINDOW, keepAliveIntervalMs: 0 };

function group(stream: PacketStream, onPacket: (p: Packet, via: Tunnel) => void): TunnelGroup {
  return new TunnelGroup(stream, { terms: undefined, bufferBytes: BUFFER, onPacket, onSubstreamClose: () => undefined });
}

/**
 * Wait until `read()` has not changed for a few turns of 50 ms (the flow has stopped). What the test asserts after
 * it holds at every moment, so a load that makes this return early cannot make the test fail.
 */
async function settled(read: () => number): Promise<void> {
  let last = -1;
  let same = 0;
  while (same < 4) {
    await new Promise((r) => setTimeout(r, 50));
    const now = read();
    same = now === last ? same + 1 : 0;
    last = now;
  }
}

describe('a stalled yamux substream', () => {
  let before: ResourceSnapshot;
  let pair: TunnelPair;

  beforeEach(async () => {
    before = snapshotResources();
    pair = await tunnelPair('tcp', { metadata: {}, responseMetadata: {}, yamux });
  });

  afterEach(async () => {
    pair.agent.destroy();
    pair.server.destroy();
    await pair.close();
    await expectNoLeaks(before);
  });

  it('holds at most its window however large the engine buffer, and delivers the rest once read', async () => {
    // The receiving end (the agent's side) never passes anything on until told to.
    let delivered = 0;
    let mostHeld = 0;
    let stalled = true;
    let heldNow = 0;
    let receiver: TunnelConnection | undefined;
    const agentGroup = group(pair.agent, (_packet, via) => {
      if (receiver) return;
      // The first packet on the substream names the connection (as a DIAL_REQ would).
      receiver = via.open(1n, {
        onData: (_packet, length) => {
          delivered += length;
          if (stalled) heldNow += length;
          mostHeld = Math.max(mostHeld, heldNow);
          receiver!.handedOn(length, !stalled);
        },
        onWritable: () => undefined,
      });
    });
    pair.agent.substreams!.onStream((s) => agentGroup.serve(s));
    const serverGroup = group(pair.server, () => undefined);
    const via = serverGroup.serve(pair.server.substreams!.open());
    via.send(dataPacket(1n, Buffer.alloc(0)));
    const sender = via.open(1n, { onData: () => undefined, onWritable: () => undefined });

    const total = 2 * BUFFER;
    const chunk = Buffer.alloc(64 * KiB, 7);
    let sent = 0;
    const pump = (): void => {
      while (sent < total) {
        sent += chunk.length;
        if (!sender.sendData(chunk)) return;
      }
    };
    sender.handlers = { onData: () => undefined, onWritable: pump };
    await until(() => receiver !== undefined, 'the substream to reach the agent');
    pump();
    await until(() => delivered >= WINDOW / 2, 'the first window to arrive');
    await settled(() => delivered);
    // Everything the stalled owner holds came through the window, which it never gave back.
    expect(mostHeld).toBeLessThanOrEqual(WINDOW);
    expect(delivered).toBeLessThanOrEqual(WINDOW);
    expect(sent).toBeLessThan(total);

    // The owner passes its bytes on: the window opens again and everything arrives.
    stalled = false;
    heldNow = 0;
    receiver!.release();
    await until(() => delivered === total, 'the rest to arrive once read');
    expect(receiver!.bytesReceived).toBe(total);
    agentGroup.destroy(new Error('test over'));
    serverGroup.destroy(new Error('test over'));
  });
});
