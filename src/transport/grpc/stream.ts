/**
 * One gRPC bidirectional-streaming call (`stream Packet` both ways) over a node:http2 stream, as a PacketStream.
 *
 * Messages are the 5-byte gRPC prefix plus an encoded Packet, written as one buffer (the codec reserves the prefix).
 * Received bytes go through GrpcMessageDecoder; DATA payloads are views of the received chunk. pause() pauses the
 * http2 stream, so node stops returning flow-control credit and the peer's HTTP/2 window fills.
 */
import { constants as h2c, type Http2Stream, type ServerHttp2Stream, type ClientHttp2Stream } from 'node:http2';
import type { IncomingHttpHeaders } from 'node:http2';
import { decodePacket } from '../../protocol/decode.js';
import { encodeDataHeader, encodePacket } from '../../protocol/encode.js';
import { ErrorCode, KonnectivityError } from '../../protocol/errors.js';
import { PacketType, type DataPacket, type Packet } from '../../protocol/packet.js';
import { ENCODED, type WithEncoded } from '../../protocol/wire.js';
import { AbstractPacketStream, streamClosedError, type Metadata } from '../packet-stream.js';
import { GRPC_PREFIX_BYTES, GrpcMessageDecoder, grpcPrefix, writeGrpcPrefix } from './framing.js';
import { headerValue, metadataFromRawHeaders } from './headers.js';
import type { ResolvedStreamOptions } from './options.js';
import { GrpcStatus, decodeGrpcMessage, encodeGrpcMessage, errorForStatus, statusForError } from './status.js';

/** How long a server stream that failed waits for its error status to reach the peer before it is reset. */
const STATUS_FLUSH_TIMEOUT_MS = 1000;
/** DATA payloads from this size up are written beside their envelope rather than copied into it. */
const SEPARATE_PAYLOAD_BYTES = 4096;

/** The common part of both ends: framing, backpressure, pause. */
abstract class GrpcPacketStreamBase extends AbstractPacketStream {
  readonly remoteAddress: string;
  protected readonly decoder: GrpcMessageDecoder;
  private readonly hwm: number;
  private readonly maxSendBytes: number;

  constructor(
    protected readonly h2: Http2Stream,
    remoteAddress: string,
    options: ResolvedStreamOptions,
  ) {
    super();
    this.remoteAddress = remoteAddress;
    this.decoder = new GrpcMessageDecoder({ maxMessageBytes: options.maxMessageBytes });
    this.hwm = options.highWaterMarkBytes;
    this.maxSendBytes = options.maxMessageBytes;
    h2.on('drain', () => this.emitDrain());
    // Errors reach us through 'close' (with rstCode) or through onH2Error; never leave 'error' unhandled.
    h2.on('error', (err: Error) => this.onH2Error(err));
  }

  /** Begin reading from the http2 stream (after the call was accepted). */
  protected startReading(): void {
    this.h2.on('data', (chunk: Buffer) => this.onChunk(chunk));
    this.h2.on('end', () => this.onH2End());
    if (this.isPaused) this.h2.pause();
  }

  protected sendPacket(packet: Packet): boolean {
    if (this.h2.destroyed || !this.h2.writable) return false;
    // Large payloads are never copied: the envelope and the payload (or a forwarded packet's received bytes) go
    // out as two buffers in one writev.
    const kept = (packet as WithEncoded)[ENCODED];
    const data = packet.type === PacketType.DATA ? (packet as DataPacket).data : undefined;
    let head: Buffer;
    let body: Uint8Array | undefined;
    if (kept !== undefined) {
      head = grpcPrefix(kept.length);
      body = kept;
    } else if (data && data.data.length >= SEPARATE_PAYLOAD_BYTES && data.error === '') {
      head = encodeDataHeader(data.connectID, data.data.length, GRPC_PREFIX_BYTES);
      body = data.data;
      writeGrpcPrefix(head, head.length - GRPC_PREFIX_BYTES + body.length);
    } else {
      head = encodePacket(packet, { reserve: GRPC_PREFIX_BYTES });
      writeGrpcPrefix(head, head.length - GRPC_PREFIX_BYTES);
    }
    const length = head.length - GRPC_PREFIX_BYTES + (body?.length ?? 0);
    if (length > this.maxSendBytes) {
      // The peer would refuse it and fail the whole call; fail here with a clear error instead.
      const err = new KonnectivityError(
        ErrorCode.MESSAGE_TOO_LARGE,
        `trying to send message larger than max (${length} vs. ${this.maxSendBytes})`,
      );
      queueMicrotask(() => this.destroy(err));
      return false;
    }
    if (body === undefined) {
      this.h2.write(head);
    } else {
      this.h2.cork();
      this.h2.write(head);
      this.h2.write(body);
      this.h2.uncork();
    }
    // node counts what its socket has not taken yet; its 'drain' follows once that is written.
    return this.h2.writableLength <= this.hwm;
  }

  protected override pauseSource(): void {
    this.h2.pause();
  }

  protected override resumeSource(): void {
    this.h2.resume();
  }

