/**
 * Receive windows grow on a delayed link, and only for a reader that keeps up: two sessions over TCP through a relay
 * that holds every chunk 10 ms each way. Asserts window sizes and bytes held, never speed.
 */
import { once } from 'node:events';
import net from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { YamuxSession } from '../../../src/transport/yamux/session.js';
import type { YamuxStream } from '../../../src/transport/yamux/stream.js';
import { WINDOWS_BEFORE_GROWTH } from '../../../src/transport/windows.js';
import { until } from '../../compliance/helpers.js';
import { expectNoLeaks, snapshotResources, type ResourceSnapshot } from '../../helpers/leaks.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const DELAY_MS = 10;
const options = { keepAliveIntervalMs: 0, maxStreamWindowBytes: 256 * KiB, streamWindowCeilingBytes: 4 * MiB };

/** Forward `from` to `to`, each chunk `DELAY_MS` later, in order. */
function delayed(from: net.Socket, to: net.Socket, timers: Set<NodeJS.Timeout>): void {
  from.on('data', (chunk: Buffer) => {
    const t = setTimeout(() => {
      timers.delete(t);
      if (!to.destroyed) to.write(chunk);
    }, DELAY_MS);
    timers.add(t);
  });
  from.on('close', () => to.destroy());
  from.on('error', () => undefined);
}

