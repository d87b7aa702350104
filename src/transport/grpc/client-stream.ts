/** The client end of a gRPC call (the agent's tunnel, a gRPC frontend's client). */
import { constants as h2c, type ClientHttp2Stream, type IncomingHttpHeaders } from 'node:http2';
import { ErrorCode, KonnectivityError } from '../../protocol/errors.js';
import { streamClosedError, type Metadata } from '../packet-stream.js';
import { NODE_PEER_HEADER, NODE_PEER_VALUE, headerValue, metadataFromRawHeaders } from './headers.js';
import type { ResolvedStreamOptions } from './options.js';
import { GrpcStatus, decodeGrpcMessage, errorForStatus } from './status.js';
import type { SendBudget } from './send-budget.js';
import { GrpcPacketStreamBase } from './stream.js';

/**
 * The client end of a call. `remoteMetadata` is the server's response headers once they arrived ({} before);
 * `ready` resolves then. The server's non-OK `grpc-status` fails the stream with the matching KonnectivityError.
 */
export class GrpcClientStream extends GrpcPacketStreamBase {
  /** The server's response headers, once they arrived (`{}` before). */
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
    sendBudget?: SendBudget,
  ) {
    super(h2, remoteAddress, options, undefined, sendBudget);
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
    // A server that reads while it writes (Go) cannot be caught with us in node:http2's write stall: no send budget.
    if (headerValue(headers, NODE_PEER_HEADER) !== NODE_PEER_VALUE) this.sendBudget?.disable();
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
