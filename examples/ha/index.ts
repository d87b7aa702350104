/**
 * High availability: two proxy servers and one agent that keeps a tunnel to each (server-list mode; behind a load
 * balancer give `connector` instead of `connectors`). One server stops and comes back; the agent redials it.
 * Finally the agent drains: DRAIN goes out on every tunnel and it stops dialling.
 *
 *   npx tsx examples/ha/index.ts
 */
import net from 'node:net';
import { once } from 'node:events';
import {
  Agent,
  ServerTunnels,
  ProxyServer,
  createGrpcServer,
  grpcAgentConnector,
  type GrpcServer,
} from 'konnectivity-ts';

// A target that says hello and hangs up.
const target = net.createServer((socket) => socket.end('hello through the tunnel'));
target.listen(0, '127.0.0.1');
await once(target, 'listening');
const targetAddress = `127.0.0.1:${(target.address() as net.AddressInfo).port}`;

/** A proxy server with its agent listener; `port` 0 picks a free one. */
async function startServer(serverID: string, port = 0): Promise<{ proxy: ProxyServer; grpc: GrpcServer }> {
  const proxy = new ProxyServer({ serverID, serverCount: 2 });
  const grpc = await createGrpcServer({ port, agent: (incoming) => proxy.acceptAgent(incoming) });
  return { proxy, grpc };
}

async function fetchThrough(proxy: ProxyServer): Promise<string> {
  const socket = await proxy.dial(targetAddress);
  socket.setEncoding('utf8');
  let text = '';
  for await (const chunk of socket) text += chunk as string;
  return text;
}

const servers = [await startServer('server-a'), await startServer('server-b')];
const ports = servers.map((s) => s.grpc.port);

const agent = new Agent({ agentID: 'ha-agent' });
const set = new ServerTunnels(agent, {
  connectors: ports.map((port) => grpcAgentConnector({ address: `127.0.0.1:${port}` })),
  syncIntervalMs: 100,
  syncIntervalCapMs: 1000,
});
set.on('tunnelAdded', (t) => console.log(`tunnel up to ${t.serverID}`));
set.on('tunnelRemoved', (t) => console.log(`tunnel to ${t.serverID} lost`));
set.start();

const bothUp = (): Promise<void> =>
  new Promise((resolve) => {
    const check = (): void => {
      if (set.tunnels.length < 2) return;
      set.off('tunnelAdded', check);
      resolve();
    };
    set.on('tunnelAdded', check);
    check();
  });

await bothUp();
for (const s of servers) console.log(`${s.proxy.serverID}: ${await fetchThrough(s.proxy)}`);

// server-b goes away: the agent stays ready through server-a.
const lost = new Promise((resolve) => set.once('tunnelRemoved', resolve));
servers[1]!.grpc.destroy();
servers[1]!.proxy.destroy();
await lost;
console.log(`agent ready: ${set.ready}, tunnels: ${set.serverIDs.join(', ')}`);

// server-b returns on the same port; the agent redials it.
servers[1] = await startServer('server-b', ports[1]);
await bothUp();
console.log(`server-b again: ${await fetchThrough(servers[1].proxy)}`);

// Drain (what the first SIGTERM does): DRAIN on every tunnel, no more dialling. Then shut down.
const drained = new Promise((resolve) => servers[0]!.proxy.once('agentDraining', resolve));
set.drain();
await drained;
console.log('agent draining: server-a was told');
set.removeAllListeners();
await set.close();
await agent.close();
for (const s of servers) {
  await s.proxy.close();
  await s.grpc.close();
}
target.close();
console.log('done');
