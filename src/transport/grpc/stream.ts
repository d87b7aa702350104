/**
 * One gRPC bidirectional-streaming call (`stream Packet` both ways) over a node:http2 stream, as a PacketStream.
 *
 * Messages are the 5-byte gRPC prefix plus an encoded Packet; a large DATA payload is written beside its envelope,
 * not copied into it. Received bytes go through GrpcMessageDecoder; DATA payloads are views of the received chunks
 * (in pieces when a message spans chunks). pause() pauses the http2 stream, so node stops returning flow-control
 * credit and the peer's HTTP/2 window fills.
 * This is the part both ends share; server-stream.ts and client-stream.ts add what differs (headers, status).
 */
import { constants as h2c, type Http2Stream } from 'node:http2';
import { decodePacket } from '../../protocol/decode.js';
import { encodeDataHeader, encodePacket } from '../../protocol/encode.js';
import { ErrorCode, KonnectivityError } from '../../protocol/errors.js';
import { PacketType, payloadLengthOf, payloadOf, type DataPacket, type Packet } from '../../protocol/packet.js';
import { isPieces, ownPayload, payloadLength, type Payload } from '../../protocol/payload.js';
import { ENCODED, type WithEncoded } from '../../protocol/wire.js';
import { AbstractPacketStream, streamClosedError } from '../packet-stream.js';
import { GRPC_PREFIX_BYTES, GrpcMessageDecoder, grpcPrefix, writeGrpcPrefix } from './framing.js';
import type { ResolvedStreamOptions } from './options.js';
import type { SendBudget } from './send-budget.js';
import { minRttOf, receivedOn, tunedWindowOf } from './window-tuner.js';

/** DATA payloads from this size up are written beside their envelope rather than copied into it. */
const SEPARATE_PAYLOAD_BYTES = 4096;
const KEEP_ENCODED = { keepEncoded: true } as const;

/**
 * The bytes of messages not yet whole, held by all the calls of one HTTP/2 connection, against a ceiling: HTTP/2
 * flow control returns the window as bytes are read, complete message or not, so nothing else bounds them.
 */
export class PartialMessageBudget {
  held = 0;
  constructor(readonly limitBytes: number) {}
}

/** The common part of both ends: framing, backpressure, pause. */
export abstract class GrpcPacketStreamBase extends AbstractPacketStream {
  readonly remoteAddress: string;
  protected readonly decoder: GrpcMessageDecoder;
  private readonly hwm: number;
  private readonly maxSendBytes: number;
  /** This call's share of `budget.held`. */
  private partialHeld = 0;
  private corked = false;
  private readonly uncork = (): void => {
    this.corked = false;
    this.h2.uncork();
  };

  constructor(
    protected readonly h2: Http2Stream,
    remoteAddress: string,
    options: ResolvedStreamOptions,
    private readonly budget?: PartialMessageBudget,
    /** What the connection may have unread by its peer (client ends facing a node server; send-budget.ts). */
    protected readonly sendBudget?: SendBudget,
  ) {
    super();
    if (budget) this.once('close', () => this.holdPartial(0));
    if (sendBudget) {
      sendBudget.track(this);
      this.once('close', () => sendBudget.forget(this));
    }
    this.remoteAddress = remoteAddress;
    this.decoder = new GrpcMessageDecoder({ maxMessageBytes: options.maxMessageBytes });
    this.hwm = options.highWaterMarkBytes;
    this.maxSendBytes = options.maxMessageBytes;
    h2.on('drain', () => {
      if (this.sendBudget?.open !== false) this.emitDrain();
    });
    // Errors reach us through 'close' (with rstCode) or through onH2Error; never leave 'error' unhandled.
    h2.on('error', (err: Error) => this.onH2Error(err));
  }

  /**
   * The HTTP/2 receive window the connection under this call announces now, in bytes (it grows with bandwidth x
   * delay, see window-tuner.ts); undefined when the connection does not tune it (a Unix socket).
   */
  get receiveWindowBytes(): number | undefined {
    return tunedWindowOf(this.h2.session);
  }

