/**
 * A stalled reader with a Go peer on the agent leg. Connection B is open and echoing on the same agent tunnel as
 * connection A; then A's reader stops: the client (a download it does not read) or the endpoint (an upload to an
 * endpoint that does not read). A Go peer has no per-connection credit, so what A cannot deliver backs up into the
 * one shared agent stream: B stops too, whichever side is Go, and both go on, every byte intact, once A's reader
 * reads again.
 */
import { once } from 'node:events';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { expect, it } from 'vitest';
import { ByteReader, describeKit, expectPattern, finish, ping, targetHeader, until, useKit, type Impl } from './kit.js';

const MiB = 1024 * 1024;
/** A ping this slow is stalled: an unstalled one takes milliseconds, even on a busy machine. */
const STALLED_MS = 3000;

/**
 * Ping B (every 20 ms) until one ping has not come back after STALLED_MS: resolves with that ping, still pending,
 * or with undefined if `max` pings all came back.
 */
async function pingUntilStalled(b: Duplex, reader: ByteReader, max: number): Promise<{ stalled: Promise<void> | undefined; pings: number }> {
  for (let i = 0; i < max; i++) {
    const p = ping(b, reader, Buffer.from(`ping ${i}`.padEnd(64, '.')));
    let timer: NodeJS.Timeout | undefined;
    const slow = new Promise<'slow'>((r) => (timer = setTimeout(() => r('slow'), STALLED_MS)));
    const first = await Promise.race([p.then(() => 'back' as const), slow]);
    clearTimeout(timer);
    if (first === 'slow') return { stalled: p, pings: i };
    await new Promise((r) => setTimeout(r, 20));
  }
  return { stalled: undefined, pings: max };
}

/** A TCP endpoint on 127.0.0.1 that accepts and reads nothing until `resume()`; counts what it read. */
async function stallingSink(): Promise<{ address: string; received: () => number; resume(): void; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  let resumed = false;
  let received = 0;
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('error', () => undefined);
    s.on('data', (d: Buffer) => (received += d.length));
    s.once('close', () => sockets.delete(s));
    if (!resumed) s.pause();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    address: `127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    received: () => received,
    resume() {
      resumed = true;
      for (const s of sockets) s.resume();
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

const pairs: Array<{ server: Impl; agent: Impl }> = [
  { server: 'ts', agent: 'go' },
  { server: 'go', agent: 'ts' },
];

describeKit('a stalled reader with a Go peer on the agent leg', () => {
  const fx = useKit();

  /** Server, agent and target, and connection B open on the agent's one tunnel. */
  async function setUp(serverImpl: Impl, agentImpl: Impl) {
    const target = await fx.target();
    const server = await fx.server(serverImpl, { frontend: 'http-connect-uds' });
    await fx.agent(agentImpl, { server });
    await server.waitReady();
    const b = await server.dial(target.address);
    const br = new ByteReader(b);
    await ping(b, br, Buffer.from('B is open'));
    return { target, server, b, br };
  }

  for (const { server: serverImpl, agent: agentImpl } of pairs) {
    const who = serverImpl === 'ts' ? 'our server, Go agent' : 'Go server, our agent';

    it(`${who}: a client not reading its download stalls the tunnel's other connections until it reads; all bytes arrive`, async () => {
      const { target, server, b, br } = await setUp(serverImpl, agentImpl);
      const a = await server.dial(target.address);
      a.pause();
      a.write(targetHeader('D', 64 * MiB));
      const { stalled, pings } = await pingUntilStalled(b, br, 500);
      expect(stalled, `B kept echoing (${pings} pings) while A's reader stood still`).toBeDefined();

      const ar = new ByteReader(a);
      a.resume();
      await stalled;
      await expectPattern(ar, 64 * MiB);
      await ping(b, br, Buffer.from('B after A'));
      await Promise.all([finish(a), finish(b)]);
    });

    it(`${who}: an endpoint not reading an upload stalls the tunnel's other connections until it reads; all bytes arrive`, async () => {
      const sink = await stallingSink();
      fx.defer(() => sink.close());
      const { server, b, br } = await setUp(serverImpl, agentImpl);
      const a = await server.dial(sink.address);
      const block = Buffer.alloc(64 * 1024, 7);
      const upload = (async () => {
        for (let n = 0; n < 1024; n++) if (!a.write(block)) await once(a, 'drain');
      })();
      const { stalled, pings } = await pingUntilStalled(b, br, 500);
      expect(stalled, `B kept echoing (${pings} pings) while A's endpoint read nothing`).toBeDefined();

      sink.resume();
      await stalled;
      await upload;
      await ping(b, br, Buffer.from('B after A'));
      await until(() => sink.received() === 64 * MiB, 'all of the upload at the endpoint');
      await Promise.all([finish(a), finish(b)]);
    });
  }
});
