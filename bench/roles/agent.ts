/** The agent (the worker-node side): dials out to the server over the gRPC or yamux leg and dials the target. */
import { loadLib } from '../lib/engine.js';
import { roleArgs, serveRole } from '../lib/ipc.js';

const args = roleArgs<{ leg: 'grpc' | 'yamux'; port: number }>();
const lib = await loadLib();

const agent = new lib.Agent({ agentID: 'bench-agent' });
agent.on('error', (err: Error) => console.error('agent error:', err));
const connector =
  args.leg === 'grpc'
    ? lib.grpcAgentConnector({ address: `127.0.0.1:${args.port}` })
    : lib.yamuxAgentConnector({ connect: lib.tcpCarrier({ port: args.port, host: '127.0.0.1' }) });
await agent.connect(connector);

const role = serveRole({
  shutdown: async () => {
    agent.destroy();
    return true;
  },
});
role.ready({ pid: process.pid });
