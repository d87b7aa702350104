/**
 * In-process connectors for the HA tests, on top of the memory transport's `memoryConnector`: `pick` chooses the
 * server per attempt, which makes a round-robin "load balancer" without sockets.
 */
import { memoryConnector } from '../../../src/transport/memory/index.js';
import type { IncomingPacketStream, TunnelConnector } from '../../../src/transport/packet-stream.js';
import { ErrorCode, KonnectivityError } from '../../../src/protocol/errors.js';

/** What the connector needs from a server. */
export interface AgentAcceptor {
  acceptAgent(incoming: IncomingPacketStream): Promise<void>;
}

/** A connector to whatever `pick()` returns; `undefined` means the address refuses connections. */
export function connectorTo(pick: () => AgentAcceptor | undefined): TunnelConnector {
  return memoryConnector((incoming) => {
    const server = pick();
    if (server) void server.acceptAgent(incoming);
    else incoming.reject(new KonnectivityError(ErrorCode.REMOTE, 'connect: connection refused'));
  });
}

/** Round-robin over a list of servers that tests may edit (an entry set to undefined refuses). */
export function roundRobin(servers: Array<AgentAcceptor | undefined>): TunnelConnector {
  let next = 0;
  return connectorTo(() => servers[next++ % servers.length]);
}
