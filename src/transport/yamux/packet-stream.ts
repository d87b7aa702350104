/**
 * The PacketStream over yamux: Packets varint-delimited (protobuf's writeDelimited form) on a yamux stream, or, on
 * substreams of a tunnel that negotiated `raw-data`, records with DATA payloads outside Packets (records.ts).
 *
 * A tunnel is one yamux session on one carrier (TCP, TLS, WebSocket):
 * - the **control stream** is the first stream, opened by the agent (the yamux client, so stream ID 1). Its first
 *   message each way is a handshake (see tunnel.ts); after it, Packets. It carries DRAIN and anything a peer
 *   without substreams sends there.
 * - every proxied connection gets a **substream** of its own (opened by the server, one per dial), carrying that
 *   connection's Packets from its first byte, with yamux's per-stream window as its flow control. DATA payloads
 *   are written beside their header, never copied into a frame; with `raw-data` they are also received as views.
 *   Served by a tunnel engine (`holdUntilConsumed`), a substream's DATA payloads count against its yamux window
 *   until their owner passed them on (`consumed`), so the window is the connection's whole receive buffer: a
 *   stalled reader holds at most the window.
 * The control stream owns the session: closing it cleanly closes the session gracefully (Go Away, substreams
 * finish), destroying it destroys the session; the session failing fails the control stream.
 */
import { decodePacket } from '../../protocol/decode.js';
import { ErrorCode, KonnectivityError } from '../../protocol/errors.js';
import { PacketType, dataPacket, payloadLengthOf, type DataPacket, type Packet } from '../../protocol/packet.js';
import { toBuffer } from '../../protocol/wire.js';
import {
  AbstractPacketStream,
  streamClosedError,
  type Metadata,
  type PacketStream,
  type SubstreamProvider,
} from '../packet-stream.js';
import { DEFAULT_MAX_MESSAGE_BYTES } from '../framing.js';
import { DelimitedMessageDecoder, delimitedDataHead, encodeDelimitedPacket } from './delimited.js';
import { RecordDecoder, RecordKind, dataPacketRecordHead, dataRecordHeader, encodePacketRecord } from './records.js';
import type { YamuxSession } from './session.js';
import type { YamuxStream } from './stream.js';

/** The metadata of every substream (only the control stream's handshake carries any). */
const NO_METADATA: Metadata = Object.freeze({});

/** Largest Packet accepted on a yamux stream, in bytes (gRPC's default). */
export const DEFAULT_MAX_PACKET_BYTES = DEFAULT_MAX_MESSAGE_BYTES;

export interface YamuxPacketStreamInit {
  remoteMetadata?: Metadata;
  remoteAddress: string;
  /** The decoder already used on this stream (the handshake read), and messages it returned past the handshake. */
  decoder?: DelimitedMessageDecoder;
  leftover?: Buffer[];
  /** For the control stream: the session, which then lives and dies with this stream. */
  session?: YamuxSession;
  maxPacketBytes?: number;
  /** This stream speaks records (`raw-data`, records.ts) instead of delimited Packets (default false). */
  records?: boolean;
  /** For the control stream: its substreams speak records (the tunnel negotiated `raw-data`). */
  substreamRecords?: boolean;
}

/** A PacketStream over one yamux stream. */
export class YamuxPacketStream extends AbstractPacketStream {
  /** What the peer sent in the handshake. */
  readonly remoteMetadata: Metadata;
  /** The peer's address, for logs. */
  readonly remoteAddress: string;
  private readonly stream: YamuxStream;
  /** Exactly one of the two decoders, by the stream's encoding. */
  private readonly decoder: DelimitedMessageDecoder | undefined;
  private readonly records: RecordDecoder | undefined;
  /** Records: the connectID of the last DATA Packet sent and received (what Data records belong to). */
  private sentConnectID: bigint | undefined;
  private receivedConnectID: bigint | undefined;
  private readonly session: YamuxSession | undefined;
  private readonly provider: SubstreamProvider | undefined;
  private finished = false;
  /** DATA counts against the stream's window until `consumed()` (`holdUntilConsumed`). */
  private holding = false;
  /** The control stream's listener on its session's 'close'. */
  private readonly onSessionClose: ((err: Error | undefined) => void) | undefined;

