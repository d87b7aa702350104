/** The client's pure parts: the proxy's response header parser and the status-to-error mapping. */
import { describe, expect, it } from 'vitest';
import { httpConnectError, parseConnectResponseHead } from '../../../src/client/http-connect.js';
import { ErrorCode, KonnectivityError } from '../../../src/protocol/errors.js';

describe('parseConnectResponseHead', () => {
  it('parses the 200 and says where the tunnel bytes start', () => {
    const data = Buffer.from('HTTP/1.1 200 Connection Established\r\n\r\nbanner');
    expect(parseConnectResponseHead(data)).toEqual({ statusCode: 200, statusText: 'Connection Established', headers: {}, headerBytes: 39 });
  });

  it('waits for the whole header, at every split', () => {
    const text = Buffer.from('HTTP/1.0 502 Bad Gateway\r\nContent-Type: text/plain\r\nX-A: 1\r\nx-a: 2\r\n\r\nbody');
    const end = text.indexOf('\r\n\r\n') + 4;
    for (let i = 0; i < text.length; i++) {
      const head = parseConnectResponseHead(text.subarray(0, i));
      if (i < end) expect(head).toBeUndefined();
      else expect(head).toEqual({ statusCode: 502, statusText: 'Bad Gateway', headers: { 'content-type': 'text/plain', 'x-a': '1, 2' }, headerBytes: end });
    }
  });

  it.each(['SSH-2.0-OpenSSH\r\n\r\n', 'HTTP/2 200\r\n\r\n', 'HTTP/1.1 20 OK\r\n\r\n', 'HTTP/1.1 200 OK\r\nbad header\r\n\r\n'])(
    'refuses %j with ERR_PROTOCOL',
    (text) => {
      expect(() => parseConnectResponseHead(Buffer.from(text))).toThrow(KonnectivityError);
    },
  );

  it('accepts a status line without a reason phrase', () => {
    expect(parseConnectResponseHead(Buffer.from('HTTP/1.1 200\r\n\r\n'))?.statusText).toBe('');
  });
});

describe('httpConnectError', () => {
  it.each([
    [500, 'currently no tunnels available: No agent available', ErrorCode.NO_AGENT, 'endpoint'],
    [502, 'dial tcp 127.0.0.1:1: connect: connection refused', ErrorCode.DIAL_FAILED, 'endpoint'],
    [504, 'dial tcp 10.0.0.1:443: i/o timeout', ErrorCode.DIAL_FAILED, 'endpoint'],
    [503, 'dial tcp: socket: too many open files', ErrorCode.DIAL_FAILED, 'endpoint'],
    [504, 'Backend dial timeout: timed out waiting for backend dial', ErrorCode.DIAL_TIMEOUT, 'timeout'],
    [502, 'Backend context error: tunnel closed', ErrorCode.TUNNEL_CLOSED, 'tunnelclosed'],
    [407, 'Proxy Authentication Required', ErrorCode.UNAUTHENTICATED, undefined],
    [405, 'this proxy only supports CONNECT passthrough\n', ErrorCode.REMOTE, undefined],
    [400, '400 Bad Request', ErrorCode.REMOTE, undefined],
  ])('%i %j -> %s', (status, body, code, reason) => {
    const err = httpConnectError(status, 'Status', body);
    expect(err.code).toBe(code);
    expect(err.reason).toBe(reason);
    expect(err.statusCode).toBe(status);
    expect(err.body).toBe(body);
  });

  it('uses the agent text alone as the message of ERR_DIAL_FAILED', () => {
    expect(httpConnectError(502, 'Bad Gateway', 'dial tcp 1.2.3.4:5: connect: connection refused').message).toBe(
      'dial tcp 1.2.3.4:5: connect: connection refused',
    );
    expect(httpConnectError(500, 'Internal Server Error', 'currently no tunnels available: No agent available').message).toBe(
      'HTTP-CONNECT proxy answered 500 Internal Server Error: currently no tunnels available: No agent available',
    );
  });
});
