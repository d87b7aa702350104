/**
 * The PacketStream contract: what every transport (in-memory, gRPC, yamux) gives the tunnel engine.
 *
 * An ordered, reliable, bidirectional stream of packets:
 * - `write(packet)` returns false once the transport holds more than its high-water mark; 'drain' follows when it
 *   has room again. A writer that ignores false is the only way to grow memory.
 * - packets arrive as 'packet' events (or by async iteration); `pause()` stops delivery and lets the transport push
 *   back on the peer (HTTP/2 or yamux windows); `resume()` restarts it.
 * - 'end' means the peer sends no more; `close()` ends our side gracefully and resolves once both sides are done;
 *   `destroy(err)` tears down at once. Both are idempotent; the first error wins and reaches every waiter: the
 *   'error' event (Node's unhandled-'error' rule applies), the 'close' event, pending `close()` promises and
 *   async iterators.
 *
 * Two kinds of transport stand behind it:
 * - a single ordered stream that carries every connection of a tunnel (gRPC `Connect`): pausing it pauses them
 *   all, so the engine keeps per-connection fairness with its own bounded queues and credits;
 * - a transport that gives each proxied connection a stream of its own (yamux): it exposes `substreams` on the
 *   tunnel's control stream, and each substream is itself a PacketStream with its own window, so pausing one
 *   connection's substream never stalls another.
 *
 * Kept whole: the contract, the base class that keeps its promises for every transport, and the few types every
 * transport shares (metadata, incoming streams, connectors) are read together.
 */
import { EventEmitter } from 'node:events';
import type { Packet } from '../protocol/packet.js';
import { ErrorCode, KonnectivityError } from '../protocol/errors.js';
import { noop } from '../protocol/noop.js';

/** Metadata exchanged when a stream opens (gRPC metadata / headers). Keys are lower-case. */
export type Metadata = Readonly<Record<string, readonly string[]>>;

/** Opens and accepts per-connection streams on a tunnel (transports with native multiplexing only). */
export interface SubstreamProvider {
  /** Open a new stream for one proxied connection (the server side does this, one per dial). */
  open(): PacketStream;
  /** Called for every stream the peer opens (the agent side listens). */
  onStream(handler: (stream: PacketStream) => void): void;
}

/** The events of a PacketStream. */
export interface PacketStreamEventMap {
  /** A packet arrived. */
  packet: [packet: Packet];
  /** `write()` may be called again after it returned false. */
  drain: [];
  /** The peer sends no more. */
  end: [];
  /** The stream failed (the same error then comes with 'close'). */
  error: [err: Error];
  /** The stream is over; `err` is why, if it failed. */
  close: [err: Error | undefined];
}

/** The contract. See the module comment for semantics. */
export interface PacketStream extends EventEmitter<PacketStreamEventMap> {
  /** What the peer sent when the stream opened: request metadata at a server, response headers at a client. */
  readonly remoteMetadata: Metadata;
  /** The peer's address, for logs (`127.0.0.1:51234`, `unix:/run/k.sock`, `memory`). */
  readonly remoteAddress: string;
  /** Present when the transport gives each proxied connection its own stream. */
  readonly substreams: SubstreamProvider | undefined;
  /**
   * The connection under the stream when other streams share it (the HTTP/2 connection of a gRPC call), as an
   * opaque key: per-connection limits count by it. Undefined when the stream has a connection of its own.
   */
  readonly sharedConnection?: object | undefined;
  /** True while writes are refused by the high-water mark (a 'drain' will follow). */
  readonly writableNeedDrain: boolean;
  /** True once close() or destroy() was called or the stream failed. */
  readonly closed: boolean;
  /** True once 'close' was emitted: the stream is over and emits nothing more (an owner attached now hears nothing). */
  readonly closeEmitted: boolean;
  /** The error the stream failed with, if any. */
  readonly errored: Error | undefined;
  /**
   * True while the connection under the stream can carry new work: false once it is closed or the peer told it to
   * go away (HTTP/2 GOAWAY, yamux Go Away). The agent's probe (`--probe-interval`) retires tunnels on false, as the
   * reference retires a ClientConn that is not READY.
   */
  readonly transportReady: boolean;
  /**
   * The smallest round trip the transport has measured to its peer (gRPC: HTTP/2 PING), in ms; undefined when it
   * does not measure one, or not yet. The engine grows per-connection credit windows from it.
   */
  readonly roundTripMs?: number | undefined;

