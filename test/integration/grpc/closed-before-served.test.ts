/**
 * A stream that closes before its owner takes it (issue 11 item 3): a gRPC server that sends its response headers
 * and error trailers in one write, so the client reads both in the same turn and the call is over by the time the
 * agent, the client or the server attaches to it. Each owner must settle at once: the client set must not keep a
 * dead tunnel as ready, a dial must fail without waiting for its backstop, a frontend session must not be held.
 */
import http2 from 'node:http2';
import net, { type AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Agent } from '../../../src/agent/index.js';
import { AgentClientSet } from '../../../src/agent/client-set.js';
import { dialOverStream } from '../../../src/client/index.js';
import { ErrorCode } from '../../../src/protocol/errors.js';
import { ProxyServer } from '../../../src/server/index.js';
import { grpcAgentConnector, openProxyStream } from '../../../src/transport/grpc/index.js';
import { createMemoryPair } from '../../../src/transport/memory/index.js';
import { expectNoLeaks, snapshotResources, type ResourceSnapshot } from '../../helpers/leaks.js';
import { listenTcp, type TestServer } from '../http-connect/helpers.js';
import { until } from './helpers.js';

/**
 * A TCP relay that gathers what the server sends for `windowMs` after the first byte of a burst and writes it to
 * the client at once, so frames the server wrote one after the other (response headers, then trailers) arrive in
 * one read.
 */
async function coalescingRelay(targetPort: number, windowMs = 50): Promise<TestServer> {
  return listenTcp((client) => {
    const upstream = net.connect(targetPort, '127.0.0.1');
    upstream.on('error', () => {});
    client.pipe(upstream);
    let held: Buffer[] = [];
    let timer: NodeJS.Timeout | undefined;
    const flush = (): void => {
      timer = undefined;
      if (!client.destroyed) client.write(Buffer.concat(held));
      held = [];
    };
    upstream.on('data', (chunk: Buffer) => {
      held.push(chunk);
      timer ??= setTimeout(flush, windowMs);
    });
    upstream.on('close', () => {
      clearTimeout(timer);
      if (held.length > 0) flush();
      client.destroy();
    });
    client.on('close', () => upstream.destroy());
  });
}

/** An HTTP/2 server that answers every call with response headers and then error trailers, reached through a relay
 * that delivers the two in one read. */
async function answersThenFails(): Promise<{ port: number; calls: () => number; close(): Promise<void> }> {
  let calls = 0;
  const server = http2.createServer();
  server.on('session', (s) => s.on('error', () => {}));
  server.on('stream', (stream) => {
    calls++;
    stream.on('error', () => {});
    stream.respond(
      { ':status': 200, 'content-type': 'application/grpc', serverid: `server-${calls}`, servercount: '1' },
      { waitForTrailers: true },
    );
    stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '13', 'grpc-message': 'gone at once' }));
    stream.end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const relay = await coalescingRelay((server.address() as AddressInfo).port);
  return {
    port: relay.port,
    calls: () => calls,
    async close() {
      await relay.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

describe('a stream that closes before it is served', () => {
  let before: ResourceSnapshot;
  beforeEach(() => {
    before = snapshotResources();
  });
  afterEach(async () => {
    await expectNoLeaks(before);
  });

  it('the client set does not keep the dead tunnel as ready: it redials', async () => {
    const server = await answersThenFails();
    const agent = new Agent({ agentID: 'a' });
    const set = new AgentClientSet(agent, {
      connectors: [grpcAgentConnector({ address: `127.0.0.1:${server.port}` })],
      syncIntervalMs: 5,
      syncIntervalCapMs: 20,
    });
    const removed: unknown[] = [];
    set.on('tunnelRemoved', (_t, err) => removed.push(err));
    set.start();
    await until(() => server.calls() >= 3, 'three attempts');
    await set.close({ graceMs: 0 });
    // Every tunnel that came up was seen to end; none is held.
    expect(set.tunnels).toHaveLength(0);
    expect(set.ready).toBe(false);
    expect(agent.tunnels).toHaveLength(0);
    await agent.close();
    await server.close();
  });

  it('a dial over such a stream fails at once with the server\'s reason, not at its 30 s backstop', async () => {
    const server = await answersThenFails();
    const stream = openProxyStream({ address: `127.0.0.1:${server.port}` });
    const err = (await dialOverStream(stream, '127.0.0.1:80', { timeoutMs: 600_000 }).catch((e: unknown) => e)) as {
      code?: string;
      message?: string;
    };
    expect([ErrorCode.TUNNEL_CLOSED, ErrorCode.REMOTE]).toContain(err.code);
    expect(err.message).not.toMatch(/backstop/);
    await server.close();
  });

  /** One end of a pair whose 'close' (with an error) was emitted before anyone attached. */
  async function closedStream(): Promise<{ stream: ReturnType<typeof createMemoryPair>[0]; peer: ReturnType<typeof createMemoryPair>[1] }> {
    const [stream, peer] = createMemoryPair({ metadata: { a: { serverid: ['gone'], servercount: ['1'] } } });
    stream.on('error', () => {});
    peer.on('error', () => {});
    stream.destroy(new Error('reset in the same read'));
    await new Promise((r) => setImmediate(r));
    expect(stream.closeEmitted).toBe(true);
    return { stream, peer };
  }

  it('an agent serving a tunnel that is already over settles it at once', async () => {
    const { stream, peer } = await closedStream();
    const agent = new Agent({ agentID: 'a' });
    const tunnel = agent.serve(stream);
    expect((await tunnel.done)?.message).toBe('reset in the same read');
    expect(agent.tunnels).toHaveLength(0);
    peer.destroy();
  });

  it('a dial over a stream that is already over fails at once', async () => {
    const { stream, peer } = await closedStream();
    const err = await dialOverStream(stream, '127.0.0.1:80', { timeoutMs: 600_000 }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: ErrorCode.TUNNEL_CLOSED });
    peer.destroy();
  });

  it('the server takes a frontend stream that is already over without holding it', async () => {
    const proxy = new ProxyServer();
    const [client, served] = createMemoryPair();
    client.on('error', () => {});
    served.on('error', () => {});
    served.destroy(new Error('reset in the same read'));
    await new Promise((r) => setImmediate(r));
    expect(served.closeEmitted).toBe(true);
    proxy.acceptFrontend(served);
    // close() waits for every frontend stream it holds: it resolves, so this one was let go.
    await proxy.close({ graceMs: 600_000 });
    client.destroy();
  });
});
