/**
 * Test harness for the engine: a ProxyServer and agents joined by in-memory pairs (encoded, as on a wire), with
 * real TCP targets on loopback.
 */
import net from 'node:net';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import type { Duplex } from 'node:stream';
import { Agent, type AgentOptions, type AgentTunnel } from '../../src/agent/index.js';
import { ProxyServer, type ProxyServerOptions } from '../../src/server/index.js';
import { memoryConnector } from '../../src/transport/memory/index.js';

export interface EngineOptions {
  server?: ProxyServerOptions;
  substreams?: boolean;
  /** Bytes a memory stream holds before write() returns false. */
  highWaterMarkBytes?: number;
}

export class Engine {
  readonly server: ProxyServer;
  readonly agents: Agent[] = [];
  private readonly cleanups: Array<() => Promise<void> | void> = [];
  constructor(private readonly options: EngineOptions = {}) {
    this.server = new ProxyServer(options.server);
  }

  /** Start an agent and connect one tunnel to the server. */
  async agent(options: Partial<AgentOptions> = {}): Promise<{ agent: Agent; tunnel: AgentTunnel }> {
    const agent = new Agent({ agentID: `agent-${this.agents.length + 1}`, ...options });
    this.agents.push(agent);
    const tunnel = await agent.connect(this.connector());
    return { agent, tunnel };
  }

  connector() {
    return memoryConnector((incoming) => void this.server.acceptAgent(incoming), {
      encode: true,
      substreams: this.options.substreams ?? false,
      ...(this.options.highWaterMarkBytes ? { highWaterMarkBytes: this.options.highWaterMarkBytes } : {}),
    });
  }

  /** Register something to close at the end. */
  defer(fn: () => Promise<void> | void): void {
    this.cleanups.push(fn);
  }

  /**
   * What is still open on both sides: the server's pending dials, connections handed to frontends and connection
   * entries on agent streams (substreams included); each agent's endpoint dials and endpoint connections.
   */
  state(): EngineState {
    const stats = this.server.stats;
    const tunnels = this.agents.flatMap((a) => a.tunnels);
    return {
      serverPendingDials: stats.pendingDials,
      serverConnections: stats.establishedConnections,
      serverEntries: this.server.agents().reduce((n, a) => n + a.connections, 0),
      agentPendingDials: tunnels.reduce((n, t) => n + t.pendingDialCount, 0),
      agentConnections: tunnels.reduce((n, t) => n + t.connectionCount, 0),
    };
  }

  /**
   * Wait until nothing is left open (see {@link state}); throw naming what is left after `timeoutMs`. Run before
   * teardown, so that a leaked dial or connection entry is seen before destroy() wipes it, as the reference's suite
   * checks its metrics at cleanup.
   */
  async expectIdle(timeoutMs = 2000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const state = this.state();
      const left = Object.entries(state).filter(([, n]) => n !== 0);
      if (left.length === 0) return;
      if (Date.now() >= deadline) throw new Error(`not idle at the end of the test: ${left.map(([k, n]) => `${k}=${n}`).join(', ')}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  /** Check the clean state (expectIdle), then tear everything down, also when the check fails. */
  async close(): Promise<void> {
    try {
      await this.expectIdle();
    } finally {
      for (const a of this.agents) a.destroy();
      this.server.destroy();
      for (const fn of this.cleanups.reverse()) await fn();
    }
  }
}

/** See {@link Engine.state}: every count is 0 when the engine is idle. */
export interface EngineState {
  serverPendingDials: number;
  serverConnections: number;
  serverEntries: number;
  agentPendingDials: number;
  agentConnections: number;
}

/** A TCP server on 127.0.0.1:0 that tracks its sockets and closes them all on close(). */
export async function tcpServer(onSocket: (s: net.Socket) => void): Promise<{ port: number; address: string; sockets: Set<net.Socket>; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const srv = net.createServer((s) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
    s.on('error', () => {});
    onSocket(s);
  });
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const port = (srv.address() as net.AddressInfo).port;
  return {
    port,
    address: `127.0.0.1:${port}`,
    sockets,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => srv.close(() => r()));
    },
  };
}

export const echoServer = () => tcpServer((s) => s.pipe(s));

/** Deterministic pseudo-random bytes (fast xorshift), so both ends can checksum without holding the data. */
export function patternChunk(seed: number, size: number): Buffer {
  const b = Buffer.allocUnsafe(size);
  let x = seed | 1;
  for (let i = 0; i < size; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b.writeInt32LE(x | 0, i);
  }
  return b;
}

/** Write `total` bytes of pattern to `stream` with backpressure, returning their sha256. */
export async function sendPattern(stream: Duplex | net.Socket, total: number, chunkSize = 32 * 1024): Promise<string> {
  const hash = createHash('sha256');
  let sent = 0;
  let seed = 1;
  while (sent < total) {
    const n = Math.min(chunkSize, total - sent);
    const chunk = patternChunk(seed++, chunkSize).subarray(0, n);
    hash.update(chunk);
    sent += n;
    if (!stream.write(chunk)) await once(stream, 'drain');
  }
  return hash.digest('hex');
}

/** Read until `total` bytes arrived; resolves with their sha256. */
export function receiveAll(stream: Duplex | net.Socket, total: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    let got = 0;
    const onData = (d: Buffer): void => {
      hash.update(d);
      got += d.length;
      if (got >= total) {
        stream.off('data', onData);
        stream.off('error', reject);
        resolve(hash.digest('hex'));
      }
    };
    stream.on('data', onData);
    stream.once('error', reject);
  });
}
