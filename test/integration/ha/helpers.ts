/** Shared pieces of the HA integration tests: cleanups with a leak check, an echo target, an echo round trip. */
import net from 'node:net';
import { once } from 'node:events';
import type { Duplex } from 'node:stream';
import { afterEach, beforeEach } from 'vitest';
import type { AgentClientSet, ClientSetTunnel } from '../../../src/agent/client-set.js';
import { expectNoLeaks, snapshotResources, type ResourceSnapshot } from '../../helpers/leaks.js';

/**
 * Per-test cleanups for a test file: returns `defer(fn)`; after each test the deferred functions run in reverse
 * order, then the leak check runs.
 */
export function useCleanups(leakTimeoutMs = 2000): (fn: () => unknown) => void {
  let before: ResourceSnapshot;
  let cleanups: Array<() => unknown> = [];
  beforeEach(() => {
    before = snapshotResources();
  });
  afterEach(async () => {
    for (const c of cleanups.reverse()) await c();
    cleanups = [];
    await expectNoLeaks(before, { timeoutMs: leakTimeoutMs });
  });
  return (fn) => void cleanups.push(fn);
}

/** A TCP echo server on 127.0.0.1, port 0. */
export async function startEchoServer(): Promise<{ address: string; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
    s.on('error', () => s.destroy());
    s.pipe(s);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  return {
    address: `127.0.0.1:${port}`,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Write `text`, read it back from an echo target, then end the connection and wait for its close. */
export async function echoOnce(socket: Duplex, text: string): Promise<string> {
  let got = '';
  socket.setEncoding('utf8');
  const closed = once(socket, 'close');
  await new Promise<void>((resolve, reject) => {
    socket.on('data', (chunk: string) => {
      got += chunk;
      if (got.length >= text.length) resolve();
    });
    socket.once('error', reject);
    socket.write(text);
  });
  socket.end();
  await closed;
  return got;
}

/** Wait until `check()` holds, re-checking on every event of the client set. */
export async function untilSet<T extends ClientSetTunnel>(set: AgentClientSet<T>, check: () => boolean): Promise<void> {
  while (!check()) {
    await new Promise<void>((resolve) => {
      const events = ['tunnelAdded', 'tunnelRemoved', 'duplicate', 'connectFailed', 'readyChange'] as const;
      const wake = (): void => {
        for (const e of events) set.off(e, wake);
        resolve();
      };
      for (const e of events) set.on(e, wake);
    });
  }
}