  /** The smallest round trip measured on the connection under this call (HTTP/2 PING), in ms; undefined before one. */
  get roundTripMs(): number | undefined {
    return minRttOf(this.h2.session);
  }

  /** Bytes written to the http2 stream that its socket has not taken yet. */
  get writableLength(): number {
    return this.h2.writableLength;
  }

  /** @internal The send budget has room again. */
  budgetOpened(): void {
    if (this.h2.writableLength <= this.hwm) this.emitDrain();
  }

  /** Begin reading from the http2 stream (after the call was accepted). */
  protected startReading(): void {
    this.h2.on('data', (chunk: Buffer) => this.onChunk(chunk));
    this.h2.on('end', () => this.onH2End());
    if (this.isPaused) this.h2.pause();
  }

  protected sendPacket(packet: Packet): boolean {
    if (this.h2.destroyed || !this.h2.writable) return false;
    // Large payloads are never copied: the envelope and the payload (or a forwarded packet's received bytes, in the
    // pieces they came in) go out together in one writev.
    const kept = (packet as WithEncoded)[ENCODED];
    let head: Buffer;
    let body: Payload | undefined;
    let length: number;
    if (kept !== undefined) {
      body = kept;
      length = payloadLength(kept);
      head = grpcPrefix(length);
    } else if (packet.type === PacketType.DATA && payloadLengthOf(packet as DataPacket) >= SEPARATE_PAYLOAD_BYTES && (packet as DataPacket).data!.error === '') {
      const data = (packet as DataPacket).data!;
      body = payloadOf(packet as DataPacket);
      head = encodeDataHeader(data.connectID, payloadLengthOf(packet as DataPacket), GRPC_PREFIX_BYTES);
      length = head.length - GRPC_PREFIX_BYTES + payloadLengthOf(packet as DataPacket);
      writeGrpcPrefix(head, length);
    } else {
      head = encodePacket(packet, { reserve: GRPC_PREFIX_BYTES });
      length = head.length - GRPC_PREFIX_BYTES;
      writeGrpcPrefix(head, length);
    }
    if (length > this.maxSendBytes) {
      // The peer would refuse it and fail the whole call; fail here with a clear error instead.
      const err = new KonnectivityError(
        ErrorCode.MESSAGE_TOO_LARGE,
        `trying to send message larger than max (${length} vs. ${this.maxSendBytes})`,
      );
      queueMicrotask(() => this.destroy(err));
      return false;
    }
    const h2 = this.h2;
    // What one tick writes reaches node:http2 as one writev, at the end of the tick: a lone packet waits for
    // nothing (node itself sends at the end of the event-loop turn).
    if (!this.corked) {
      this.corked = true;
      h2.cork();
      process.nextTick(this.uncork);
    }
    h2.write(head);
    if (body !== undefined) {
      // Bytes that wait behind a full window must not hold on to the receive buffers they are views of.
      if (h2.writableLength > this.hwm) body = ownPayload(body);
      if (isPieces(body)) for (const piece of body) h2.write(piece);
      else h2.write(body);
    }
    const budgetOpen = this.sendBudget === undefined || this.sendBudget.wrote(GRPC_PREFIX_BYTES + length);
    // node counts what its socket has not taken yet; its 'drain' follows once that is written.
    return h2.writableLength <= this.hwm && budgetOpen;
  }

  protected override pauseSource(): void {
    this.h2.pause();
  }

  protected override resumeSource(): void {
    this.h2.resume();
  }

