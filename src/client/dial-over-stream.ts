/**
 * The frontend leg from the client's side (what konnectivity-client does over `/ProxyService/Proxy`): send
 * DIAL_REQ on a stream, wait for DIAL_RSP, then relay the connection as a TunnelSocket. The stream carries this one
 * connection and is closed with it. Half-close is used when the server confirmed it in its response metadata
 * (`konnectivity-ts-half-close`), which it does when the stream's request offered it.
 */
import { abortError, destroyOnAbort } from '../protocol/abort.js';
import type { KonnectivityError } from '../protocol/errors.js';
import { PacketType, closeDial, closeRequest, dialRequest, randomOf, type DialResponsePacket } from '../protocol/packet.js';
import type { PacketStream } from '../transport/packet-stream.js';
import { packetSwitch, peerClosed, refuseUnknownData } from '../tunnel/packet-switch.js';
import { DialFailure, PendingDials, type PendingDial } from '../tunnel/pending-dials.js';
import { attachStream, closeStream } from '../tunnel/stream-lifecycle.js';
import { Tunnel } from '../tunnel/tunnel.js';
import { offersHalfClose } from '../tunnel/half-close.js';
import { TunnelSocket, checkHalfCloseTimeoutMs, resolveSocketTimeouts } from '../tunnel/tunnel-socket.js';

/** The reference client's backstop for DIAL_RSP. */
export const DEFAULT_CLIENT_DIAL_TIMEOUT_MS = 30_000;

/** Options of {@link dialOverStream} (and of `GrpcProxyClient.dial()`). */
export interface DialOverStreamOptions {
  /** Aborts the dial (an AbortError); once the dial resolved, aborting it destroys the socket with one. */
  signal?: AbortSignal | undefined;
  /** How long to wait for DIAL_RSP (default 30000). */
  timeoutMs?: number | undefined;
  /** DIAL_REQ protocol (default `tcp`). */
  protocol?: string | undefined;
  /** After `end()`, how long the socket waits with nothing from the peer before closing, in ms (default 300000). */
  halfCloseTimeoutMs?: number | undefined;
  /**
   * How long the socket waits for the server's CLOSE_RSP after a CLOSE_REQ (`close()`, `destroy()`), and the stream
   * for the server's end after ours, in ms (default 10000, the reference client's CloseTimeout).
   */
  closeTimeoutMs?: number | undefined;
}

/**
 * Dial `address` over `stream`. Rejects with ERR_DIAL_FAILED (the agent's or server's text, e.g. `No agent
 * available`), ERR_DIAL_TIMEOUT, ERR_DIAL_CLOSED, ERR_TUNNEL_CLOSED or an AbortError (ABORT_ERR); the stream is closed then.
 * Aborting `signal` after it resolved destroys the socket with an AbortError, as `net.connect({ signal })` does.
 */
export function dialOverStream(stream: PacketStream, address: string, options: DialOverStreamOptions = {}): Promise<TunnelSocket> {
  try {
    checkHalfCloseTimeoutMs(options.halfCloseTimeoutMs);
    resolveSocketTimeouts(options);
  } catch (err) {
    return Promise.reject(err);
  }
  return new Promise<TunnelSocket>((resolve, reject) => new StreamDial(stream, address, options, resolve, reject));
}

/** One dial and, once it is answered, its connection, on a stream of its own. */
class StreamDial {
  private static readonly packets = packetSwitch<StreamDial, Tunnel>({
    [PacketType.DIAL_RSP]: (d, p) => d.answered(p),
    [PacketType.DIAL_CLS]: (d, p) => {
      if (d.dials.has(randomOf(p))) d.fail(DialFailure.closed(), false);
    },
    [PacketType.CLOSE_RSP]: (_d, p, via) => peerClosed(p, via),
    // DATA for a connection we do not have: ask the server to close it.
    [PacketType.DATA]: refuseUnknownData(closeRequest),
  });

  private readonly dials = new PendingDials<undefined>();
  private readonly dial: PendingDial<undefined>;
  private readonly tunnel: Tunnel;
  private socket: TunnelSocket | undefined;
  private readonly onAbort = (): void => this.fail(abortError('dial aborted', this.options.signal), true);
  private readonly closeTimeoutMs: number;

  constructor(
    private readonly stream: PacketStream,
    private readonly address: string,
    private readonly options: DialOverStreamOptions,
    private readonly resolve: (socket: TunnelSocket) => void,
    private readonly reject: (err: KonnectivityError) => void,
  ) {
    this.closeTimeoutMs = resolveSocketTimeouts(options).closeTimeoutMs;
    this.tunnel = new Tunnel(stream, { onPacket: (p) => StreamDial.packets(this, p, this.tunnel) });
    const random = this.dials.newDialID();
    this.dial = this.dials.add(random, undefined, options.timeoutMs ?? DEFAULT_CLIENT_DIAL_TIMEOUT_MS, () =>
      this.fail(DialFailure.timedOut('dial timeout, backstop'), true),
    );
    attachStream(stream, {
      onEnd: () => this.streamEnded(),
      onClose: (err) => {
        const reason = DialFailure.tunnelClosed('tunnel closed', err);
        this.fail(reason, false);
        this.tunnel.clear(reason);
      },
    });
    const { signal } = options;
    if (signal?.aborted) {
      this.onAbort();
      return;
    }
    signal?.addEventListener('abort', this.onAbort, { once: true });
    this.tunnel.send(dialRequest(address, random, options.protocol ?? 'tcp'));
  }

  private answered(p: DialResponsePacket): void {
    const rsp = p.dialResponse;
    if (!this.dial.pending) return;
    // An answer to a dial we never made: the reference closes the tunnel.
    if (rsp?.random !== this.dial.random) return this.fail(DialFailure.invalid('DIAL_RSP for an unknown dial'), false);
    if (rsp.error) return this.fail(DialFailure.refused(rsp.error), false);
    this.settle();
    // The response headers came before any packet: the server's confirmation is known by now.
    if (offersHalfClose(this.stream.remoteMetadata)) this.tunnel.halfClose = 'packet';
    const connection = this.tunnel.open(rsp.connectID);
    this.socket = new TunnelSocket(connection, {
      address: this.address,
      halfCloseTimeoutMs: this.options.halfCloseTimeoutMs,
      closeTimeoutMs: this.closeTimeoutMs,
      onClose: () => this.endStream(),
    });
    // As net.connect({ signal }): the signal still aborts the connection once it is open.
    destroyOnAbort(this.socket, this.options.signal);
    this.resolve(this.socket);
  }

  /** The server ended the stream: whatever connection it carried is over. */
  private streamEnded(): void {
    if (this.dial.pending) this.fail(DialFailure.tunnelClosed('tunnel closed before the dial completed'), false);
    else if (this.socket && !this.socket.destroyed) this.tunnel.peerClosed(this.socket.connectID, '');
    this.endStream();
  }

  /** Fail the dial, once: tell the server to drop it (`dialClose`) and close the stream. */
  private fail(err: KonnectivityError, dialClose: boolean): void {
    if (!this.settle()) return;
    if (dialClose && !this.stream.closed) this.tunnel.send(closeDial(this.dial.random));
    this.endStream();
    this.reject(err);
  }

  /** End the stream; the server has `closeTimeoutMs` to end its side too. */
  private endStream(): void {
    void closeStream(this.stream, { graceMs: this.closeTimeoutMs });
  }

  private settle(): boolean {
    if (!this.dial.settle()) return false;
    this.options.signal?.removeEventListener('abort', this.onAbort);
    return true;
  }
}
