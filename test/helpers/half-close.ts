/** Targets and a reader for the half-close tests (test/integration/half-close, test/interop/half-close). */
import { once } from 'node:events';
import type { Duplex } from 'node:stream';
import { tcpServer } from './engine.js';

/** A target that answers only after the client's EOF, with what it read (like a request body read to the end). */
export const eofTarget = () =>
  tcpServer((s) => {
    let n = 0;
    s.on('data', (d: Buffer) => (n += d.length));
    s.on('end', () => s.end(`got ${n} bytes`));
  });

/** A target that answers the first bytes and closes, never waiting for EOF (an HTTP/1.0 server). */
export const requestTarget = () => tcpServer((s) => s.once('data', (d: Buffer) => s.end(`answer to ${d.toString()}`)));

/** A target that reads and never answers nor closes; `closed` resolves once its first connection has closed. */
export async function silentTarget() {
  let endpointClosed!: () => void;
  const closed = new Promise<void>((resolve) => (endpointClosed = resolve));
  const server = await tcpServer((s) => s.resume().once('close', endpointClosed));
  return Object.assign(server, { closed });
}

/** Everything `socket` sends until it closes, and whether it closed cleanly. */
export async function drain(socket: Duplex): Promise<{ text: string; errored: Error | null }> {
  const chunks: Buffer[] = [];
  socket.on('data', (d: Buffer) => chunks.push(d));
  if (!socket.closed) await once(socket, 'close');
  return { text: Buffer.concat(chunks).toString(), errored: socket.errored };
}
