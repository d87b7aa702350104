/**
 * The proxy server (the control-plane side): a ProxyServer with its agent leg (gRPC or yamux listener, or an agent
 * in the same process over the in-memory pair) and its frontends (HTTP-CONNECT, gRPC). It also runs the
 * workloads itself for the programmatic path (`server.dial()`), as an embedding application would.
 */
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { benchTls, loadLib } from '../lib/engine.js';
import { roleArgs, serveRole } from '../lib/ipc.js';
import { installRxTrace, RX_TRACE_ENV } from '../lib/rx-trace.js';
import { workloadHandlers } from '../lib/workloads.js';

export interface ServerArgs {
  leg: 'memory' | 'grpc' | 'yamux' | 'yamux-tls';
  frontends: Array<'http-connect' | 'grpc'>;
  /** host:port of the target, for the programmatic path. */
  targetAddress: string;
}
const args = roleArgs<ServerArgs>();
const lib = await loadLib();
if (process.env[RX_TRACE_ENV]) installRxTrace(lib);

const server = new lib.ProxyServer({ serverID: 'bench-server' });
server.on('error', (err: Error) => console.error('server error:', err));
const info: { agentPort?: number; httpConnectPort?: number; grpcFrontendPort?: number } = {};
const closers: Array<() => unknown> = [];

if (args.leg === 'memory') {
  // Server and agent in one process: the agent's stream is one end of an in-memory pair, made when the server
  // accepts, so the agent sees the server's response metadata (serverid, servercount, extensions) as over gRPC.
  const agent = new lib.Agent({ agentID: 'bench-agent' });
  const metadata = await agent.metadata();
  let serverSide: any;
  await server.acceptAgent({
    metadata,
    remoteAddress: 'memory',
    accept: (response: unknown) => {
      const [mine, theirs] = lib.createMemoryPair({ metadata: { a: metadata, b: response } });
      serverSide = mine;
      agent.serve(theirs);
      return mine;
    },
    reject: (err: Error) => serverSide?.destroy(err),
  });
  closers.push(() => agent.destroy());
}

if (args.leg === 'grpc' || args.frontends.includes('grpc')) {
  // One gRPC server serves both services, as the reference's does when its frontend is gRPC.
  const grpc = await lib.createGrpcServer({
    host: '127.0.0.1',
    port: 0,
    agent: args.leg === 'grpc' ? (incoming: unknown) => server.acceptAgent(incoming) : undefined,
    frontend: args.frontends.includes('grpc') ? (stream: unknown) => server.acceptFrontend(stream) : undefined,
  });
  if (args.leg === 'grpc') info.agentPort = grpc.port;
  if (args.frontends.includes('grpc')) info.grpcFrontendPort = grpc.port;
  closers.push(() => grpc.destroy());
}

if (args.leg === 'yamux' || args.leg === 'yamux-tls') {
  const yamux = lib.createYamuxServer({
    onTunnel: (incoming: unknown) => void server.acceptAgent(incoming),
    tls: args.leg === 'yamux-tls' ? benchTls().server : undefined,
  });
  await yamux.listen({ host: '127.0.0.1', port: 0 });
  info.agentPort = (yamux.address() as net.AddressInfo).port;
  closers.push(() => yamux.destroy());
}

if (args.frontends.includes('http-connect')) {
  const frontend = lib.createHttpConnectFrontend({ server });
  await frontend.listen({ host: '127.0.0.1', port: 0 });
  info.httpConnectPort = (frontend.address() as net.AddressInfo).port;
  closers.push(() => frontend.destroy());
}

const dial = (): Promise<Duplex> => server.dial(args.targetAddress);
const role = serveRole({
  ...workloadHandlers(dial),
  /** Resolves once an agent is connected (the readiness the reference's /readyz reports). */
  waitReady: () =>
    server.ready ? true : new Promise((resolve) => server.once('agentConnected', () => resolve(true))),
  /** Resolves once exactly `count` agents are connected. */
  waitAgents: async ({ count }: { count: number }) => {
    while (server.agentCount !== count) await new Promise((r) => setTimeout(r, 20));
    return true;
  },
  serverStats: () => ({ ...server.stats, packets: undefined, agents: server.agentCount }),
  shutdown: async () => {
    for (const c of closers) await c();
    server.destroy();
    return true;
  },
});
role.ready(info);
