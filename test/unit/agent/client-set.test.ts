/**
 * The sync logic of AgentClientSet with fake servers and a fake agent: no sockets. Intervals are a few ms; tests
 * wait for the set's events, and only "nothing more happens" checks wait a little on purpose.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { setTimeout as sleep } from 'node:timers/promises';
import { once } from 'node:events';
import { AgentClientSet, ServerTunnels, type AgentClientSetOptions, type ClientSetAgent, type ClientSetTunnel } from '../../../src/agent/client-set.js';
import { ErrorCode, KonnectivityError } from '../../../src/protocol/errors.js';
import type { PacketStream, TunnelConnector } from '../../../src/transport/packet-stream.js';

/** A fake server: hands out tunnels while up; kill() ends them all. */
class FakeServer {
  up = true;
  readonly tunnels = new Set<FakeTunnel>();
  constructor(
    readonly id: string | undefined,
    readonly count: number,
  ) {}
  kill(): void {
    this.up = false;
    for (const t of this.tunnels) t.end(new Error('server gone'));
  }
}

class FakeTunnel implements ClientSetTunnel {
  readonly done: Promise<Error | undefined>;
  closed = false;
  destroyed = false;
  /** What the probe reads; a test flips it to mimic a GOAWAY or a dead connection. */
  transportReady = true;
  private finish!: (err: Error | undefined) => void;
  constructor(readonly server: FakeServer) {
    this.done = new Promise((resolve) => (this.finish = resolve));
    server.tunnels.add(this);
  }
  get serverID(): string | undefined {
    return this.server.id;
  }
  get serverCount(): number {
    return this.server.count;
  }
  end(err?: Error): void {
    this.server.tunnels.delete(this);
    this.finish(err);
  }
  close(): Promise<void> {
    this.closed = true;
    this.end();
    return Promise.resolve();
  }
  destroy(err?: Error): void {
    this.destroyed = true;
    this.end(err);
  }
}

/** The connector returns a stand-in stream naming the server; the fake agent turns it into a tunnel. */
type FakeStream = { server: FakeServer };
function connectorTo(pick: () => FakeServer | Promise<FakeServer>, calls: { n: number }): TunnelConnector {
  return async (_metadata, { signal }) => {
    calls.n++;
    const server = await pick();
    signal?.throwIfAborted();
    if (!server.up) throw new Error('connect: connection refused');
    return { server } as FakeStream as unknown as PacketStream;
  };
}

class FakeAgent implements ClientSetAgent<FakeTunnel> {
  drains = 0;
  async connect(connector: TunnelConnector, options: { signal?: AbortSignal } = {}): Promise<FakeTunnel> {
    const stream = (await connector({}, options)) as unknown as FakeStream;
    return new FakeTunnel(stream.server);
  }
  drain(): void {
    this.drains++;
  }
}

/** A round-robin "load balancer" over fake servers. */
function balancer(servers: FakeServer[], calls = { n: 0 }): TunnelConnector {
  let next = 0;
  return connectorTo(() => servers[next++ % servers.length]!, calls);
}

const sets: AgentClientSet<FakeTunnel>[] = [];
function makeSet(agent: FakeAgent, options: AgentClientSetOptions): AgentClientSet<FakeTunnel> {
  const set = new AgentClientSet(agent, { syncIntervalMs: 2, syncIntervalCapMs: 20, random: () => 0, ...options });
  sets.push(set);
  return set;
}

async function until(set: AgentClientSet<FakeTunnel>, check: () => boolean): Promise<void> {
  while (!check()) {
    await Promise.race([
      once(set as never, 'tunnelAdded'),
      once(set as never, 'tunnelRemoved'),
      once(set as never, 'duplicate'),
      once(set as never, 'connectFailed'),
    ]);
  }
}

afterEach(async () => {
  await Promise.all(sets.splice(0).map((s) => s.close()));
});

