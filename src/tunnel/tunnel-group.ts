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
import { attachStream, closeStream } from './stream-lifecycle.js';
import { Tunnel, type PacketCounter } from './tunnel.js';

export interface TunnelGroupOptions {
  /** The credit regime agreed on the control stream (substreams have their own window); undefined: legacy. */
  terms: CreditTerms | undefined;
  /** Per-connection buffer (the Tunnels' `bufferBytes`). */
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
  private readonly substreams = new Set<Tunnel>();

  constructor(
    stream: PacketStream,
    private readonly options: TunnelGroupOptions,
  ) {
    const { onPacket } = options;
    this.control = new Tunnel(stream, {
      windowBytes: options.terms?.windowBytes,
      chunkBytes: options.terms?.chunkBytes,
      bufferBytes: options.bufferBytes,
      halfClose: options.halfClose,
      onPacket: (p) => onPacket(p, this.control),
      onCount: options.onCount,
      now,
    });
  }

  /** Substreams open now. */
  get substreamCount(): number {
    return this.substreams.size;
  }

  /** Serve `stream` as a substream of this group; returns its Tunnel. */
  serve(stream: PacketStream): Tunnel {
    const { onPacket, onSubstreamEnd, onSubstreamClose } = this.options;
    // The substream's own window is the connection's receive buffer: what the owner holds counts against it, so a
    // stalled reader costs that window and no buffer beside it (the Tunnel's pause stays as a backstop).
    stream.holdUntilConsumed?.();
    const via: Tunnel = new Tunnel(stream, {
      bufferBytes: this.options.bufferBytes,
      onPacket: (p) => onPacket(p, via),
      onCount: this.options.onCount,
      halfClose: 'stream',
      now,
    });
    this.substreams.add(via);
    attachStream(stream, {
      ...(onSubstreamEnd ? { onEnd: () => onSubstreamEnd(via) } : {}),
      onClose: (err) => {
        this.substreams.delete(via);
        onSubstreamClose(via, err);
      },
    });
    return via;
  }

  /** The dial `via` carried is over: end its substream. Nothing for the control stream's Tunnel. */
  release(via: Tunnel): void {
    if (this.substreams.has(via)) closeStream(via.stream);
  }

  /** The control stream is gone: tear every substream down with `reason`, and forget the control's connections. */
  destroy(reason: Error): void {
    for (const t of this.substreams) t.stream.destroy(reason);
    this.control.clear(reason);
  }
}