  /**
   * Queue a packet. Returns false when the caller should wait for 'drain'. After close or destroy the packet is
   * dropped and false returned (the 'close' event says why).
   */
  write(packet: Packet): boolean;
  /** Stop delivering packets; the transport pushes back on the peer. */
  pause(): void;
  /** Deliver packets again. */
  resume(): void;
  /**
   * Optional, on a stream that carries one connection under a window of its own (a yamux substream): from now on,
   * DATA it delivers keeps counting against that window until the owner reports it passed on (`consumed`), so the
   * window bounds all the connection holds. Without this call the window frees bytes as they are delivered.
   */
  holdUntilConsumed?(): void;
  /** The owner passed on `n` bytes of DATA payload this stream delivered (see `holdUntilConsumed`). */
  consumed?(n: number): void;
  /** True while delivery is paused. */
  readonly isPaused: boolean;
  /** End our side after what is queued; resolves when both sides are done, rejects with the stream's error. */
  close(): Promise<void>;
  /** Tear down at once. */
  destroy(err?: Error): void;
  /** The packets, until the peer's end (throws the stream's error). */
  [Symbol.asyncIterator](): AsyncIterator<Packet>;
}

/** The listener table of a PacketStream (see its constructor): its events as own properties, no prototype. */
function Listeners(this: Record<keyof PacketStreamEventMap, undefined>): void {
  this.packet = undefined;
  this.drain = undefined;
  this.end = undefined;
  this.error = undefined;
  this.close = undefined;
}
Listeners.prototype = Object.create(null) as object;

/**
 * Base class that gives transports the bookkeeping of the contract: idempotent close and destroy, first error wins,
 * pause with a local queue for packets already received, async iteration, and the events.
 * A transport implements the protected hooks.
 */
export abstract class AbstractPacketStream extends EventEmitter<PacketStreamEventMap> implements PacketStream {
  /** What the peer sent when the stream opened. */
  abstract readonly remoteMetadata: Metadata;
  /** The peer's address, for logs. */
  abstract readonly remoteAddress: string;
  /** Undefined unless the transport gives each proxied connection a stream of its own. */
  get substreams(): SubstreamProvider | undefined {
    return undefined;
  }

  private state: 'open' | 'closing' | 'closed' = 'open';
  private error: Error | undefined;
  private paused = false;
  /** Packets received while paused; bounded by what the source had in flight, since pause reaches the source. */
  private pending: Packet[] = [];
  private pendingHead = 0;
  private localEnded = false;
  private remoteEnded = false;
  private endDelivered = false;
  private closeDone = false;
  private closeWaiters: Array<{ resolve: () => void; reject: (err: Error) => void }> = [];
  protected needDrain = false;

  constructor() {
    super();
    // node:events gives every emitter a dictionary for its listeners (about 280 bytes); a PacketStream's events as
    // properties from the start, as Node's own streams have them, take a fifth of that: it counts per idle connection.
    (this as unknown as { _events: object })._events = new (Listeners as unknown as new () => object)();
  }

  /** True once close() or destroy() was called or the stream failed. */
  get closed(): boolean {
    return this.state !== 'open';
  }
  /** True once 'close' was emitted. */
  get closeEmitted(): boolean {
    return this.closeDone;
  }
  /** The error the stream failed with, if any. */
  get errored(): Error | undefined {
    return this.error;
  }
  /** True while delivery is paused. */
  get isPaused(): boolean {
    return this.paused;
  }
  /** True while writes are over the high-water mark ('drain' follows). */
  get writableNeedDrain(): boolean {
    return this.needDrain;
  }
  /** True while the connection under the stream can carry new work. */
  get transportReady(): boolean {
    return this.state === 'open';
  }

  // ---- hooks for transports ------------------------------------------------------------------------------------

  /** Send one packet. Return false when over the high-water mark (then call `emitDrain()` later). */
  protected abstract sendPacket(packet: Packet): boolean;
  /** End our side once queued packets are sent (gRPC: half-close or trailers; yamux: FIN). */
  protected abstract endLocal(): void;
  /** Release every resource now; `err` is the reason, if any. */
  protected abstract destroyTransport(err: Error | undefined): void;
  /** Stop / restart reading from the source (default: nothing; packets queue locally). */
  protected pauseSource(): void {}
  protected resumeSource(): void {}

