/** bindEndpoint: an endpoint joined to its connection with shared listeners and no closures per connection. */
import { once } from 'node:events';
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { Tunnel, bindEndpoint, closeResponse, createMemoryPair, dataPacket, type Packet } from '../../../src/index.js';

function tunnel() {
  const [a, b] = createMemoryPair({ encode: true });
  const seen: Packet[] = [];
  b.on('packet', (p) => seen.push(p));
  return { t: new Tunnel(a, { onPacket: () => {} }), a, b, seen };
}

describe('bindEndpoint', () => {
  it('relays both ways and reports the end once, with the binding', async () => {
    const { t, a, b } = tunnel();
    const endpoint = new PassThrough();
    const done: unknown[] = [];
    const binding = bindEndpoint(t.open(1n), endpoint, closeResponse, (x) => done.push(x), 10_000);
    b.write(dataPacket(1n, Buffer.from('to the endpoint')));
    const [got] = (await once(endpoint, 'data')) as [Buffer];
    expect(got.toString()).toBe('to the endpoint');
    binding.destroy();
    binding.destroy();
    expect(done).toEqual([binding]);
    a.destroy();
    b.destroy();
  });

  it('bound endpoints share their listener functions, and the binding is the connection\'s handlers', () => {
    const { t, a, b } = tunnel();
    const one = new PassThrough();
    const two = new PassThrough();
    const first = bindEndpoint(t.open(1n), one, closeResponse, () => {}, 10_000);
    bindEndpoint(t.open(2n), two, closeResponse, () => {}, 10_000);
    for (const event of ['data', 'drain', 'end', 'close', 'error']) {
      expect(one.listeners(event), event).toEqual(two.listeners(event));
    }
    expect(t.connections.get(1n)!.handlers).toBe(first);
    a.destroy();
    b.destroy();
  });
});
