import { describe, expect, it } from 'vitest';
import { goDialError, tcpDialer } from '../../../src/agent/dialer.js';

describe('goDialError', () => {
  it('renders Node errors as Go net.Dial text', () => {
    const e = (code: string, extra: object = {}) => Object.assign(new Error(code), { code, ...extra });
    expect(goDialError('tcp', '127.0.0.1:1', e('ECONNREFUSED', { address: '127.0.0.1', port: 1 }))).toBe(
      'dial tcp 127.0.0.1:1: connect: connection refused',
    );
    expect(goDialError('tcp', 'localhost:1', e('ECONNREFUSED', { address: '::1', port: 1 }))).toBe(
      'dial tcp [::1]:1: connect: connection refused',
    );
    expect(goDialError('tcp', '10.0.0.1:443', e('ETIMEDOUT'))).toBe('dial tcp 10.0.0.1:443: i/o timeout');
    expect(goDialError('tcp', 'nosuch.invalid:80', e('ENOTFOUND'))).toBe('dial tcp: lookup nosuch.invalid: no such host');
    expect(goDialError('tcp', '10.0.0.1:80', e('EHOSTUNREACH'))).toBe('dial tcp 10.0.0.1:80: connect: no route to host');
    expect(goDialError('tcp', '10.0.0.1:80', e('EMFILE'))).toBe('dial tcp 10.0.0.1:80: socket: too many open files');
  });
});

describe('tcpDialer', () => {
  const dial = (address: string, protocol = 'tcp') => tcpDialer()({ address, protocol, signal: new AbortController().signal });
  it('rejects bad addresses and protocols with Go text', async () => {
    await expect(dial('127.0.0.1')).rejects.toThrow('dial tcp 127.0.0.1: address 127.0.0.1: missing port in address');
    await expect(dial('127.0.0.1:99999')).rejects.toThrow('dial tcp 127.0.0.1:99999: address 99999: invalid port');
    await expect(dial('127.0.0.1:80', 'udp')).rejects.toThrow('dial udp 127.0.0.1:80: unknown network udp');
  });
  it('an aborted dial says so', async () => {
    const ac = new AbortController();
    ac.abort();
    await expect(tcpDialer()({ address: '127.0.0.1:1', protocol: 'tcp', signal: ac.signal })).rejects.toThrow(
      'dial tcp 127.0.0.1:1: operation was canceled',
    );
  });
});
