/**
 * Joins an endpoint Duplex (the agent's socket to the target) to a tunnel connection.
 *
 * endpoint -> tunnel: 'data' goes out as DATA; when the connection cannot take more, the endpoint is paused (only
 * this endpoint: the others go on). tunnel -> endpoint: each DATA payload is written to the endpoint; its credit
 * is returned at once while the endpoint is under its high-water mark, else on 'drain', so a target that reads
 * slowly holds only its own sender.
 *
 * The other join is a TunnelSocket (a Duplex over the connection) piped to a socket by the HTTP-CONNECT relay. They
 * stay two on purpose: routing the agent's endpoints through a TunnelSocket would put a second stream, its buffer
 * and a callback per chunk on every agent connection, and the relay cannot bind to a connection, because its
 * dialer may return any Duplex (a chained proxy). What they share is in TunnelConnection: `handedOn`/`release`
 * credit for a full sink, `discardIncoming` after the owner left, and the stream lifecycle for 'close'.
 */
import type { Duplex } from 'node:stream';
import type { Packet } from '../protocol/packet.js';
import type { TunnelConnection } from './tunnel.js';

/** What {@link bindEndpoint} gives back: how the connection's owner ends the join. */
export interface EndpointBinding {
  /** The peer closed the connection: flush what is queued to the endpoint, end it, then send `reply`. */
  closeByPeer(reply: Packet): void;
  /** The peer ended its direction (yamux FIN): end the endpoint's write side; its answer keeps flowing back. */
  halfClose(): void;
  /** Tear down at once (DIAL_CLS, tunnel gone). */
  destroy(err?: Error): void;
}

/**
 * Start relaying. `closePacket` is what tells the peer that the endpoint went away (the agent's unsolicited
 * CLOSE_RSP); `onDone` runs once, when the connection is over either way.
 */
export function bindEndpoint(
  connection: TunnelConnection,
  endpoint: Duplex,
  closePacket: () => Packet,
  onDone: () => void,
): EndpointBinding {
  let done = false;
  const finishOnce = (): void => {
    if (done) return;
    done = true;
    endpoint.off('data', onData);
    connection.detach();
    onDone();
  };
  const onData = (chunk: Buffer): void => {
    if (!connection.sendData(chunk)) endpoint.pause();
  };
  endpoint.on('drain', () => connection.release());
  connection.handlers = {
    onData: (data) => {
      const gone = endpoint.writableEnded || endpoint.destroyed;
      connection.handedOn(data.length, gone || endpoint.write(data));
    },
    onWritable: () => endpoint.resume(),
  };
  endpoint.on('data', onData);
  // The endpoint went away (EOF, error or close): send what it had sent us, then tell the peer.
  const onEndpointGone = (): void => {
    if (done || connection.finishing) return;
    endpoint.off('data', onData);
    connection.finish(closePacket(), true, () => {
      endpoint.destroy();
      finishOnce();
    });
  };
  endpoint.once('end', onEndpointGone);
  endpoint.once('close', onEndpointGone);
  endpoint.on('error', () => {
    /* reported through 'close'; the peer learns of it through the close packet */
  });

  const binding: EndpointBinding = {
    closeByPeer(reply) {
      if (done) return;
      endpoint.off('data', onData);
      endpoint.pause();
      // Queued writes reach the endpoint before its FIN; there is no half-close, so it is destroyed after.
      endpoint.end(() => endpoint.destroy());
      connection.finish(reply, true, finishOnce);
    },
    halfClose() {
      if (done || endpoint.writableEnded) return;
      endpoint.end();
    },
    destroy(err) {
      if (done) return;
      endpoint.destroy(err);
      finishOnce();
    },
  };
  connection.handlers.onTunnelClosed = () => binding.destroy();
  return binding;
}
