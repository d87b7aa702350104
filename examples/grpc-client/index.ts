/**
 * gRPC frontend with a programmatic client: the server serves `/ProxyService/Proxy` (the leg kube-apiserver uses in
 * `grpc` mode) and a client dials a TCP target through it, getting a net.Socket-like Duplex back.
 *
 *   npx tsx examples/grpc-client/index.ts
 */
import net from 'node:net';
import { once } from 'node:events';
import {
  Agent,
  GrpcConnection,
  HALF_CLOSE_METADATA,
  ProxyServer,
  createGrpcServer,
  dialOverStream,
  grpcAgentConnector,
  openProxyStream,
} from 'konnectivity-ts';

// A TCP target that answers each line in upper case.
const target = net.createServer((socket) => {
  socket.setEncoding('utf8');
  socket.on('data', (text: string) => socket.write(text.toUpperCase()));
  socket.on('end', () => socket.end());
});
target.listen(0, '127.0.0.1');
await once(target, 'listening');
const targetAddress = `127.0.0.1:${(target.address() as net.AddressInfo).port}`;

// The server: one gRPC listener for agents, one for frontends (as the reference's --agent-port and --server-port).
const server = new ProxyServer({ serverID: 'grpc-example' });
const agentListener = await createGrpcServer({ port: 0, agent: (incoming) => server.acceptAgent(incoming) });
const frontendListener = await createGrpcServer({ port: 0, frontend: (stream) => server.acceptFrontend(stream) });

const agent = new Agent({ agentID: 'grpc-example-agent' });
await agent.connect(grpcAgentConnector({ address: `127.0.0.1:${agentListener.port}` }));

// Each dial is one `/ProxyService/Proxy` call. Here both share one HTTP/2 connection (a reusable tunnel); give
// openProxyStream() the options instead of a connection for a connection per dial (a single-use tunnel). The call
// offers half-close, so `end()` reaches the target as its EOF (GrpcProxyClient offers it by itself).
const connection = new GrpcConnection({ address: `127.0.0.1:${frontendListener.port}` });
for (const word of ['hello', 'konnectivity']) {
  const stream = openProxyStream(connection, HALF_CLOSE_METADATA);
  const socket = await dialOverStream(stream, targetAddress, { timeoutMs: 5000 });
  console.log(`dialed ${targetAddress} through the tunnel (connectID ${socket.connectID})`);
  socket.setEncoding('utf8');
  socket.write(word);
  const [reply] = (await once(socket, 'data')) as [string];
  console.log(`sent ${word}, got ${reply}`);
  socket.end();
  await once(socket, 'close');
}

await connection.close();
await agent.close();
await server.close();
await Promise.all([agentListener.close(), frontendListener.close()]);
target.close();
console.log('done');
