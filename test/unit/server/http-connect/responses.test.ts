import { describe, expect, it } from 'vitest';
import { ErrorCode, KonnectivityError } from '../../../../src/protocol/errors.js';
import {
  badRequestResponse,
  CONNECT_ESTABLISHED,
  dialErrorResponse,
  formatErrorResponse,
  headerTooLargeResponse,
  mapDialErrorToHttpStatus,
} from '../../../../src/server/frontends/http-connect/responses.js';

describe('mapDialErrorToHttpStatus (the reference mapDialErrorToHTTPStatus)', () => {
  it.each([
    ['dial tcp 10.0.0.1:443: i/o timeout', 504],
    ['context deadline exceeded', 504],
    ['dial tcp: lookup x on 10.96.0.10:53: read udp: timeout', 504],
    ['dial tcp 127.0.0.1:80: socket: too many open files', 503],
    ['dial tcp 127.0.0.1:1: connect: connection refused', 502],
    ['read tcp 1.2.3.4:5: connection reset by peer', 502],
    ['dial tcp 10.0.0.1:443: connect: no route to host', 502],
    ['dial tcp: lookup nowhere.invalid: no such host', 502],
    ['tls: failed to verify certificate', 502],
    ['something else entirely', 502],
    ['', 502],
  ])('%j -> %i', (text, status) => {
    expect(mapDialErrorToHttpStatus(text)).toBe(status);
  });
});

describe('dialErrorResponse', () => {
  const err = (code: ErrorCode, message: string): KonnectivityError => new KonnectivityError(code, message);

  it('maps every engine dial error', () => {
    expect(dialErrorResponse(err(ErrorCode.NO_AGENT, 'No agent available'))).toEqual({
      statusCode: 500,
      contentType: 'text/plain',
      body: 'currently no tunnels available: No agent available',
    });
    expect(dialErrorResponse(err(ErrorCode.DIAL_FAILED, 'dial tcp 1.2.3.4:5: i/o timeout'))).toMatchObject({
      statusCode: 504,
      body: 'dial tcp 1.2.3.4:5: i/o timeout',
    });
    expect(dialErrorResponse(err(ErrorCode.TUNNEL_CLOSED, 'agent gone'))).toMatchObject({
      statusCode: 502,
      body: 'Backend context error: agent gone',
    });
    expect(dialErrorResponse(err(ErrorCode.DIAL_TIMEOUT, 'timed out waiting for backend dial'))).toMatchObject({
      statusCode: 504,
      body: 'Backend dial timeout: timed out waiting for backend dial',
    });
    expect(dialErrorResponse(err(ErrorCode.SHUTTING_DOWN, 'bye'))).toMatchObject({ statusCode: 503, body: 'bye' });
    expect(dialErrorResponse(new Error('write EPIPE'))).toMatchObject({
      statusCode: 502,
      body: 'Failed to tunnel dial request: write EPIPE',
    });
    expect(dialErrorResponse('not an error')).toMatchObject({ statusCode: 502 });
  });
});

describe('formatErrorResponse', () => {
  it('writes the reference bytes', () => {
    expect(CONNECT_ESTABLISHED).toBe('HTTP/1.1 200 Connection Established\r\n\r\n');
    expect(formatErrorResponse(dialErrorResponse(new KonnectivityError(ErrorCode.NO_AGENT, 'x')))).toBe(
      'HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\n\r\ncurrently no tunnels available: No agent available',
    );
    expect(formatErrorResponse(badRequestResponse(), true)).toBe(
      'HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n400 Bad Request',
    );
    expect(formatErrorResponse(headerTooLargeResponse(), true)).toBe(
      'HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n' +
        '431 Request Header Fields Too Large',
    );
  });
});
