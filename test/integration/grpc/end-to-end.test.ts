/**
 * End to end over gRPC: a TS agent tunnels to a TS ProxyServer over /AgentService/Connect (h2c, mutual TLS, Unix
 * socket), and a frontend client dials through /ProxyService/Proxy to a loopback echo server.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Agent } from '../../../src/agent/index.js';
import { GrpcProxyClient } from '../../../src/client/grpc-client.js';
import { ErrorCode } from '../../../src/protocol/errors.js';
import { ProxyServer } from '../../../src/server/index.js';
import { createGrpcServer, grpcAgentConnector, type GrpcServer } from '../../../src/transport/grpc/index.js';
import { echoServer, receiveAll, sendPattern } from '../../helpers/engine.js';
import { refusedAddress } from '../../helpers/sockets.js';
import { expectNoLeaks, snapshotResources, type ResourceSnapshot } from '../../helpers/leaks.js';
import { clientTarget, serverListen, tempSocketPath, until, type Kind } from './helpers.js';

const MiB = 1024 * 1024;

/** Dial the echo server through `client`, round-trip `bytes` checksummed, and close the connection. */
async function echoThrough(client: GrpcProxyClient, address: string, bytes: number): Promise<void> {
  const socket = await client.dial(address);
  const [sent, received] = await Promise.all([sendPattern(socket, bytes), receiveAll(socket, bytes)]);
  expect(received).toBe(sent);
  socket.destroy();
  await new Promise<void>((r) => (socket.closed ? r() : socket.once('close', () => r())));
}


/** A server with both gRPC listeners, an agent tunnelled to it over `kind`, and an echo endpoint. */
async function startStack(kind: Kind) {
  const proxy = new ProxyServer({ serverID: 'server-1', serverCount: 1 });
  const agentListener = await createGrpcServer({ ...serverListen(kind), agent: (i) => proxy.acceptAgent(i) });
  const frontendListener = await createGrpcServer({ ...serverListen(kind), frontend: (s) => proxy.acceptFrontend(s) });
  const agent = new Agent({ agentID: 'agent-1' });
  const tunnel = await agent.connect(grpcAgentConnector(clientTarget(agentListener, kind)));
  await until(() => proxy.ready, 'the agent to register');
  const echo = await echoServer();
  const listeners: GrpcServer[] = [agentListener, frontendListener];
  return {
    proxy,
    agent,
    tunnel,
    echo,
    frontendTarget: clientTarget(frontendListener, kind),
    async close() {
      await agent.close();
      await proxy.close({ graceMs: 1000 });
      await Promise.all(listeners.map((l) => l.close({ graceMs: 1000 })));
      await echo.close();
    },
  };
}

for (const kind of ['tcp', 'tls', 'uds'] as Kind[]) {
  describe(`gRPC end to end over ${kind}`, () => {
    let before: ResourceSnapshot;
    let stack: Awaited<ReturnType<typeof startStack>>;
    beforeEach(async () => {
      before = snapshotResources();
      stack = await startStack(kind);
    });
    afterEach(async () => {
      await stack.close();
      await expectNoLeaks(before, { timeoutMs: 5000 });
    });

    it('reads serverid and servercount from the response headers', () => {
      expect(stack.tunnel.serverID).toBe('server-1');
      expect(stack.tunnel.serverCount).toBe(1);
    });

    for (const singleUse of [false, true]) {
      it(`round-trips 8 MiB through a ${singleUse ? 'single-use' : 'reusable'} client tunnel`, async () => {
        const client = new GrpcProxyClient({ ...stack.frontendTarget, singleUse });
        try {
          await echoThrough(client, stack.echo.address, 8 * MiB);
        } finally {
          await client.close();
        }
      });
    }

    it('serves many dials on one reusable connection, concurrently and in sequence', async () => {
      const client = new GrpcProxyClient(stack.frontendTarget);
      try {
        await Promise.all(Array.from({ length: 20 }, (_, i) => echoThrough(client, stack.echo.address, 64 * 1024 + i)));
        for (let i = 0; i < 50; i++) await echoThrough(client, stack.echo.address, 64 * 1024 + i);
      } finally {
        await client.close();
      }
    });

    it('moves 64 MiB each way, checksummed, through one connection', async () => {
      const client = new GrpcProxyClient(stack.frontendTarget);
      try {
        await echoThrough(client, stack.echo.address, 64 * MiB);
      } finally {
        await client.close();
      }
    });

    it('runs 1000 sequential dials on a reusable client, then 50 single-use ones', async () => {
      const reusable = new GrpcProxyClient(stack.frontendTarget);
      const singleUse = new GrpcProxyClient({ ...stack.frontendTarget, singleUse: true });
      try {
        for (let i = 0; i < 1000; i++) await echoThrough(reusable, stack.echo.address, 100 + i);
        for (let i = 0; i < 50; i++) await echoThrough(singleUse, stack.echo.address, 100 + i);
        await until(() => stack.proxy.stats.establishedConnections === 0, 'every connection to be closed on the server');
      } finally {
        await Promise.all([reusable.close(), singleUse.close()]);
      }
    });

    it('reports the agent dial error text for a refused endpoint', async () => {
      const client = new GrpcProxyClient(stack.frontendTarget);
      try {
        const refused = await refusedAddress();
        await expect(client.dial(refused)).rejects.toMatchObject({ code: 'ERR_DIAL_FAILED' });
      } finally {
        await client.close();
      }
    });
  });
}

