/**
 * HA with real ProxyServers and Agents joined by in-process streams (a fresh memory pair per attempt), with real
 * TCP targets on loopback: the client set's behaviour end to end without a transport.
 */
import { describe, expect, it } from 'vitest';
import { once } from 'node:events';
import { ProxyServer } from '../../../src/server/index.js';
import { Agent } from '../../../src/agent/agent.js';
import { AgentClientSet } from '../../../src/agent/client-set.js';
import { connectorTo, roundRobin, type AgentAcceptor } from './memory-connector.js';
import { echoOnce, startEchoServer, untilSet, useCleanups } from './helpers.js';

const FAST = { syncIntervalMs: 5, syncIntervalCapMs: 40 };

const defer = useCleanups();

function server(serverID: string, serverCount = 2): ProxyServer {
  const s = new ProxyServer({ serverID, serverCount });
  defer(() => s.destroy());
  return s;
}
function agent(agentID: string): Agent {
  const a = new Agent({ agentID });
  defer(() => a.destroy());
  return a;
}
async function echo(): Promise<string> {
  const target = await startEchoServer();
  defer(() => target.close());
  return target.address;
}

describe('HA over in-process streams', () => {
  it('one agent behind a balancer ends with one tunnel to each of two servers; dials work through both', async () => {
    const target = await echo();
    const s1 = server('s1');
    const s2 = server('s2');
    const a = agent('agent-1');
    const set = new AgentClientSet(a, { connector: roundRobin([s1, s2]), ...FAST }).start();
    defer(() => set.close());
    await untilSet(set, () => set.tunnels.length === 2);
    expect(set.serverIDs.sort()).toEqual(['s1', 's2']);
    expect(s1.agentCount).toBe(1);
    expect(s2.agentCount).toBe(1);
    expect(await echoOnce(await s1.dial(target), 'via s1')).toBe('via s1');
    expect(await echoOnce(await s2.dial(target), 'via s2')).toBe('via s2');
  });

  it('keeps serving through the other server while one is down, and reconnects when it returns', async () => {
    const target = await echo();
    const s1 = server('s1');
    const servers: Array<AgentAcceptor | undefined> = [s1, server('s2')];
    const a = agent('agent-1');
    const set = new AgentClientSet(a, { connector: roundRobin(servers), ...FAST }).start();
    defer(() => set.close());
    await untilSet(set, () => set.tunnels.length === 2);

    (servers[1] as ProxyServer).destroy();
    servers[1] = undefined; // its address now refuses
    await untilSet(set, () => set.tunnels.length === 1);
    expect(set.ready).toBe(true);
    expect(await echoOnce(await s1.dial(target), 'still up')).toBe('still up');

    const back = server('s2');
    servers[1] = back;
    await untilSet(set, () => set.tunnels.length === 2);
    expect(back.agentCount).toBe(1);
    expect(await echoOnce(await back.dial(target), 'back')).toBe('back');
  });

  it('server-list mode keeps one tunnel to each listed server and redials the lost one', async () => {
    const target = await echo();
    const s1 = server('s1', 1);
    let s2: ProxyServer | undefined = server('s2', 1);
    const a = agent('agent-1');
    const set = new AgentClientSet(a, { connectors: [connectorTo(() => s1), connectorTo(() => s2)], ...FAST }).start();
    defer(() => set.close());
    await untilSet(set, () => set.tunnels.length === 2);
    s2.destroy();
    s2 = undefined;
    await untilSet(set, () => set.tunnels.length === 1);
    s2 = server('s2', 1);
    await untilSet(set, () => set.tunnels.length === 2);
    expect(await echoOnce(await s2.dial(target), 'listed')).toBe('listed');
  });

  it('readiness flips on both sides as tunnels come and go', async () => {
    let s: ProxyServer | undefined = server('s1', 1);
    const a = agent('agent-1');
    const set = new AgentClientSet(a, { connector: connectorTo(() => s), ...FAST });
    defer(() => set.close());
    expect(s.ready).toBe(false);
    expect(set.ready).toBe(false);
    set.start();
    await set.whenReady();
    expect(s.ready).toBe(true);
    const first = s;
    s = undefined;
    first.destroy();
    await untilSet(set, () => !set.ready);
    s = server('s1', 1);
    expect(s.ready).toBe(false);
    await set.whenReady();
    expect(s.ready).toBe(true);
  });

  it('DRAIN steers new dials to the agent that is not draining', async () => {
    const target = await echo();
    const s = server('s1', 1);
    const draining = agent('agent-draining');
    const other = agent('agent-other');
    const setA = new AgentClientSet(draining, { connector: connectorTo(() => s), ...FAST }).start();
    const setB = new AgentClientSet(other, { connector: connectorTo(() => s), ...FAST }).start();
    defer(() => setA.close());
    defer(() => setB.close());
    await Promise.all([setA.whenReady(), setB.whenReady()]);
    expect(s.agentCount).toBe(2);

    const drained = once(s as never, 'agentDraining');
    setA.drain();
    await drained;
    expect(setA.draining).toBe(true);
    for (let i = 0; i < 6; i++) {
      const socket = await s.dial(target);
      expect(socket.agentID).toBe('agent-other');
      expect(await echoOnce(socket, `dial ${i}`)).toBe(`dial ${i}`);
    }
    // With only the draining agent left, the server still falls back to it.
    await setB.close();
    await other.close();
    const last = await s.dial(target);
    expect(last.agentID).toBe('agent-draining');
    expect(await echoOnce(last, 'fallback')).toBe('fallback');
  });
});