describe('AgentClientSet behind a load balancer', () => {
  it('keeps one tunnel per server until it holds servercount, then stops dialling', async () => {
    const a = new FakeServer('a', 2);
    const b = new FakeServer('b', 2);
    const calls = { n: 0 };
    const set = makeSet(new FakeAgent(), { connector: balancer([a, b], calls) });
    const readiness: boolean[] = [];
    set.on('readyChange', (r) => readiness.push(r));
    expect(set.ready).toBe(false);
    set.start();
    await set.whenReady();
    await until(set, () => set.tunnels.length === 2);
    expect(set.serverIDs.sort()).toEqual(['a', 'b']);
    expect(set.serverCount).toBe(2);
    expect(readiness).toEqual([true]);
    await sleep(30);
    expect(calls.n).toBe(2);
  });

  it('holds as many tunnels as the serverCount option says (lease counting), and looks again on recount()', async () => {
    // Each server claims a count of 1, as servers behind leases do; the leases say 2, then 3.
    const servers = ['a', 'b', 'c'].map((id) => new FakeServer(id, 1));
    let leases = 2;
    const calls = { n: 0 };
    const set = makeSet(new FakeAgent(), { connector: balancer(servers, calls), serverCount: (fromResponses) => Math.max(leases, fromResponses) });
    set.start();
    await until(set, () => set.tunnels.length === 2);
    expect(set.serverCount).toBe(2);
    await sleep(30);
    const dialled = calls.n;
    expect(set.tunnels.length).toBe(2);
    leases = 3;
    set.recount();
    await until(set, () => set.tunnels.length === 3);
    expect(set.serverIDs.sort()).toEqual(['a', 'b', 'c']);
    expect(calls.n).toBeGreaterThan(dialled);
  });

  it('closes a duplicate at once and retries until it finds the missing server', async () => {
    const a = new FakeServer('a', 2);
    const b = new FakeServer('b', 2);
    // The balancer lands on `a` three times before `b`.
    const order = [a, a, a, a, b];
    let i = 0;
    const set = makeSet(new FakeAgent(), { connector: connectorTo(() => order[Math.min(i++, order.length - 1)]!, { n: 0 }) });
    const duplicates: string[] = [];
    set.on('duplicate', (id) => duplicates.push(id));
    set.start();
    await until(set, () => set.tunnels.length === 2);
    expect(duplicates).toEqual(['a', 'a', 'a']);
    expect(a.tunnels.size).toBe(1); // the duplicates were destroyed
  });

  it('redials a lost tunnel with backoff while its server is down, and reconnects when it returns', async () => {
    const a = new FakeServer('a', 2);
    const b = new FakeServer('b', 2);
    const set = makeSet(new FakeAgent(), { connector: balancer([a, b]) });
    set.start();
    await until(set, () => set.tunnels.length === 2);
    const removed = once(set as never, 'tunnelRemoved');
    b.kill();
    const [lost, why] = (await removed) as [FakeTunnel, Error];
    expect(lost.serverID).toBe('b');
    expect(why.message).toBe('server gone');
    expect(set.ready).toBe(true);
    const retries: number[] = [];
    set.on('connectFailed', (_err, ms) => retries.push(ms));
    await until(set, () => retries.length >= 3);
    // The balancer alternates: dials to `a` are duplicates, dials to `b` fail. As in the reference, a duplicate
    // while servers are missing resets the backoff, so every retry waits the plain interval.
    expect(retries.slice(0, 3)).toEqual([2, 2, 2]);
    b.up = true;
    await until(set, () => set.tunnels.length === 2);
    expect(set.serverIDs.sort()).toEqual(['a', 'b']);
  });

  it('backs off from syncInterval to syncIntervalCap when every attempt fails', async () => {
    const down = new FakeServer('a', 1);
    down.up = false;
    const set = makeSet(new FakeAgent(), { connector: balancer([down]), syncIntervalMs: 1, syncIntervalCapMs: 4 });
    const retries: number[] = [];
    set.on('connectFailed', (err, ms) => {
      expect(err.message).toBe('connect: connection refused');
      retries.push(ms);
    });
    set.start();
    await until(set, () => retries.length >= 6);
    expect(retries.slice(0, 6)).toEqual([1, 1.5, 2.25, 3.375, 4, 4]);
  });

  it('readiness flips to false when the last tunnel ends and back when one returns', async () => {
    const a = new FakeServer('a', 1);
    const set = makeSet(new FakeAgent(), { connector: balancer([a]) });
    const readiness: boolean[] = [];
    set.on('readyChange', (r) => readiness.push(r));
    set.start();
    await set.whenReady();
    a.kill();
    await until(set, () => !set.ready);
    a.up = true;
    await set.whenReady();
    expect(readiness).toEqual([true, false, true]);
  });

  it('with syncForever keeps dialling past servercount to discover servers', async () => {
    const a = new FakeServer('a', 1);
    const c = new FakeServer('c', 1);
    const servers = [a];
    const set = makeSet(new FakeAgent(), { connector: balancer(servers), syncForever: true });
    set.start();
    await until(set, () => set.tunnels.length === 1);
    servers.push(c); // a new server appears behind the balancer
    await until(set, () => set.tunnels.length === 2);
    expect(set.serverIDs.sort()).toEqual(['a', 'c']);
  });

  it('retries a duplicate at the plain interval while servers are missing, with backoff once full (syncForever)', async () => {
    const a = new FakeServer('a', 2);
    const b = new FakeServer('b', 2);
    // Two duplicates while `b` is missing, then `b`, then only duplicates of a full set.
    const order = [a, a, a, b, a];
    let i = 0;
    const set = makeSet(new FakeAgent(), {
      connector: connectorTo(() => order[Math.min(i++, order.length - 1)]!, { n: 0 }),
      syncForever: true,
    });
    const delays: number[] = [];
    set.on('duplicate', (_id, ms) => delays.push(ms));
    set.start();
    await until(set, () => delays.length >= 6);
    expect(delays.slice(0, 6)).toEqual([2, 2, 2, 3, 4.5, 6.75]);
  });

  it('refuses a tunnel without serverid as a failed attempt', async () => {
    const anonymous = new FakeServer(undefined, 1);
    const set = makeSet(new FakeAgent(), { connector: balancer([anonymous]) });
    set.start();
    const [err] = (await once(set as never, 'connectFailed')) as [KonnectivityError];
    expect(err.code).toBe(ErrorCode.PROTOCOL);
    expect(anonymous.tunnels.size).toBe(0);
  });

  it('gives up an attempt after connectTimeoutMs', async () => {
    const hang: TunnelConnector = (_m, { signal }) =>
      new Promise((_resolve, reject) => signal?.addEventListener('abort', () => reject(signal.reason)));
    const set = makeSet(new FakeAgent(), { connector: hang, connectTimeoutMs: 5 });
    set.start();
    const [err] = (await once(set as never, 'connectFailed')) as [KonnectivityError];
    expect(err.code).toBe(ErrorCode.DIAL_TIMEOUT);
  });
});

