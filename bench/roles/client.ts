/** The frontend client (kube-apiserver's place): runs the workloads over raw TCP, HTTP-CONNECT or the gRPC frontend. */
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { connectVia } from '../lib/connect.js';
import { loadLib } from '../lib/engine.js';
import { roleArgs, serveRole } from '../lib/ipc.js';
import { workloadHandlers, type Dial } from '../lib/workloads.js';

export interface ClientArgs {
  kind: 'raw' | 'http-connect' | 'grpc';
  /** The target's port (raw), or the proxy server's frontend port. */
  port: number;
  /** host:port the agent dials. */
  targetAddress: string;
}
const args = roleArgs<ClientArgs>();
let port = args.port;

function rawDial(): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host: '127.0.0.1', noDelay: true });
    s.once('connect', () => (s.off('error', reject), resolve(s)));
    s.once('error', reject);
  });
}

async function grpcDial(): Promise<Dial> {
  const lib = await loadLib();
  // One gRPC ProxyService stream per dial, as kube-apiserver's konnectivity-client does.
  return () => lib.dialOverStream(lib.openProxyStream({ address: `127.0.0.1:${args.port}` }), args.targetAddress);
}

const dial: Dial =
  args.kind === 'raw' ? rawDial : args.kind === 'http-connect' ? () => connectVia(args.port, args.targetAddress) : await grpcDial();

const role = serveRole({
  ...workloadHandlers(dial),
  /** Dial another port from now on (raw TCP through the long-link relay). */
  retarget: (a: { port: number }) => ((port = a.port), true),
});
role.ready({ pid: process.pid });
