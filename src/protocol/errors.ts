/**
 * One error class with stable `code` strings. Users match on `err.code`; messages may change, codes do not.
 * The README lists every code; keep the two in step.
 */
export const ErrorCode = {
  /** Bytes that are not a valid Packet (truncated, bad wire type, overlong varint). */
  MALFORMED_PACKET: 'ERR_MALFORMED_PACKET',
  /** A message or frame declared longer than the configured maximum (default 4 MiB). */
  MESSAGE_TOO_LARGE: 'ERR_MESSAGE_TOO_LARGE',
  /** A peer broke the protocol (unexpected packet, bad frame, bad handshake). */
  PROTOCOL: 'ERR_PROTOCOL',
  /** Invalid options given to a constructor or function. */
  INVALID_OPTION: 'ERR_INVALID_OPTION',
  /** A packet to send cannot be encoded (an int64 field outside the signed 64-bit range); nothing was sent. */
  INVALID_PACKET: 'ERR_INVALID_PACKET',
  /** No agent fits the dial (wire text: `No agent available`). */
  NO_AGENT: 'ERR_NO_AGENT',
  /** The agent could not reach the endpoint; `message` is the agent's error text. Client reason `endpoint`. */
  DIAL_FAILED: 'ERR_DIAL_FAILED',
  /** No DIAL_RSP in time. Client reason `timeout`. */
  DIAL_TIMEOUT: 'ERR_DIAL_TIMEOUT',
  /** The dial was aborted by the caller's signal (an AbortError, as Node's, whose `cause` is the reason). Client reason `context`. */
  ABORTED: 'ABORT_ERR',
  /** The peer closed the dial (DIAL_CLS). Client reason `dialclosed`. */
  DIAL_CLOSED: 'ERR_DIAL_CLOSED',
  /** The tunnel, stream or agent went away. Client reason `tunnelclosed`. */
  TUNNEL_CLOSED: 'ERR_TUNNEL_CLOSED',
  /** Writing to or reading from a stream that is closed or destroyed. */
  STREAM_CLOSED: 'ERR_STREAM_CLOSED',
  /** The peer refused our credentials (bad token, certificate, missing agentid). */
  UNAUTHENTICATED: 'ERR_UNAUTHENTICATED',
  /** The server or agent is shutting down. */
  SHUTTING_DOWN: 'ERR_SHUTTING_DOWN',
  /**
   * A limit was reached (pending dials, connections, partial-message bytes): this work was refused and the rest
   * goes on. HTTP-CONNECT answers 503, gRPC RESOURCE_EXHAUSTED, a gRPC frontend's dial gets a DIAL_RSP error.
   */
  LIMIT_EXCEEDED: 'ERR_LIMIT_EXCEEDED',
  /** A remote error reported by the peer's transport (gRPC status, yamux go-away). */
  REMOTE: 'ERR_REMOTE',
  /** The Kubernetes API answered with an error `Status` (see `KubeApiError.status` and `.reason`) or was unreachable. */
  KUBE_API: 'ERR_KUBE_API',
} as const;
/** One of the {@link ErrorCode} strings. */
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** The konnectivity-client failure reasons (`GetDialFailureReason`), attached to dial errors. */
export type DialFailureReason =
  | 'unknown'
  | 'timeout'
  | 'context'
  | 'endpoint'
  | 'dialclosed'
  | 'tunnelclosed'
  | 'tunnelstarted'
  | 'streamsetup';

/** Options of a {@link KonnectivityError}. */
export interface KonnectivityErrorOptions {
  /** The error behind this one (`err.cause`). */
  cause?: unknown;
  /** The client failure reason, for dial errors. */
  reason?: DialFailureReason;
}

/**
 * The one error class of the library: match on `code` (stable), not on `message` (it may change). A subclass says more:
 * {@link AbortError}, `HttpConnectError`.
 */
export class KonnectivityError extends Error {
  override readonly name: string = 'KonnectivityError';
  /** What failed, one stable {@link ErrorCode} string (`ERR_DIAL_FAILED`, `ABORT_ERR`, ...), listed in the README. */
  readonly code: ErrorCode;
  /**
   * For dial errors, the konnectivity-client failure reason (`endpoint`, `timeout`, `context`, ...); undefined
   * otherwise.
   */
  readonly reason: DialFailureReason | undefined;

  constructor(code: ErrorCode, message: string, options: KonnectivityErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.reason = options.reason;
  }
}

/** True when `err` is a KonnectivityError, optionally with the given code. */
export function isKonnectivityError(err: unknown, code?: ErrorCode): err is KonnectivityError {
  return err instanceof KonnectivityError && (code === undefined || err.code === code);
}
