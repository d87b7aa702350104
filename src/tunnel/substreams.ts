/**
 * The per-connection streams of one tunnel, on transports that give each proxied connection a stream of its own
 * (`PacketStream.substreams`, yamux). Each substream is a Tunnel of its own that carries one connection and can end
 * one direction (half-close); its packets go to the same handler as the control stream's, with the substream's
 * Tunnel as `via`. The set knows them all, so that the control stream's end reaches every one.
 *
 * The server opens one per dial (`serve(provider.open())`); the agent serves those the server opens.
 */
import type { Packet } from '../protocol/packet.js';
import type { PacketStream } from '../transport/packet-stream.js';
import { attachStream, closeStream } from './stream-lifecycle.js';
import { Tunnel, type PacketCounter } from './tunnel.js';

export interface SubstreamOptions {
  /** Per-connection buffer (the Tunnel's `bufferBytes`). */
  bufferBytes: number;
  /** Every packet a substream's Tunnel does not route itself. */
  onPacket: (packet: Packet, via: Tunnel) => void;
  onCount?: PacketCounter | undefined;
  /** The peer ended a substream (its FIN). Default: end ours too. */
  onEnd?: (via: Tunnel) => void;
  /** A substream is over and was removed from the set. */
  onClose: (via: Tunnel, err: Error | undefined) => void;
}

export class Substreams {
  private readonly live = new Set<Tunnel>();

  constructor(private readonly options: SubstreamOptions) {}

  /** Substreams open now. */
  get size(): number {
    return this.live.size;
  }

  /** Serve `stream` as a substream; returns its Tunnel. */
  serve(stream: PacketStream): Tunnel {
    const { onPacket, onEnd, onClose } = this.options;
    const via: Tunnel = new Tunnel(stream, {
      bufferBytes: this.options.bufferBytes,
      onPacket: (p) => onPacket(p, via),
      onCount: this.options.onCount,
      halfClose: true,
    });
    this.live.add(via);
    attachStream(stream, {
      ...(onEnd ? { onEnd: () => onEnd(via) } : {}),
      onClose: (err) => {
        this.live.delete(via);
        onClose(via, err);
      },
    });
    return via;
  }

  /** The dial `via` carried is over: end its substream. Nothing for a tunnel that is not one (the control stream). */
  release(via: Tunnel): void {
    if (this.live.has(via)) closeStream(via.stream);
  }

  /** The control stream is gone: tear every substream down with `reason`. */
  destroyAll(reason: Error): void {
    for (const t of this.live) t.stream.destroy(reason);
  }
}
