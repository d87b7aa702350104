/**
 * gRPC status codes and the mapping between them and our error codes. Pure: no I/O.
 */
import { ErrorCode, KonnectivityError } from '../../protocol/errors.js';

/** The gRPC status codes we send or interpret (numbers are the wire values). */
export const GrpcStatus = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  RESOURCE_EXHAUSTED: 8,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  UNAUTHENTICATED: 16,
} as const;

const STATUS_NAMES: Record<number, string> = {
  0: 'OK',
  1: 'CANCELLED',
  2: 'UNKNOWN',
  3: 'INVALID_ARGUMENT',
  4: 'DEADLINE_EXCEEDED',
  5: 'NOT_FOUND',
  6: 'ALREADY_EXISTS',
  7: 'PERMISSION_DENIED',
  8: 'RESOURCE_EXHAUSTED',
  9: 'FAILED_PRECONDITION',
  10: 'ABORTED',
  11: 'OUT_OF_RANGE',
  12: 'UNIMPLEMENTED',
  13: 'INTERNAL',
  14: 'UNAVAILABLE',
  15: 'DATA_LOSS',
  16: 'UNAUTHENTICATED',
};

/** The name of a gRPC status code (`UNAUTHENTICATED`), or `CODE(n)`. */
export function grpcStatusName(code: number): string {
  return STATUS_NAMES[code] ?? `CODE(${code})`;
}

/** The gRPC status a local error is reported to the peer with. */
export function statusForError(err: Error | undefined): number {
  if (!err) return GrpcStatus.OK;
  switch ((err as KonnectivityError).code) {
    case ErrorCode.UNAUTHENTICATED:
      return GrpcStatus.UNAUTHENTICATED;
    case ErrorCode.PROTOCOL:
      return GrpcStatus.INVALID_ARGUMENT;
    case ErrorCode.SHUTTING_DOWN:
      return GrpcStatus.UNAVAILABLE;
    case ErrorCode.MESSAGE_TOO_LARGE:
    case ErrorCode.LIMIT_EXCEEDED:
      return GrpcStatus.RESOURCE_EXHAUSTED;
    default:
      // Including ERR_MALFORMED_PACKET: grpc-go answers a message it cannot unmarshal with INTERNAL.
      return GrpcStatus.INTERNAL;
  }
}

/** A handler's failure as our error (anything that is not one already is ERR_REMOTE, with it as the cause). */
export function asKonnectivityError(err: unknown): KonnectivityError {
  if (err instanceof KonnectivityError) return err;
  return new KonnectivityError(ErrorCode.REMOTE, err instanceof Error ? err.message : String(err), { cause: err });
}

/** The error a peer's non-OK status becomes on our side. */
export function errorForStatus(code: number, message: string): KonnectivityError {
  const text = `${grpcStatusName(code)}: ${message || 'no message'}`;
  switch (code) {
    case GrpcStatus.UNAUTHENTICATED:
      return new KonnectivityError(ErrorCode.UNAUTHENTICATED, text);
    case GrpcStatus.INVALID_ARGUMENT:
    case GrpcStatus.UNIMPLEMENTED:
      return new KonnectivityError(ErrorCode.PROTOCOL, text);
    case GrpcStatus.RESOURCE_EXHAUSTED:
      return new KonnectivityError(ErrorCode.MESSAGE_TOO_LARGE, text);
    case GrpcStatus.UNAVAILABLE:
      return new KonnectivityError(ErrorCode.SHUTTING_DOWN, text);
    default:
      return new KonnectivityError(ErrorCode.REMOTE, text);
  }
}

/**
 * Percent-encode a `grpc-message` as the gRPC HTTP/2 spec asks: UTF-8 bytes outside printable ASCII (0x20-0x7E)
 * and `%` itself become `%XX`.
 */
export function encodeGrpcMessage(message: string): string {
  const bytes = Buffer.from(message, 'utf8');
  let out = '';
  for (const b of bytes) {
    if (b >= 0x20 && b <= 0x7e && b !== 0x25) out += String.fromCharCode(b);
    else out += '%' + b.toString(16).toUpperCase().padStart(2, '0');
  }
  return out;
}

/** Undo {@link encodeGrpcMessage}; malformed escapes are kept as they are (the spec says never fail on them). */
export function decodeGrpcMessage(value: string): string {
  if (!value.includes('%')) return value;
  const bytes: number[] = [];
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c === 0x25 && i + 2 < value.length && /^[0-9a-fA-F]{2}$/.test(value.slice(i + 1, i + 3))) {
      bytes.push(parseInt(value.slice(i + 1, i + 3), 16));
      i += 2;
    } else bytes.push(...Buffer.from(value[i]!, 'utf8'));
  }
  return Buffer.from(bytes).toString('utf8');
}
