/**
 * Graceful close with a deadline: `close({ graceMs, signal })` of the agent, its tunnels, the client set and the
 * proxy server resolves against a peer that never answers (destroying what is left at the deadline or the abort),
 * waits for what it closes, and never makes a user's socket emit 'error'.
 */
import { once } from 'node:events';
import type { Duplex } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Agent } from '../../../src/agent/index.js';
import { AgentClientSet } from '../../../src/agent/client-set.js';
import { ErrorCode, isKonnectivityError } from '../../../src/protocol/errors.js';
import { ProxyServer } from '../../../src/server/index.js';
import { dialOverStream } from '../../../src/client/index.js';
import { createGrpcServer, grpcAgentConnector, openProxyStream, type GrpcServer } from '../../../src/transport/grpc/index.js';
import type { PacketStream } from '../../../src/transport/packet-stream.js';
import { Engine, echoServer } from '../../helpers/engine.js';
import { expectNoLeaks, snapshotResources, type ResourceSnapshot } from '../../helpers/leaks.js';

/** A gRPC agent listener that accepts every tunnel and then never says or ends anything. */
async function silentServer(): Promise<{ server: GrpcServer; held: PacketStream[]; connector: ReturnType<typeof grpcAgentConnector> }> {
  const held: PacketStream[] = [];
  const server = await createGrpcServer({
    port: 0,
    agent: (incoming) => {
      const s = incoming.accept({ serverid: ['silent'], servercount: ['1'] });
      s.on('error', () => {});
      held.push(s);
    },
  });
  return { server, held, connector: grpcAgentConnector({ address: `127.0.0.1:${server.port}` }) };
}

/** A fresh engine per test, checked idle and for leaks after it. */
function withEngine(use: (engine: Engine) => void): void {
  let before: ResourceSnapshot;
  let engine: Engine;
  beforeEach(() => {
    before = snapshotResources();
    engine = new Engine();
    use(engine);
  });
  afterEach(async () => {
    await engine.close();
    await expectNoLeaks(before);
  });
}

describe('the agent closes against a server that never answers', () => {
  let before: ResourceSnapshot;
  beforeEach(() => {
    before = snapshotResources();
  });
  afterEach(async () => {
    await expectNoLeaks(before);
  });

  it('Agent.close({ graceMs }) resolves: the tunnel is destroyed at the deadline, with the reason', async () => {
    const { server, held } = await silentServer();
    const agent = new Agent({ agentID: 'a' });
    const tunnel = await agent.connect(grpcAgentConnector({ address: `127.0.0.1:${server.port}` }));
    await agent.close({ graceMs: 100 });
    const err = await tunnel.done;
    expect(isKonnectivityError(err, ErrorCode.STREAM_CLOSED)).toBe(true);
    expect(agent.tunnels).toHaveLength(0);
    // The server side sees its call end too.
    if (!held[0]!.closeEmitted) await new Promise((r) => held[0]!.once('close', r));
    await server.close({ graceMs: 0 });
  });

  it('an aborted signal ends the wait at once, whatever the grace period', async () => {
    const { server } = await silentServer();
    const agent = new Agent({ agentID: 'a' });
    const tunnel = await agent.connect(grpcAgentConnector({ address: `127.0.0.1:${server.port}` }));
    const ac = new AbortController();
    const closing = tunnel.close({ graceMs: 600_000, signal: ac.signal });
    ac.abort();
    await closing;
    expect(tunnel.stream.closeEmitted).toBe(true);
    await agent.close();
    await server.close({ graceMs: 0 });
  });

  it('AgentClientSet.close({ graceMs }) resolves, and the set stops dialling', async () => {
    const { server, connector } = await silentServer();
    const agent = new Agent({ agentID: 'a' });
    const set = new AgentClientSet(agent, { connectors: [connector], syncIntervalMs: 10 });
    set.start();
    await set.whenReady();
    await set.close({ graceMs: 100 });
    expect(set.tunnels).toHaveLength(0);
    expect(agent.tunnels).toHaveLength(0);
    await server.close({ graceMs: 0 });
  });

  it('a bad graceMs is refused with ERR_INVALID_OPTION', async () => {
    const agent = new Agent({ agentID: 'a' });
    await expect(agent.close({ graceMs: -1 })).rejects.toMatchObject({ code: ErrorCode.INVALID_OPTION });
    const server = new ProxyServer();
    await expect(server.close({ graceMs: Number.NaN })).rejects.toMatchObject({ code: ErrorCode.INVALID_OPTION });
    server.destroy();
  });
});

describe('the agent closes with dials in progress', () => {
  let engine: Engine;
  withEngine((e) => (engine = e));

  /** A dialer that waits until aborted and then fails as Go's net.Dial does for a cancelled context. */
  const hangingDialer = (started: () => void) => ({ address, signal }: { address: string; signal: AbortSignal }) =>
    new Promise<Duplex>((_resolve, reject) => {
      started();
      signal.addEventListener('abort', () => reject(new Error(`dial tcp ${address}: operation was canceled`)), { once: true });
    });

  it('a dial cut short by close() is reported as cancelled, not as an i/o timeout (a 502, not a 504)', async () => {
    let started!: () => void;
    const dialing = new Promise<void>((r) => (started = r));
    const { agent } = await engine.agent({ dialer: hangingDialer(() => started()) });
    const failed = engine.server.dial('10.0.0.1:80').catch((e: unknown) => e);
    await dialing;
    await agent.close({ graceMs: 1000 });
    const err = (await failed) as Error;
    expect(err.message).toContain('operation was canceled');
    expect(err.message).not.toContain('i/o timeout');
  });

  it('a dialer that ignores its signal: the server still hears i/o timeout at the backstop', async () => {
    await engine.agent({ dialTimeoutMs: 50, dialer: () => new Promise<Duplex>(() => {}) });
    const err = (await engine.server.dial('10.0.0.1:80').catch((e: unknown) => e)) as Error;
    expect(isKonnectivityError(err, ErrorCode.DIAL_FAILED)).toBe(true);
    expect(err.message).toBe('dial tcp 10.0.0.1:80: i/o timeout');
  });

  it('a DIAL_REQ that reaches a closing agent is refused at once', async () => {
    const { tunnel } = await engine.agent();
    const closing = tunnel.close({ graceMs: 1000 });
    const err = (await engine.server.dial('127.0.0.1:1').catch((e: unknown) => e)) as Error;
    expect(err).toBeInstanceOf(Error);
    await closing;
  });
});