  /** Transports call this for every packet received. */
  protected deliver(packet: Packet): void {
    if (this.state === 'closed') return;
    if (this.paused || this.pendingHead < this.pending.length) {
      this.pending.push(packet);
      return;
    }
    this.emit('packet', packet);
  }

  /** Transports call this when the peer has ended its side. */
  protected deliverEnd(): void {
    if (this.remoteEnded) return;
    this.remoteEnded = true;
    this.flushEnd();
  }

  /** Transports call this when they have room again after sendPacket returned false. */
  protected emitDrain(): void {
    if (!this.needDrain || this.state === 'closed') return;
    this.needDrain = false;
    this.emit('drain');
  }

  /** True once our side was ended by close(). */
  protected get localEnd(): boolean {
    return this.localEnded;
  }
  /** True once the peer ended its side. */
  protected get remoteEnd(): boolean {
    return this.remoteEnded;
  }

  /** Transports call this when both directions are finished cleanly. */
  protected finish(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.destroyTransport(undefined);
    this.settle(undefined);
  }

  // ---- the contract --------------------------------------------------------------------------------------------

  /** Queue a packet; false means wait for 'drain' (and after close, that it was dropped). */
  write(packet: Packet): boolean {
    if (this.state !== 'open') return false;
    const ok = this.sendPacket(packet);
    if (!ok) this.needDrain = true;
    return ok;
  }

  /** Stop delivering packets; the transport pushes back on the peer. */
  pause(): void {
    if (this.paused) return;
    this.paused = true;
    this.pauseSource();
  }

  /** Deliver packets again, first those received while paused. */
  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    while (!this.paused && this.pendingHead < this.pending.length && this.state !== 'closed') {
      const p = this.pending[this.pendingHead]!;
      this.pending[this.pendingHead++] = undefined as unknown as Packet;
      this.emit('packet', p);
    }
    if (this.pendingHead >= this.pending.length) {
      this.pending = [];
      this.pendingHead = 0;
    }
    if (!this.paused) {
      this.flushEnd();
      this.resumeSource();
    }
  }

  /** End our side after what is queued; resolves when both sides are done, rejects with the stream's error. */
  close(): Promise<void> {
    if (this.state === 'closed') {
      if (!this.error) return Promise.resolve();
      const failed = Promise.reject(this.error);
      failed.catch(noop);
      return failed;
    }
    const done = new Promise<void>((resolve, reject) => this.closeWaiters.push({ resolve, reject }));
    // The caller may not await; the error also reaches 'error' and 'close', so never leave it unhandled.
    done.catch(noop);
    if (this.state === 'open') {
      this.state = 'closing';
      if (!this.localEnded) {
        this.localEnded = true;
        this.endLocal();
      }
    }
    return done;
  }

  /** Tear down at once; `err` reaches every waiter. Idempotent: the first error wins. */
  destroy(err?: Error): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.error = err;
    this.pending = [];
    this.pendingHead = 0;
    this.destroyTransport(err);
    this.settle(err);
  }

  /** The packets, until the peer's end; breaking out of the loop resumes delivery to other listeners. */
  async *[Symbol.asyncIterator](): AsyncIterator<Packet> {
    const queue: Packet[] = [];
    let wake: (() => void) | undefined;
    let done = this.endDelivered;
    let failure: Error | undefined;
    let pausedHere = false;
    const onPacket = (p: Packet): void => {
      queue.push(p);
      // Hold the source while the consumer is behind.
      if (queue.length >= 64 && !this.paused) {
        pausedHere = true;
        this.pause();
      }
      wake?.();
    };
    const onEnd = (): void => {
      done = true;
      wake?.();
    };
    const onClose = (err: Error | undefined): void => {
      done = true;
      failure = err;
      wake?.();
    };
    this.on('packet', onPacket);
    this.on('end', onEnd);
    this.on('close', onClose);
    this.on('error', noop);
    if (this.state === 'closed') onClose(this.error);
    try {
      for (;;) {
        if (queue.length > 0) {
          yield queue.shift()!;
          if (queue.length < 16 && pausedHere) {
            pausedHere = false;
            this.resume();
          }
          continue;
        }
        if (done) {
          if (failure) throw failure;
          return;
        }
        await new Promise<void>((r) => (wake = r));
        wake = undefined;
      }
    } finally {
      this.off('packet', onPacket);
      this.off('end', onEnd);
      this.off('close', onClose);
      this.off('error', noop);
      // A consumer that breaks out must not leave the stream paused by us.
      if (pausedHere) this.resume();
    }
  }

  // ---- internals -----------------------------------------------------------------------------------------------

  private flushEnd(): void {
    if (!this.remoteEnded || this.endDelivered || this.paused || this.pendingHead < this.pending.length) return;
    this.endDelivered = true;
    this.emit('end');
  }

  private settle(err: Error | undefined): void {
    const waiters = this.closeWaiters;
    this.closeWaiters = [];
    for (const w of waiters) {
      if (err) w.reject(err);
      else w.resolve();
    }
    process.nextTick(() => {
      this.closeDone = true;
      if (err) this.emit('error', err);
      this.emit('close', err);
    });
  }
}


