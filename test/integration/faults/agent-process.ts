/**
 * An agent in a process of its own, for the fault matrix: a peer the test can SIGKILL or SIGSTOP. It serves one
 * tunnel over `FAULT_LEG` (grpc or yamux) to 127.0.0.1:`FAULT_SERVER_PORT`, advertises host `FAULT_HOST`, and
 * dials every target to 127.0.0.1:`FAULT_TARGET_PORT`, except port 1, which never connects (until aborted).
 * It prints `ready` once the tunnel is open.
 */
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { Agent } from '../../../src/agent/index.js';
import { grpcAgentConnector } from '../../../src/transport/grpc/index.js';
import { tcpCarrier, yamuxAgentConnector } from '../../../src/transport/yamux/index.js';

const env = process.env;
const port = Number(env['FAULT_SERVER_PORT']);
const target = Number(env['FAULT_TARGET_PORT']);
const agent = new Agent({
  agentID: env['FAULT_AGENT_ID'] ?? 'child',
  identifiers: { host: [env['FAULT_HOST'] ?? 'child'] },
  dialer: ({ address, signal }) =>
    new Promise<Duplex>((resolve, reject) => {
      signal.addEventListener('abort', () => reject(new Error(`dial tcp ${address}: i/o timeout`)), { once: true });
      if (address.endsWith(':1')) return;
      const s = net.connect(target, '127.0.0.1', () => resolve(s));
      s.once('error', reject);
    }),
});
const connector =
  env['FAULT_LEG'] === 'grpc'
    ? grpcAgentConnector({ address: `127.0.0.1:${port}` })
    : yamuxAgentConnector({ connect: tcpCarrier({ host: '127.0.0.1', port }) });
const tunnel = await agent.connect(connector);
process.stdout.write('ready\n');
await tunnel.done;
process.exit(0);
