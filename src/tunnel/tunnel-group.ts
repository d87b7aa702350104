/**
 * The Tunnel of one tunnel stream (an agent's stream to a server) together with its per-connection substreams, on
 * transports that give each proxied connection a stream of its own (`PacketStream.substreams`, yamux). Every
 * substream is a Tunnel of its own that carries one connection and can end one direction (half-close). The packets
 * of all of them go to one handler, with the Tunnel they came on as `via`; the group knows every substream, so that
 * the control stream's end reaches them.
 *
 * The server opens one substream per dial (`serve(provider.open())`); the agent serves those the server opens.
 */
import type { Packet } from '../protocol/packet.js';
import type { PacketStream } from '../transport/packet-stream.js';
import type { CreditTerms } from './flow.js';
import { attachSharedStream, closeStream, type SharedStreamOwner } from './stream-lifecycle.js';
import { Tunnel, type PacketCounter } from './tunnel.js';

export interface TunnelGroupOptions {
  /** The credit regime agreed on the control stream (substreams have their own window); undefined: legacy. */
  terms: CreditTerms | undefined;
  /**
   * Per-connection buffer (the Tunnels' `bufferBytes`). On a substream only a backstop: its own window bounds what
   * the connection holds (`holdUntilConsumed`).
   */
  bufferBytes: number;
  /** The control stream's half-close: `packet` when the peer confirmed HALF_CLOSE (substreams end by their FIN). */
  halfClose?: 'packet' | undefined;
  /** Every packet a Tunnel of the group does not route itself; `via` is that Tunnel. */
  onPacket: (packet: Packet, via: Tunnel) => void;
  onCount?: PacketCounter | undefined;
  /** The peer ended a substream (its FIN). Default: end ours too. */
  onSubstreamEnd?: (via: Tunnel) => void;
  /** A substream is over and was removed from the group. */
  onSubstreamClose: (via: Tunnel, err: Error | undefined) => void;
}

/** One clock for every Tunnel of every group (a Tunnel's default is a closure of its own). */
const now = (): number => performance.now();

export class TunnelGroup {
  /** The control stream's Tunnel. */
  readonly control: Tunnel;
  /** Every substream open now, with its Tunnel. */
  private readonly substreams = new Map<PacketStream, Tunnel>();
  /** The substreams' end and close, one pair of listeners for the whole group: an idle connection has no closures. */
  private readonly substreamOwner: SharedStreamOwner;

  constructor(
    stream: PacketStream,
    private readonly options: TunnelGroupOptions,
  ) {
    this.control = new Tunnel(stream, {
      windowBytes: options.terms?.windowBytes,
      chunkBytes: options.terms?.chunkBytes,
      bufferBytes: options.bufferBytes,
      halfClose: options.halfClose,
      onPacket: options.onPacket,
      onCount: options.onCount,
      now,
    });
    const group = this;
    const onEnd = options.onSubstreamEnd;
    this.substreamOwner = {
      onEnd: onEnd
        ? function (this: PacketStream) {
            const via = group.substreams.get(this);
            if (via) onEnd(via);
            else void closeStream(this);
          }
        : undefined,
      onClose: function (this: PacketStream, err: Error | undefined) {
        group.substreamClosed(this, err);
      },
    };
  }

  /** Substreams open now. */
  get substreamCount(): number {
    return this.substreams.size;
  }

  /** Serve `stream` as a substream of this group; returns its Tunnel. */
  serve(stream: PacketStream): Tunnel {
    // The substream's own window is the connection's receive buffer: what the owner holds counts against it, so a
    // stalled reader costs that window and no buffer beside it (the Tunnel's pause stays as a backstop).
    stream.holdUntilConsumed?.();
    const via = new Tunnel(stream, {
      bufferBytes: this.options.bufferBytes,
      onPacket: this.options.onPacket,
      onCount: this.options.onCount,
      halfClose: 'stream',
      now,
    });
    this.substreams.set(stream, via);
    attachSharedStream(stream, this.substreamOwner);
    return via;
  }

  private substreamClosed(stream: PacketStream, err: Error | undefined): void {
    const via = this.substreams.get(stream);
    if (!via) return;
    this.substreams.delete(stream);
    this.options.onSubstreamClose(via, err instanceof Error ? err : undefined);
  }

  /** The dial `via` carried is over: end its substream. Nothing for the control stream's Tunnel. */
  release(via: Tunnel): void {
    if (this.substreams.get(via.stream) === via) void closeStream(via.stream);
  }

  /** The control stream is gone: tear every substream down with `reason`, and forget the control's connections. */
  destroy(reason: Error): void {
    for (const stream of this.substreams.keys()) stream.destroy(reason);
    this.control.clear(reason);
  }
}
