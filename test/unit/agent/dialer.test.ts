import net from 'node:net';
import { describe, expect, it, vi } from 'vitest';
import { directDialOf, goDialError, tcpDialer } from '../../../src/agent/dialer.js';
import { refusedAddress } from '../../helpers/sockets.js';

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

describe('tcpDialer sockets', () => {
  it('connect without Nagle (noDelay) and resolve with the connected socket', async () => {
    const server = net.createServer((s) => s.end());
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const connect = vi.spyOn(net, 'connect');
    try {
      const socket = (await tcpDialer()({ address: `127.0.0.1:${(server.address() as net.AddressInfo).port}`, protocol: 'tcp', signal: new AbortController().signal })) as net.Socket;
      expect(connect).toHaveBeenCalledTimes(1);
      expect(connect.mock.calls[0]![0]).toMatchObject({ host: '127.0.0.1', noDelay: true });
      expect(socket.remotePort).toBe((server.address() as net.AddressInfo).port);
      socket.destroy();
    } finally {
      connect.mockRestore();
      server.close();
    }
  });

  it('has a callback form without a Promise or an AbortSignal, which the agent uses, and can cancel it', async () => {
    const direct = directDialOf(tcpDialer());
    expect(direct).toBeTypeOf('function');
    const refused = await refusedAddress();
    const err = await new Promise<Error | undefined>((resolve) => direct!(refused, 'tcp', { dialed: (e) => resolve(e) }));
    expect(err?.message).toBe(`dial tcp ${refused}: connect: connection refused`);
    // A cancelled dial never calls back.
    let called = false;
    direct!('127.0.0.1:1', 'tcp', { dialed: () => (called = true) }).cancel();
    await new Promise((r) => setTimeout(r, 50));
    expect(called).toBe(false);
    // A dial that fails before it starts reports asynchronously, and can be cancelled as well.
    let early = false;
    direct!('no-port', 'tcp', { dialed: () => (early = true) }).cancel();
    const bad = await new Promise<Error | undefined>((resolve) => direct!('no-port', 'tcp', { dialed: (e) => resolve(e) }));
    expect(bad?.message).toBe('dial tcp no-port: address no-port: missing port in address');
    expect(early).toBe(false);
    // A dialer of the caller's own has none: the agent calls it with a signal.
    expect(directDialOf(async () => new net.Socket())).toBeUndefined();
  });
});
