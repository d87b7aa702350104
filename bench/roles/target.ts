/** The backend the agent dials: a TCP server speaking the little protocol described in bench/lib/workloads.ts. */
import net from 'node:net';
import { serveRole } from '../lib/ipc.js';
import { PatternCheck, readBytes, writePattern } from '../lib/workloads.js';

const sockets = new Set<net.Socket>();
/** Bytes the stalled-reader senders got into the kernel so far. */
let slowPushed = 0;
const slowSockets = new Set<net.Socket>();

function handle(sock: net.Socket): void {
  sockets.add(sock);
  sock.on('close', () => sockets.delete(sock));
  sock.on('error', () => {});
  sock.setNoDelay(true);
  sock.once('readable', function onReadable() {
    const head = sock.read(1) as Buffer | null;
    if (!head) {
      sock.once('readable', onReadable);
      return;
    }
    const mode = String.fromCharCode(head[0]!);
    if (mode === 'R') {
      // Echo: the mode byte was the first byte of the first request.
      sock.write(head);
      sock.on('data', (d: Buffer) => sock.write(d));
      sock.resume();
      return;
    }
    if (mode === 'I') {
      sock.write('k');
      sock.on('data', () => {});
      sock.on('end', () => sock.end());
      return;
    }
    readLength(sock).then(async (n) => {
      if (mode === 'U') {
        const check = new PatternCheck();
        await readBytes(sock, n, 0, check);
        sock.write(Buffer.of(check.ok ? 1 : 0));
      } else if (mode === 'D') {
        await writePattern(sock, n);
      } else if (mode === 'S') {
        slowSockets.add(sock);
        sock.on('close', () => slowSockets.delete(sock));
        await pushSlow(sock, n);
      } else {
        sock.destroy();
      }
    }).catch(() => sock.destroy());
  });
}

/** The stalled reader's sender: pushes as fast as the path lets it (respecting backpressure). */
async function pushSlow(sock: net.Socket, n: number): Promise<void> {
  await writePattern(sock, n, undefined, (len) => (slowPushed += len));
}

function readLength(sock: net.Socket): Promise<number> {
  return new Promise((resolve, reject) => {
    const tryRead = () => {
      const b = sock.read(8) as Buffer | null;
      if (b) {
        sock.off('readable', tryRead);
        sock.off('end', onEnd);
        resolve(Number(b.readBigUInt64BE(0)));
      }
    };
    const onEnd = () => reject(new Error('ended before length'));
    sock.on('readable', tryRead);
    sock.once('end', onEnd);
    tryRead();
  });
}

const server = net.createServer({ noDelay: true }, handle);
server.maxConnections = 1_000_000;
const role = serveRole({
  connections: () => sockets.size,
  slowStatus: () => {
    let queued = 0;
    for (const s of slowSockets) queued += s.writableLength;
    return { pushed: slowPushed, queued };
  },
  resetSlow: () => ((slowPushed = 0), true),
});
server.listen(0, '127.0.0.1', () => {
  const addr = server.address() as net.AddressInfo;
  role.ready({ port: addr.port });
});
