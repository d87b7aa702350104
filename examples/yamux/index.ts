/**
 * A tunnel over yamux through a WebSocket: the server listens for agents on an HTTP port (as it would behind a
 * proxy or load balancer that only passes HTTP); the agent connects with `yamuxAgentConnector`; every dial gets a
 * yamux stream of its own, so a connection whose reader stalls holds up no other.
 *
 *   npx tsx examples/yamux/index.ts
 */
import http from 'node:http';
import net from 'node:net';
import { once } from 'node:events';
import { WebSocketServer } from 'ws';
import { Agent, ProxyServer } from 'konnectivity-ts';
import { serveYamuxCarrier, webSocketCarrier, webSocketDuplex, yamuxAgentConnector } from 'konnectivity-ts/transport/yamux';

// A target behind the agent: answers every line in upper case.
const target = net.createServer((s) => s.on('data', (d: Buffer) => s.write(d.toString().toUpperCase())));
target.listen(0, '127.0.0.1');
await once(target, 'listening');
const targetAddress = `127.0.0.1:${(target.address() as net.AddressInfo).port}`;

// The proxy server, taking agents over WebSocket on /tunnel.
const server = new ProxyServer({ serverID: 'yamux-example' });
const httpServer = http.createServer();
const wss = new WebSocketServer({ server: httpServer, path: '/tunnel', perMessageDeflate: false });
wss.on('connection', (ws) => serveYamuxCarrier(webSocketDuplex(ws), { onTunnel: (incoming) => void server.acceptAgent(incoming) }));
httpServer.listen(0, '127.0.0.1');
await once(httpServer, 'listening');
const url = `ws://127.0.0.1:${(httpServer.address() as net.AddressInfo).port}/tunnel`;

// The agent dials out to the server.
const agent = new Agent({ agentID: 'yamux-agent' });
const tunnel = await agent.connect(yamuxAgentConnector({ connect: webSocketCarrier(url) }));
console.log(`agent connected to server ${tunnel.serverID} over yamux on ${url}`);

// Two connections through the tunnel: the first is never read, the second still gets its answer.
const stalled = await server.dial(targetAddress);
stalled.pause();
stalled.write('nobody reads this answer\n');
const socket = await server.dial(targetAddress);
socket.write('hello over yamux\n');
const [reply] = (await once(socket, 'data')) as [Buffer];
console.log(`target replied: ${reply.toString().trim()}`);

socket.destroy();
stalled.destroy();
await agent.close();
await server.close({ graceMs: 1000 });
for (const ws of wss.clients) ws.terminate();
wss.close();
httpServer.close();
target.close();
console.log('done');
