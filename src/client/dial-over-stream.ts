/**
 * The frontend leg from the client's side (what konnectivity-client does over `/ProxyService/Proxy`): send
 * DIAL_REQ on a stream, wait for DIAL_RSP, then relay the connection as a TunnelSocket. The stream carries this one
 * connection and is closed with it.
 */
import { ErrorCode, KonnectivityError } from '../protocol/errors.js';
import { abortError } from '../protocol/abort.js';
import { randomDialID } from '../protocol/ids.js';
import {
  PacketType,
  closeDial,
  closeRequest,
  connectIDOf,
  dialRequest,
  randomOf,
  type CloseResponsePacket,
  type DialResponsePacket,
  type Packet,
} from '../protocol/packet.js';
import type { PacketStream } from '../transport/packet-stream.js';
import { Tunnel } from '../tunnel/tunnel.js';
import { TunnelSocket } from '../tunnel/tunnel-socket.js';
import { attachStream, closeStream } from '../tunnel/stream-lifecycle.js';

/** The reference client's backstop for DIAL_RSP. */
export const DEFAULT_CLIENT_DIAL_TIMEOUT_MS = 30_000;

export interface DialOverStreamOptions {
  signal?: AbortSignal | undefined;
  /** How long to wait for DIAL_RSP (default 30000). */
  timeoutMs?: number | undefined;
  /** DIAL_REQ protocol (default `tcp`). */
  protocol?: string | undefined;
}

/**
 * Dial `address` over `stream`. Rejects with ERR_DIAL_FAILED (the agent's or server's text, e.g. `No agent
 * available`), ERR_DIAL_TIMEOUT, ERR_DIAL_CLOSED, ERR_TUNNEL_CLOSED or ERR_ABORTED; the stream is closed then.
 */
export function dialOverStream(stream: PacketStream, address: string, options: DialOverStreamOptions = {}): Promise<TunnelSocket> {
  const { signal } = options;
  const random = randomDialID();
  let socket: TunnelSocket | undefined;
  let settled = false;

  return new Promise<TunnelSocket>((resolve, reject) => {
    const fail = (err: KonnectivityError, sendDialClose: boolean): void => {
      if (settled) return;
      settled = true;
      cleanup();
      if (sendDialClose && !stream.closed) tunnel.send(closeDial(random));
      closeStream(stream);
      reject(err);
    };
    const onPacket = (p: Packet): void => {
      switch (p.type) {
        case PacketType.DIAL_RSP: {
          const rsp = (p as DialResponsePacket).dialResponse;
          if (settled || rsp?.random !== random) {
            // An answer to a dial we never made: the reference closes the tunnel.
            if (!settled) fail(new KonnectivityError(ErrorCode.PROTOCOL, 'DIAL_RSP for an unknown dial'), false);
            return;
          }
          if (rsp.error) {
            fail(new KonnectivityError(ErrorCode.DIAL_FAILED, rsp.error, { reason: 'endpoint' }), false);
            return;
          }
          settled = true;
          cleanup();
          const connection = tunnel.open(rsp.connectID);
          socket = new TunnelSocket(connection, { address, onClose: () => closeStream(stream) });
          resolve(socket);
          return;
        }
        case PacketType.DIAL_CLS:
          if (!settled && randomOf(p) === random) {
            fail(new KonnectivityError(ErrorCode.DIAL_CLOSED, 'dial closed', { reason: 'dialclosed' }), false);
          }
          return;
        case PacketType.CLOSE_RSP: {
          const rsp = (p as CloseResponsePacket).closeResponse;
          tunnel.peerClosed(rsp?.connectID ?? 0n, rsp?.error ?? '');
          return;
        }
        case PacketType.DATA: {
          // DATA for a connection we do not have: ask the server to close it (connectID 0 is ignored).
          const id = connectIDOf(p);
          if (id !== 0n) tunnel.send(closeRequest(id));
          return;
        }
        default:
          return;
      }
    };
    const tunnel = new Tunnel(stream, { onPacket });
    const onClose = (err: Error | undefined): void => {
      const reason = new KonnectivityError(
        ErrorCode.TUNNEL_CLOSED,
        `tunnel closed${err ? `: ${err.message}` : ''}`,
        { reason: 'tunnelclosed', ...(err ? { cause: err } : {}) },
      );
      fail(reason, false);
      tunnel.clear(reason);
    };
    const onEnd = (): void => {
      // The server ended the stream: whatever connection it carried is over.
      if (!settled) fail(new KonnectivityError(ErrorCode.TUNNEL_CLOSED, 'tunnel closed before the dial completed', { reason: 'tunnelclosed' }), false);
      else if (socket && !socket.destroyed) tunnel.peerClosed(socket.connectID, '');
      closeStream(stream);
    };
    const onAbort = (): void =>
      fail(abortError('dial aborted', signal), true);
    const timer = setTimeout(
      () => fail(new KonnectivityError(ErrorCode.DIAL_TIMEOUT, 'dial timeout, backstop', { reason: 'timeout' }), true),
      options.timeoutMs ?? DEFAULT_CLIENT_DIAL_TIMEOUT_MS,
    ).unref();
    const cleanup = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    };
    attachStream(stream, { onEnd, onClose });
    if (signal?.aborted) {
      onAbort();
      return;
    }
    signal?.addEventListener('abort', onAbort, { once: true });
    tunnel.send(dialRequest(address, random, options.protocol ?? 'tcp'));
  });
}