describe('ProxyServer.close({ graceMs, signal })', () => {
  let engine: Engine;
  withEngine((e) => (engine = e));

  it("ends a dial() socket that has no 'error' listener with EOF at the deadline, and never with an error", async () => {
    const echo = await echoServer();
    engine.defer(() => echo.close());
    const { tunnel } = await engine.agent();
    const socket = await engine.server.dial(echo.address);
    // No 'error' listener on purpose: an 'error' would be thrown as an uncaught exception and fail the test.
    let ended = false;
    socket.on('end', () => (ended = true));
    socket.resume();
    await engine.server.close({ graceMs: 50 });
    if (!socket.closed) await once(socket, 'close');
    expect(ended).toBe(true);
    expect(socket.errored).toBeNull();
    // close() waited for the agent stream it cut; the agent hears of it.
    expect(engine.server.agentCount).toBe(0);
    expect(engine.server.agents()).toEqual([]);
    await tunnel.done;
    expect(tunnel.stream.closeEmitted).toBe(true);
  });

  it('lets an open connection finish, then ends the agent streams cleanly and resolves', async () => {
    const echo = await echoServer();
    engine.defer(() => echo.close());
    const { tunnel } = await engine.agent();
    const socket = await engine.server.dial(echo.address);
    const closing = engine.server.close({ graceMs: 600_000 });
    // Refused while closing, and the open connection still works.
    const refused = await engine.server.dial(echo.address).catch((e: unknown) => e);
    expect(isKonnectivityError(refused, ErrorCode.SHUTTING_DOWN)).toBe(true);
    socket.write('still here');
    const [echoed] = (await once(socket, 'data')) as [Buffer];
    expect(echoed.toString()).toBe('still here');
    socket.end();
    socket.resume();
    await once(socket, 'close');
    await closing;
    // Ended, not destroyed: the agent's tunnel saw a clean end.
    expect(await tunnel.done).toBeUndefined();
    expect(engine.server.agentCount).toBe(0);
  });

  it('a dial still waiting at the deadline fails with ERR_SHUTTING_DOWN (metric reason shutting_down)', async () => {
    let started!: () => void;
    const dialing = new Promise<void>((r) => (started = r));
    await engine.agent({
      dialer: () => {
        started();
        return new Promise<Duplex>(() => {});
      },
    });
    const reasons: string[] = [];
    engine.server.on('dialFailed', (e) => reasons.push(e.reason));
    const failed = engine.server.dial('10.0.0.1:80').catch((e: unknown) => e);
    await dialing;
    await engine.server.close({ graceMs: 20 });
    expect(isKonnectivityError(await failed, ErrorCode.SHUTTING_DOWN)).toBe(true);
    expect(reasons).toEqual(['shutting_down']);
  });

  it('an aborted signal ends the grace period at once', async () => {
    const echo = await echoServer();
    engine.defer(() => echo.close());
    await engine.agent();
    const socket = await engine.server.dial(echo.address);
    socket.resume();
    const ac = new AbortController();
    const closing = engine.server.close({ graceMs: 600_000, signal: ac.signal });
    ac.abort();
    await closing;
    if (!socket.closed) await once(socket, 'close');
    expect(socket.errored).toBeNull();
  });
});

describe('ProxyServer.close() over gRPC', () => {
  it('a gRPC frontend with an open connection gets CLOSE_RSP (EOF, no error); an agent that never ends its stream is cut', async () => {
    const before = snapshotResources();
    const echo = await echoServer();
    const proxy = new ProxyServer();
    const agents = await createGrpcServer({ port: 0, agent: (incoming) => void proxy.acceptAgent(incoming) });
    const frontends = await createGrpcServer({ port: 0, frontend: (stream) => proxy.acceptFrontend(stream) });
    const agent = new Agent({ agentID: 'served' });
    await agent.connect(grpcAgentConnector({ address: `127.0.0.1:${agents.port}` }));
    const stream = openProxyStream({ address: `127.0.0.1:${frontends.port}` });
    const socket = await dialOverStream(stream, echo.address);
    // A second "agent" that registers and then never reads or ends anything.
    const silent = await grpcAgentConnector({ address: `127.0.0.1:${agents.port}` })({ agentid: ['silent'] }, {});
    silent.on('error', () => {});
    silent.pause();
    let ended = false;
    socket.on('end', () => (ended = true));
    socket.resume();
    await proxy.close({ graceMs: 300 });
    if (!socket.closed) await once(socket, 'close');
    expect(ended).toBe(true);
    expect(socket.errored).toBeNull();
    expect(proxy.agentCount).toBe(0);
    await agent.close();
    silent.destroy();
    await Promise.all([agents.close({ graceMs: 0 }), frontends.close({ graceMs: 0 })]);
    await echo.close();
    await expectNoLeaks(before);
  });
});
