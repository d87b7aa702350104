/**
 * The frontend client (kube-apiserver's place): runs the workloads over raw TCP, HTTP-CONNECT or the gRPC frontend.
 * It starts unconfigured and learns where to dial from the `configure` command, so its start-up overlaps the
 * server's.
 */
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { connectVia } from '../lib/connect.js';
import { loadLib } from '../lib/engine.js';
import { serveRole } from '../lib/ipc.js';
import { workloadHandlers } from '../lib/workloads.js';

export interface ClientConfig {
  /** `grpc`: one HTTP/2 connection per dial (kube-apiserver's way); `grpc-shared`: every dial on one connection. */
  kind: 'raw' | 'http-connect' | 'grpc' | 'grpc-shared';
  /** The target's port (raw; the relay's for the long link), or the proxy server's frontend port. */
  port?: number;
  /** The frontend's Unix socket instead of `port` (the reference section's stacks). */
  socketPath?: string;
  /** host:port the agent dials. */
  targetAddress: string;
}
let config: ClientConfig | undefined;
const lib = await loadLib();

function rawDial(port: number): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host: '127.0.0.1', noDelay: true });
    s.once('connect', () => (s.off('error', reject), resolve(s)));
    s.once('error', reject);
  });
}

function dial(): Promise<Duplex> {
  if (!config) return Promise.reject(new Error('client not configured'));
  const { kind, port, socketPath, targetAddress } = config;
  if (kind === 'raw') return rawDial(port!);
  if (kind === 'http-connect') return connectVia(socketPath ? { path: socketPath } : { port: port! }, targetAddress);
  const where = socketPath ? { socketPath } : { address: `127.0.0.1:${port}` };
  if (kind === 'grpc-shared') {
    if (!shared || shared.closed) shared = new lib.GrpcConnection(where);
    return lib.dialOverStream(lib.openProxyStream(shared), targetAddress);
  }
  // One gRPC ProxyService stream on its own HTTP/2 connection per dial, as kube-apiserver's konnectivity-client.
  return lib.dialOverStream(lib.openProxyStream(where), targetAddress);
}
let shared: any;

const role = serveRole({
  ...workloadHandlers(dial),
  configure: (c: ClientConfig) => {
    shared?.destroy();
    shared = undefined;
    config = c;
    return true;
  },
});
role.ready({ pid: process.pid });
