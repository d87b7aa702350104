/** Raw peers for the tests that feed listeners bytes by hand. */
import { once } from 'node:events';
import net from 'node:net';
import type { Packet, PacketStream } from '../../src/index.js';

/** A TCP connection to 127.0.0.1:`port` that reads (and drops) what it is sent, so the server's close is seen. */
export function rawConnect(port: number): Promise<net.Socket> {
  const socket = net.connect(port, '127.0.0.1');
  socket.on('error', () => {});
  socket.resume();
  return once(socket, 'connect').then(() => socket);
}

/** Collects what a stream receives; `next()` waits for the next packet. */
export function packetReader(stream: PacketStream): { next: () => Promise<Packet>; queue: Packet[]; pending: () => number } {
  const queue: Packet[] = [];
  const waiters: Array<(p: Packet) => void> = [];
  stream.on('packet', (p) => {
    const w = waiters.shift();
    if (w) w(p);
    else queue.push(p);
  });
  stream.on('error', () => {});
  return { next: () => (queue.length ? Promise.resolve(queue.shift()!) : new Promise((r) => waiters.push(r))), queue, pending: () => queue.length };
}

/**
 * A loopback port nothing listens on: one just listened on and let go. Never port 1: the suite may run as root on a
 * machine shared with other work, where any program may hold a low port (then a "refused" dial connects).
 */
export async function closedPort(host = '127.0.0.1'): Promise<number> {
  const server = net.createServer();
  server.listen(0, host);
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** `127.0.0.1:<port>` for a port nothing listens on ({@link closedPort}). */
export async function refusedAddress(): Promise<string> {
  return `127.0.0.1:${await closedPort()}`;
}
