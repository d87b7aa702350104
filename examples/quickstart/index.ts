/**
 * Quickstart: a proxy server, an agent and an HTTP target on loopback, and one HTTP request sent through the
 * tunnel with HTTP CONNECT (what kube-apiserver does in `http-connect` mode).
 *
 *   npx tsx examples/quickstart/index.ts
 */
import http from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { Agent, ProxyServer, createGrpcServer, createHttpConnectFrontend, grpcAgentConnector } from 'konnectivity-ts';

// 1. The target: an HTTP server only the agent's side of the network would normally reach.
const target = http.createServer((req, res) => res.end(`hello from the target, you asked for ${req.url}\n`));
target.listen(0, '127.0.0.1');
await once(target, 'listening');
const targetAddress = `127.0.0.1:${(target.address() as AddressInfo).port}`;

// 2. The proxy server: agents connect to its gRPC listener; clients use its HTTP-CONNECT frontend.
const server = new ProxyServer({ serverID: 'quickstart-server' });
const agentListener = await createGrpcServer({ port: 0, agent: (incoming) => server.acceptAgent(incoming) });
const frontend = createHttpConnectFrontend({ server });
await frontend.listen({ port: 0, host: '127.0.0.1' });
const frontendPort = (frontend.address() as AddressInfo).port;

// 3. The agent dials out to the server and keeps the tunnel open.
const agent = new Agent({ agentID: 'quickstart-agent' });
const tunnel = await agent.connect(grpcAgentConnector({ address: `127.0.0.1:${agentListener.port}` }));
console.log(`agent connected to server ${tunnel.serverID}`);

// 4. A client asks the frontend to CONNECT to the target, then speaks HTTP over the tunnel.
const connect = http.request({ host: '127.0.0.1', port: frontendPort, method: 'CONNECT', path: targetAddress });
connect.end();
const [response, socket] = (await once(connect, 'connect')) as [http.IncomingMessage, import('node:net').Socket];
console.log(`CONNECT ${targetAddress}: ${response.statusCode} ${response.statusMessage}`);
const reply = await new Promise<string>((resolve, reject) => {
  const get = http.request({ createConnection: () => socket, path: '/quickstart', headers: { connection: 'close' } });
  get.on('response', (res: http.IncomingMessage) => {
    let body = '';
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => (body += chunk));
    res.on('end', () => resolve(body));
  });
  get.on('error', reject);
  get.end();
});
console.log(`target replied: ${reply.trim()}`);

// 5. Shut down: clients first, then the agent, then the server.
socket.destroy();
await frontend.close();
await agent.close();
await server.close();
await agentListener.close();
target.close();
console.log('done');