  private onChunk(chunk: Buffer): void {
    if (this.closed && this.errored) return;
    let messages: Buffer[];
    try {
      messages = this.decoder.push(chunk);
    } catch (err) {
      this.destroy(err as Error);
      return;
    }
    for (const m of messages) {
      let packet: Packet;
      try {
        // Keep the received bytes, so a packet forwarded unchanged (agent DATA to a gRPC frontend) is not re-encoded.
        packet = decodePacket(m, { keepEncoded: true });
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
      // When the peer finished first and we have not ended yet, close() finishes.
      if (this.localEnd) this.finish();
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

/**
 * The server end of a call: answers with response headers at accept time and with `grpc-status` trailers when it
 * ends (OK on close(), the error's status on destroy(err)).
 */
export class GrpcServerPacketStream extends GrpcPacketStreamBase {
  readonly remoteMetadata: Metadata;
  private status: { code: number; message: string } = { code: GrpcStatus.OK, message: '' };

  constructor(h2: ServerHttp2Stream, remoteAddress: string, metadata: Metadata, options: ResolvedStreamOptions) {
    super(h2, remoteAddress, options);
    this.remoteMetadata = metadata;
    h2.on('wantTrailers', () => this.sendTrailers());
    h2.on('close', () => this.onH2Close());
  }

  /** Send response headers now and start the call. */
  start(responseHeaders: Record<string, string | string[]>): void {
    const h2 = this.h2 as ServerHttp2Stream;
    if (h2.destroyed || h2.closed) {
      this.destroy(streamClosedError('the peer closed the stream before it was accepted'));
      return;
    }
    h2.respond({ ':status': 200, 'content-type': 'application/grpc', ...responseHeaders }, { waitForTrailers: true });
    this.startReading();
  }

  protected endLocal(): void {
    this.h2.end();
  }

  protected remoteEndedCleanly(): boolean {
    const rst = this.h2.rstCode;
    return rst === undefined || rst === h2c.NGHTTP2_NO_ERROR;
  }

  protected destroyTransport(err: Error | undefined): void {
    const h2 = this.h2 as ServerHttp2Stream;
    if (h2.destroyed || h2.closed) return;
    if (!err) {
      // After a clean finish nothing lingers; destroy() without a reason is an abort the peer must notice.
      h2.close(this.localEnd && this.remoteEnd ? h2c.NGHTTP2_NO_ERROR : h2c.NGHTTP2_CANCEL);
      return;
    }
    this.status = { code: statusForError(err), message: err.message };
    if (!h2.headersSent) {
      respondTrailersOnly(h2, this.status.code, this.status.message);
      return;
    }
    // Give the status a moment to reach the peer, then reset whatever is left (a peer that reads nothing).
    const timer = setTimeout(() => {
      if (!h2.destroyed) h2.close(h2c.NGHTTP2_CANCEL);
    }, STATUS_FLUSH_TIMEOUT_MS);
    timer.unref();
    h2.once('close', () => clearTimeout(timer));
    if (h2.writable) h2.end();
    else h2.close(h2c.NGHTTP2_CANCEL);
  }

  private sendTrailers(): void {
    const h2 = this.h2 as ServerHttp2Stream;
    const trailers: Record<string, string> = { 'grpc-status': String(this.status.code) };
    if (this.status.message) trailers['grpc-message'] = encodeGrpcMessage(this.status.message);
    h2.sendTrailers(trailers);
    // After an error status the call is over even if the peer keeps sending (grpc-go resets with NO_ERROR too).
    if (this.status.code !== GrpcStatus.OK || this.remoteEnd) {
      setImmediate(() => {
        if (!h2.destroyed && !h2.closed) h2.close(h2c.NGHTTP2_NO_ERROR);
      });
    }
  }
}

/** Answer a call with a status and no messages: one HEADERS frame with END_STREAM. */
export function respondTrailersOnly(h2: ServerHttp2Stream, code: number, message: string): void {
  if (h2.destroyed || h2.closed || h2.headersSent) return;
  const headers: Record<string, string | number> = {
    ':status': 200,
    'content-type': 'application/grpc',
    'grpc-status': String(code),
  };
  if (message) headers['grpc-message'] = encodeGrpcMessage(message);
  h2.respond(headers, { endStream: true });
  // The peer may still be sending; the call is over.
  setImmediate(() => {
    if (!h2.destroyed && !h2.closed) h2.close(h2c.NGHTTP2_NO_ERROR);
  });
}

/**
 * The client end of a call. `remoteMetadata` is the server's response headers once they arrived ({} before);
 * `ready` resolves then. The server's non-OK `grpc-status` fails the stream with the matching KonnectivityError.
 */
export class GrpcClientStream extends GrpcPacketStreamBase {
  remoteMetadata: Metadata = {};

  /** The HTTP/2 connection is open and not going away (node closes a session once GOAWAY arrives). */
  override get transportReady(): boolean {
    const session = this.h2.session;
    return super.transportReady && session !== undefined && !session.closed && !session.destroyed;
  }

  /** Resolves when the server's response headers arrive; rejects when the call fails first. */
  readonly ready: Promise<void>;
  private statusSeen = false;
  private responded = false;

  constructor(
    h2: ClientHttp2Stream,
    remoteAddress: string,
    options: ResolvedStreamOptions,
    private readonly connectionFailure: () => Error | undefined = () => undefined,
  ) {
    super(h2, remoteAddress, options);
    h2.on('trailers', (headers: IncomingHttpHeaders) => this.onStatus(headers));
    h2.on('close', () => this.onH2Close());
    this.ready = new Promise<void>((resolve, reject) => {
      h2.once('response', (headers: IncomingHttpHeaders, flags: number, rawHeaders?: string[]) => {
        const endStream = (flags & h2c.NGHTTP2_FLAG_END_STREAM) !== 0;
        const err = this.onResponse(headers, metadataFromRawHeaders(rawHeaders ?? []), endStream);
        if (err) reject(err);
        else resolve();
      });
      this.once('close', (err) => reject(err ?? streamClosedError('the call closed before the server answered')));
    });
    this.ready.catch(() => {});
    this.startReading();
  }

  private onResponse(headers: IncomingHttpHeaders, metadata: Metadata, endStream: boolean): Error | undefined {
    this.responded = true;
    const status = Number(headers[':status']);
    if (status !== 200) {
      const err = new KonnectivityError(ErrorCode.PROTOCOL, `gRPC server answered HTTP status ${status}`);
      this.destroy(err);
      return err;
    }
    if (headers['grpc-status'] !== undefined || endStream) {
      // Trailers-only: the call was refused (or ended) before it started.
      return this.onStatus(headers) ?? streamClosedError('the server ended the call before it started');
    }
    const ct = headerValue(headers, 'content-type') ?? '';
    if (!ct.startsWith('application/grpc')) {
      const err = new KonnectivityError(ErrorCode.PROTOCOL, `gRPC server answered content-type ${JSON.stringify(ct)}`);
      this.destroy(err);
      return err;
    }
    this.remoteMetadata = metadata;
    return undefined;
  }

  protected endLocal(): void {
    if (this.h2.destroyed || this.h2.closed) {
      queueMicrotask(() => this.maybeFinish());
      return;
    }
    this.h2.end();
  }

  protected destroyTransport(err: Error | undefined): void {
    // CANCEL, as gRPC clients cancel a call; NO_ERROR only once both halves ended.
    const clean = !err && this.localEnd && this.remoteEnd;
    if (!this.h2.destroyed && !this.h2.closed) this.h2.close(clean ? h2c.NGHTTP2_NO_ERROR : h2c.NGHTTP2_CANCEL);
  }

  protected override onH2Error(err: Error): void {
    const failure = this.connectionFailure();
    if (failure) {
      this.destroy(failure);
      return;
    }
    // node cancels the streams of a connection that failed (TLS handshake, refused, reset) with this code.
    if ((err as NodeJS.ErrnoException).code === 'ERR_HTTP2_STREAM_CANCEL' || !this.responded) {
      const cause = (err as { cause?: unknown }).cause;
      const text = cause instanceof Error ? cause.message : err.message;
      this.destroy(new KonnectivityError(ErrorCode.TUNNEL_CLOSED, `gRPC connection to ${this.remoteAddress} failed: ${text}`, { cause: err }));
      return;
    }
    super.onH2Error(err);
  }

  protected remoteEndedCleanly(): boolean {
    return this.statusSeen;
  }

  protected override onH2Close(): void {
    const session = this.h2.session;
    if (!this.responded && !this.closed && !this.connectionFailure() && (!session || session.destroyed)) {
      // The connection failed under the call (a TLS alert after the handshake, a reset socket): node closes the
      // streams before it reports the session's error, so look again once it has.
      setImmediate(() => super.onH2Close());
      return;
    }
    super.onH2Close();
  }

  protected override resetError(): KonnectivityError {
    const failure = this.connectionFailure();
    if (failure instanceof KonnectivityError) return failure;
    const session = this.h2.session;
    if (!this.responded && (!session || session.destroyed)) {
      // E.g. a server that refused our TLS client certificate: TLS 1.3 reports that only by closing.
      return new KonnectivityError(
        ErrorCode.TUNNEL_CLOSED,
        `the gRPC connection to ${this.remoteAddress} closed before the server answered the call`,
      );
    }
    if (!this.statusSeen && (this.h2.rstCode ?? h2c.NGHTTP2_NO_ERROR) === h2c.NGHTTP2_NO_ERROR) {
      return streamClosedError('the server closed the stream without a gRPC status');
    }
    return super.resetError();
  }

  private onStatus(headers: IncomingHttpHeaders): Error | undefined {
    this.statusSeen = true;
    const raw = headerValue(headers, 'grpc-status');
    const code = raw === undefined ? GrpcStatus.UNKNOWN : Number(raw);
    if (code === GrpcStatus.OK) return undefined;
    const message =
      raw === undefined ? 'server closed the stream without sending a status' : decodeGrpcMessage(headerValue(headers, 'grpc-message') ?? '');
    const err = errorForStatus(Number.isInteger(code) ? code : GrpcStatus.UNKNOWN, message);
    this.destroy(err);
    return err;
  }
}
