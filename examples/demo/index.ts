/**
 * `npm run demo`: a proxy server, an agent (gRPC leg) and a local HTTP target on loopback. Requests go through the
 * tunnel by every frontend (HTTP-CONNECT, gRPC, programmatic dial), then bulk data both ways for a throughput
 * figure. Prints what happened and exits by itself in a few seconds.
 *
 * DEMO_MIB sets how many MiB each throughput run moves (default 64).
 */
import http from 'node:http';
import net from 'node:net';
import { once } from 'node:events';
import type { Duplex } from 'node:stream';
import {
  Agent,
  ProxyServer,
  createGrpcServer,
  createHttpConnectFrontend,
  dialOverStream,
  grpcAgentConnector,
  openProxyStream,
} from 'konnectivity-ts';

const MIB = 1024 * 1024;
const bulkMiB = Number(process.env['DEMO_MIB'] ?? 64);
if (!(Number.isInteger(bulkMiB) && bulkMiB > 0)) throw new Error(`DEMO_MIB must be a positive integer, got ${process.env['DEMO_MIB']}`);
const started = performance.now();
const chunk = Buffer.alloc(64 * 1024, 0x6b);

/** Write `bytes` bytes to `out` honouring backpressure, then end it. */
function sendBytes(out: NodeJS.WritableStream, bytes: number): void {
  let left = bytes;
  const pump = (): void => {
    while (left > 0) {
      const n = Math.min(left, chunk.length);
      left -= n;
      if (!out.write(n === chunk.length ? chunk : chunk.subarray(0, n))) return void out.once('drain', pump);
    }
    out.end();
  };
  pump();
}

// ---- the target: an HTTP server on the agent's side ----------------------------------------------------------
const target = http.createServer((req, res) => {
  if (req.url === '/blob') {
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': bulkMiB * MIB });
    sendBytes(res, bulkMiB * MIB);
    return;
  }
  if (req.url === '/sink') {
    let received = 0;
    req.on('data', (c: Buffer) => (received += c.length));
    req.on('end', () => res.end(`received ${received} bytes`));
    return;
  }
  res.end(`hello from the target: ${req.method} ${req.url}`);
});
target.listen(0, '127.0.0.1');
await once(target, 'listening');
const targetAddress = `127.0.0.1:${(target.address() as net.AddressInfo).port}`;

// ---- the server: agent listener, gRPC frontend, HTTP-CONNECT frontend ---------------------------------------
const server = new ProxyServer({ serverID: 'demo-server' });
const agentListener = await createGrpcServer({ port: 0, agent: (incoming) => server.acceptAgent(incoming) });
const grpcFrontend = await createGrpcServer({ port: 0, frontend: (stream) => server.acceptFrontend(stream) });
const connectFrontend = createHttpConnectFrontend({ server });
await connectFrontend.listen({ port: 0, host: '127.0.0.1' });
const connectPort = (connectFrontend.address() as net.AddressInfo).port;

// ---- the agent ---------------------------------------------------------------------------------------------
const agent = new Agent({ agentID: 'demo-agent' });
const tunnel = await agent.connect(grpcAgentConnector({ address: `127.0.0.1:${agentListener.port}` }));

console.log('konnectivity-ts demo');
console.log(`  target    http://${targetAddress}`);
console.log(`  server    ${server.serverID}: agents on 127.0.0.1:${agentListener.port} (gRPC), frontends on`);
console.log(`            127.0.0.1:${connectPort} (HTTP-CONNECT) and 127.0.0.1:${grpcFrontend.port} (gRPC)`);
console.log(`  agent     ${agent.agentID}, tunnel to ${tunnel.serverID}`);

