/**
 * A TCP relay on loopback that holds every chunk for `delayMs` in each direction, like a link with that one-way
 * latency. It records the most bytes it ever held client-to-server: with HTTP/2's default 64 KiB window that can
 * never exceed about 64 KiB, since the sender must wait a round trip for WINDOW_UPDATE.
 */
import net from 'node:net';

export interface DelayRelay {
  port: number;
  /** Most bytes held at once in the client-to-server direction. */
  readonly maxHeldUp: number;
  close(): Promise<void>;
}

export async function startDelayRelay(targetPort: number, delayMs: number): Promise<DelayRelay> {
  const sockets = new Set<net.Socket>();
  let maxHeldUp = 0;
  const pipe = (from: net.Socket, to: net.Socket, up: boolean): void => {
    let held = 0;
    from.on('data', (chunk: Buffer) => {
      held += chunk.length;
      if (up) maxHeldUp = Math.max(maxHeldUp, held);
      const t = setTimeout(() => {
        held -= chunk.length;
        if (!to.destroyed) to.write(chunk);
      }, delayMs);
      t.unref();
    });
    from.on('end', () => setTimeout(() => to.end(), delayMs).unref());
    from.on('close', () => setTimeout(() => to.destroy(), delayMs).unref());
  };
  const server = net.createServer((client) => {
    const upstream = net.connect(targetPort, '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => {});
      s.once('close', () => sockets.delete(s));
    }
    pipe(client, upstream, true);
    pipe(upstream, client, false);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    get maxHeldUp() {
      return maxHeldUp;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
