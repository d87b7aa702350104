/**
 * Refusals on the agent leg, each with a clear error while the server keeps serving everyone else: missing or
 * duplicate agentid, a bad bearer token, a client certificate from the wrong CA or none, an oversized message.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from '../../../src/agent/index.js';
import { ErrorCode, KonnectivityError, dataPacket } from '../../../src/protocol/index.js';
import { ProxyServer } from '../../../src/server/index.js';
import { createGrpcServer, grpcAgentConnector, type GrpcClientOptions, type GrpcServer } from '../../../src/transport/grpc/index.js';
import { echoServer, receiveAll, sendPattern } from '../../helpers/engine.js';
import { expectNoLeaks, snapshotResources, type ResourceSnapshot } from '../../helpers/leaks.js';
import { serverListen, testPki, until } from './helpers.js';


async function refusal(promise: Promise<unknown>): Promise<KonnectivityError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(KonnectivityError);
  return err as KonnectivityError;
}

describe('gRPC agent leg refusals (mutual TLS, bearer tokens)', () => {
  let before: ResourceSnapshot;
  let proxy: ProxyServer;
  let listener: GrpcServer;
  let good: GrpcClientOptions;
  let agent: Agent;
  let echo: Awaited<ReturnType<typeof echoServer>>;
  const commonNames: Array<string | undefined> = [];

  beforeAll(async () => {
    const pki = testPki();
    before = snapshotResources();
    proxy = new ProxyServer({
      serverID: 's1',
      authenticateAgent: ({ metadata, peerCommonName }) => {
        commonNames.push(peerCommonName);
        if (metadata.authorization?.[0] !== 'Bearer good-token') {
          throw new KonnectivityError(ErrorCode.UNAUTHENTICATED, 'invalid bearer token');
        }
      },
    });
    listener = await createGrpcServer({ ...serverListen('tls'), agent: (i) => proxy.acceptAgent(i) });
    good = { address: `127.0.0.1:${listener.port}`, tls: { ca: pki.ca, cert: pki.clientCert, key: pki.clientKey } };
    agent = new Agent({ agentID: 'good-agent', token: () => 'good-token' });
    await agent.connect(grpcAgentConnector(good));
    await until(() => proxy.ready, 'the good agent');
    echo = await echoServer();
  });
  afterAll(async () => {
    await agent.close();
    await proxy.close({ graceMs: 1000 });
    await listener.close({ graceMs: 1000 });
    await echo.close();
    await expectNoLeaks(before, { timeoutMs: 5000 });
  });

  /** The good agent still works: a dial through it round-trips data. */
  async function stillServing(): Promise<void> {
    expect(proxy.agents().map((a) => a.agentID)).toEqual(['good-agent']);
    const socket = await proxy.dial(echo.address);
    const [sent, received] = await Promise.all([sendPattern(socket, 256 * 1024), receiveAll(socket, 256 * 1024)]);
    expect(received).toBe(sent);
    socket.destroy();
  }

  it('exposes the verified client certificate CN to authentication', () => {
    expect(commonNames[0]).toBe('agent-client');
  });

  it('a call without agentid is refused with ERR_PROTOCOL', async () => {
    const err = await refusal(grpcAgentConnector(good)({ authorization: ['Bearer good-token'] }, {}));
    expect(err.code).toBe(ErrorCode.PROTOCOL);
    expect(err.message).toMatch(/INVALID_ARGUMENT: expected exactly one agentid/);
    await stillServing();
  });

  it('a call with two agentid values is refused with ERR_PROTOCOL', async () => {
    const err = await refusal(grpcAgentConnector(good)({ agentid: ['a', 'b'], authorization: ['Bearer good-token'] }, {}));
    expect(err.code).toBe(ErrorCode.PROTOCOL);
    expect(err.message).toMatch(/got 2/);
    await stillServing();
  });

  it('a bad bearer token is refused with ERR_UNAUTHENTICATED', async () => {
    const bad = new Agent({ agentID: 'bad-agent', token: () => 'wrong' });
    const err = await refusal(bad.connect(grpcAgentConnector(good)));
    expect(err.code).toBe(ErrorCode.UNAUTHENTICATED);
    expect(err.message).toMatch(/invalid bearer token/);
    await bad.close();
    await stillServing();
  });

  it('a client certificate from another CA is refused, and the agent is told why', async () => {
    const pki = testPki();
    const err = await refusal(
      grpcAgentConnector({ ...good, tls: { ca: pki.ca, cert: pki.rogueCert, key: pki.rogueKey } })({ agentid: ['rogue'] }, {}),
    );
    expect(err.code).toBe(ErrorCode.UNAUTHENTICATED);
    expect(err.message).toBe('UNAUTHENTICATED: client certificate refused: certificate signed by unknown authority');
    await stillServing();
  });

  it('a client without a certificate is refused', async () => {
    const err = await refusal(grpcAgentConnector({ ...good, tls: { ca: testPki().ca } })({ agentid: ['anonymous'] }, {}));
    expect(err.code).toBe(ErrorCode.UNAUTHENTICATED);
    expect(err.message).toBe('UNAUTHENTICATED: no client certificate presented');
    await stillServing();
  });

  it('a message over 4 MiB ends that agent with RESOURCE_EXHAUSTED and nobody else', async () => {
    // The sender allows more than the server accepts, so the server's limit is what is tested.
    const connect = grpcAgentConnector({ ...good, maxMessageBytes: 8 * 1024 * 1024 });
    const stream = await connect({ agentid: ['big-sender'], authorization: ['Bearer good-token'] }, {});
    await until(() => proxy.agentCount === 2, 'the second agent');
    const closed = new Promise<Error | undefined>((resolve) => stream.once('close', resolve));
    stream.on('error', () => {});
    stream.write(dataPacket(1n, Buffer.alloc(5 * 1024 * 1024, 1)));
    const err = await closed;
    expect(err).toBeInstanceOf(KonnectivityError);
    expect((err as KonnectivityError).code).toBe(ErrorCode.MESSAGE_TOO_LARGE);
    expect(err!.message).toMatch(/RESOURCE_EXHAUSTED: received message larger than max \(\d+ vs\. 4194304\)/);
    await until(() => proxy.agentCount === 1, 'the big sender to be dropped');
    await stillServing();
  });

  it('refuses to send a message over its own limit, with a clear error', async () => {
    const connect = grpcAgentConnector({ ...good, maxMessageBytes: 1024 * 1024 });
    const stream = await connect({ agentid: ['small-limit'], authorization: ['Bearer good-token'] }, {});
    const closed = new Promise<Error | undefined>((resolve) => stream.once('close', resolve));
    stream.on('error', () => {});
    expect(stream.write(dataPacket(1n, Buffer.alloc(2 * 1024 * 1024, 1)))).toBe(false);
    const err = await closed;
    expect((err as KonnectivityError).code).toBe(ErrorCode.MESSAGE_TOO_LARGE);
    expect(err!.message).toMatch(/trying to send message larger than max/);
    await until(() => proxy.agentCount === 1, 'the agent to be dropped');
    await stillServing();
  });
});
