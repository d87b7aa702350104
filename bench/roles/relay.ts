/**
 * A userspace TCP relay that adds a fixed delay each way (the kernel here has no netem). Every chunk is held for
 * `delayMs` after it arrives, in order. At most `windowBytes` wait in each direction (the source is paused beyond
 * that), which stands for the bandwidth-delay product a real long link allows.
 */
import net from 'node:net';
import { roleArgs, serveRole } from '../lib/ipc.js';

const { upstreamPort, delayMs, windowBytes = 64 * 1024 * 1024 } = roleArgs<{
  upstreamPort: number;
  delayMs: number;
  windowBytes?: number;
}>();

function pipeDelayed(from: net.Socket, to: net.Socket): void {
  const queue: Array<{ due: number; chunk: Buffer }> = [];
  let queued = 0;
  let timer: NodeJS.Timeout | undefined;
  let ended = false;
  const flush = () => {
    timer = undefined;
    const now = performance.now();
    while (queue.length && queue[0]!.due <= now) {
      const { chunk } = queue.shift()!;
      queued -= chunk.length;
      to.write(chunk);
    }
    maybeResume();
    if (queue.length) schedule();
    else if (ended) to.end();
  };
  // The window covers what waits here and what the next hop has not taken yet.
  const maybeResume = () => {
    if (queued + to.writableLength < windowBytes && from.isPaused()) from.resume();
  };
  to.on('drain', maybeResume);
  const schedule = () => {
    if (timer === undefined) timer = setTimeout(flush, Math.max(0, queue[0]!.due - performance.now()));
  };
  from.on('data', (chunk: Buffer) => {
    queue.push({ due: performance.now() + delayMs, chunk });
    queued += chunk.length;
    if (queued + to.writableLength >= windowBytes) from.pause();
    schedule();
  });
  from.on('end', () => {
    ended = true;
    if (!queue.length) to.end();
  });
  // A reset (close without end) travels on at once; after a clean end the queue still drains on schedule.
  const stop = () => {
    if (ended) return;
    if (timer) clearTimeout(timer);
    to.destroy();
  };
  from.on('close', stop);
  from.on('error', () => {});
}

const server = net.createServer({ noDelay: true }, (down) => {
  const up = net.connect({ port: upstreamPort, host: '127.0.0.1', noDelay: true });
  up.on('error', () => {});
  down.on('error', () => {});
  pipeDelayed(down, up);
  pipeDelayed(up, down);
});
const role = serveRole({});
server.listen(0, '127.0.0.1', () => role.ready({ port: (server.address() as net.AddressInfo).port }));
