/**
 * High availability across implementations: one Go and one konnectivity-ts server, both `--server-count=2`, behind
 * a round-robin TCP load balancer on loopback. A Go agent and our agent each dial the balancer until they hold a
 * tunnel to each server, and keep working through the other server when either dies.
 */
import { expect, it } from 'vitest';
import { LoadBalancer } from '../../integration/ha/load-balancer.js';
import { describeKit, finish, openEchoes, until, useKit, type AgentProcess, type Fixture, type Impl, type ServerProcess, type TargetProcess } from './kit.js';

async function haPair(fx: Fixture): Promise<{ servers: Record<Impl, ServerProcess>; agents: AgentProcess[] }> {
  const servers = {
    go: await fx.server('go', { frontend: 'grpc-uds', serverCount: 2, serverID: 'go-ha', v: 2 }),
    ts: await fx.server('ts', { frontend: 'grpc-uds', serverCount: 2, serverID: 'ts-ha' }),
  };
  const lb = await LoadBalancer.start([servers.go, servers.ts].map((s) => ({ host: '127.0.0.1', port: s.ports.agent })));
  fx.defer(() => lb.close());
  const agents = [await fx.agent('go', { server: { host: '127.0.0.1', port: lb.port } }), await fx.agent('ts', { server: { host: '127.0.0.1', port: lb.port } })];
  for (const a of agents) await a.waitServerConnections(2);
  // Each server has both agents.
  for (const s of Object.values(servers)) {
    for (const a of agents) await s.program.waitFor(new RegExp(`agent connected.*agentID="${a.agentID}"`, 'i'));
  }
  return { servers, agents };
}

/** 20 connections through `server`, kept open until both agents carry some of them, then closed. */
async function bothAgentsCarry(server: ServerProcess, target: TargetProcess, agents: AgentProcess[]): Promise<void> {
  const open = await openEchoes(server, target, 20);
  // Random choice over two agents: each gets some of 20 (all on one has a chance of 2 in 2^20).
  for (const a of agents) expect(await a.openEndpointConnections(), `${a.agentID} carries through ${server.serverID}`).toBeGreaterThan(0);
  for (const e of open) await finish(e.s);
}

describeKit('--server-count=2: a Go and a konnectivity-ts server behind one load balancer', () => {
  const fx = useKit();

  for (const dies of ['go', 'ts'] as const) {
    const survivor = dies === 'go' ? 'ts' : 'go';
    const name = (impl: Impl): string => (impl === 'go' ? 'the Go server' : 'the konnectivity-ts server');
    it(`each agent (Go and ours) holds one tunnel to each server, and keeps working through ${name(survivor)} when ${name(dies)} dies`, async () => {
      const target = await fx.target();
      const { servers, agents } = await haPair(fx);
      for (const s of Object.values(servers)) await bothAgentsCarry(s, target, agents);

      await servers[dies].kill();
      for (const a of agents) await until(async () => (await a.openServerConnections()) === 1, `${a.agentID} to hold one tunnel`);
      for (const a of agents) expect((await a.get('/readyz')).status).toBe(200);
      await bothAgentsCarry(servers[survivor], target, agents);
      const r = await fx.konnbench(servers[survivor], target, ['-test', 'smoke']);
      expect(r, r.error).toMatchObject({ ok: true, errors: 0 });
    });
  }
});