describe('AgentClientSet with a server list', () => {
  it('keeps one tunnel through each connector and redials the one lost', async () => {
    const a = new FakeServer('a', 1);
    const b = new FakeServer('b', 1);
    const callsB = { n: 0 };
    const set = makeSet(new FakeAgent(), {
      connectors: [connectorTo(() => a, { n: 0 }), connectorTo(() => b, callsB)],
    });
    set.start();
    await until(set, () => set.tunnels.length === 2);
    b.kill();
    await until(set, () => set.tunnels.length === 1);
    const retries: number[] = [];
    set.on('connectFailed', (_e, ms) => retries.push(ms));
    await until(set, () => retries.length >= 2);
    b.up = true;
    await until(set, () => set.tunnels.length === 2);
    expect(set.serverIDs.sort()).toEqual(['a', 'b']);
    expect(callsB.n).toBeGreaterThanOrEqual(4);
  });

  it('closes a duplicate when two addresses reach the same server', async () => {
    const a = new FakeServer('a', 1);
    const set = makeSet(new FakeAgent(), { connectors: [connectorTo(() => a, { n: 0 }), connectorTo(() => a, { n: 0 })] });
    set.start();
    await once(set as never, 'duplicate');
    expect(set.serverIDs).toEqual(['a']);
    expect(a.tunnels.size).toBe(1);
  });
});

