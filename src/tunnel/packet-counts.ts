/** Packet counts by segment and packet type name: what the server's and the agent's stats (and metrics) read. */
import { knownPacketTypeName, type Packet } from '../protocol/packet.js';

/** The one key every packet type outside the contract is counted under. */
export const UNKNOWN_PACKET_TYPE = 'UNKNOWN';

/**
 * Add one to `counts[type name of packet]`. The type number comes from the peer: a key per unknown number would let a
 * peer grow the table (and the Prometheus series) without bound, so they all share {@link UNKNOWN_PACKET_TYPE}.
 */
export function tallyPacket(counts: Record<string, number>, packet: Packet): void {
  const name = knownPacketTypeName(packet.type) ?? UNKNOWN_PACKET_TYPE;
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
