/** Packet counts by segment and packet type name: what the server's and the agent's stats (and metrics) read. */
import { packetTypeName, type Packet } from '../protocol/packet.js';

/** Add one to `counts[type name of packet]`. */
export function tallyPacket(counts: Record<string, number>, packet: Packet): void {
  const name = packetTypeName(packet.type);
  counts[name] = (counts[name] ?? 0) + 1;
}

/** One tally per segment (`fromAgent`, `toServer`, ...). */
export class PacketCounts<S extends string> {
  private readonly counts = {} as Record<S, Record<string, number>>;

  constructor(segments: readonly S[]) {
    for (const s of segments) this.counts[s] = {};
  }

  count(segment: S, packet: Packet): void {
    tallyPacket(this.counts[segment], packet);
  }

  /** A copy, safe to keep and change. */
  snapshot(): Record<S, Record<string, number>> {
    const copy = {} as Record<S, Record<string, number>>;
    for (const s of Object.keys(this.counts) as S[]) copy[s] = { ...this.counts[s] };
    return copy;
  }
}