describe('yamux window growth on a 20 ms round trip', () => {
  let before: ResourceSnapshot;
  let target: net.Server;
  let relay: net.Server;
  const sockets = new Set<net.Socket>();
  const timers = new Set<NodeJS.Timeout>();
  let client: YamuxSession;
  let server: YamuxSession;

  beforeEach(async () => {
    before = snapshotResources();
    let accepted!: (s: net.Socket) => void;
    const serverSocket = new Promise<net.Socket>((r) => (accepted = r));
    target = net.createServer({ noDelay: true }, (s) => {
      sockets.add(s);
      accepted(s);
    });
    target.listen(0, '127.0.0.1');
    await once(target, 'listening');
    relay = net.createServer({ noDelay: true }, (down) => {
      const up = net.connect({ port: (target.address() as net.AddressInfo).port, host: '127.0.0.1', noDelay: true });
      sockets.add(down).add(up);
      delayed(down, up, timers);
      delayed(up, down, timers);
    });
    relay.listen(0, '127.0.0.1');
    await once(relay, 'listening');
    const c = net.connect({ port: (relay.address() as net.AddressInfo).port, host: '127.0.0.1', noDelay: true });
    sockets.add(c);
    await once(c, 'connect');
    client = new YamuxSession(c, { client: true, ...options });
    server = new YamuxSession(await serverSocket, { client: false, ...options });
  });

  afterEach(async () => {
    client.destroy();
    server.destroy();
    for (const t of timers) clearTimeout(t);
    for (const s of sockets) s.destroy();
    await Promise.all([new Promise((r) => target.close(r)), new Promise((r) => relay.close(r))]);
    await expectNoLeaks(before);
  });

  /** A stream from the client to the server, its first 64 KiB block (of `fill` bytes) sent and arrived. */
  async function streamPair(fill: number): Promise<{ stream: YamuxStream; peer: YamuxStream; block: Buffer }> {
    let peer: YamuxStream | undefined;
    server.onStream((s) => {
      s.on('error', () => undefined);
      peer = s;
    });
    const stream = client.open();
    stream.on('error', () => undefined);
    const block = Buffer.alloc(64 * KiB, fill);
    stream.write(block);
    await until(() => peer !== undefined, 'the stream to arrive');
    return { stream, peer: peer!, block };
  }

  it('grows the window of a stream whose reader keeps up, up to the ceiling; a stalled one keeps its own', async () => {
    const incoming: YamuxStream[] = [];
    server.onStream((s) => {
      s.on('error', () => undefined);
      incoming.push(s);
    });
    // A stalled reader first: the writer fills what the window allows and no more reaches the reader.
    const stalled = client.open();
    stalled.on('error', () => undefined);
    const block = Buffer.alloc(64 * KiB, 1);
    while (stalled.write(block));
    await until(() => incoming.length === 1, 'the stalled stream to arrive');
    const stalledPeer = incoming[0]!;
    stalledPeer.pause();

    // A bulk stream that is read as fast as it comes.
    const bulk = client.open();
    bulk.on('error', () => undefined);
    const total = 16 * MiB;
    let got = 0;
    bulk.write(block);
    await until(() => incoming.length === 2, 'the bulk stream to arrive');
    const bulkPeer = incoming[1]!;
    bulkPeer.on('data', (d: Buffer) => (got += d.length));
    let sent = block.length;
    while (sent < total) {
      if (!bulk.write(block)) await once(bulk, 'drain');
      sent += block.length;
    }
    await until(() => got === total, 'the bulk transfer');

    expect(bulkPeer.receiveWindowBytes).toBeGreaterThan(options.maxStreamWindowBytes);
    expect(bulkPeer.receiveWindowBytes).toBeLessThanOrEqual(options.streamWindowCeilingBytes);
    // The stalled reader holds what one opening window let through, and its window never grew.
    await until(() => stalledPeer.readableLength === options.maxStreamWindowBytes, 'the stalled window to fill');
    expect(stalledPeer.receiveWindowBytes).toBe(options.maxStreamWindowBytes);
    expect(stalledPeer.readableLength).toBe(options.maxStreamWindowBytes);
    // What bulk grew came out of the session's budget, and goes back when it closes.
    expect(server.windowGrowth!.spareBytes).toBe(64 * MiB - (bulkPeer.receiveWindowBytes - options.maxStreamWindowBytes));
    bulk.destroy();
    await until(() => server.windowGrowth!.spareBytes === 64 * MiB, 'the budget to come back');
  });

  it(`keeps the opening window of a reader that read fast for fewer than ${WINDOWS_BEFORE_GROWTH} windows, then stalled`, async () => {
    const { stream, peer, block } = await streamPair(3);
    // Read as fast as it comes (socket buffers in front of a stalled reader take bytes in like this), then stop.
    const burst = (WINDOWS_BEFORE_GROWTH / 2) * options.maxStreamWindowBytes;
    let got = 0;
    const onData = (d: Buffer): void => {
      got += d.length;
      if (got >= burst) {
        peer.off('data', onData);
        peer.pause();
      }
    };
    peer.on('data', onData);
    // The writer writes whenever it may; once the reader stops, the window fills and it gets no more 'drain'.
    const pump = (): void => {
      while (stream.write(block));
    };
    stream.on('drain', pump);
    pump();
    await until(() => got >= burst, 'the fast part');
    await until(() => peer.readableLength > 0 && stream.writableNeedDrain, 'the stalled window to fill');
    expect(peer.receiveWindowBytes).toBe(options.maxStreamWindowBytes);
    expect(server.windowGrowth!.spareBytes).toBe(64 * MiB);
  });

  it('shrinks a grown window once its sender slows down, and the budget comes back', async () => {
    const { stream, peer, block } = await streamPair(2);
    let got = 0;
    const send = async (bytes: number): Promise<void> => {
      for (let sent = 0; sent < bytes; sent += block.length) {
        if (!stream.write(block.subarray(0, Math.min(block.length, bytes - sent)))) await once(stream, 'drain');
      }
    };
    peer.on('data', (d: Buffer) => (got += d.length));
    await send(16 * MiB - block.length);
    await until(() => got === 16 * MiB, 'the bulk transfer');
    const grown = peer.receiveWindowBytes;
    expect(grown).toBeGreaterThan(options.maxStreamWindowBytes);

    // Now a steady trickle, 64 KiB every 30 ms: half a window takes far more than 8 round trips (the least round
    // trip here is about 20 ms; a loaded machine only makes the gaps longer).
    let trickled = 0;
    while (peer.receiveWindowBytes >= grown && trickled < 8 * MiB) {
      await new Promise((r) => setTimeout(r, 30));
      await send(block.length);
      trickled += block.length;
    }
    await until(() => got === 16 * MiB + trickled, 'the trickle');
    expect(peer.receiveWindowBytes).toBeLessThan(grown);
    expect(peer.receiveWindowBytes).toBeGreaterThanOrEqual(options.maxStreamWindowBytes);
    expect(server.windowGrowth!.spareBytes).toBe(64 * MiB - (peer.receiveWindowBytes - options.maxStreamWindowBytes));
    stream.destroy();
    await until(() => server.windowGrowth!.spareBytes === 64 * MiB, 'the budget to come back');
  });
});
