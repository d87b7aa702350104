/**
 * Refused agents (issue 11, items 13-14): every refusal is reported by the server with the peer's address and the
 * reason, the agent is told the real reason (an expired certificate, another CA, no certificate, a bad token), and
 * the option that ties the agent ID or its identifiers to the client certificate's names.
 */
import { describe, expect, it } from 'vitest';
import { Agent, ErrorCode, ProxyServer, isKonnectivityError, type AgentRefusal, type KonnectivityError } from '../../../src/index.js';
import { createGrpcServer, grpcAgentConnector, type GrpcServer } from '../../../src/transport/grpc/index.js';
import { createYamuxServer, tlsCarrier, yamuxAgentConnector } from '../../../src/transport/yamux/index.js';
import { expiredClientCert } from '../../helpers/expired-cert.js';
import { leakCheckedCleanups } from '../../helpers/cleanups.js';
import { testPki } from '../grpc/helpers.js';
import type { AddressInfo } from 'node:net';

const cleanups = leakCheckedCleanups();

async function grpcStack(options: ConstructorParameters<typeof ProxyServer>[0] = {}) {
  const p = testPki();
  const proxy = new ProxyServer(options);
  cleanups.push(() => proxy.destroy());
  const refusals: AgentRefusal[] = [];
  proxy.on('agentRefused', (r) => refusals.push(r));
  const connectionRefusals: Array<{ reason: string; message: string; remoteAddress: string }> = [];
  const server: GrpcServer = await createGrpcServer({
    port: 0,
    host: '127.0.0.1',
    tls: { key: p.serverKey, cert: p.serverCert, ca: p.ca },
    agent: (incoming) => proxy.acceptAgent(incoming),
  });
  server.on('connectionRefused', (r) => connectionRefusals.push(r));
  cleanups.push(() => server.close({ graceMs: 0 }));
  const connect = (agentID: string, tls: { cert?: Buffer; key?: Buffer; ca?: Buffer } = {}, extra: Partial<ConstructorParameters<typeof Agent>[0]> = {}) => {
    const agent = new Agent({ agentID, ...extra });
    cleanups.push(() => agent.destroy());
    return agent.connect(grpcAgentConnector({ address: `127.0.0.1:${server.port}`, tls: { ca: p.ca, cert: p.clientCert, key: p.clientKey, ...tls } }));
  };
  return { proxy, refusals, connectionRefusals, connect };
}

const refused = (p: Promise<unknown>): Promise<KonnectivityError> =>
  p.then(
    () => {
      throw new Error('expected a refusal');
    },
    (e: unknown) => e as KonnectivityError,
  );

describe('refused agents', () => {
  it('an expired client certificate: the agent is told so, the server reports it with the address', async () => {
    const { proxy, connectionRefusals, connect } = await grpcStack();
    const err = await refused(connect('late', expiredClientCert()));
    expect(isKonnectivityError(err, ErrorCode.UNAUTHENTICATED)).toBe(true);
    expect(err.message).toBe('UNAUTHENTICATED: client certificate refused: certificate has expired');
    expect(connectionRefusals).toEqual([
      { reason: 'client_certificate', message: 'client certificate refused: certificate has expired', remoteAddress: expect.stringMatching(/^127\.0\.0\.1:\d+$/) },
    ]);
    await connect('fine');
    expect(proxy.agentCount).toBe(1);
  });

  it('a server certificate from a CA the agent does not trust: the agent says so', async () => {
    const p = testPki();
    const { connect } = await grpcStack();
    // The rogue CA's certificate as the agent's trust anchor: the server's certificate does not chain to it.
    const rogueCa = p.rogueCert;
    const err = await refused(connect('wary', { ca: rogueCa }));
    expect(err.message).toMatch(/certificate/i);
    expect(err.message).not.toMatch(/closed before the server answered/);
  });

  it('a bad token: refused with the reason, and reported with the agent ID and address', async () => {
    const proxy = new ProxyServer({ authenticateAgent: ({ metadata }) => {
      if (metadata['authorization']?.[0] !== 'Bearer good') throw new Error('invalid bearer token');
    } });
    cleanups.push(() => proxy.destroy());
    const refusals: AgentRefusal[] = [];
    proxy.on('agentRefused', (r) => refusals.push(r));
    const server = await createGrpcServer({ port: 0, host: '127.0.0.1', agent: (i) => proxy.acceptAgent(i) });
    cleanups.push(() => server.close({ graceMs: 0 }));
    const agent = new Agent({ agentID: 'intruder', token: () => 'bad' });
    cleanups.push(() => agent.destroy());
    const err = await refused(agent.connect(grpcAgentConnector({ address: `127.0.0.1:${server.port}` })));
    expect(err.code).toBe(ErrorCode.UNAUTHENTICATED);
    expect(refusals).toHaveLength(1);
    expect(refusals[0]).toMatchObject({ agentID: 'intruder', remoteAddress: expect.stringMatching(/^127\.0\.0\.1:\d+$/) });
    expect(refusals[0]!.error.code).toBe(ErrorCode.UNAUTHENTICATED);
    expect(refusals[0]!.error.message).toMatch(/invalid bearer token/);
  });
});

