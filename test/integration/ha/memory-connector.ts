/**
 * An in-process TunnelConnector: each call makes a fresh memory pair and hands the server end to a ProxyServer's
 * acceptAgent, as a transport would after a new connection. `pick` chooses the server per attempt, which makes a
 * round-robin "load balancer" without sockets.
 */
import { createMemoryPair, type MemoryPacketStream } from '../../../src/transport/memory/index.js';
import type { IncomingPacketStream, Metadata, PacketStream, TunnelConnector } from '../../../src/transport/packet-stream.js';
import { ErrorCode, KonnectivityError } from '../../../src/protocol/errors.js';

/** What the connector needs from a server. */
export interface AgentAcceptor {
  acceptAgent(incoming: IncomingPacketStream): Promise<void>;
}

/** A connector to whatever `pick()` returns; `undefined` means the address refuses connections. */
export function memoryConnector(pick: () => AgentAcceptor | undefined): TunnelConnector {
  return (metadata, { signal }) =>
    new Promise<PacketStream>((resolve, reject) => {
      signal?.throwIfAborted();
      const server = pick();
      if (!server) {
        reject(new KonnectivityError(ErrorCode.REMOTE, 'connect: connection refused'));
        return;
      }
      const [agentEnd, serverEnd] = createMemoryPair({ encode: true });
      const incoming: IncomingPacketStream = {
        metadata,
        remoteAddress: 'memory',
        accept(responseMetadata: Metadata): PacketStream {
          (agentEnd as MemoryPacketStream).remoteMetadata = responseMetadata;
          (serverEnd as MemoryPacketStream).remoteMetadata = metadata;
          resolve(agentEnd);
          return serverEnd;
        },
        reject(err: KonnectivityError): void {
          agentEnd.destroy(err);
          serverEnd.destroy(err);
          reject(err);
        },
      };
      server.acceptAgent(incoming).catch((err: unknown) => {
        agentEnd.destroy();
        reject(err);
      });
    });
}

/** Round-robin over a list of servers that tests may edit (an entry set to undefined refuses). */
export function roundRobin(servers: Array<AgentAcceptor | undefined>): TunnelConnector {
  let next = 0;
  return memoryConnector(() => servers[next++ % servers.length]);
}