/** The error a stream fails with when its peer or transport goes away without a reason of its own. */
export function streamClosedError(message = 'stream closed'): KonnectivityError {
  return new KonnectivityError(ErrorCode.STREAM_CLOSED, message);
}

/**
 * A stream a peer is opening and that is not answered yet. A server checks the peer's metadata (agentid,
 * identifiers, token), then accepts it, sending its own metadata first (gRPC response headers: `serverid`,
 * `servercount`), or refuses it with an error the transport turns into its own status (gRPC: UNAUTHENTICATED for
 * ERR_UNAUTHENTICATED, INVALID_ARGUMENT for ERR_PROTOCOL, UNAVAILABLE for ERR_SHUTTING_DOWN, INTERNAL otherwise).
 */
export interface IncomingPacketStream {
  /** Request metadata the peer sent. */
  readonly metadata: Metadata;
  /** The peer's address, for logs. */
  readonly remoteAddress: string;
  /** The peer's verified TLS client certificate subject common name, when mTLS is in use. */
  readonly peerCommonName?: string | undefined;
  /** The names of the peer's verified client certificate (subject CN and DNS SANs), when mTLS is in use. */
  readonly peerCertificateNames?: readonly string[] | undefined;
  /** Send `responseMetadata` at once (before any packet) and start the stream. */
  accept(responseMetadata: Metadata): PacketStream;
  /** Refuse the stream with a clear error. */
  reject(err: KonnectivityError): void;
}

/**
 * How an agent opens one tunnel: a transport-provided function that opens a new connection to a server, sends
 * `metadata` (agentid, agentidentifiers, authorization), and resolves with the stream once the server's response
 * metadata (`serverid`, `servercount`) has arrived. It rejects with a KonnectivityError when refused.
 */
export type TunnelConnector = (metadata: Metadata, options: { signal?: AbortSignal }) => Promise<PacketStream>;

/**
 * The frontend leg's counterpart of a TunnelConnector: a client's connection to a server's frontend, on which it
 * opens one stream per dial (gRPC: `/ProxyService/Proxy` calls on one HTTP/2 connection).
 */
export interface FrontendConnection {
  /**
   * Open the stream for one dial, sending `metadata` with the request (the client's offer of half-close). Throws
   * ERR_TUNNEL_CLOSED when the connection can open no more.
   */
  openProxyStream(metadata?: Metadata): PacketStream;
  /** True once the connection can open no more streams (closing, closed, or told to go away). */
  readonly closed: boolean;
  /** Open no more streams; resolves once the open ones are done and the connection is closed. */
  close(): Promise<void>;
  /** Close the connection and its streams now. */
  destroy(err?: Error): void;
}

/** Opens a new connection to a server's frontend (a transport-provided function; its options were checked when made). */
export type FrontendConnector = () => FrontendConnection;

/** Read the single value of a metadata key, or undefined when it is absent or repeated. */
export function metadataValue(metadata: Metadata, key: string): string | undefined {
  const v = metadata[key];
  return v && v.length === 1 ? v[0] : undefined;
}
