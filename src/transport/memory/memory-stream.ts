/**
 * An in-memory PacketStream pair: the two ends of a tunnel inside one process, for tests and for embedding a
 * server and an agent together. Delivery is asynchronous (like a socket), ordered, and bounded: a write returns
 * false once the peer holds more than `highWaterMarkBytes` not yet delivered, and a paused receiver holds its
 * sender there.
 */
import type { Packet } from '../../protocol/packet.js';
import { PacketType } from '../../protocol/packet.js';
import { decodePacket } from '../../protocol/decode.js';
import { encodePacket } from '../../protocol/encode.js';
import { ErrorCode, KonnectivityError } from '../../protocol/errors.js';
import { checkNumber } from '../../protocol/options.js';
import { noop } from '../../protocol/noop.js';
import {
  AbstractPacketStream,
  streamClosedError,
  type Metadata,
  type PacketStream,
  type SubstreamProvider,
} from '../packet-stream.js';
import { DEFAULT_MEMORY_HIGH_WATER_MARK_BYTES } from '../windows.js';

/** Options of {@link createMemoryPair}. */
export interface MemoryPairOptions {
  /** Bytes a side may hold undelivered before the other side's write returns false (default 1 MiB). */
  highWaterMarkBytes?: number;
  /** What each side sees as the peer's metadata: `a` is what side A received (from B), and so on. */
  metadata?: { a?: Metadata; b?: Metadata };
  /** Give the pair per-connection substreams, as yamux does (default false: one shared stream, as gRPC). */
  substreams?: boolean;
  /** Pass every packet through the codec, as a real transport would (default false: objects pass as they are). */
  encode?: boolean;
}

function packetBytes(p: Packet): number {
  return p.type === PacketType.DATA ? 16 + ((p as { data?: { data: Uint8Array } }).data?.data.length ?? 0) : 64;
}

class MemorySubstreams implements SubstreamProvider {
  handler: ((s: PacketStream) => void) | undefined;
  backlog: MemoryPacketStream[] = [];
  constructor(
    private readonly owner: MemoryPacketStream,
    private readonly options: MemoryPairOptions,
  ) {}

  open(): PacketStream {
    const peer = this.owner.peer.substreamProvider!;
    if (this.owner.closed) {
      const [dead, unseen] = createMemoryPair({ ...this.options, substreams: false });
      unseen.on('error', noop); // nobody can ever hold this end: its reset is nobody's unhandled error
      dead.destroy(streamClosedError('tunnel closed'));
      return dead;
    }
    const [mine, theirs] = createMemoryPair({ ...this.options, substreams: false, metadata: {} });
    this.owner.children.add(mine);
    peer.owner.children.add(theirs);
    mine.once('close', () => this.owner.children.delete(mine));
    theirs.once('close', () => peer.owner.children.delete(theirs));
    // Nobody listens to the peer's end yet: hold what arrives until a handler has it, as a real stream's window does.
    theirs.held = true;
    // Until handed over, a reset of this end is nobody's unhandled error.
    theirs.on('error', noop);
    setImmediate(() => peer.accept(theirs));
    return mine;
  }

  onStream(handler: (stream: PacketStream) => void): void {
    this.handler = handler;
    const backlog = this.backlog;
    this.backlog = [];
    for (const s of backlog) if (!s.closed) this.hand(handler, s);
  }

  private accept(s: MemoryPacketStream): void {
    if (s.closed) return;
    if (this.handler) this.hand(this.handler, s);
    else this.backlog.push(s);
  }

  private hand(handler: (stream: PacketStream) => void, s: MemoryPacketStream): void {
    s.off('error', noop);
    handler(s);
    s.release();
  }
}

/** One end of an in-memory pair (see {@link createMemoryPair}). */
export class MemoryPacketStream extends AbstractPacketStream {
  /** Always `memory`. */
  readonly remoteAddress = 'memory';
  /** What the other end sent as metadata (set by the pair or the connector). */
  remoteMetadata: Metadata = {};
  /** The other end of the pair. */
  peer!: MemoryPacketStream;
  /** Per-connection substreams, when the pair was made with `substreams`. */
  substreamProvider: MemorySubstreams | undefined;
  /** Substreams of this tunnel, torn down with it. */
  readonly children = new Set<PacketStream>();
  private inbox: Packet[] = [];
  private inboxHead = 0;
  private inboxBytes = 0;
  private flushScheduled = false;
  private sourcePaused = false;
  private peerEnded = false;
  /** Set once finish() or destroy() ran: nothing more to do. */
  private torn = false;
  /** @internal Held: received packets and the end wait (a substream not yet handed to onStream). */
  held = false;

