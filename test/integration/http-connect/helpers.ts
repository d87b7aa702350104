/**
 * Helpers for the HTTP-CONNECT tests: a fake dialer that stands in for the ProxyServer (it dials TCP directly and
 * fails with the engine's error codes and texts), loopback targets, and a raw CONNECT client.
 */
import { createHash } from 'node:crypto';
import * as net from 'node:net';
import type { Duplex } from 'node:stream';
import { abortError } from '../../../src/protocol/abort.js';
import { ErrorCode, KonnectivityError } from '../../../src/protocol/errors.js';
import type { HttpConnectDialer } from '../../../src/server/frontends/http-connect/index.js';
import { Agent } from '../../../src/agent/index.js';
import { ProxyServer } from '../../../src/server/index.js';
import { createGrpcServer, grpcAgentConnector } from '../../../src/transport/grpc/index.js';
import { createYamuxServer, tcpCarrier, yamuxAgentConnector } from '../../../src/transport/yamux/index.js';
import { Engine } from '../../helpers/engine.js';

/** Hosts the fake dialer answers with an engine error instead of dialing. */
export const FAKE_ERRORS: Readonly<Record<string, () => KonnectivityError>> = {
  'no-agent.test': () => new KonnectivityError(ErrorCode.NO_AGENT, 'No agent available'),
  'tunnel-closed.test': () => new KonnectivityError(ErrorCode.TUNNEL_CLOSED, 'tunnel closed'),
  'dial-timeout.test': () => new KonnectivityError(ErrorCode.DIAL_TIMEOUT, 'timed out waiting for backend dial'),
  'io-timeout.test': () =>
    new KonnectivityError(ErrorCode.DIAL_FAILED, 'dial tcp 10.255.255.1:443: i/o timeout', { reason: 'endpoint' }),
  'emfile.test': () =>
    new KonnectivityError(ErrorCode.DIAL_FAILED, 'dial tcp 127.0.0.1:80: socket: too many open files'),
  'shutting-down.test': () => new KonnectivityError(ErrorCode.SHUTTING_DOWN, 'the server is shutting down'),
};

/** A dialer with a record of what it was asked, like the ProxyServer's dial(). */
export interface FakeDialer extends HttpConnectDialer {
  readonly addresses: string[];
  aborted: number;
  /** Tunnel sockets handed out, to check they were all closed. */
  readonly sockets: net.Socket[];
}

/**
 * Dial `host:port` over TCP; `hang.test` never answers until aborted; the hosts in FAKE_ERRORS fail with their
 * error; a TCP failure becomes the Go text `dial tcp ADDR: connect: connection refused`.
 */
export function fakeDialer(): FakeDialer {
  const fake: FakeDialer = {
    addresses: [],
    aborted: 0,
    sockets: [],
    dial(address, { signal }) {
      fake.addresses.push(address);
      const host = address.slice(0, address.lastIndexOf(':'));
      const error = FAKE_ERRORS[host];
      if (error) return Promise.reject(error());
      return new Promise<Duplex>((resolve, reject) => {
        let socket: net.Socket | undefined;
        const onAbort = (): void => {
          fake.aborted += 1;
          socket?.destroy();
          reject(abortError('dial aborted', signal));
        };
        if (signal?.aborted) return onAbort();
        signal?.addEventListener('abort', onAbort, { once: true });
        if (host === 'hang.test') return;
        const port = Number(address.slice(address.lastIndexOf(':') + 1));
        socket = net.connect({ host: host.replace(/^\[|\]$/g, ''), port, allowHalfOpen: true });
        const dialed = socket;
        dialed.once('connect', () => {
          signal?.removeEventListener('abort', onAbort);
          fake.sockets.push(dialed);
          resolve(dialed);
        });
        dialed.once('error', (err: NodeJS.ErrnoException) => {
          signal?.removeEventListener('abort', onAbort);
          const text = err.code === 'ECONNREFUSED' ? 'connect: connection refused' : err.message;
          reject(new KonnectivityError(ErrorCode.DIAL_FAILED, `dial tcp ${address}: ${text}`, { reason: 'endpoint' }));
        });
      });
    },
  };
  return fake;
}

/** A loopback TCP server. close() destroys every connection it accepted. */
export interface TestServer {
  port: number;
  close(): Promise<void>;
}

export async function listenTcp(onConnection: (socket: net.Socket) => void, host = '127.0.0.1'): Promise<TestServer> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    onConnection(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** A target that echoes every byte and half-closes when the client does. */
export function echoServer(): Promise<TestServer> {
  return listenTcp((socket) => socket.pipe(socket));
}

/**
 * Read from `socket` until `done(buffer)` says stop or the socket ends; resolves with all bytes read. The socket is
 * left paused, so nothing is lost before the next reader resumes it.
 */
export function readUntil(socket: net.Socket, done: (data: Buffer) => boolean): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let data = Buffer.alloc(0);
    const finish = (): void => {
      socket.pause();
      socket.off('data', onData);
      socket.off('end', finish);
      socket.off('close', finish);
      socket.off('error', onError);
      resolve(data);
    };
    const onData = (chunk: Buffer): void => {
      data = Buffer.concat([data, chunk]);
      if (done(data)) finish();
    };
    const onError = (err: Error): void => {
      socket.off('data', onData);
      reject(err);
    };
    socket.on('data', onData);
    socket.once('end', finish);
    socket.once('close', finish);
    socket.once('error', onError);
    socket.resume();
  });
}

