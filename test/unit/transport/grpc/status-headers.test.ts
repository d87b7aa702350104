/** Pure pieces of the gRPC transport: status mapping, grpc-message encoding, metadata <-> headers, options. */
import { describe, expect, it } from 'vitest';
import { ErrorCode, KonnectivityError } from '../../../../src/protocol/errors.js';
import { headersFromMetadata, metadataFromHeaders, metadataFromRawHeaders } from '../../../../src/transport/grpc/headers.js';
import { resolveStreamOptions } from '../../../../src/transport/grpc/options.js';
import {
  DEFAULT_GRPC_UDS_WINDOW_BYTES as DEFAULT_UDS_WINDOW_BYTES,
  DEFAULT_GRPC_WINDOW_BYTES as DEFAULT_WINDOW_BYTES,
} from '../../../../src/transport/windows.js';
import {
  GrpcStatus,
  decodeGrpcMessage,
  encodeGrpcMessage,
  errorForStatus,
  grpcStatusName,
  statusForError,
} from '../../../../src/transport/grpc/status.js';

describe('grpc-message percent-encoding', () => {
  it('keeps printable ASCII and escapes % and everything else as UTF-8 bytes', () => {
    expect(encodeGrpcMessage('plain text: ok')).toBe('plain text: ok');
    expect(encodeGrpcMessage('100%')).toBe('100%25');
    expect(encodeGrpcMessage('é\n')).toBe('%C3%A9%0A');
  });
  it('round-trips any text and leaves malformed escapes alone', () => {
    for (const text of ['', 'a%b', 'ünïcode — 100%', '\u0000\u007f', '日本語', 'tab\tnew\nline']) {
      expect(decodeGrpcMessage(encodeGrpcMessage(text))).toBe(text);
    }
    expect(decodeGrpcMessage('bad %zz escape %4')).toBe('bad %zz escape %4');
  });
});

describe('status mapping', () => {
  it('maps our errors to the statuses a Go peer expects', () => {
    const e = (code: ErrorCode) => new KonnectivityError(code, 'x');
    expect(statusForError(undefined)).toBe(GrpcStatus.OK);
    expect(statusForError(e(ErrorCode.UNAUTHENTICATED))).toBe(GrpcStatus.UNAUTHENTICATED);
    expect(statusForError(e(ErrorCode.PROTOCOL))).toBe(GrpcStatus.INVALID_ARGUMENT);
    expect(statusForError(e(ErrorCode.MALFORMED_PACKET))).toBe(GrpcStatus.INTERNAL);
    expect(statusForError(e(ErrorCode.SHUTTING_DOWN))).toBe(GrpcStatus.UNAVAILABLE);
    expect(statusForError(e(ErrorCode.MESSAGE_TOO_LARGE))).toBe(GrpcStatus.RESOURCE_EXHAUSTED);
    expect(statusForError(new Error('plain'))).toBe(GrpcStatus.INTERNAL);
  });
  it("maps a peer's status to our error codes, keeping the message", () => {
    expect(errorForStatus(GrpcStatus.UNAUTHENTICATED, 'bad token')).toMatchObject({
      code: ErrorCode.UNAUTHENTICATED,
      message: 'UNAUTHENTICATED: bad token',
    });
    expect(errorForStatus(GrpcStatus.INVALID_ARGUMENT, 'x').code).toBe(ErrorCode.PROTOCOL);
    expect(errorForStatus(GrpcStatus.UNIMPLEMENTED, 'x').code).toBe(ErrorCode.PROTOCOL);
    expect(errorForStatus(GrpcStatus.RESOURCE_EXHAUSTED, 'x').code).toBe(ErrorCode.MESSAGE_TOO_LARGE);
    expect(errorForStatus(GrpcStatus.UNAVAILABLE, 'x').code).toBe(ErrorCode.SHUTTING_DOWN);
    expect(errorForStatus(42, '').message).toBe('CODE(42): no message');
    expect(grpcStatusName(5)).toBe('NOT_FOUND');
  });
});

describe('metadata and headers', () => {
  it('keeps repeated keys as separate values (a Go server counts agentid values)', () => {
    const md = metadataFromRawHeaders([
      ':method', 'POST', ':path', '/AgentService/Connect', 'content-type', 'application/grpc', 'te', 'trailers',
      'AgentID', 'a', 'agentid', 'b', 'agentidentifiers', 'host=n1', 'grpc-timeout', '1S',
    ]);
    expect(md).toEqual({ agentid: ['a', 'b'], agentidentifiers: ['host=n1'] });
  });
  it('turns metadata into header fields, one per value', () => {
    expect(headersFromMetadata({ serverid: ['s1'], servercount: ['3'], many: ['x', 'y'], none: [] })).toEqual({
      serverid: 's1',
      servercount: '3',
      many: ['x', 'y'],
    });
    expect(metadataFromHeaders({ ':status': '200', 'content-type': 'application/grpc', serverid: 's1', list: ['a', 'b'] })).toEqual({
      serverid: ['s1'],
      list: ['a', 'b'],
    });
  });
});

describe('stream options', () => {
  it('defaults windows by transport and checks ranges', () => {
    expect(resolveStreamOptions(undefined).windowBytes).toBe(DEFAULT_WINDOW_BYTES);
    expect(resolveStreamOptions(undefined, true).windowBytes).toBe(DEFAULT_UDS_WINDOW_BYTES);
    expect(resolveStreamOptions({}).maxMessageBytes).toBe(4 * 1024 * 1024);
    expect(() => resolveStreamOptions({ windowBytes: 2 ** 31 })).toThrow(/windowBytes/);
    expect(() => resolveStreamOptions({ highWaterMarkBytes: 0 })).toThrow(/highWaterMarkBytes/);
    expect(() => resolveStreamOptions({ maxMessageBytes: 1.5 })).toThrow(/maxMessageBytes/);
  });
});
