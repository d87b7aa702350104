/**
 * Join two parties in one process with an in-memory pair, the way a network transport would: the connector side
 * (an agent) gets a `TunnelConnector`, the accepting side (a server) gets each new stream as an
 * `IncomingPacketStream` through `onIncoming`, for example `(incoming) => void server.acceptAgent(incoming)`.
 */
import { abortError } from '../../protocol/abort.js';
import type { IncomingPacketStream, Metadata, TunnelConnector } from '../packet-stream.js';
import { createMemoryPair, type MemoryPairOptions } from './memory-stream.js';

/**
 * A TunnelConnector over in-memory pairs: each connect gives `onIncoming` (e.g. `(i) => void server.acceptAgent(i)`)
 * the server's side as an IncomingPacketStream.
 */
export function memoryConnector(
  onIncoming: (incoming: IncomingPacketStream) => void,
  options: Omit<MemoryPairOptions, 'metadata'> = {},
): TunnelConnector {
  return (metadata: Metadata, { signal } = {}) =>
    new Promise((resolve, reject) => {
      if (signal?.aborted) {
        reject(abortError('connect aborted', signal));
        return;
      }
      const [serverSide, agentSide] = createMemoryPair({ ...options, metadata: { a: metadata } });
      // A refused or aborted pair is destroyed with the reason; nobody listens to it then.
      const quiet = (): void => {
        serverSide.on('error', () => {});
        agentSide.on('error', () => {});
      };
      let answered = false;
      const onAbort = (): void => {
        if (answered) return;
        answered = true;
        quiet();
        serverSide.destroy(abortError('connect aborted'));
        reject(abortError('connect aborted', signal));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      onIncoming({
        metadata,
        remoteAddress: 'memory',
        accept(response) {
          if (answered) return serverSide;
          answered = true;
          signal?.removeEventListener('abort', onAbort);
          agentSide.remoteMetadata = response;
          resolve(agentSide);
          return serverSide;
        },
        reject(err) {
          if (answered) return;
          answered = true;
          signal?.removeEventListener('abort', onAbort);
          quiet();
          serverSide.destroy(err);
          agentSide.destroy(err);
          reject(err);
        },
      });
    });
}
