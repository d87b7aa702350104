/**
 * HTTP-CONNECT end to end: a proxy server with its HTTP-CONNECT frontend, an agent, and a web server that only the
 * agent can reach. A client opens a raw tunnel with `connectViaHttpProxy`, then plain `http.get` goes through the
 * tunnel with `createTunnelAgent`, and a dial to a closed port fails with the agent's error text and a 502.
 *
 *   npx tsx examples/http-connect/index.ts
 */
import http from 'node:http';
import { once } from 'node:events';
import net, { type AddressInfo } from 'node:net';
import {
  Agent,
  ProxyServer,
  connectViaHttpProxy,
  createHttpConnectFrontend,
  createTunnelAgent,
  memoryConnector,
  type HttpConnectError,
} from 'konnectivity-ts';

// The endpoint: a web server behind the agent.
const web = http.createServer((req, res) => res.end(`hello from behind the tunnel, you asked for ${req.url}`));
web.listen(0, '127.0.0.1');
await once(web, 'listening');
const webAddress = `127.0.0.1:${(web.address() as AddressInfo).port}`;

// The server and its agent (joined in memory here; over gRPC in a real deployment), and the frontend on TCP.
const server = new ProxyServer({ serverID: 'http-connect-example' });
const agent = new Agent({ agentID: 'example-agent' });
await agent.connect(memoryConnector((incoming) => void server.acceptAgent(incoming)));
const frontend = createHttpConnectFrontend({ server });
await frontend.listen({ port: 0, host: '127.0.0.1' });
const proxy = { host: '127.0.0.1', port: (frontend.address() as AddressInfo).port };
console.log(`HTTP-CONNECT frontend on ${proxy.host}:${proxy.port} (try: curl -p -x http://${proxy.host}:${proxy.port} http://${webAddress}/)`);

// 1. A raw tunnel: after the 200 the socket is a byte pipe to the endpoint. The protocol has no half-close, so
//    write without end() and let the endpoint close (Connection: close).
const socket = await connectViaHttpProxy({ proxy, target: webAddress, timeoutMs: 5000 });
socket.write(`GET /raw HTTP/1.1\r\nHost: ${webAddress}\r\nConnection: close\r\n\r\n`);
let raw = '';
for await (const chunk of socket) raw += String(chunk);
console.log(`raw tunnel: ${raw.split('\r\n')[0]} ... ${raw.slice(raw.indexOf('\r\n\r\n') + 4)}`);

// 2. http.get through the tunnel: an http.Agent whose sockets are tunnels.
const tunnelAgent = createTunnelAgent({ proxy, keepAlive: true });
const body = await new Promise<string>((resolve, reject) => {
  http
    .get(`http://${webAddress}/agent`, { agent: tunnelAgent }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (d: string) => (text += d));
      res.on('end', () => resolve(`${res.statusCode} ${text}`));
    })
    .on('error', reject);
});
console.log(`http.get: ${body}`);
tunnelAgent.destroy();

// 3. A refused endpoint: the agent's Go-style error text comes back with a 502.
const refused = `127.0.0.1:${await closedPort()}`;
try {
  await connectViaHttpProxy({ proxy, target: refused });
} catch (err) {
  const e = err as HttpConnectError;
  console.log(`dial ${refused} -> ${e.statusCode} ${e.code}: ${e.message}`);
}

await frontend.close();
agent.destroy();
server.destroy();
web.close();
console.log('done');

/** A port nothing listens on: one we listened on and let go (a fixed low port may be taken on a shared machine). */
async function closedPort(): Promise<number> {
  const probe = net.createServer().listen(0, '127.0.0.1');
  await once(probe, 'listening');
  const { port } = probe.address() as AddressInfo;
  await new Promise((resolve) => probe.close(resolve));
  return port;
}