describe('AgentClientSet lifecycle', () => {
  it('drain() sends DRAIN, stops dialling and keeps serving the tunnels it has', async () => {
    const a = new FakeServer('a', 2);
    const b = new FakeServer('b', 2);
    const calls = { n: 0 };
    const agent = new FakeAgent();
    const set = makeSet(agent, { connector: balancer([a, b], calls) });
    set.start();
    await until(set, () => set.tunnels.length === 2);
    set.drain();
    set.drain();
    expect(agent.drains).toBe(1);
    expect(set.draining).toBe(true);
    const before = calls.n;
    b.kill();
    await sleep(30);
    expect(calls.n).toBe(before);
    expect(set.serverIDs).toEqual(['a']);
    expect(set.ready).toBe(true);
    await set.close();
    expect(set.draining).toBe(true);
  });

  it('drain() aborts an attempt in flight and drops a tunnel that opens after it', async () => {
    const a = new FakeServer('a', 1);
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    // The connector ignores the signal, as a slow transport might: the tunnel opens after drain().
    let seen: AbortSignal | undefined;
    const slow: TunnelConnector = async (_m, { signal }) => {
      seen = signal;
      await gate;
      return { server: a } as FakeStream as unknown as PacketStream;
    };
    const set = makeSet(new FakeAgent(), { connector: slow });
    set.start();
    set.drain();
    expect(seen?.aborted).toBe(true);
    release();
    await set.close();
    expect(set.tunnels).toEqual([]);
    expect(a.tunnels.size).toBe(0);
  });

  it('close() closes every tunnel, rejects whenReady waiters and is idempotent', async () => {
    const a = new FakeServer('a', 1);
    const set = makeSet(new FakeAgent(), { connector: balancer([a]) });
    set.start();
    await set.whenReady();
    const [tunnel] = set.tunnels;
    const closing = set.close();
    expect(set.close()).toBe(closing);
    await closing;
    expect(tunnel!.closed).toBe(true);
    expect(set.ready).toBe(false);
    await expect(set.whenReady()).rejects.toMatchObject({ code: ErrorCode.SHUTTING_DOWN });
  });

  it('destroy(err) destroys every tunnel at once', async () => {
    const a = new FakeServer('a', 1);
    const set = makeSet(new FakeAgent(), { connector: balancer([a]) });
    set.start();
    await set.whenReady();
    const [tunnel] = set.tunnels;
    set.destroy(new Error('bye'));
    set.destroy();
    expect(tunnel!.destroyed).toBe(true);
    expect(await tunnel!.done).toMatchObject({ message: 'bye' });
  });

  it('whenReady() rejects when its signal aborts; the options signal closes the set', async () => {
    const down = new FakeServer('a', 1);
    down.up = false;
    const ac = new AbortController();
    const set = makeSet(new FakeAgent(), { connector: balancer([down]), signal: ac.signal });
    set.start();
    const waiter = new AbortController();
    const waiting = set.whenReady({ signal: waiter.signal });
    waiter.abort();
    await expect(waiting).rejects.toMatchObject({ code: ErrorCode.ABORTED });
    const stopped = set.whenReady();
    ac.abort();
    await expect(stopped).rejects.toMatchObject({ code: ErrorCode.SHUTTING_DOWN });
  });

  it('does not dial when started after close() or with an aborted signal', async () => {
    const calls = { n: 0 };
    const a = new FakeServer('a', 1);
    const closed = makeSet(new FakeAgent(), { connector: balancer([a], calls) });
    await closed.close();
    closed.start();
    const aborted = makeSet(new FakeAgent(), { connector: balancer([a], calls), signal: AbortSignal.abort() });
    aborted.start();
    await expect(aborted.whenReady()).rejects.toMatchObject({ code: ErrorCode.SHUTTING_DOWN });
    expect(calls.n).toBe(0);
  });

  it.each<[string, AgentClientSetOptions]>([
    ['neither connector', {}],
    ['both connectors', { connector: async () => ({}) as PacketStream, connectors: [async () => ({}) as PacketStream] }],
    ['an empty list', { connectors: [] }],
    ['a bad sync interval', { connector: async () => ({}) as PacketStream, syncIntervalMs: -1 }],
    ['a cap below the interval', { connector: async () => ({}) as PacketStream, syncIntervalMs: 10, syncIntervalCapMs: 5 }],
    ['a zero connect timeout', { connector: async () => ({}) as PacketStream, connectTimeoutMs: 0 }],
    ['an infinite sync interval', { connector: async () => ({}) as PacketStream, syncIntervalMs: Infinity }],
  ])('refuses %s', (_name, options) => {
    expect(() => new AgentClientSet(new FakeAgent(), options)).toThrow(
      expect.objectContaining({ code: ErrorCode.INVALID_OPTION }) as unknown as Error,
    );
  });

  it('AgentClientSet is an alias of ServerTunnels: the same class', () => {
    expect(AgentClientSet).toBe(ServerTunnels);
    const set: ServerTunnels = new AgentClientSet(new FakeAgent(), { connector: async () => ({}) as PacketStream });
    expect(set).toBeInstanceOf(ServerTunnels);
  });

  it('surfaces a refusal as connectFailed and keeps trying', async () => {
    let refusals = 0;
    const a = new FakeServer('a', 1);
    const refusing = connectorTo(() => {
      if (refusals++ < 2) throw new KonnectivityError(ErrorCode.UNAUTHENTICATED, 'bad token');
      return a;
    }, { n: 0 });
    const set = makeSet(new FakeAgent(), { connector: refusing });
    const codes: string[] = [];
    set.on('connectFailed', (err) => codes.push((err as KonnectivityError).code));
    set.start();
    await set.whenReady();
    expect(codes).toEqual([ErrorCode.UNAUTHENTICATED, ErrorCode.UNAUTHENTICATED]);
  });
});

describe('AgentClientSet probe (--probe-interval)', () => {
  it('closes a tunnel whose connection is no longer ready and dials its server again', async () => {
    const a = new FakeServer('a', 1);
    const set = makeSet(new FakeAgent(), { connector: balancer([a]), probeIntervalMs: 5 });
    set.start();
    await until(set, () => set.tunnels.length === 1);
    const first = set.tunnels[0]!;
    const probed = once(set as never, 'probeFailed');
    first.transportReady = false;
    await probed;
    expect(first.destroyed).toBe(true);
    await until(set, () => set.tunnels.length === 1 && set.tunnels[0] !== first);
    expect(set.serverIDs).toEqual(['a']);
  });

  it('leaves ready tunnels alone and refuses a bad interval', async () => {
    const a = new FakeServer('a', 1);
    const set = makeSet(new FakeAgent(), { connector: balancer([a]), probeIntervalMs: 2 });
    set.start();
    await until(set, () => set.tunnels.length === 1);
    const t = set.tunnels[0]!;
    await sleep(20);
    expect(t.destroyed).toBe(false);
    expect(() => new AgentClientSet(new FakeAgent(), { connector: balancer([a]), probeIntervalMs: 0 })).toThrow(/probeIntervalMs/);
  });
});