  constructor(
    private readonly hwm: number,
    private readonly encode: boolean,
  ) {
    super();
  }

  override get substreams(): SubstreamProvider | undefined {
    return this.substreamProvider;
  }

  protected sendPacket(packet: Packet): boolean {
    const p = this.encode ? decodePacket(encodePacket(packet)) : packet;
    return this.peer.enqueue(p);
  }

  protected endLocal(): void {
    this.peer.peerEnded = true;
    this.peer.schedule();
    this.maybeFinish();
  }

  protected destroyTransport(err: Error | undefined): void {
    this.torn = true;
    this.inbox = [];
    this.inboxHead = 0;
    this.inboxBytes = 0;
    for (const child of this.children) child.destroy(err ?? streamClosedError('tunnel closed'));
    this.children.clear();
    const reason = err
      ? new KonnectivityError(ErrorCode.REMOTE, `peer destroyed the stream: ${err.message}`, { cause: err })
      : undefined;
    // Both sides ended: the peer finishes on its own. Otherwise this is a reset, and the peer fails.
    if (!err && this.localEnd && this.remoteEnd) return;
    setImmediate(() => this.peer.destroy(reason ?? streamClosedError('peer reset the stream')));
  }

  protected override pauseSource(): void {
    this.sourcePaused = true;
  }

  protected override resumeSource(): void {
    this.sourcePaused = false;
    this.schedule();
  }

  private enqueue(p: Packet): boolean {
    this.inbox.push(p);
    this.inboxBytes += packetBytes(p);
    this.schedule();
    return this.inboxBytes <= this.hwm;
  }

  private schedule(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      this.flush();
    });
  }

  /** @internal Start delivering what a held stream received (after the handler attached its listeners). */
  release(): void {
    if (!this.held) return;
    this.held = false;
    this.schedule();
  }

  private flush(): void {
    // A flush scheduled before a destroy must not run: it would tell the peer it may write again ('drain').
    if (this.torn || this.held) return;
    while (!this.sourcePaused && this.inboxHead < this.inbox.length) {
      const p = this.inbox[this.inboxHead]!;
      this.inbox[this.inboxHead++] = undefined as unknown as Packet;
      this.inboxBytes -= packetBytes(p);
      this.deliver(p);
    }
    if (this.inboxHead >= this.inbox.length) {
      this.inbox = [];
      this.inboxHead = 0;
    }
    if (this.inboxBytes <= this.hwm) this.peer.emitDrainFromPeer();
    if (this.peerEnded && this.inbox.length === 0) {
      this.deliverEnd();
      this.maybeFinish();
    }
  }

  private emitDrainFromPeer(): void {
    this.emitDrain();
  }

  private maybeFinish(): void {
    // Only on the transition: scheduling the peer again after we finished would ping-pong immediates forever.
    if (this.localEnd && this.remoteEnd && !this.torn) {
      this.torn = true;
      this.finish();
      // The peer may be waiting on our end only.
      this.peer.schedule();
    }
  }
}

/** Create the two ends of an in-memory tunnel: `[a, b]`, where `a.write()` reaches `b` and back. */
export function createMemoryPair(options: MemoryPairOptions = {}): [MemoryPacketStream, MemoryPacketStream] {
  const hwm = checkNumber('highWaterMarkBytes', options.highWaterMarkBytes ?? DEFAULT_MEMORY_HIGH_WATER_MARK_BYTES, { integer: true, above: 0 });
  const a = new MemoryPacketStream(hwm, options.encode ?? false);
  const b = new MemoryPacketStream(hwm, options.encode ?? false);
  a.peer = b;
  b.peer = a;
  a.remoteMetadata = options.metadata?.a ?? {};
  b.remoteMetadata = options.metadata?.b ?? {};
  if (options.substreams) {
    a.substreamProvider = new MemorySubstreams(a, options);
    b.substreamProvider = new MemorySubstreams(b, options);
  }
  return [a, b];
}
