/**
 * The agent (the worker-node side): dials out to the server over the gRPC or yamux leg and dials the target.
 * It starts idle and connects on the `connect` command, so its start-up overlaps the server's.
 */
import { benchTls, loadLib } from '../lib/engine.js';
import { serveRole } from '../lib/ipc.js';
import { installRxTrace, RX_TRACE_ENV } from '../lib/rx-trace.js';

const lib = await loadLib();
if (process.env[RX_TRACE_ENV]) installRxTrace(lib);
const agent = new lib.Agent({ agentID: 'bench-agent' });
agent.on('error', (err: Error) => console.error('agent error:', err));

const role = serveRole({
  connect: async ({ leg, port }: { leg: 'grpc' | 'yamux' | 'yamux-tls'; port: number }) => {
    const carrier =
      leg === 'yamux-tls'
        ? lib.tlsCarrier({ port, host: '127.0.0.1', servername: 'localhost', ...benchTls().client })
        : lib.tcpCarrier({ port, host: '127.0.0.1' });
    const connector =
      leg === 'grpc'
        ? lib.grpcAgentConnector({ address: `127.0.0.1:${port}` })
        : lib.yamuxAgentConnector({ connect: carrier });
    await agent.connect(connector);
    return true;
  },
  shutdown: async () => {
    agent.destroy();
    return true;
  },
});
role.ready({ pid: process.pid });
