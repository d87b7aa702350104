/**
 * One agent stream on the server: its Tunnel, the substreams opened for its dials (yamux), what its packets mean
 * (answers to dials, CLOSE_RSP, DRAIN), and its end, which fails every dial still waiting on it.
 */
import type { AgentIdentifiers } from '../protocol/identifiers.js';
import { PacketType, closeRequest, randomOf } from '../protocol/packet.js';
import type { PacketStream } from '../transport/packet-stream.js';
import type { EventSink } from '../tunnel/event-sink.js';
import type { CreditTerms } from '../tunnel/flow.js';
import { packetSwitch, peerClosed, refuseUnknownData } from '../tunnel/packet-switch.js';
import { DialFailure } from '../tunnel/pending-dials.js';
import { TunnelGroup } from '../tunnel/tunnel-group.js';
import type { PacketCounter, Tunnel } from '../tunnel/tunnel.js';
import type { DialRoute, Dials } from './dials.js';

/** What the server tells about one connected agent stream (`agents()`, the agent events). */
export interface AgentInfo {
  /** The agent's `agentid`. */
  agentID: string;
  /** The agent's `agentidentifiers`, parsed. */
  identifiers: AgentIdentifiers;
  /** Where the agent's stream comes from (`127.0.0.1:51234`, `memory`). */
  remoteAddress: string;
  /** True once the agent sent DRAIN. */
  draining: boolean;
  /** Connections open on the stream now. */
  connections: number;
}

/** What an agent stream reports through the server's events. */
export interface AgentBackendEvents {
  agentDraining: [info: AgentInfo];
}

/** What an agent stream needs of the server. */
export interface AgentBackendHost {
  readonly dials: Dials;
  readonly events: EventSink<AgentBackendEvents>;
  /** Per-connection buffer and credit window. */
  readonly bufferBytes: number;
  /** Counts the agent leg's packets (`toAgent`/`fromAgent`). */
  readonly count: PacketCounter;
}

/** One agent stream. */
export class AgentBackend implements DialRoute {
  private static readonly packets = packetSwitch<AgentBackend, Tunnel>({
    [PacketType.DIAL_RSP]: (b, p, via) => b.host.dials.answered(p.dialResponse, via),
    [PacketType.DIAL_CLS]: (b, p, via) => b.host.dials.closedByAgent(randomOf(p), via),
    // Known connections are routed by the tunnel; make sure the agent drops this one.
    [PacketType.DATA]: refuseUnknownData(closeRequest),
    [PacketType.CLOSE_RSP]: (b, p, via) => {
      peerClosed(p, via);
      b.release(via);
    },
    [PacketType.DRAIN]: (b) => b.drain(),
    // DIAL_REQ and CLOSE_REQ from an agent, and unknown types, are ignored as the reference does.
  });

  /** True once the agent sent DRAIN: the strategies pick it last. */
  draining = false;
  /** The agent stream's own Tunnel. */
  readonly tunnel: Tunnel;
  private readonly tunnels: TunnelGroup;

  constructor(
    readonly agentID: string,
    readonly identifiers: AgentIdentifiers,
    readonly stream: PacketStream,
    /** What was agreed with the agent: the credit regime's terms (undefined: legacy) and HALF_CLOSE. */
    agreed: { terms: CreditTerms | undefined; halfClose: boolean },
    private readonly host: AgentBackendHost,
  ) {
    this.tunnels = new TunnelGroup(stream, {
      terms: agreed.terms,
      halfClose: agreed.halfClose ? 'packet' : undefined,
      bufferBytes: host.bufferBytes,
      onPacket: (p, via) => AgentBackend.packets(this, p, via),
      onCount: host.count,
      onSubstreamClose: (via, err) => {
        const reason = DialFailure.tunnelClosed(`agent ${agentID} stream closed`, err);
        host.dials.failWhere((d) => d.via === via, reason);
        via.clear(reason);
      },
    });
    this.tunnel = this.tunnels.control;
  }

  /** A snapshot of this agent stream. */
  get info(): AgentInfo {
    return {
      agentID: this.agentID,
      identifiers: this.identifiers,
      remoteAddress: this.stream.remoteAddress,
      draining: this.draining,
      connections: this.tunnel.connections.size + this.tunnels.substreamCount,
    };
  }

  /** The agent's tunnel, or (when the transport has substreams) a new substream for one dial. */
  tunnelForDial(): Tunnel {
    const provider = this.stream.substreams;
    return provider ? this.tunnels.serve(provider.open()) : this.tunnel;
  }

  /** The dial on `via` is over: end its substream (nothing for the agent's own tunnel). */
  release(via: Tunnel): void {
    this.tunnels.release(via);
  }

  /** The agent stream is over: fail its dials, tear down its substreams and connections. */
  gone(err: Error | undefined): void {
    const reason = DialFailure.tunnelClosed(`agent ${this.agentID} tunnel closed`, err);
    this.host.dials.failWhere((d) => d.route === this, reason);
    this.tunnels.destroy(reason);
  }

  private drain(): void {
    if (this.draining) return;
    this.draining = true;
    this.host.events.emit('agentDraining', this.info);
  }
}