  /** The session is alive and the peer has not sent Go Away. */
  override get transportReady(): boolean {
    const session = this.session;
    return super.transportReady && (session === undefined || (!session.closed && !session.remoteGoAway));
  }

  constructor(stream: YamuxStream, init: YamuxPacketStreamInit) {
    super();
    this.stream = stream;
    this.remoteMetadata = init.remoteMetadata ?? NO_METADATA;
    this.remoteAddress = init.remoteAddress;
    const maxPacketBytes = init.maxPacketBytes ?? DEFAULT_MAX_PACKET_BYTES;
    if (init.records) this.records = new RecordDecoder({ maxRecordBytes: maxPacketBytes });
    else this.decoder = init.decoder ?? new DelimitedMessageDecoder({ maxMessageBytes: maxPacketBytes });
    this.session = init.session;
    if (init.session) {
      this.provider = new YamuxSubstreams(init.session, init.remoteAddress, init.maxPacketBytes, init.substreamRecords ?? false);
      this.onSessionClose = (err) => {
        if (!this.finished) this.destroy(err ?? new KonnectivityError(ErrorCode.TUNNEL_CLOSED, 'yamux session closed'));
      };
      init.session.once('close', this.onSessionClose);
    }
    // Shared handlers (static, `this` is the stream), not closures per stream: thousands of idle substreams each
    // pay for six fewer functions.
    stream.reader = this;
    stream.on('error', YamuxPacketStream.onStreamError);
    stream.on('close', YamuxPacketStream.onStreamClose);
    stream.on('end', YamuxPacketStream.onStreamEnd);
    stream.on('finish', YamuxPacketStream.onStreamFinish);
    stream.on('drain', YamuxPacketStream.onStreamDrain);
    try {
      for (const m of init.leftover ?? []) this.onMessage(m);
    } catch (err) {
      this.destroy(err as Error);
      return;
    }
    // Attaching 'data' starts the flow (a handshake reader may have paused the stream).
    stream.on('data', YamuxPacketStream.onStreamData);
    stream.resume();
  }

  override get substreams(): SubstreamProvider | undefined {
    return this.provider;
  }

  /** The yamux stream ID (1 for the control stream). */
  get streamID(): number {
    return this.stream.id;
  }

  protected sendPacket(packet: Packet): boolean {
    const stream = this.stream;
    const data = packet.type === PacketType.DATA ? (packet as DataPacket).data : undefined;
    if (data === undefined || data.error !== '' || data.data.length === 0) {
      return stream.write(this.records ? encodePacketRecord(packet) : encodeDelimitedPacket(packet));
    }
    // The payload goes beside its header (the stream's _writev puts both in one frame): never copied.
    const n = data.data.length;
    let head: Buffer;
    if (!this.records) head = delimitedDataHead(data.connectID, n);
    else if (data.connectID === this.sentConnectID) head = dataRecordHeader(n);
    else {
      this.sentConnectID = data.connectID;
      head = dataPacketRecordHead(data.connectID, n);
    }
    stream.cork();
    stream.write(head);
    const ok = stream.write(toBuffer(data.data));
    stream.uncork();
    return ok;
  }

  protected endLocal(): void {
    this.stream.end();
  }

  protected destroyTransport(err: Error | undefined): void {
    this.finished = true;
    // The stream sends RST unless both sides had already ended; no error event, we are its only listener.
    this.stream.destroy();
    const session = this.session;
    if (!session) return;
    session.off('close', this.onSessionClose!);
    if (err || !(this.localEnd && this.remoteEnd)) session.destroy(err);
    else session.close().catch(() => undefined);
  }

  protected override pauseSource(): void {
    this.stream.pause();
  }

  protected override resumeSource(): void {
    this.stream.resume();
    // An end that came while packets were held locally can finish now.
    this.maybeFinish();
  }

