/**
 * The engine's view of one tunnel stream: the connections multiplexed on it, their send queues and their
 * receive accounting. Role-neutral: the server, the agent and the client each put their own packet handling on top
 * (`onPacket`), and each connection's owner (a TunnelSocket, an endpoint socket, a frontend stream) plugs in as
 * `ConnectionHandlers`.
 *
 * Backpressure without head-of-line blocking:
 * - sending: a connection writes only while the stream is not over its high-water mark and, in the credit regime,
 *   while it has credit; otherwise it keeps at most the one chunk it was given and its owner pauses its source.
 * - receiving: the owner calls `consumed(n)` when bytes leave its buffers. In the credit regime that returns credit
 *   to the peer (WINDOW_UPDATE), so a stalled reader stops only its own sender. In the legacy regime (Go peer, or a
 *   stream with one connection such as a yamux substream) an over-full connection pauses the stream. A credit
 *   window grows while its reader keeps up and the round trip shows it holds the sender (receive-window.ts).
 *
 * Kept whole: Tunnel and TunnelConnection are one machine (a connection's queue flushes on its tunnel's 'drain',
 * its credit, blocking and half-close are the tunnel's regime), and read best side by side.
 */
import type { DataPacket, Packet } from '../protocol/packet.js';
import { PacketType, dataPacket, halfClosePacket, payloadLengthOf, windowUpdate } from '../protocol/packet.js';
import { payloadLength, slicePayload, type Payload } from '../protocol/payload.js';
import type { PacketStream } from '../transport/packet-stream.js';
import { noop } from '../protocol/noop.js';
import { DEFAULT_CONNECTION_BUFFER_BYTES, DEFAULT_CONNECTION_WINDOW_MAX_BYTES, MAX_DATA_CHUNK_BYTES } from './flow.js';
import type { HalfCloseMode } from './half-close.js';
import { ReceiveWindow } from './receive-window.js';
import { endStream } from './stream-lifecycle.js';

/** Counts packets for metrics: `direction` is from this side's point of view. */
export type PacketCounter = (direction: 'sent' | 'received', packet: Packet) => void;

/** Options of a {@link Tunnel}. */
export interface TunnelOptions {
  /** Per-connection window agreed with the peer (credit regime); undefined for the legacy regime. */
  windowBytes?: number | undefined;
  /** Largest DATA payload sent (default MAX_DATA_CHUNK_BYTES, 32 KiB; konnectivity-ts peers agree on more). */
  chunkBytes?: number | undefined;
  /** How far a connection's window may grow (credit regime; default 8 MiB, never below `windowBytes`). */
  maxWindowBytes?: number | undefined;
  /** The clock for window growth, in ms (default `performance.now`; tests inject their own). */
  now?: (() => number) | undefined;
  /** Bytes a connection may hold received but not consumed before the legacy regime pauses the stream. */
  bufferBytes?: number;
  /**
   * Every packet the tunnel does not route itself (it routes DATA and WINDOW_UPDATE of known connections), with the
   * Tunnel it came on (so one handler serves many Tunnels without a closure each).
   */
  onPacket: (packet: Packet, via: Tunnel) => void;
  /** Counts every packet sent and received, for metrics. */
  onCount?: PacketCounter | undefined;
  /**
   * How the end of one direction is carried (see {@link HalfCloseMode}): `stream` for a stream that carries one
   * connection (a yamux substream), whose end is the half-close; `packet` when the peer confirmed HALF_CLOSE.
   */
  halfClose?: HalfCloseMode;
}

/** What a connection's owner provides. */
export interface ConnectionHandlers {
  /**
   * A DATA packet with `length` payload bytes arrived (read them with `payloadOf(packet)`: they may be in pieces);
   * call `consumed(length)` once they have left your buffers.
   */
  onData(packet: DataPacket, length: number): void;
  /** The connection can take more after `sendData` returned false. */
  onWritable(): void;
  /** The peer ended the connection (the role's packet handler calls this; `error` is the peer's text, if any). */
  onPeerClosed?(error: string): void;
  /** The tunnel stream under the connection went away. */
  onTunnelClosed?(err: Error): void;
}

