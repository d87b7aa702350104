/**
 * DIAL_CLS names a dial, never a connection (issue 11, item 12): a frontend that reuses an established connection's
 * `random` and then sends DIAL_CLS must not close that connection, neither on a hand-driven agent tunnel nor end to
 * end through the server.
 */
import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import {
  Agent,
  PacketType,
  ProxyServer,
  closeDial,
  createMemoryPair,
  dataPacket,
  dialOverStream,
  dialRequest,
  memoryConnector,
  type PacketStream,
} from '../../../src/index.js';
import { echoServer } from '../../helpers/engine.js';
import { leakCheckedCleanups } from '../../helpers/cleanups.js';
import { packetReader } from '../../helpers/sockets.js';

const cleanups = leakCheckedCleanups();


describe('DIAL_CLS scope', () => {
  it('on the agent: a DIAL_CLS for an established connection\'s random closes nothing', async () => {
    const echo = await echoServer();
    cleanups.push(() => echo.close());
    const agent = new Agent({ agentID: 'a1', credits: false });
    cleanups.push(() => agent.destroy());
    const [server, agentSide] = createMemoryPair({ encode: true });
    agent.serve(agentSide);
    const rx = packetReader(server);

    server.write(dialRequest(echo.address, 5n));
    expect(await rx.next()).toMatchObject({ type: PacketType.DIAL_RSP, dialResponse: { random: 5n, connectID: 1n, error: '' } });
    // Another dial reuses the random, completes, and then DIAL_CLS arrives for it.
    server.write(dialRequest(echo.address, 5n));
    expect(await rx.next()).toMatchObject({ type: PacketType.DIAL_RSP, dialResponse: { random: 5n, connectID: 2n, error: '' } });
    server.write(closeDial(5n));
    server.write(dataPacket(1n, Buffer.from('still here')));
    const echoed = await rx.next();
    expect(echoed).toMatchObject({ type: PacketType.DATA, data: { connectID: 1n } });
    expect(Buffer.from((echoed as { data: { data: Uint8Array } }).data.data).toString()).toBe('still here');
    expect(agent.tunnels[0]!.connectionCount).toBe(2);
    server.destroy();
  });

  it('end to end: 300 DIAL_REQ + DIAL_CLS with a victim\'s random never touch the victim', async () => {
    const echo = await echoServer();
    cleanups.push(() => echo.close());
    const server = new ProxyServer();
    cleanups.push(() => server.destroy());
    const agent = new Agent({ agentID: 'a' });
    cleanups.push(() => agent.destroy());
    await agent.connect(memoryConnector((i) => void server.acceptAgent(i), { encode: true }));
    const frontend = (): PacketStream => {
      const [serverSide, clientSide] = createMemoryPair({ encode: true });
      server.acceptFrontend(serverSide);
      clientSide.on('error', () => {});
      return clientSide;
    };
    let dialID: bigint | undefined;
    agent.once('connectionOpened', (e) => (dialID = e.dialID));
    const victim = await dialOverStream(frontend(), echo.address);
    victim.on('error', () => {});
    const closed: string[] = [];
    victim.once('close', () => closed.push('victim closed'));
    expect(dialID).toBeDefined();
    for (let i = 0; i < 300; i++) {
      const attacker = frontend();
      attacker.write(dialRequest(echo.address, dialID!));
      // Vary when DIAL_CLS follows, so some land while the agent's dial completes.
      if (i % 3 === 1) await new Promise((r) => setImmediate(r));
      if (i % 3 === 2) await new Promise((r) => setTimeout(r, 1));
      attacker.write(closeDial(dialID!));
      attacker.destroy();
    }
    victim.write('ping');
    const [d] = await once(victim, 'data');
    expect(String(d)).toBe('ping');
    expect(closed).toEqual([]);
    victim.destroy();
  });
});
