/**
 * The agent's gRPC TunnelConnector for the program.
 *
 * Stopgap: the library's `grpcAgentConnector` leaves the call's stream without an 'error' listener when an
 * attempt fails (server down, refused token, drain aborting a dial), so the stream's 'error' event crashes the
 * process. This one keeps a listener until the stream is handed to the agent. Replace it with
 * `grpcAgentConnector` once that is fixed (test: "an agent with a wrong bearer token ..." and an agent started
 * before its server).
 */
import { AGENT_CONNECT_PATH, GrpcConnection, type GrpcClientOptions } from '../transport/grpc/index.js';
import { ErrorCode, KonnectivityError } from '../protocol/errors.js';
import type { PacketStream, TunnelConnector } from '../transport/packet-stream.js';

const quiet = (): void => undefined;

/** One new HTTP/2 connection and one `AgentService/Connect` call per attempt, like the reference agent. */
export function agentGrpcConnector(options: GrpcClientOptions): TunnelConnector {
  return (metadata, { signal } = {}) => {
    const aborted = (): KonnectivityError => new KonnectivityError(ErrorCode.ABORTED, 'the connect was aborted', { cause: signal?.reason, reason: 'context' });
    if (signal?.aborted) return Promise.reject(aborted());
    let conn: GrpcConnection;
    try {
      conn = new GrpcConnection(options);
    } catch (err) {
      return Promise.reject(err as Error);
    }
    const stream = conn.openStream(AGENT_CONNECT_PATH, metadata);
    stream.on('error', quiet);
    stream.once('close', () => void conn.close());
    return new Promise<PacketStream>((resolve, reject) => {
      const onAbort = (): void => {
        const err = aborted();
        stream.destroy(err);
        conn.destroy();
        reject(err);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      stream.ready.then(
        () => {
          signal?.removeEventListener('abort', onAbort);
          // From here the agent's tunnel listens to the stream.
          stream.off('error', quiet);
          resolve(stream);
        },
        (err: Error) => {
          signal?.removeEventListener('abort', onAbort);
          conn.destroy();
          reject(err);
        },
      );
    });
  };
}
