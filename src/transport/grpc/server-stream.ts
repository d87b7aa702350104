/** The server end of a gRPC call (`/AgentService/Connect`, `/ProxyService/Proxy`), and the trailers-only refusal. */
import { constants as h2c, type ServerHttp2Stream } from 'node:http2';
import { streamClosedError, type Metadata } from '../packet-stream.js';
import { NODE_PEER_HEADER, NODE_PEER_VALUE } from './headers.js';
import type { ResolvedStreamOptions } from './options.js';
import { GrpcStatus, encodeGrpcMessage, statusForError } from './status.js';
import { GrpcPacketStreamBase, type PartialMessageBudget } from './stream.js';

/** The call an http2 stream carries, for the shared listeners. */
const CALL = Symbol('konnectivity.grpcCall');
type OwnedStream = ServerHttp2Stream & { [CALL]?: GrpcServerPacketStream };

/** How long a server stream that failed waits for its error status to reach the peer before it is reset. */
const STATUS_FLUSH_TIMEOUT_MS = 1000;

/**
 * The server end of a call: answers with response headers at accept time and with `grpc-status` trailers when it
 * ends (OK on close(), the error's status on destroy(err)).
 */
export class GrpcServerPacketStream extends GrpcPacketStreamBase {
  /** The call's request metadata (headers). */
  readonly remoteMetadata: Metadata;
  /** The HTTP/2 connection the call is on: every call of one client connection shares it. */
  readonly sharedConnection: object | undefined;
  /** The status the call fails with; none (OK) unless it failed. */
  private failure: { code: number; message: string } | undefined;

  constructor(h2: ServerHttp2Stream, remoteAddress: string, metadata: Metadata, options: ResolvedStreamOptions, budget?: PartialMessageBudget) {
    super(h2, remoteAddress, options, budget);
    this.remoteMetadata = metadata;
    this.sharedConnection = h2.session;
    // Shared listeners, node calls them with the http2 stream as `this`: no closures per call.
    (h2 as OwnedStream)[CALL] = this;
    h2.on('wantTrailers', GrpcServerPacketStream.wantTrailers);
    h2.on('close', GrpcServerPacketStream.h2Closed);
  }

  private static wantTrailers(this: OwnedStream): void {
    this[CALL]!.sendTrailers();
  }

  private static h2Closed(this: OwnedStream): void {
    this[CALL]!.onH2Close();
  }

  /** Send response headers now and start the call. */
  start(responseHeaders: Record<string, string | string[]>): void {
    const h2 = this.h2 as ServerHttp2Stream;
    if (h2.destroyed || h2.closed) {
      this.destroy(streamClosedError('the peer closed the stream before it was accepted'));
      return;
    }
    h2.respond(
      { ':status': 200, 'content-type': 'application/grpc', [NODE_PEER_HEADER]: NODE_PEER_VALUE, ...responseHeaders },
      { waitForTrailers: true },
    );
    this.startReading();
  }

  protected endLocal(): void {
    // The peer may have closed the call already (ended, then reset): nothing to end, finish now.
    if (this.h2.destroyed || this.h2.closed) {
      queueMicrotask(() => this.maybeFinish());
      return;
    }
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
    const failure = (this.failure = { code: statusForError(err), message: err.message });
    if (!h2.headersSent) {
      respondTrailersOnly(h2, failure.code, failure.message);
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
    const failure = this.failure;
    const trailers: Record<string, string> = { 'grpc-status': String(failure?.code ?? GrpcStatus.OK) };
    if (failure?.message) trailers['grpc-message'] = encodeGrpcMessage(failure.message);
    h2.sendTrailers(trailers);
    // After an error status the call is over even if the peer keeps sending (grpc-go resets with NO_ERROR too).
    if ((failure !== undefined && failure.code !== GrpcStatus.OK) || this.remoteEnd) {
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