describe('reusable gRPC client after the server restarts', () => {
  it('opens a new connection once the old one is gone', async () => {
    const before = snapshotResources();
    const proxy = new ProxyServer({ serverID: 'restart' });
    const agentListener = await createGrpcServer({ port: 0, agent: (i) => proxy.acceptAgent(i) });
    const socketPath = tempSocketPath();
    let frontendListener = await createGrpcServer({ socketPath, frontend: (s) => proxy.acceptFrontend(s) });
    const agent = new Agent({ agentID: 'agent-1' });
    await agent.connect(grpcAgentConnector({ address: `127.0.0.1:${agentListener.port}` }));
    await until(() => proxy.ready, 'the agent');
    const echo = await echoServer();
    const client = new GrpcProxyClient({ socketPath });
    try {
      await echoThrough(client, echo.address, 1000);
      // The frontend listener goes away (GOAWAY, then the connection closes) and comes back on the same path.
      await frontendListener.close({ graceMs: 100 });
      frontendListener = await createGrpcServer({ socketPath, frontend: (s) => proxy.acceptFrontend(s) });
      await echoThrough(client, echo.address, 1000);
    } finally {
      await client.close();
      await agent.close();
      await proxy.close({ graceMs: 1000 });
      await Promise.all([agentListener.close({ graceMs: 1000 }), frontendListener.close({ graceMs: 1000 })]);
      await echo.close();
    }
    await expectNoLeaks(before, { timeoutMs: 5000 });
  });
});

describe('GrpcProxyClient.close({ graceMs, signal })', () => {
  let before: ResourceSnapshot;
  let stack: Awaited<ReturnType<typeof startStack>>;
  beforeEach(async () => {
    before = snapshotResources();
    stack = await startStack('tcp');
  });
  afterEach(async () => {
    await stack.close();
    await expectNoLeaks(before, { timeoutMs: 5000 });
  });

  /** An open connection its user never ends and has no 'error' listener on; resolves with how it ended. */
  async function forgottenSocket(client: GrpcProxyClient): Promise<{ ended: Promise<string> }> {
    const socket = await client.dial(stack.echo.address);
    socket.resume();
    // Wrapped: an async function returning a bare promise would wait for it.
    return {
      ended: new Promise((resolve) => {
        let ended = false;
        socket.once('end', () => (ended = true));
        socket.once('close', () => resolve(`${ended ? 'EOF' : 'no EOF'}, ${socket.errored ? 'errored' : 'no error'}`));
      }),
    };
  }

  for (const singleUse of [false, true]) {
    it(`ends a connection its user never ends with EOF at the deadline and resolves (${singleUse ? 'single-use' : 'reusable'})`, async () => {
      const client = new GrpcProxyClient({ ...stack.frontendTarget, singleUse });
      const { ended } = await forgottenSocket(client);
      await client.close({ graceMs: 200 });
      expect(await ended).toBe('EOF, no error');
      await until(() => stack.proxy.stats.establishedConnections === 0, 'the connection to be closed on the server');
    });
  }

  it('an aborted signal ends the grace period at once', async () => {
    const client = new GrpcProxyClient(stack.frontendTarget);
    const { ended } = await forgottenSocket(client);
    const abort = new AbortController();
    const closing = client.close({ graceMs: 600_000, signal: abort.signal });
    abort.abort();
    await closing;
    expect(await ended).toBe('EOF, no error');
    await until(() => stack.proxy.stats.establishedConnections === 0, 'the connection to be closed on the server');
  });

  it('waits for a connection that finishes in time, and refuses a bad graceMs', async () => {
    const client = new GrpcProxyClient(stack.frontendTarget);
    await expect(client.close({ graceMs: -1 })).rejects.toMatchObject({ code: ErrorCode.INVALID_OPTION });
    const socket = await client.dial(stack.echo.address);
    const closing = client.close({ graceMs: 600_000 });
    const [sent, received] = await Promise.all([sendPattern(socket, 4096), receiveAll(socket, 4096)]);
    expect(received).toBe(sent);
    socket.end();
    await closing;
    expect(socket.errored).toBeNull();
  });
});