  private onChunk(chunk: Buffer): void {
    if (this.closed && this.errored) return;
    receivedOn(this.h2.session, chunk.length);
    let messages: Array<Buffer | Buffer[]>;
    try {
      messages = this.decoder.push(chunk);
    } catch (err) {
      this.destroy(err as Error);
      return;
    }
    if (this.budget && !this.holdPartial(this.decoder.bufferedBytes)) {
      this.destroy(
        new KonnectivityError(
          ErrorCode.LIMIT_EXCEEDED,
          `partial gRPC messages on this connection exceed ${this.budget.limitBytes} bytes`,
        ),
      );
      return;
    }
    for (const m of messages) {
      let packet: Packet;
      try {
        // Keep the received bytes, so a packet forwarded unchanged (agent DATA to a gRPC frontend) is not re-encoded.
        packet = decodePacket(m, KEEP_ENCODED);
      } catch (err) {
        this.destroy(
          new KonnectivityError(ErrorCode.MALFORMED_PACKET, `grpc: failed to unmarshal the received message: ${(err as Error).message}`, {
            cause: err,
          }),
        );
        return;
      }
      this.deliver(packet);
    }
  }

  /** Record that this call now holds `bytes` of partial messages; false when the connection is over its budget. */
  private holdPartial(bytes: number): boolean {
    const budget = this.budget!;
    budget.held += bytes - this.partialHeld;
    this.partialHeld = bytes;
    return budget.held <= budget.limitBytes;
  }

  /**
   * The http2 readable side ended. node ends it for a reset stream as well, and a client that resets may send
   * END_STREAM just before RST_STREAM; so decide once the frames read with it were processed.
   */
  private onH2End(): void {
    setImmediate(() => this.onRemoteEnd());
  }

  private onRemoteEnd(): void {
    if (this.remoteEnd || (this.closed && this.errored)) return;
    if (!this.remoteEndedCleanly()) {
      if (this.h2.closed || this.h2.destroyed) this.onH2Close();
      return;
    }
    if (!this.decoder.idle) {
      this.destroy(new KonnectivityError(ErrorCode.PROTOCOL, 'stream ended inside a gRPC message'));
      return;
    }
    this.deliverEnd();
    this.maybeFinish();
  }

  /** True when the peer finished its half properly (server: END_STREAM, no reset; client: an OK status). */
  protected abstract remoteEndedCleanly(): boolean;

  /** Both halves ended: finish once the http2 stream is closed too (its 'close' event calls this again). */
  protected maybeFinish(): void {
    if (this.localEnd && this.remoteEnd && (this.h2.closed || this.h2.destroyed)) this.finish();
  }

  protected onH2Error(err: Error): void {
    this.destroy(new KonnectivityError(ErrorCode.STREAM_CLOSED, `http2 stream error: ${err.message}`, { cause: err }));
  }

  /** The http2 stream closed: a clean finish if both halves ended, otherwise a reset. */
  protected onH2Close(): void {
    if (this.closed && this.errored) return;
    if (!this.remoteEnd && this.h2.readableEnded && this.remoteEndedCleanly()) {
      this.onRemoteEnd();
      if (this.closed) return;
    }
    if (this.remoteEnd) {
      // When the peer finished first and we have not ended yet, close() finishes; unless the peer then reset the
      // stream (a client that gave up waiting for our end): then nothing is left to finish.
      if (this.localEnd) this.finish();
      else if ((this.h2.rstCode ?? h2c.NGHTTP2_NO_ERROR) !== h2c.NGHTTP2_NO_ERROR) this.destroy(this.resetError());
      return;
    }
    if (this.h2.readableEnded || this.h2.rstCode !== undefined) this.destroy(this.resetError());
    // Otherwise the readable side still holds data for a paused reader; 'end' follows once it is read.
  }

  protected resetError(): KonnectivityError {
    const code = this.h2.rstCode ?? h2c.NGHTTP2_NO_ERROR;
    return code === h2c.NGHTTP2_NO_ERROR
      ? streamClosedError('the peer closed the stream')
      : new KonnectivityError(ErrorCode.STREAM_CLOSED, `the peer reset the stream (HTTP/2 error code ${code})`);
  }
}
