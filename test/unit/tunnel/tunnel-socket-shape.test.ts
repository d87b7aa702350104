/**
 * A TunnelSocket is typed as a net.Socket, so undici's connector and an http.Agent's createConnection take it
 * without a cast; that type is honest only if every member a net.Socket adds to a Duplex is really there. The
 * assignments below fail the type-check (npm test runs tsc) if the type drifts; the test fails if a member is missing
 * at run time.
 */
import * as net from 'node:net';
import { Duplex } from 'node:stream';
import type { buildConnector } from 'undici-types';
import { describe, expect, it } from 'vitest';
import { createMemoryPair } from '../../../src/transport/memory/index.js';
import { Tunnel, TunnelSocket } from '../../../src/tunnel/index.js';

/** A TunnelSocket on one end of a memory pair; the pair goes when the socket closes. */
function socket(): TunnelSocket {
  const [a, b] = createMemoryPair();
  const tunnel = new Tunnel(a, { onPacket: () => {} });
  const s = new TunnelSocket(tunnel.open(1n), { address: '10.0.0.5:8443' });
  s.once('close', () => {
    for (const end of [a, b]) end.on('error', () => {}).destroy();
  });
  return s;
}

// Compile-time: where a net.Socket is wanted, a TunnelSocket goes as it is.
const asSocket = (s: TunnelSocket): net.Socket => s;
const undiciConnector = (s: TunnelSocket, callback: buildConnector.Callback): void => callback(null, s);
void [asSocket, undiciConnector];

describe('TunnelSocket as a net.Socket', () => {
  it('has every member a net.Socket has beyond a Duplex', () => {
    const s = socket();
    const missing = Object.getOwnPropertyNames(net.Socket.prototype)
      .filter((k) => !k.startsWith('_') && !(k in Duplex.prototype))
      .filter((k) => !(k in s));
    expect(missing).toEqual([]);
    for (const k of ['connecting', 'localAddress', 'localPort', 'localFamily', 'autoSelectFamilyAttemptedAddresses', 'timeout']) expect(k in s, k).toBe(true);
    s.destroy();
  });

  it('answers as a connected socket whose local end the tunnel hides', () => {
    const s = socket();
    expect({ pending: s.pending, connecting: s.connecting, readyState: s.readyState, address: s.address() }).toEqual({
      pending: false,
      connecting: false,
      readyState: 'open',
      address: {},
    });
    expect({ remoteAddress: s.remoteAddress, remotePort: s.remotePort, remoteFamily: s.remoteFamily, endpoint: s.endpoint }).toEqual({
      remoteAddress: '10.0.0.5',
      remotePort: 8443,
      remoteFamily: 'IPv4',
      endpoint: '10.0.0.5:8443',
    });
    expect(s.setTimeout(1000).timeout).toBe(1000);
    s.setTimeout(0);
    expect(() => s.connect(80)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION' }) as unknown as Error);
    s.resetAndDestroy();
    expect(s.destroyed).toBe(true);
    expect(s.readyState).toBe('closed');
  });
});
