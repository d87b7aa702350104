/**
 * A role's packet handling as a table: one handler per packet type the role acts on; every other type, and every
 * unknown one, is ignored, as the reference ignores them. The four roles (the server's agent backend and gRPC frontend
 * session, the agent's tunnel, the client's dial) each write only their table; the dispatch is here, once.
 *
 * Handlers are plain functions of (role, packet, via) built once per role, so a packet costs one array lookup and
 * one call: no closure per packet.
 */
import { connectIDOf, type CloseResponsePacket, type DataPacket, type KnownPacket, type Packet } from '../protocol/packet.js';
import type { Tunnel } from './tunnel.js';

/** The packet of a given wire type. */
export type PacketOfType<T extends KnownPacket['type']> = Extract<KnownPacket, { type: T }>;

/** A role's table: `via` is where the packet came from (a tunnel, or what the role needs to answer on). */
export type PacketHandlers<R, C> = {
  readonly [T in KnownPacket['type']]?: (role: R, packet: PacketOfType<T>, via: C) => void;
};

/** The dispatch built from a table. */
export type PacketSwitch<R, C> = (role: R, packet: Packet, via: C) => void;

type AnyHandler<R, C> = (role: R, packet: Packet, via: C) => void;

export function packetSwitch<R, C>(handlers: PacketHandlers<R, C>): PacketSwitch<R, C> {
  const byType: Array<AnyHandler<R, C> | undefined> = [];
  for (const [type, handler] of Object.entries(handlers)) byType[Number(type)] = handler as AnyHandler<R, C>;
  return (role, packet, via) => {
    const handler = byType[packet.type];
    if (handler !== undefined) handler(role, packet, via);
  };
}

/**
 * DATA that the tunnel did not route, for a connection it does not hold: answer with `reply(connectID)` so the peer
 * drops the connection too (connectID 0 names none and gets no answer).
 */
export function refuseUnknownData(reply: (connectID: bigint) => Packet): (role: unknown, packet: DataPacket, via: Tunnel) => void {
  return (_role, packet, via) => {
    const id = connectIDOf(packet);
    if (id !== 0n) via.send(reply(id));
  };
}

/** CLOSE_RSP: the peer is done with the connection; the tunnel detaches it and tells its owner. */
export function peerClosed(packet: CloseResponsePacket, via: Tunnel): void {
  via.peerClosed(packet.closeResponse?.connectID ?? 0n, packet.closeResponse?.error ?? '');
}
