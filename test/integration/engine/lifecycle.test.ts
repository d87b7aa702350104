import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { once } from 'node:events';
import type { Duplex } from 'node:stream';
import { Engine, echoServer, tcpServer } from '../../helpers/engine.js';
import { expectNoLeaks, snapshotResources, type ResourceSnapshot } from '../../helpers/leaks.js';
import { ErrorCode, KonnectivityError, isKonnectivityError } from '../../../src/index.js';

describe('agent loss, strategies, drain, events', () => {
  let before: ResourceSnapshot;
  let engine: Engine;
  beforeEach(() => {
    before = snapshotResources();
    engine = new Engine({ server: { strategies: ['destHost', 'defaultRoute', 'default'] } });
  });
  afterEach(async () => {
    await engine.close();
    await expectNoLeaks(before);
  });

  it('agent stream dies: pending dials fail at once, established connections close', async () => {
    const echo = await echoServer();
    engine.defer(() => echo.close());
    let dialing!: () => void;
    const started = new Promise<void>((r) => (dialing = r));
    const { agent, tunnel } = await engine.agent({
      dialer: async (req) => {
        if (req.address === '10.9.9.9:80') {
          dialing();
          return new Promise<Duplex>(() => {});
        }
        const { tcpDialer } = await import('../../../src/agent/dialer.js');
        return tcpDialer()(req);
      },
    });
    const established = await engine.server.dial(echo.address);
    const closeErr = new Promise<Error | undefined>((resolve) => {
      let e: Error | undefined;
      established.on('error', (err) => (e = err));
      established.on('close', () => resolve(e));
    });
    const pending = engine.server.dial('10.9.9.9:80').catch((e: unknown) => e);
    await started;
    const disconnected = once(engine.server, 'agentDisconnected');
    tunnel.destroy(new Error('network cut'));
    const err = await pending;
    expect(isKonnectivityError(err, ErrorCode.TUNNEL_CLOSED)).toBe(true);
    expect(isKonnectivityError(await closeErr, ErrorCode.TUNNEL_CLOSED)).toBe(true);
    await disconnected;
    expect(engine.server.ready).toBe(false);
    expect(engine.server.stats).toMatchObject({ pendingDials: 0, establishedConnections: 0 });
    expect(agent.tunnels).toHaveLength(0);
  });

  it('destHost routes by identifier; defaultRoute prefers agents that advertise it', async () => {
    const target = await tcpServer((s) => s.end());
    engine.defer(() => target.close());
    const seen: string[] = [];
    engine.server.on('dialSucceeded', (e) => seen.push(e.agentID));
    await engine.agent({ agentID: 'plain' });
    await engine.agent({ agentID: 'node-a', identifiers: { ipv4: ['127.0.0.1'], host: ['node-a'] } });
    await engine.agent({ agentID: 'router', identifiers: { defaultRoute: true } });
    for (let i = 0; i < 5; i++) {
      const s = await engine.server.dial(target.address);
      s.resume();
      await once(s, 'close');
    }
    expect(new Set(seen)).toEqual(new Set(['node-a']));
    // A host nobody advertises goes to the defaultRoute agent; its dial fails, but the choice shows in the event.
    const failed = once(engine.server, 'dialFailed');
    await engine.server.dial('127.0.0.2:1').catch(() => {});
    await failed;
    expect(seen).toHaveLength(5);
  });

  it('draining agents are used only when no other fits', async () => {
    const target = await tcpServer((s) => s.end());
    engine.defer(() => target.close());
    const a = await engine.agent({ agentID: 'a' });
    await engine.agent({ agentID: 'b' });
    const draining = once(engine.server, 'agentDraining');
    a.agent.drain();
    const [info] = await draining;
    expect(info).toMatchObject({ agentID: 'a', draining: true });
    const seen: string[] = [];
    engine.server.on('dialSucceeded', (e) => seen.push(e.agentID));
    for (let i = 0; i < 10; i++) {
      const s = await engine.server.dial(target.address);
      s.resume();
      await once(s, 'close');
    }
    expect(new Set(seen)).toEqual(new Set(['b']));
    // With b gone, the draining agent still serves.
    const gone = once(engine.server, 'agentDisconnected');
    engine.agents[1]!.destroy();
    await gone;
    const s = await engine.server.dial(target.address);
    expect(s.agentID).toBe('a');
    s.resume();
    await once(s, 'close');
  });

  it('refuses an agent without agentid, and one the authenticator rejects', async () => {
    const server = new (await import('../../../src/server/index.js')).ProxyServer({
      authenticateAgent: ({ metadata }) => {
        if (metadata['authorization']?.[0] !== 'Bearer good') {
          throw new KonnectivityError(ErrorCode.UNAUTHENTICATED, 'bad token');
        }
      },
    });
    const { memoryConnector } = await import('../../../src/transport/memory/index.js');
    const { Agent } = await import('../../../src/agent/index.js');
    const connector = memoryConnector((incoming) => void server.acceptAgent(incoming));
    const noID = await connector({}, {}).catch((e: unknown) => e);
    expect(isKonnectivityError(noID, ErrorCode.PROTOCOL)).toBe(true);
    const bad = await new Agent({ agentID: 'x', token: () => 'bad' }).connect(connector).catch((e: unknown) => e);
    expect(isKonnectivityError(bad, ErrorCode.UNAUTHENTICATED)).toBe(true);
    const good = new Agent({ agentID: 'x', token: () => 'good\n' });
    const t = await good.connect(connector);
    expect(t.serverID).toBe(server.serverID);
    expect(server.agentCount).toBe(1);
    good.destroy();
    server.destroy();
  });

  it('server.close() lets open connections finish within the grace period, then refuses new dials', async () => {
    const echo = await echoServer();
    engine.defer(() => echo.close());
    await engine.agent();
    const s = await engine.server.dial(echo.address);
    const closing = engine.server.close({ graceMs: 5000 });
    const refused = await engine.server.dial(echo.address).catch((e: unknown) => e);
    expect(isKonnectivityError(refused, ErrorCode.SHUTTING_DOWN)).toBe(true);
    s.write('last words');
    const [d] = await once(s, 'data');
    expect(String(d)).toBe('last words');
    s.end();
    await once(s, 'close');
    await closing;
  });
});

describe('agent.close()', () => {
  it('closes its endpoints and tells the server (CLOSE_RSP), so server sockets end cleanly', async () => {
    const before = snapshotResources();
    const engine = new Engine();
    try {
      const echo = await echoServer();
      engine.defer(() => echo.close());
      const { agent } = await engine.agent();
      const socket = await engine.server.dial(echo.address);
      socket.resume();
      const closed = once(socket, 'close');
      await agent.close();
      await closed;
      expect(socket.errored).toBeNull();
      // The target sees its connection closed too.
      while (echo.sockets.size > 0) await new Promise((r) => setTimeout(r, 5));
    } finally {
      await engine.close();
      await expectNoLeaks(before);
    }
  });
});