  /** A substream's DATA counts against its window until `consumed()` from now on (the module comment). */
  holdUntilConsumed(): void {
    if (!this.session) this.holding = true;
  }

  /** The owner passed on `n` bytes of DATA payload: they leave the window (after `holdUntilConsumed`). */
  consumed(n: number): void {
    if (this.holding) this.stream.release(n);
  }

  protected override deliver(packet: Packet): void {
    if (this.holding && packet.type === PacketType.DATA) this.stream.hold(payloadLengthOf(packet as DataPacket));
    super.deliver(packet);
  }

  private onMessage(m: Buffer): void {
    this.deliver(decodePacket(m));
  }

  private static onStreamData(this: YamuxStream, chunk: Buffer): void {
    const self = this.reader as YamuxPacketStream;
    try {
      if (self.records) self.onRecords(chunk, self.records);
      else for (const m of self.decoder!.push(chunk)) self.onMessage(m);
    } catch (err) {
      self.destroy(err as Error);
    }
  }

  private onRecords(chunk: Buffer, decoder: RecordDecoder): void {
    for (const r of decoder.push(chunk)) {
      if (r.kind === RecordKind.DATA) {
        const id = this.receivedConnectID;
        if (id === undefined) throw new KonnectivityError(ErrorCode.PROTOCOL, 'yamux substream: a Data record before any DATA packet');
        this.deliver(dataPacket(id, r.bytes));
        continue;
      }
      const p = decodePacket(r.bytes);
      if (p.type === PacketType.DATA) this.receivedConnectID = (p as DataPacket).data?.connectID ?? 0n;
      this.deliver(p);
    }
  }

  private static onStreamEnd(this: YamuxStream): void {
    const self = this.reader as YamuxPacketStream;
    if (!(self.records ?? self.decoder!).idle) {
      self.destroy(new KonnectivityError(ErrorCode.MALFORMED_PACKET, 'yamux stream ended inside a packet'));
      return;
    }
    self.deliverEnd();
    self.maybeFinish();
  }

  private static onStreamFinish(this: YamuxStream): void {
    (this.reader as YamuxPacketStream).maybeFinish();
  }

  private maybeFinish(): void {
    if (this.finished || this.isPaused || !this.localEnd || !this.remoteEnd || !this.stream.writableFinished) return;
    this.finish();
  }

  private static onStreamDrain(this: YamuxStream): void {
    (this.reader as YamuxPacketStream).emitDrain();
  }

  private static onStreamError(this: YamuxStream, err: Error): void {
    const self = this.reader as YamuxPacketStream;
    if (!self.finished) self.destroy(err);
  }

  private static onStreamClose(this: YamuxStream): void {
    const self = this.reader as YamuxPacketStream;
    if (!self.finished) self.destroy(streamClosedError('yamux stream closed'));
  }
}

/** Per-connection substreams of a tunnel's session. */
class YamuxSubstreams implements SubstreamProvider {
  constructor(
    private readonly session: YamuxSession,
    private readonly remoteAddress: string,
    private readonly maxPacketBytes: number | undefined,
    private readonly records: boolean,
  ) {}

  open(): PacketStream {
    try {
      return this.wrap(this.session.open());
    } catch (err) {
      return new FailedPacketStream(this.remoteAddress, err as Error);
    }
  }

  onStream(handler: (stream: PacketStream) => void): void {
    this.session.onStream((s) => handler(this.wrap(s)));
  }

  private wrap(s: YamuxStream): PacketStream {
    return new YamuxPacketStream(s, { remoteAddress: this.remoteAddress, maxPacketBytes: this.maxPacketBytes, records: this.records });
  }
}

/** What open() returns when the session cannot open a stream: already failed, with the reason. */
class FailedPacketStream extends AbstractPacketStream {
  readonly remoteMetadata: Metadata = {};
  constructor(
    readonly remoteAddress: string,
    err: Error,
  ) {
    super();
    this.destroy(err);
  }
  protected sendPacket(): boolean {
    return false;
  }
  protected endLocal(): void {}
  protected destroyTransport(): void {}
}
