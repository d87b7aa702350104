/**
 * The raw HTTP/1.1 responses of the HTTP-CONNECT frontend, byte for byte as the reference writes them on the
 * hijacked socket (PROTOCOL.md §3.1). Pure: no I/O.
 */
import { ErrorCode, isKonnectivityError } from '../../../protocol/errors.js';

/** Written only after the agent's DIAL_RSP succeeded; no headers, as the reference (v0.34.0+). */
export const CONNECT_ESTABLISHED = 'HTTP/1.1 200 Connection Established\r\n\r\n';

/** The body of the 500 when no agent fits the dial. */
export const NO_AGENT_BODY = 'currently no tunnels available: No agent available';

/** The body of the 405 for any method other than CONNECT (Go's `http.Error` adds the newline). */
export const METHOD_NOT_ALLOWED_BODY = 'this proxy only supports CONNECT passthrough\n';

const TEXT_PLAIN = 'text/plain';
const TEXT_PLAIN_UTF8 = 'text/plain; charset=utf-8';

const STATUS_TEXT: Readonly<Record<number, string>> = {
  400: 'Bad Request',
  403: 'Forbidden',
  405: 'Method Not Allowed',
  408: 'Request Timeout',
  431: 'Request Header Fields Too Large',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};

/** An error response to write on the raw socket before closing it. */
export interface ErrorResponse {
  /** The HTTP status. */
  statusCode: number;
  /** The `Content-Type` header. */
  contentType: string;
  /** The response body. */
  body: string;
}

/**
 * The reference's `mapDialErrorToHTTPStatus` (v0.34.0+): a substring match on the agent's dial error text.
 * Timeouts give 504, descriptor exhaustion 503, everything else (refused, reset, unreachable, DNS, TLS) 502.
 */
export function mapDialErrorToHttpStatus(errorText: string): 502 | 503 | 504 {
  if (errorText.includes('i/o timeout') || errorText.includes('deadline exceeded') || errorText.includes('timeout')) {
    return 504;
  }
  // Ours beside Go's: an agent at its pending-dial limit.
  if (errorText.includes('too many open files') || errorText.includes('too many pending dials')) return 503;
  return 502;
}

/**
 * The response for a failed dial, from the engine's error codes:
 * - ERR_NO_AGENT: 500 `currently no tunnels available: No agent available` (`text/plain`, no charset);
 * - ERR_DIAL_FAILED: 502/503/504 by the error text, body = the agent's error text;
 * - ERR_TUNNEL_CLOSED: 502 `Backend context error: ...` (the agent stream died while the dial was pending);
 * - ERR_DIAL_TIMEOUT: 504 `Backend dial timeout: ...`;
 * - ERR_SHUTTING_DOWN, ERR_LIMIT_EXCEEDED: 503 with the message;
 * - anything else: 502 `Failed to tunnel dial request: ...` (the DIAL_REQ could not be sent).
 */
export function dialErrorResponse(err: unknown): ErrorResponse {
  const message = err instanceof Error ? err.message : String(err);
  if (isKonnectivityError(err)) {
    switch (err.code) {
      case ErrorCode.NO_AGENT:
        return { statusCode: 500, contentType: TEXT_PLAIN, body: NO_AGENT_BODY };
      case ErrorCode.DIAL_FAILED:
        return { statusCode: mapDialErrorToHttpStatus(message), contentType: TEXT_PLAIN_UTF8, body: message };
      case ErrorCode.TUNNEL_CLOSED:
        return { statusCode: 502, contentType: TEXT_PLAIN_UTF8, body: `Backend context error: ${message}` };
      case ErrorCode.DIAL_TIMEOUT:
        return { statusCode: 504, contentType: TEXT_PLAIN_UTF8, body: `Backend dial timeout: ${message}` };
      case ErrorCode.SHUTTING_DOWN:
      case ErrorCode.LIMIT_EXCEEDED:
        return { statusCode: 503, contentType: TEXT_PLAIN_UTF8, body: message };
      default:
        break;
    }
  }
  return { statusCode: 502, contentType: TEXT_PLAIN_UTF8, body: `Failed to tunnel dial request: ${message}` };
}

/** The 400 Go's server writes for an unparsable request (and we write for a bad CONNECT authority). */
export function badRequestResponse(body = '400 Bad Request'): ErrorResponse {
  return { statusCode: 400, contentType: TEXT_PLAIN_UTF8, body };
}

/** The 431 Go's server writes when the request header is larger than its limit. */
export function headerTooLargeResponse(): ErrorResponse {
  return { statusCode: 431, contentType: TEXT_PLAIN_UTF8, body: '431 Request Header Fields Too Large' };
}

/** A client whose certificate was refused (ours: the reference refuses it in the TLS handshake, with no reason). */
export function forbiddenResponse(reason: string): ErrorResponse {
  return { statusCode: 403, contentType: TEXT_PLAIN_UTF8, body: reason };
}

/**
 * Serialise an error response as the reference does on a hijacked connection: status line, Content-Type, blank
 * line, body; no Content-Length (the close delimits the body). `connectionClose` adds `Connection: close`, which
 * Go's server sends with its 400.
 */
export function formatErrorResponse(response: ErrorResponse, connectionClose = false): string {
  const text = STATUS_TEXT[response.statusCode] ?? 'Error';
  const close = connectionClose ? 'Connection: close\r\n' : '';
  return `HTTP/1.1 ${response.statusCode} ${text}\r\nContent-Type: ${response.contentType}\r\n${close}\r\n${response.body}`;
}
