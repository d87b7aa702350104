/**
 * A tiny round-robin TCP load balancer on loopback (port 0) for HA tests: each accepted connection is piped to the
 * next backend in turn. A backend that refuses makes the client's connection close, as a real L4 balancer without
 * health checks would.
 */
import net from 'node:net';
import { once } from 'node:events';

export interface Backend {
  host: string;
  port: number;
}

export class LoadBalancer {
  /** Backends in rotation; tests may edit the list. */
  readonly backends: Backend[];
  /** Which backend index each accepted connection went to, in order. */
  readonly picks: number[] = [];
  private readonly server = net.createServer((socket) => this.forward(socket));
  private readonly sockets = new Set<net.Socket>();
  private next = 0;

  private constructor(backends: Backend[]) {
    this.backends = backends;
  }

  /** Listen on 127.0.0.1, port 0. */
  static async start(backends: Backend[]): Promise<LoadBalancer> {
    const lb = new LoadBalancer(backends);
    lb.server.listen(0, '127.0.0.1');
    await once(lb.server, 'listening');
    return lb;
  }

  get port(): number {
    return (this.server.address() as net.AddressInfo).port;
  }

  /** Close the listener and every connection through it. */
  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private track(socket: net.Socket): void {
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
  }

  private forward(client: net.Socket): void {
    this.track(client);
    const index = this.next++ % this.backends.length;
    this.picks.push(index);
    const { host, port } = this.backends[index]!;
    const upstream = net.connect({ host, port });
    this.track(upstream);
    const teardown = (): void => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', teardown).on('close', teardown);
    upstream.on('error', teardown).on('close', teardown);
    client.pipe(upstream);
    upstream.pipe(client);
  }
}
