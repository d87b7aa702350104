/**
 * HA over the real gRPC transport: two ProxyServers (different serverIDs, serverCount 2) behind a round-robin TCP
 * load balancer on loopback, one agent dialling the balancer's address.
 */
import { describe, expect, it } from 'vitest';
import { ProxyServer } from '../../../src/server/index.js';
import { Agent } from '../../../src/agent/agent.js';
import { AgentClientSet } from '../../../src/agent/client-set.js';
import { createGrpcServer, grpcAgentConnector, type GrpcServer } from '../../../src/transport/grpc/index.js';
import { ErrorCode } from '../../../src/protocol/errors.js';
import { LoadBalancer } from './load-balancer.js';
import { echoOnce, startEchoServer, untilSet, useCleanups } from './helpers.js';

const FAST = { syncIntervalMs: 10, syncIntervalCapMs: 80 };

const defer = useCleanups(5000);

/** A ProxyServer with its agent listener on 127.0.0.1, port 0. */
async function startServer(serverID: string): Promise<{ proxy: ProxyServer; grpc: GrpcServer; kill(): void }> {
  const proxy = new ProxyServer({ serverID, serverCount: 2 });
  const grpc = await createGrpcServer({ port: 0, agent: (incoming) => proxy.acceptAgent(incoming) });
  const kill = (): void => {
    grpc.destroy();
    proxy.destroy();
  };
  defer(kill);
  return { proxy, grpc, kill };
}

describe('HA over gRPC behind a TCP load balancer', () => {
  it('ends with two tunnels, survives one server dying, and reconnects when it returns', async () => {
    const target = await startEchoServer();
    defer(() => target.close());
    const s1 = await startServer('s1');
    const s2 = await startServer('s2');
    const lb = await LoadBalancer.start([
      { host: '127.0.0.1', port: s1.grpc.port },
      { host: '127.0.0.1', port: s2.grpc.port },
    ]);
    defer(() => lb.close());
    const agent = new Agent({ agentID: 'agent-1' });
    defer(() => agent.destroy());
    const set = new AgentClientSet(agent, {
      connector: grpcAgentConnector({ address: `127.0.0.1:${lb.port}` }),
      ...FAST,
    }).start();
    defer(() => set.close());

    await untilSet(set, () => set.tunnels.length === 2);
    expect(set.serverIDs.sort()).toEqual(['s1', 's2']);
    expect(set.serverCount).toBe(2);
    expect(await echoOnce(await s1.proxy.dial(target.address), 'one')).toBe('one');
    expect(await echoOnce(await s2.proxy.dial(target.address), 'two')).toBe('two');

    // The balancer keeps the dead server in rotation: half the attempts are cut off, the others are duplicates.
    const failures: Error[] = [];
    set.on('connectFailed', (err) => failures.push(err));
    s2.kill();
    await untilSet(set, () => set.tunnels.length === 1);
    expect(set.ready).toBe(true);
    expect(await echoOnce(await s1.proxy.dial(target.address), 'survivor')).toBe('survivor');
    await untilSet(set, () => failures.length >= 2);
    expect(failures[0]).toMatchObject({ code: ErrorCode.TUNNEL_CLOSED });

    const back = await startServer('s2');
    lb.backends[1] = { host: '127.0.0.1', port: back.grpc.port };
    await untilSet(set, () => set.tunnels.length === 2);
    expect(back.proxy.agentCount).toBe(1);
    expect(await echoOnce(await back.proxy.dial(target.address), 'returned')).toBe('returned');
  });

  it('server-list mode: one tunnel to each listed address without a balancer', async () => {
    const s1 = await startServer('s1');
    const s2 = await startServer('s2');
    const agent = new Agent({ agentID: 'agent-list' });
    defer(() => agent.destroy());
    const set = new AgentClientSet(agent, {
      connectors: [s1, s2].map((s) => grpcAgentConnector({ address: `127.0.0.1:${s.grpc.port}` })),
      ...FAST,
    }).start();
    defer(() => set.close());
    await untilSet(set, () => set.tunnels.length === 2);
    expect(s1.proxy.ready && s2.proxy.ready).toBe(true);
  });

  it('DRAIN from one agent steers new dials to the other; readiness flips when both leave', async () => {
    const target = await startEchoServer();
    defer(() => target.close());
    const s = await startServer('s1');
    const connector = grpcAgentConnector({ address: `127.0.0.1:${s.grpc.port}` });
    const sets = ['agent-draining', 'agent-other'].map((agentID) => {
      const agent = new Agent({ agentID });
      defer(() => agent.destroy());
      const set = new AgentClientSet(agent, { connector, ...FAST }).start();
      defer(() => set.close());
      return set;
    });
    expect(s.proxy.ready).toBe(false);
    await Promise.all(sets.map((set) => set.whenReady()));
    expect(s.proxy.ready).toBe(true);

    const drained = new Promise((resolve) => s.proxy.once('agentDraining', resolve));
    sets[0]!.drain();
    await drained;
    for (let i = 0; i < 4; i++) {
      const socket = await s.proxy.dial(target.address);
      expect(socket.agentID).toBe('agent-other');
      expect(await echoOnce(socket, `dial ${i}`)).toBe(`dial ${i}`);
    }

    const gone = new Promise<void>((resolve) => {
      const check = (): void => {
        if (s.proxy.agentCount === 0) resolve();
      };
      s.proxy.on('agentDisconnected', check);
    });
    await Promise.all(sets.map((set) => set.close()));
    await gone;
    expect(s.proxy.ready).toBe(false);
  });
});
