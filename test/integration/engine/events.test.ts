/**
 * One event-emitter convention: the public classes are node:events EventEmitters with typed event maps, so
 * `events.once` and `events.on` take them (this file type-checks only if they do) and deliver their events.
 */
import { EventEmitter, on, once } from 'node:events';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Agent, AgentClientSet } from '../../../src/agent/index.js';
import { ProxyServer } from '../../../src/server/index.js';
import { memoryConnector } from '../../../src/transport/memory/index.js';
import { expectNoLeaks, snapshotResources, type ResourceSnapshot } from '../../helpers/leaks.js';

describe('events.once and events.on on the public classes', () => {
  let before: ResourceSnapshot;
  let server: ProxyServer;
  let agent: Agent;
  beforeEach(() => {
    before = snapshotResources();
    server = new ProxyServer({ serverID: 'events-server' });
    agent = new Agent({ agentID: 'events-agent' });
  });
  afterEach(async () => {
    await agent.close();
    await server.close();
    await expectNoLeaks(before);
  });

  it('ProxyServer and Agent: once() resolves with the arguments of agentConnected and tunnelOpened', async () => {
    expect(server).toBeInstanceOf(EventEmitter);
    expect(agent).toBeInstanceOf(EventEmitter);
    const connected = once(server, 'agentConnected');
    const opened = once(agent, 'tunnelOpened');
    await agent.connect(memoryConnector((incoming) => void server.acceptAgent(incoming)));
    const [info] = await connected;
    expect(info).toMatchObject({ agentID: 'events-agent' });
    const [tunnel] = await opened;
    expect(tunnel).toMatchObject({ serverID: 'events-server' });
  });

  it('AgentClientSet: once() resolves on readyChange, on() iterates tunnelAdded', async () => {
    const set = new AgentClientSet(agent, { connector: memoryConnector((incoming) => void server.acceptAgent(incoming)) });
    const ac = new AbortController();
    const added = on(set, 'tunnelAdded', { signal: ac.signal });
    const ready = once(set, 'readyChange');
    set.start();
    expect(await ready).toEqual([true]);
    const first = await added.next();
    expect(first.value).toEqual([expect.objectContaining({ serverID: 'events-server' })]);
    ac.abort();
    await set.close();
  });
});
