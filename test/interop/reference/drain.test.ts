/**
 * DRAIN across implementations (an agent's first SIGTERM), with a second agent of the other implementation:
 * - our server, Go agent draining: new dials go to the other agent, open connections keep working, and alone the
 *   draining agent still carries new dials. The Go agent sends its DRAIN lazily, when the next packet from the
 *   server reaches that tunnel (its receive loop looks at the signal between packets).
 * - Go server (v0.31.4), our agent draining: the server logs the DRAIN and keeps picking agents at random, the
 *   draining one included; open connections keep working.
 */
import { expect, it } from 'vitest';
import { describeKit, finish, openEchoes, ping, until, useKit, type AgentProcess, type Echo, type Fixture, type ServerProcess, type TargetProcess } from './kit.js';

async function carrying(agent: AgentProcess, count: number): Promise<void> {
  await until(async () => (await agent.openEndpointConnections()) === count, `${agent.agentID} to carry ${count} connection(s)`);
}

/** Both servers log "agent connected" before the agent is in their backend table; the gauge follows the table. */
async function registered(server: ServerProcess, count: number): Promise<void> {
  await until(async () => (await server.metrics()).get('konnectivity_network_proxy_server_ready_backend_connections') === count, `${count} agent(s) registered`);
}

/** A server with a first agent (`draining`) holding three connections, and a second agent connected. */
async function twoAgents(fx: Fixture, server: ServerProcess, first: AgentProcess, secondImpl: 'go' | 'ts'): Promise<{ target: TargetProcess; early: Echo[]; second: AgentProcess }> {
  const target = await fx.target();
  await server.program.waitFor(new RegExp(`agent connected.*agentID="${first.agentID}"`, 'i'));
  await registered(server, 1);
  const early = await openEchoes(server, target, 3);
  await carrying(first, 3);
  const second = await fx.agent(secondImpl, { server });
  await server.program.waitFor(new RegExp(`agent connected.*agentID="${second.agentID}"`, 'i'));
  await registered(server, 2);
  return { target, early, second };
}

const drainingLine = (agent: AgentProcess): RegExp => new RegExp(`agent (is )?draining.*agentID="${agent.agentID}"`, 'i');

describeKit('DRAIN across implementations', () => {
  const fx = useKit();

  it("our server: the Go agent's DRAIN (first SIGTERM, sent with its next packet) sends new dials to our other agent; open ones keep working; alone it still carries dials", async () => {
    const server = await fx.server('ts', { frontend: 'grpc-uds' });
    const goAgent = await fx.agent('go', { server });
    const { target, early, second } = await twoAgents(fx, server, goAgent, 'ts');

    await goAgent.drain();
    // Nothing reaches our server until the Go agent's tunnel gets a packet: data on an open connection wakes it.
    await ping(early[0]!.s, early[0]!.r, Buffer.from('wake up'));
    await server.program.waitFor(drainingLine(goAgent));
    await goAgent.program.waitFor(/drain agent client/);

    const late = await openEchoes(server, target, 20);
    await carrying(second, 20);
    await carrying(goAgent, 3);
    for (const [i, e] of early.entries()) await ping(e.s, e.r, Buffer.from(`still open ${i}`));
    for (const e of [...early, ...late]) await finish(e.s);

    await second.stop();
    await server.program.waitFor(new RegExp(`Stream read from agent (cancelled|failure).*agentID="${second.agentID}"`));
    const alone = await openEchoes(server, target, 2);
    await carrying(goAgent, 2);
    for (const e of alone) await finish(e.s);
  });

  it("Go server: takes our agent's DRAIN (first SIGTERM, sent at once) and keeps picking agents at random, the draining one included; open ones keep working", async () => {
    const server = await fx.server('go', { frontend: 'grpc-uds', v: 2 });
    const ours = await fx.agent('ts', { server });
    const { target, early, second } = await twoAgents(fx, server, ours, 'go');

    await ours.drain();
    await server.program.waitFor(drainingLine(ours));
    // 40 dials at random over two agents: each gets some (all on one would have a chance of 2 in 2^40).
    const late = await openEchoes(server, target, 40);
    const [onOurs, onGo] = [await ours.openEndpointConnections(), await second.openEndpointConnections()];
    expect(onOurs + onGo).toBe(43);
    expect(onOurs - early.length, 'new dials on the draining agent').toBeGreaterThan(0);
    expect(onGo, 'new dials on the other agent').toBeGreaterThan(0);
    for (const [i, e] of early.entries()) await ping(e.s, e.r, Buffer.from(`still open ${i}`));
    for (const e of [...early, ...late]) await finish(e.s);
  });
});
