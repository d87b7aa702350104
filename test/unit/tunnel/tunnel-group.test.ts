/**
 * TunnelGroup over in-memory pairs: each substream's packets, end and close reach the group's handlers with that
 * substream's Tunnel (one pair of listeners serves the whole group), also for a stream that was over before it was
 * served; substreams are asked to hold DATA against their own window.
 */
import { describe, expect, it } from 'vitest';
import { closeRequest, createMemoryPair, type Packet, type PacketStream, type Tunnel } from '../../../src/index.js';
import { TunnelGroup } from '../../../src/tunnel/tunnel-group.js';

const turn = () => new Promise((r) => setImmediate(r));
async function settle(n = 20): Promise<void> {
  for (let i = 0; i < n; i++) await turn();
}

/** A memory pair whose ends may fail without an 'error' listener of the test's (the peer hears its end's destroy). */
function quietPair(): [PacketStream, PacketStream] {
  const [a, b] = createMemoryPair();
  for (const s of [a, b]) s.on('error', () => undefined);
  return [a, b];
}

function group(onSubstreamEnd?: (via: Tunnel) => void) {
  const [control] = quietPair();
  const packets: Array<[Packet, Tunnel]> = [];
  const ended: Tunnel[] = [];
  const closed: Array<[Tunnel, Error | undefined]> = [];
  const g = new TunnelGroup(control, {
    terms: undefined,
    bufferBytes: 64 * 1024,
    onPacket: (p, via) => packets.push([p, via]),
    onSubstreamEnd: onSubstreamEnd && ((via) => (ended.push(via), onSubstreamEnd(via))),
    onSubstreamClose: (via, err) => closed.push([via, err]),
  });
  return { g, packets, ended, closed };
}

describe('TunnelGroup', () => {
  it("hands each substream's packets, end and close to the group with that substream's Tunnel", async () => {
    const { g, packets, ended, closed } = group((via) => void via.stream.close());
    const pairs = [quietPair(), quietPair(), quietPair()];
    const tunnels = pairs.map(([mine]) => g.serve(mine));
    expect(g.substreamCount).toBe(3);
    pairs.forEach(([, theirs], i) => theirs.write(closeRequest(BigInt(i + 1))));
    await settle();
    expect(packets.map(([p, via]) => [p, tunnels.indexOf(via)])).toEqual([0, 1, 2].map((i) => [closeRequest(BigInt(i + 1)), i]));
    // The peer of the second ends its side: the group hears it for that Tunnel only, and its close follows.
    void pairs[1]![1].close();
    await settle();
    expect(ended).toEqual([tunnels[1]]);
    expect(closed).toEqual([[tunnels[1], undefined]]);
    expect(g.substreamCount).toBe(2);
    // A failed substream reports its error; the control stream's end tears down the rest.
    const boom = new Error('boom');
    pairs[0]![0].destroy(boom);
    await settle();
    expect(closed[1]).toEqual([tunnels[0], boom]);
    g.destroy(new Error('control gone'));
    await settle();
    expect(closed.map(([via]) => tunnels.indexOf(via))).toEqual([1, 0, 2]);
    expect(g.substreamCount).toBe(0);
  });

  it("without onSubstreamEnd, the peer's end ends ours and the substream closes", async () => {
    const { g, closed } = group();
    const [mine, theirs] = quietPair();
    const via = g.serve(mine);
    void theirs.close();
    await settle();
    expect(closed).toEqual([[via, undefined]]);
    expect(theirs.closeEmitted).toBe(true);
  });

  it('settles a substream that was over before it was served', async () => {
    const { g, closed } = group();
    const [mine] = quietPair();
    const gone = new Error('gone before served');
    mine.destroy(gone);
    await settle();
    expect(mine.closeEmitted).toBe(true);
    const via = g.serve(mine);
    await settle();
    expect(closed).toEqual([[via, gone]]);
    expect(g.substreamCount).toBe(0);
  });

  it('asks every substream it serves to hold DATA against its own window', () => {
    const { g } = group();
    const [mine] = quietPair();
    let asked = 0;
    mine.holdUntilConsumed = () => void asked++;
    g.serve(mine);
    expect(asked).toBe(1);
    g.destroy(new Error('test over'));
  });
});
