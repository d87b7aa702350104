/**
 * Embedding the server in a custom proxy: a local port forwarder (like `kubectl port-forward`) whose every accepted
 * connection is carried to a fixed target through `server.dial()`. No frontend protocol at all: the proxy is yours.
 *
 *   npx tsx examples/embed-server/index.ts
 */
import net from 'node:net';
import http from 'node:http';
import { once } from 'node:events';
import { pipeline } from 'node:stream/promises';
import { Agent, ProxyServer, createGrpcServer, grpcAgentConnector } from 'konnectivity-ts';

// The target, reachable from the agent's side.
const target = http.createServer((_req, res) => res.end('served from behind the tunnel\n'));
target.listen(0, '127.0.0.1');
await once(target, 'listening');
const targetAddress = `127.0.0.1:${(target.address() as net.AddressInfo).port}`;

const server = new ProxyServer({ serverID: 'embedded' });
const agentListener = await createGrpcServer({ port: 0, agent: (incoming) => server.acceptAgent(incoming) });
const agent = new Agent({ agentID: 'embed-agent' });
await agent.connect(grpcAgentConnector({ address: `127.0.0.1:${agentListener.port}` }));

// The custom proxy: each local connection becomes one tunnel connection to the target.
const forwarder = net.createServer(async (local) => {
  local.on('error', () => local.destroy());
  try {
    const remote = await server.dial(targetAddress, { timeoutMs: 5000 });
    console.log(`forwarding ${local.remoteAddress}:${local.remotePort} -> ${targetAddress} (connectID ${remote.connectID})`);
    await Promise.all([pipeline(local, remote), pipeline(remote, local)]).catch(() => local.destroy());
  } catch (err) {
    console.log(`dial failed: ${(err as Error).message}`);
    local.destroy();
  }
});
forwarder.listen(0, '127.0.0.1');
await once(forwarder, 'listening');
const forwarderPort = (forwarder.address() as net.AddressInfo).port;

// Any client that speaks to the local port reaches the target.
for (let i = 1; i <= 2; i++) {
  const body = await new Promise<string>((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port: forwarderPort, path: `/${i}`, agent: false }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => resolve(text));
      })
      .on('error', reject);
  });
  console.log(`request ${i} through the forwarder: ${body.trim()}`);
}

forwarder.close();
await agent.close();
await server.close();
await agentListener.close();
target.close();
console.log('done');