const NO_HANDLERS: ConnectionHandlers = {
  onData() {},
  onWritable() {},
};

/**
 * The engine's view of one tunnel stream: its connections, their send queues and receive accounting (see the module
 * comment).
 */
export class Tunnel {
  /** The connections open on the stream, by connectID. */
  readonly connections = new Map<bigint, TunnelConnection>();
  /** The per-connection credit window agreed with the peer, in bytes; undefined in the legacy regime. */
  readonly windowBytes: number | undefined;
  /** How far a connection's credit window may grow, in bytes (see the module comment). */
  readonly maxWindowBytes: number;
  /** The largest DATA payload this end sends, in bytes (agreed with the peer; 32 KiB to a Go peer). */
  readonly chunkBytes: number;
  /** @internal The clock window growth reads, in ms. */
  readonly now: () => number;
  /** Bytes a connection may hold received but not consumed before the legacy regime pauses the stream. */
  readonly bufferBytes: number;
  /** How a connection's `endWrite()` reaches the peer; a client sets it once the server confirmed (DIAL_RSP time). */
  halfClose: HalfCloseMode;
  /** Connections waiting for the stream's 'drain' (made on first need: most Tunnels of substreams never wait). */
  private waiting: Set<TunnelConnection> | undefined;
  private blockers = 0;
  private readonly onPacket: (packet: Packet, via: Tunnel) => void;
  private readonly onCount: PacketCounter | undefined;

  constructor(
    readonly stream: PacketStream,
    options: TunnelOptions,
  ) {
    this.windowBytes = options.windowBytes;
    this.chunkBytes = options.chunkBytes ?? MAX_DATA_CHUNK_BYTES;
    this.maxWindowBytes = Math.max(options.windowBytes ?? 0, options.maxWindowBytes ?? DEFAULT_CONNECTION_WINDOW_MAX_BYTES);
    this.now = options.now ?? (() => performance.now());
    this.bufferBytes = options.bufferBytes ?? DEFAULT_CONNECTION_BUFFER_BYTES;
    this.onPacket = options.onPacket;
    this.onCount = options.onCount;
    this.halfClose = options.halfClose;
    stream.on('packet', (p) => this.dispatch(p));
    stream.on('drain', () => this.flushWaiting());
  }

  /** Register a connection under `connectID` (replacing nothing: the caller checks for duplicates). */
  open(connectID: bigint, handlers: ConnectionHandlers = NO_HANDLERS): TunnelConnection {
    const c = new TunnelConnection(this, connectID, handlers);
    this.connections.set(connectID, c);
    return c;
  }

  /** Write a packet now, ahead of any connection's queue. Returns the stream's backpressure signal. */
  send(packet: Packet): boolean {
    this.onCount?.('sent', packet);
    return this.stream.write(packet);
  }

  /** The stream is gone: forget every connection and tell its owner. */
  clear(err: Error): void {
    const all = [...this.connections.values()];
    this.connections.clear();
    this.waiting?.clear();
    for (const c of all) {
      const h = c.handlers;
      c.detach();
      h.onTunnelClosed?.(err);
    }
  }

  /** The peer ended connection `connectID`: detach it and tell its owner. Returns false for an unknown ID. */
  peerClosed(connectID: bigint, error: string): boolean {
    const c = this.connections.get(connectID);
    if (!c) return false;
    const h = c.handlers;
    c.detach();
    h.onPeerClosed?.(error);
    return true;
  }

  // ---- used by TunnelConnection ----

  /** @internal */
  waitForDrain(c: TunnelConnection): void {
    (this.waiting ??= new Set()).add(c);
  }
  /** @internal */
  block(): void {
    if (this.blockers++ === 0) this.stream.pause();
  }
  /** @internal */
  unblock(): void {
    if (--this.blockers === 0) this.stream.resume();
  }
  /** @internal */
  forget(c: TunnelConnection): void {
    if (this.connections.get(c.connectID) === c) this.connections.delete(c.connectID);
    this.waiting?.delete(c);
  }

