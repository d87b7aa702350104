/**
 * The gRPC transport as the reference deploys it: agents reach the server over mutual TLS (`/AgentService/Connect`),
 * and kube-apiserver reaches it over a Unix socket (`/ProxyService/Proxy`), one single-use tunnel per dial.
 * Test certificates are made with openssl in a temp dir.
 *
 *   npx tsx examples/grpc/index.ts
 */
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import {
  Agent,
  GrpcProxyClient,
  KonnectivityError,
  ProxyServer,
  createGrpcServer,
  grpcAgentConnector,
} from 'konnectivity-ts';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'konnectivity-grpc-example-'));
const openssl = (...args: string[]): void => void execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '1', '-subj', '/CN=example-ca');
for (const [name, ext] of [
  ['server', 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n'],
  ['agent', 'extendedKeyUsage=clientAuth\n'],
]) {
  openssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}-1`);
  fs.writeFileSync(path.join(dir, `${name}.ext`), ext!);
  openssl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '1', '-extfile', `${name}.ext`);
}
const pem = (f: string): Buffer => fs.readFileSync(path.join(dir, f));

// A target the agent can reach.
const target = http.createServer((req, res) => res.end(`hello from the target, you asked for ${req.url}\n`));
await new Promise<void>((resolve) => target.listen(0, '127.0.0.1', resolve));
const targetAddress = `127.0.0.1:${(target.address() as { port: number }).port}`;

// The server: the agent leg on TCP with mTLS (the client certificate's CN reaches authentication), the frontend on
// a Unix socket.
const proxy = new ProxyServer({
  serverID: 'grpc-example',
  authenticateAgent: ({ agentID, peerCommonName }) => {
    console.log(`agent ${agentID} presented certificate CN=${peerCommonName}`);
  },
});
const agentListener = await createGrpcServer({
  port: 0,
  host: '127.0.0.1',
  tls: { key: pem('server.key'), cert: pem('server.crt'), ca: pem('ca.crt') },
  agent: (incoming) => proxy.acceptAgent(incoming),
});
const socketPath = path.join(dir, 'konnectivity-server.socket');
const frontendListener = await createGrpcServer({ socketPath, frontend: (stream) => proxy.acceptFrontend(stream) });

// The agent.
const agent = new Agent({ agentID: 'node-1' });
const tunnel = await agent.connect(
  grpcAgentConnector({
    address: `127.0.0.1:${agentListener.port}`,
    tls: { ca: pem('ca.crt'), cert: pem('agent.crt'), key: pem('agent.key') },
  }),
);
console.log(`agent connected to server ${tunnel.serverID} (servercount ${tunnel.serverCount}) over mTLS`);

// The frontend, as kube-apiserver's egress selector in gRPC mode: a single-use tunnel per dial over the socket.
const client = new GrpcProxyClient({ socketPath, singleUse: true });
const socket = await client.dial(targetAddress);
socket.write(`GET /over-grpc HTTP/1.1\r\nHost: ${targetAddress}\r\nConnection: close\r\n\r\n`);
let reply = '';
for await (const chunk of socket) reply += String(chunk);
console.log(`target replied: ${reply.split('\r\n\r\n')[1]?.trim()}`);

try {
  await client.dial(`127.0.0.1:${await closedPort()}`);
} catch (err) {
  console.log(`a refused dial fails with ${(err as KonnectivityError).code}: ${(err as Error).message}`);
}

await client.close();
await agent.close();
await proxy.close({ graceMs: 1000 });
await Promise.all([agentListener.close({ graceMs: 1000 }), frontendListener.close({ graceMs: 1000 })]);
await new Promise<void>((resolve) => target.close(() => resolve()));
fs.rmSync(dir, { recursive: true, force: true });

/** A port nothing listens on: one we listened on and let go (a fixed low port may be taken on a shared machine). */
async function closedPort(): Promise<number> {
  const probe = net.createServer().listen(0, '127.0.0.1');
  await once(probe, 'listening');
  const { port } = probe.address() as net.AddressInfo;
  await new Promise((resolve) => probe.close(resolve));
  return port;
}
