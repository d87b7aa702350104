/**
 * A connection's credit window grows over a delayed gRPC agent leg when its reader keeps up: one download through
 * a 100 ms relay gets more than its 1 MiB starting window in flight. Asserted on bytes in flight, never on speed.
 */
import { expect, it } from 'vitest';
import { Agent } from '../../../src/agent/index.js';
import { ProxyServer } from '../../../src/server/index.js';
import { createGrpcServer, grpcAgentConnector } from '../../../src/transport/grpc/index.js';
import { receiveAll, sendPattern, tcpServer } from '../../helpers/engine.js';
import { expectNoLeaks, snapshotResources } from '../../helpers/leaks.js';
import { startDelayRelay } from './delay-relay.js';
import { until } from './helpers.js';

const MiB = 1024 * 1024;

it('grows one connection past its 1 MiB credit window on a 100 ms link', async () => {
  const before = snapshotResources();
  const total = 40 * MiB;
  let sent: Promise<string> | undefined;
  const target = await tcpServer((s) => {
    sent = sendPattern(s, total);
    void sent.then(() => s.end());
  });
  const proxy = new ProxyServer({ serverID: 'server-1', serverCount: 1 });
  const listener = await createGrpcServer({ port: 0, agent: (i) => proxy.acceptAgent(i) });
  const relay = await startDelayRelay(listener.port, 50);
  const agent = new Agent({ agentID: 'agent-1' });
  try {
    await agent.connect(grpcAgentConnector({ address: `127.0.0.1:${relay.port}` }));
    await until(() => proxy.ready, 'the agent to register');
    const socket = await proxy.dial(target.address);
    const got = await receiveAll(socket, total);
    expect(got).toBe(await sent);
    socket.destroy();
    // The agent is the relay's client: what it held agent-to-server is this one connection's data in flight, which
    // its starting credit would keep at about 1 MiB.
    expect(relay.maxHeldUp).toBeGreaterThan(1.5 * MiB);
  } finally {
    await agent.close();
    await proxy.close({ graceMs: 1000 });
    await relay.close();
    await listener.close({ graceMs: 1000 });
    await target.close();
  }
  await expectNoLeaks(before, { timeoutMs: 5000 });
}, 60_000);