  private dispatch(packet: Packet): void {
    this.onCount?.('received', packet);
    if (packet.type === PacketType.DATA) {
      const c = this.connections.get((packet as DataPacket).data?.connectID ?? 0n);
      if (c) {
        c.receive(packet as DataPacket);
        return;
      }
    } else if (packet.type === PacketType.WINDOW_UPDATE) {
      const u = (packet as { windowUpdate?: { connectID: bigint; increment: bigint } }).windowUpdate;
      const c = u ? this.connections.get(u.connectID) : undefined;
      // Credit for a connection we no longer know is simply dropped.
      if (c && u && u.increment > 0n) c.grant(Number(u.increment));
      return;
    }
    this.onPacket(packet, this);
  }

  private flushWaiting(): void {
    const waiting = this.waiting;
    if (!waiting) return;
    // Fair: connections that waited are served in the order they started waiting.
    for (const c of waiting) {
      if (this.stream.writableNeedDrain) return;
      waiting.delete(c);
      c.flush();
    }
  }
}

/** Queue marker: end our direction of a per-connection stream once the data before it is out. */
const END_STREAM = Symbol('end-stream');

/** One proxied connection on a tunnel stream. */
export class TunnelConnection {
  /** Bytes of DATA payload sent and received. */
  bytesSent = 0;
  /** Bytes of DATA payload received. */
  bytesReceived = 0;
  /** Queued DATA payloads (one buffer or pieces) and the packets ordered after them. */
  private queue: Array<Payload | Packet | typeof END_STREAM> = [];
  private credit: number;
  /** Bytes received and not yet consumed by the owner. */
  private buffered = 0;
  /** The window this end grants the peer (credit regime only). */
  private readonly receiveWindow: ReceiveWindow | undefined;
  /** Bytes handed to a sink that was full: consumed once it has room again (`release()`). */
  private held = 0;
  private blocking = false;
  private wantWritable = false;
  /** `endWrite()` was called: no more DATA goes out. */
  private writeEnded = false;
  private detached = false;
  private finishPacket: Packet | undefined;
  private finishWritten = false;
  private onFinished: (() => void) | undefined;
  /** The deadline for the peer's CLOSE_RSP once the owner has left (`discardIncoming`). */
  private closeTimer: NodeJS.Timeout | undefined;
  /** The deadline for a graceful finish to get out behind the queued data (`finish`'s `flushTimeoutMs`). */
  private finishTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly tunnel: Tunnel,
    readonly connectID: bigint,
    public handlers: ConnectionHandlers,
  ) {
    this.credit = tunnel.windowBytes ?? Number.POSITIVE_INFINITY;
    this.receiveWindow = tunnel.windowBytes === undefined ? undefined : new ReceiveWindow(tunnel.windowBytes, tunnel.maxWindowBytes);
  }

  /** The window this end grants the peer, in bytes (credit regime; it grows); undefined in the legacy regime. */
  get windowBytes(): number | undefined {
    return this.receiveWindow?.windowBytes;
  }

  /** True once the connection was detached from its tunnel. */
  get closed(): boolean {
    return this.detached;
  }
  /** True once `finish()` was called. */
  get finishing(): boolean {
    return this.finishPacket !== undefined;
  }

  /**
   * Queue a payload. Returns true when all of it went to the stream; false when some waits for credit or for the
   * stream to drain, in which case `onWritable` follows. Callers pause their source on false.
   */
  sendData(data: Payload): boolean {
    if (this.detached || this.finishPacket) return false;
    const length = payloadLength(data);
    const chunk = this.tunnel.chunkBytes;
    for (let off = 0; off < length; off += chunk) {
      this.queue.push(off === 0 && length <= chunk ? data : slicePayload(data, off, Math.min(length, off + chunk)));
    }
    if (this.flush()) return true;
    this.wantWritable = true;
    return false;
  }

  /**
   * Send the packet that ends this connection (CLOSE_REQ, CLOSE_RSP, ...) exactly once. Graceful: after the queued
   * data; if that is not out `flushTimeoutMs` later (a peer that returns no credit), the rest is dropped and the
   * packet goes then. Not graceful: queued data is dropped and the packet goes now. `then` runs once it has been
   * written.
   */
  finish(packet: Packet, graceful: boolean, then?: () => void, flushTimeoutMs?: number): void {
    if (this.detached || this.finishWritten) {
      then?.();
      return;
    }
    if (then) {
      const prev = this.onFinished;
      this.onFinished = prev ? () => (prev(), then()) : then;
    }
    if (!this.finishPacket) {
      this.finishPacket = packet;
      this.queue.push(packet);
    }
    if (graceful) {
      if (!this.flush() && flushTimeoutMs !== undefined && this.finishTimer === undefined) {
        this.finishTimer = setTimeout(() => this.finish(packet, false), flushTimeoutMs).unref();
      }
    } else if (!this.canSend) {
      // We ended this connection's own stream (half-close): no packet can follow, so resetting it is the close.
      this.queue = [];
      this.finishWritten = true;
      this.tunnel.stream.destroy();
      this.onFinished?.();
      this.onFinished = undefined;
    } else {
      this.queue = [];
      this.writePacket(this.finishPacket);
    }
  }

  /**
   * Half-close: after the queued data, tell the peer that we send no more (the stream's end, or HALF_CLOSE; see
   * `Tunnel.halfClose`); reads go on. Returns false when the peer cannot be told (a Go peer): nothing is sent then.
   * Once only.
   */
  endWrite(): boolean {
    const mode = this.tunnel.halfClose;
    if (mode === undefined) return false;
    if (this.detached || this.finishPacket || this.writeEnded) return true;
    this.writeEnded = true;
    this.queue.push(mode === 'stream' ? END_STREAM : halfClosePacket(this.connectID));
    this.flush();
    return true;
  }

  /** True when packets can still go out for this connection (not after the end of a per-connection stream). */
  get canSend(): boolean {
    return !this.detached && !(this.writeEnded && this.tunnel.halfClose === 'stream');
  }

  /** Write a packet now, ahead of the queue (used for replies that are about the other direction). */
  sendNow(packet: Packet): void {
    if (!this.detached) this.tunnel.send(packet);
  }

  /** The owner has passed on `n` received bytes: return credit, or lift a legacy pause. */
  consumed(n: number): void {
    if (n <= 0) return;
    this.buffered -= n;
    this.tunnel.stream.consumed?.(n);
    if (this.blocking && this.buffered <= this.blockLimit() / 2) {
      this.blocking = false;
      this.tunnel.unblock();
    }
    if (this.receiveWindow === undefined || this.detached) return;
    const credit = this.receiveWindow.consumed(n, this.tunnel.now, this.tunnel.stream.roundTripMs);
    if (credit > 0) this.tunnel.send(windowUpdate(this.connectID, credit));
  }

  /** Bytes held unconsumed above which the stream is paused: the buffer, or the window a peer may fill. */
  private blockLimit(): number {
    return Math.max(this.tunnel.bufferBytes, this.receiveWindow?.windowBytes ?? 0);
  }

  /**
   * The owner handed `n` received bytes to its sink; `accepted` is the sink's write()/push() answer. Accepted bytes
   * are consumed now, the others when the sink has room again and the owner calls `release()`.
   */
  handedOn(n: number, accepted: boolean): void {
    if (accepted) this.consumed(n);
    else this.held += n;
  }

  /** The sink has room again ('drain', a read): consume what was held. */
  release(): void {
    const n = this.held;
    this.held = 0;
    this.consumed(n);
  }

  /**
   * The owner went away before the peer's CLOSE_RSP: keep the entry until then, so that data still in flight is
   * dropped quietly (its credit returned) rather than answered as an unknown connection. A peer that never answers
   * does not hold the entry for ever: it is detached `closeTimeoutMs` later.
   */
  discardIncoming(closeTimeoutMs: number): void {
    if (this.detached) return;
    this.handlers = { onData: (_packet, length) => this.consumed(length), onWritable: noop };
    // What the owner held unread is dropped with it: its credit goes back, or the peer could not send its close.
    this.release();
    if (this.closeTimer === undefined) this.closeTimer = setTimeout(() => this.abandon(), closeTimeoutMs).unref();
  }

  /**
   * The owner leaves without a clean close (a destroy): tell the peer at once. On a stream of its own (a yamux
   * substream) the stream is reset, which reaches the peer even past data it cannot take; otherwise `packet` (CLOSE_REQ) goes
   * now, ahead of the queued data, and the entry waits for the answer up to `closeTimeoutMs`.
   */
  drop(packet: Packet, closeTimeoutMs: number): void {
    if (this.detached) return;
    if (this.tunnel.halfClose === 'stream') {
      this.abandon();
      return;
    }
    this.discardIncoming(closeTimeoutMs);
    this.finish(packet, false);
  }

  /** Give up on the peer's answer: forget the entry, and reset a stream of its own so the peer forgets it too. */
  private abandon(): void {
    const stream = this.tunnel.stream;
    this.detach();
    if (this.tunnel.halfClose === 'stream') stream.destroy();
  }

  /** Remove the connection from its tunnel; later packets for its connectID are unknown. Idempotent. */
  detach(): void {
    if (this.detached) return;
    this.detached = true;
    clearTimeout(this.closeTimer);
    clearTimeout(this.finishTimer);
    this.queue = [];
    if (this.blocking) {
      this.blocking = false;
      this.tunnel.unblock();
    }
    this.tunnel.forget(this);
    this.handlers = NO_HANDLERS;
  }

  // ---- driven by the tunnel ----

  /** @internal */
  receive(packet: DataPacket): void {
    const n = payloadLengthOf(packet);
    this.bytesReceived += n;
    this.buffered += n;
    if (!this.blocking && this.buffered > this.blockLimit()) {
      this.blocking = true;
      this.tunnel.block();
    }
    this.handlers.onData(packet, n);
  }

  /** @internal */
  grant(n: number): void {
    this.credit += n;
    this.flush();
  }

  /** @internal Write what the queue allows. Returns true when the queue is empty. */
  flush(): boolean {
    const stream = this.tunnel.stream;
    while (this.queue.length > 0 && !this.detached) {
      if (stream.writableNeedDrain) {
        this.tunnel.waitForDrain(this);
        return false;
      }
      // Each item leaves the queue only once it is written: a packet that cannot be encoded throws with it still
      // queued, never lost.
      const head = this.queue[0]!;
      if (head instanceof Uint8Array || Array.isArray(head)) {
        if (this.credit <= 0) return false;
        const data = head as Payload;
        const length = payloadLength(data);
        const n = Math.min(length, this.credit);
        this.tunnel.send(dataPacket(this.connectID, n === length ? data : slicePayload(data, 0, n)));
        if (n === length) this.queue.shift();
        else this.queue[0] = slicePayload(data, n, length);
        this.credit -= n;
        this.bytesSent += n;
      } else if (head === END_STREAM) {
        this.queue.shift();
        endStream(this.tunnel.stream);
      } else {
        this.writePacket(head as Packet);
        this.queue.shift();
      }
    }
    if (this.wantWritable && !this.detached) {
      this.wantWritable = false;
      this.handlers.onWritable();
    }
    return true;
  }

  private writePacket(p: Packet): void {
    this.tunnel.send(p);
    if (p === this.finishPacket) {
      this.finishWritten = true;
      clearTimeout(this.finishTimer);
      const then = this.onFinished;
      this.onFinished = undefined;
      then?.();
    }
  }
}
