/**
 * The HTTP-CONNECT client socket bound straight to its tunnel connection (ClientBinding): a real TCP socket on one
 * side, a Tunnel over an in-memory pair on the other, with the peer (the agent's side) played by hand.
 */
import { once } from 'node:events';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import {
  PacketType,
  Tunnel,
  closeResponse,
  connectIDOf,
  createMemoryPair,
  dataPacket,
  type CloseResponsePacket,
  type Packet,
  type PacketStream,
} from '../../../../src/index.js';
import { ClientBinding } from '../../../../src/server/frontends/http-connect/binding.js';
import type { RelayResult } from '../../../../src/server/frontends/http-connect/relay.js';

const OPTIONS = { lingerMs: 2000, flushTimeoutMs: 30_000 };
const turn = () => new Promise((r) => setImmediate(r));
async function until(check: () => boolean): Promise<void> {
  while (!check()) await turn();
}

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

/** A connected TCP pair: `client` plays the CONNECT client, `server` the frontend's socket. */
async function socketPair(): Promise<{ client: net.Socket; server: net.Socket }> {
  const listener = net.createServer({ allowHalfOpen: true });
  await new Promise<void>((r) => listener.listen(0, '127.0.0.1', r));
  const accepted = once(listener, 'connection');
  const client = net.connect({ port: (listener.address() as net.AddressInfo).port, host: '127.0.0.1', allowHalfOpen: true });
  const [server] = (await accepted) as [net.Socket];
  listener.close();
  cleanups.push(() => (client.destroy(), server.destroy()));
  return { client, server };
}

/** The server's Tunnel on one end of a memory pair; `peer` is the other end, `seen` what reached it. */
function tunnel(windowBytes?: number): { t: Tunnel; peer: PacketStream; seen: Packet[] } {
  const [a, peer] = createMemoryPair({ encode: true });
  const seen: Packet[] = [];
  const t = new Tunnel(a, {
    windowBytes,
    onPacket: (p) => {
      const rsp = p.type === PacketType.CLOSE_RSP ? (p as CloseResponsePacket).closeResponse : undefined;
      if (rsp) t.peerClosed(rsp.connectID, rsp.error ?? '');
    },
  });
  peer.on('packet', (p) => seen.push(p));
  cleanups.push(() => (a.destroy(), peer.destroy()));
  return { t, peer, seen };
}

async function bound(windowBytes?: number) {
  const { client, server } = await socketPair();
  const { t, peer, seen } = tunnel(windowBytes);
  const connection = t.open(7n);
  let result: RelayResult | undefined;
  const binding = new ClientBinding(server, connection, OPTIONS, { bindingDone: (r) => (result = r) });
  binding.start([], false);
  return { client, server, t, peer, seen, connection, binding, result: () => result };
}

const dataOf = (seen: Packet[]) =>
  Buffer.concat(seen.filter((p) => p.type === PacketType.DATA).map((p) => Buffer.from((p as { data: { data: Uint8Array } }).data.data)));

describe('ClientBinding', () => {
  it('relays both ways: client bytes go out as DATA, DATA from the peer reaches the client', async () => {
    const { client, peer, seen } = await bound();
    client.write('hello');
    await until(() => dataOf(seen).toString() === 'hello');
    peer.write(dataPacket(7n, Buffer.from('world')));
    const [got] = (await once(client, 'data')) as [Buffer];
    expect(got.toString()).toBe('world');
  });

  it("the peer's CLOSE_RSP: the client gets what was sent before it, then EOF, and the socket closes on its FIN", async () => {
    const { client, server, peer, result } = await bound();
    peer.write(dataPacket(7n, Buffer.from('last words')));
    peer.write(closeResponse(7n));
    const chunks: Buffer[] = [];
    client.on('data', (d: Buffer) => chunks.push(d));
    await once(client, 'end');
    expect(Buffer.concat(chunks).toString()).toBe('last words');
    client.end();
    await once(server, 'close');
    expect(result()).toMatchObject({ bytesToClient: 10, error: undefined });
  });

  it('a CLOSE_RSP with an error destroys the client at once', async () => {
    const { client, server, peer, result } = await bound();
    peer.write(closeResponse(7n, 'connection reset by peer'));
    client.resume();
    await Promise.all([once(server, 'close'), once(client, 'end')]);
    expect(result()?.error?.message).toBe('connection reset by peer');
  });

  it("the client's EOF sends CLOSE_REQ after its data; the peer's answer still reaches it until CLOSE_RSP", async () => {
    const { client, peer, seen } = await bound();
    client.end('request');
    await until(() => seen.some((p) => p.type === PacketType.CLOSE_REQ));
    const types = seen.map((p) => p.type);
    expect(types.indexOf(PacketType.CLOSE_REQ)).toBeGreaterThan(types.lastIndexOf(PacketType.DATA));
    expect(dataOf(seen).toString()).toBe('request');
    peer.write(dataPacket(7n, Buffer.from('answer')));
    peer.write(closeResponse(7n));
    const chunks: Buffer[] = [];
    client.on('data', (d: Buffer) => chunks.push(d));
    await once(client, 'close');
    expect(Buffer.concat(chunks).toString()).toBe('answer');
  });

  it("after the client's EOF, a CLOSE_RSP still lets a client that reads late get everything queued for it", async () => {
    // A window larger than the answer, so all of it and the CLOSE_RSP arrive while the client reads nothing.
    const { client, peer, seen } = await bound(64 * 1024 * 1024);
    client.pause();
    client.end('request');
    await until(() => seen.some((p) => p.type === PacketType.CLOSE_REQ));
    const chunk = Buffer.alloc(64 * 1024, 7);
    // 16 MiB: more than the kernel's socket buffers take, so some of it waits in the server socket at the close.
    for (let i = 0; i < 256; i++) peer.write(dataPacket(7n, chunk));
    peer.write(closeResponse(7n));
    let got = 0;
    client.on('data', (d: Buffer) => (got += d.length));
    client.resume();
    await once(client, 'close');
    expect(got).toBe(256 * chunk.length);
  });

  it('the client closing sends CLOSE_REQ; DATA still in flight is dropped and its credit returned', async () => {
    const window = 64 * 1024;
    const { client, server, peer, seen, connection, result } = await bound(window);
    client.destroy();
    await once(server, 'close');
    await until(() => seen.some((p) => p.type === PacketType.CLOSE_REQ && connectIDOf(p) === 7n));
    expect(result()).toBeDefined();
    // The entry stays until CLOSE_RSP, so late DATA is not answered as an unknown connection, and it is consumed.
    expect(connection.closed).toBe(false);
    peer.write(dataPacket(7n, Buffer.alloc(window / 2)));
    await until(() => seen.some((p) => p.type === PacketType.WINDOW_UPDATE));
    peer.write(closeResponse(7n));
    await until(() => connection.closed);
  });

  it('the loss of the tunnel destroys the client', async () => {
    const { client, server, t, result } = await bound();
    t.clear(new Error('agent stream closed'));
    client.resume();
    await Promise.all([once(server, 'close'), once(client, 'end')]);
    expect(result()?.error?.message).toBe('agent stream closed');
  });

  it('holds no closures per connection: bound sockets share their listener functions', async () => {
    const one = await bound();
    const two = await bound();
    for (const event of ['data', 'end', 'close', 'error', 'drain']) {
      const mine = one.server.listeners(event).filter((f) => !two.server.listeners(event).includes(f));
      expect(mine, event).toEqual([]);
    }
    // The binding is the connection's handlers.
    expect(one.connection.handlers).toBe(one.binding);
  });
});