/** Connect to `port`, write `request` verbatim, and resolve with the socket once connected. */
export async function rawClient(port: number, request: string | Buffer, host = '127.0.0.1'): Promise<net.Socket> {
  const socket = net.connect({ host, port });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  socket.write(request);
  return socket;
}

/** Send a raw request and read the whole response until the server closes. */
export async function rawExchange(port: number, request: string | Buffer): Promise<string> {
  const socket = await rawClient(port, request);
  const response = await readUntil(socket, () => false);
  socket.destroy();
  return response.toString('latin1');
}

/** Read a response header (`...\r\n\r\n`); resolves with the header text and the bytes that followed it. */
export async function readHeader(socket: net.Socket): Promise<{ header: string; rest: Buffer }> {
  const data = await readUntil(socket, (d) => d.includes('\r\n\r\n'));
  const end = data.indexOf('\r\n\r\n');
  if (end < 0) return { header: data.toString('latin1'), rest: Buffer.alloc(0) };
  return { header: data.subarray(0, end + 4).toString('latin1'), rest: data.subarray(end + 4) };
}

/**
 * Open a CONNECT tunnel by hand; resolves with the socket after the 200 and the bytes that followed it in the same
 * read. The socket is paused: resume it after attaching a reader.
 */
export async function rawConnect(port: number, target: string): Promise<{ socket: net.Socket; rest: Buffer }> {
  const socket = await rawClient(port, `CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`);
  const { header, rest } = await readHeader(socket);
  if (header !== 'HTTP/1.1 200 Connection Established\r\n\r\n') {
    socket.destroy();
    throw new Error(`unexpected response: ${JSON.stringify(header)}`);
  }
  return { socket, rest };
}

/** Deterministic pseudo-random bytes (fast): a SHA-256 counter stream. */
export function pattern(size: number, seed = 'seed'): Buffer {
  const out = Buffer.allocUnsafe(size);
  let block = createHash('sha256').update(seed).digest();
  for (let offset = 0; offset < size; offset += block.length) {
    block.copy(out, offset, 0, Math.min(block.length, size - offset));
    block = createHash('sha256').update(block).digest();
  }
  return out;
}

export function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** What the frontend dials through in a test, and how to shut it down. */
export interface Backend {
  dialer: HttpConnectDialer;
  close(): Promise<void>;
}

async function engineBackend(substreams: boolean): Promise<Backend> {
  const engine = new Engine({ substreams });
  await engine.agent();
  return { dialer: engine.server, close: () => engine.close() };
}

/** A ProxyServer whose agent comes in over gRPC on loopback TCP (the reference's agent transport). */
async function grpcBackend(): Promise<Backend> {
  const server = new ProxyServer();
  const listener = await createGrpcServer({ port: 0, agent: (incoming) => void server.acceptAgent(incoming) });
  const agent = new Agent({ agentID: 'grpc-agent' });
  await agent.connect(grpcAgentConnector({ address: `127.0.0.1:${listener.port}` }));
  return {
    dialer: server,
    close: async () => {
      agent.destroy();
      server.destroy();
      await listener.close({ graceMs: 0 });
    },
  };
}

/** A ProxyServer whose agent comes in over yamux on loopback TCP (one yamux stream per connection). */
async function yamuxBackend(): Promise<Backend> {
  const server = new ProxyServer();
  const listener = createYamuxServer({ onTunnel: (incoming) => void server.acceptAgent(incoming) });
  await listener.listen({ port: 0, host: '127.0.0.1' });
  const agent = new Agent({ agentID: 'yamux-agent' });
  const port = (listener.address() as net.AddressInfo).port;
  await agent.connect(yamuxAgentConnector({ connect: tcpCarrier({ host: '127.0.0.1', port }) }));
  return {
    dialer: server,
    close: async () => {
      agent.destroy();
      server.destroy();
      await listener.close({ graceMs: 0 });
    },
  };
}

/**
 * The dialers the same tests run over: the fake (TCP straight to the target) and the real engine (ProxyServer and
 * Agent on an in-memory pair, with and without per-connection substreams; over gRPC; over yamux).
 */
export const BACKENDS: Readonly<Record<string, () => Promise<Backend>>> = {
  fake: async () => ({ dialer: fakeDialer(), close: async () => {} }),
  engine: () => engineBackend(false),
  'engine (substreams)': () => engineBackend(true),
  'engine over gRPC': grpcBackend,
  'engine over yamux': yamuxBackend,
};