// ---- the three ways in -------------------------------------------------------------------------------------
/** CONNECT through the HTTP-CONNECT frontend; resolves with the raw socket to the target. */
async function viaHttpConnect(): Promise<Duplex> {
  const req = http.request({ host: '127.0.0.1', port: connectPort, method: 'CONNECT', path: targetAddress, agent: false });
  req.end();
  const [res, socket] = (await once(req, 'connect')) as [http.IncomingMessage, net.Socket];
  if (res.statusCode !== 200) throw new Error(`CONNECT failed: ${res.statusCode}`);
  return socket;
}
const viaGrpc = (): Promise<Duplex> => dialOverStream(openProxyStream({ address: `127.0.0.1:${grpcFrontend.port}` }), targetAddress);
const viaDial = (): Promise<Duplex> => server.dial(targetAddress);
const ways: Array<[string, () => Promise<Duplex>]> = [
  ['HTTP-CONNECT frontend', viaHttpConnect],
  ['gRPC frontend', viaGrpc],
  ['server.dial()', viaDial],
];

/** One HTTP request over an already-connected socket; resolves with the status and body size or text. */
function request(socket: Duplex, method: string, path: string, body?: number): Promise<{ status: number; text: string; bytes: number }> {
  return new Promise((resolve, reject) => {
    const req = http.request({
      method,
      path,
      host: 'target',
      createConnection: () => socket as net.Socket,
      headers: { connection: 'close', ...(body !== undefined ? { 'content-length': body } : {}) },
    });
    req.on('error', reject);
    req.on('response', (res: http.IncomingMessage) => {
      let bytes = 0;
      let text = '';
      res.on('data', (c: Buffer) => {
        bytes += c.length;
        if (text.length < 200) text += c.toString('latin1');
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text, bytes }));
      res.on('error', reject);
    });
    if (body === undefined) req.end();
    else sendBytes(req, body);
  });
}

console.log('\nrequests through the tunnel');
for (const [name, open] of ways) {
  const { status, text } = await request(await open(), 'GET', `/hello?via=${encodeURIComponent(name)}`);
  console.log(`  ${name.padEnd(22)} GET /hello -> ${status} "${text}"`);
}
const unreachable = `127.0.0.1:${await closedPort()}`;
try {
  await server.dial(unreachable);
} catch (err) {
  console.log(`  ${'unreachable target'.padEnd(22)} dial ${unreachable} -> ${(err as { code?: string }).code}: ${(err as Error).message}`);
}

console.log(`\nthroughput (${bulkMiB} MiB each way, over the gRPC frontend and the gRPC agent tunnel)`);
for (const [direction, method, path, body] of [
  ['download', 'GET', '/blob', undefined],
  ['upload', 'POST', '/sink', bulkMiB * MIB],
] as const) {
  const t0 = performance.now();
  const result = await request(await viaGrpc(), method, path, body);
  const seconds = (performance.now() - t0) / 1000;
  const moved = body ?? result.bytes;
  if (moved !== bulkMiB * MIB) throw new Error(`${direction}: moved ${moved} bytes, expected ${bulkMiB * MIB}`);
  console.log(`  ${direction.padEnd(9)} ${bulkMiB} MiB in ${seconds.toFixed(2)} s = ${(bulkMiB / seconds).toFixed(1)} MiB/s`);
}

const dials = server.stats.packets.fromFrontend['DIAL_REQ'] ?? 0;
console.log(`\nserver saw ${dials} gRPC-frontend dials; ${server.stats.establishedConnections} connections still open`);

await connectFrontend.close();
await agent.close();
await server.close();
await Promise.all([agentListener.close(), grpcFrontend.close()]);
target.close();
console.log(`done in ${((performance.now() - started) / 1000).toFixed(1)} s`);

/** A port nothing listens on: one we listened on and let go (a fixed low port may be taken on a shared machine). */
async function closedPort(): Promise<number> {
  const probe = net.createServer().listen(0, '127.0.0.1');
  await once(probe, 'listening');
  const { port } = probe.address() as net.AddressInfo;
  await new Promise((resolve) => probe.close(resolve));
  return port;
}