describe('agentCertificateBinding', () => {
  it('is checked at construction', () => {
    expect(() => new ProxyServer({ agentCertificateBinding: 'cn' as never })).toThrow(/agentCertificateBinding must be one of agentID, identifiers/);
  });

  it("'agentID': only the certificate's name may be used as the agent ID", async () => {
    const { proxy, refusals, connect } = await grpcStack({ agentCertificateBinding: 'agentID' });
    const err = await refused(connect('victim'));
    expect(err.code).toBe(ErrorCode.UNAUTHENTICATED);
    expect(err.message).toBe('UNAUTHENTICATED: agent ID "victim" does not match the client certificate (names: agent-client)');
    expect(refusals[0]).toMatchObject({ agentID: 'victim' });
    await connect('agent-client');
    expect(proxy.agents().map((a) => a.agentID)).toEqual(['agent-client']);
  });

  it("'identifiers': every host identifier must be one of the certificate's names", async () => {
    const { proxy, connect } = await grpcStack({ agentCertificateBinding: 'identifiers' });
    const stray = await refused(connect('a1', {}, { identifiers: { host: ['agent-client', 'other-node'] } }));
    expect(stray.message).toBe('UNAUTHENTICATED: identifier "other-node" does not match the client certificate (names: agent-client)');
    const none = await refused(connect('a2'));
    expect(none.message).toMatch(/an agent without host or IP identifiers does not match/);
    await connect('any-id', {}, { identifiers: { host: ['agent-client'] } });
    expect(proxy.agentCount).toBe(1);
  });

  it('over yamux too, and an agent without a verified certificate is refused', async () => {
    const p = testPki();
    const proxy = new ProxyServer({ agentCertificateBinding: 'agentID' });
    cleanups.push(() => proxy.destroy());
    const yamux = createYamuxServer({ tls: { key: p.serverKey, cert: p.serverCert, ca: p.ca, requestCert: true }, onTunnel: (i) => void proxy.acceptAgent(i) });
    await yamux.listen({ port: 0, host: '127.0.0.1' });
    cleanups.push(() => yamux.close({ graceMs: 0 }));
    const port = (yamux.address() as AddressInfo).port;
    const connect = (agentID: string) => {
      const agent = new Agent({ agentID });
      cleanups.push(() => agent.destroy());
      return agent.connect(yamuxAgentConnector({ connect: tlsCarrier({ host: '127.0.0.1', port, ca: p.ca, servername: 'localhost', cert: p.clientCert, key: p.clientKey }) }));
    };
    const err = await refused(connect('victim'));
    expect(err.message).toBe('agent ID "victim" does not match the client certificate (names: agent-client)');
    await connect('agent-client');
    expect(proxy.agentCount).toBe(1);

    const plain = new ProxyServer({ agentCertificateBinding: 'agentID' });
    cleanups.push(() => plain.destroy());
    const grpc = await createGrpcServer({ port: 0, host: '127.0.0.1', agent: (i) => plain.acceptAgent(i) });
    cleanups.push(() => grpc.close({ graceMs: 0 }));
    const a = new Agent({ agentID: 'agent-client' });
    cleanups.push(() => a.destroy());
    const noTls = await refused(a.connect(grpcAgentConnector({ address: `127.0.0.1:${grpc.port}` })));
    expect(noTls.message).toBe('UNAUTHENTICATED: agent ID "agent-client" cannot be checked: no verified client certificate');
  });
});
