/**
 * In process: a program that cannot start (a port in use) logs why, exits 1, and leaves nothing open behind.
 */
import { createServer, type Server } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { expectNoLeaks, snapshotResources, type ResourceSnapshot } from '../../helpers/leaks.js';
import { main as serverMain } from '../../../src/cli/server.js';
import { main as agentMain } from '../../../src/cli/agent.js';
import type { ProgramIO } from '../../../src/cli/process.js';

function fakeIO(): ProgramIO & { err: string; code: number | undefined } {
  const io = {
    err: '',
    code: undefined as number | undefined,
    stdout: { write: () => true },
    stderr: { write: (s: string) => ((io.err += s), true) },
    exit: (c: number) => void (io.code = c),
  };
  return io;
}

let before: ResourceSnapshot;
let blocker: Server;
let busyPort: number;
beforeEach(async () => {
  before = snapshotResources();
  blocker = createServer();
  await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
  busyPort = (blocker.address() as { port: number }).port;
});
afterEach(async () => {
  await new Promise<void>((r) => blocker.close(() => r()));
  await expectNoLeaks(before);
});

const local = ['--server-bind-address=127.0.0.1', '--agent-bind-address=127.0.0.1', '--health-bind-address=127.0.0.1'];

describe('start-up failures', () => {
  it('server: a busy admin port exits 1 after closing the listeners it had opened', async () => {
    const io = fakeIO();
    await serverMain([...local, '--server-port=0', '--agent-port=0', '--health-port=0', `--admin-port=${busyPort}`, '--admin-bind-address=127.0.0.1'], io);
    expect(io.code).toBe(1);
    expect(io.err).toMatch(/"failed to start the server".*EADDRINUSE/);
  });

  it('agent: a busy health port exits 1', async () => {
    const io = fakeIO();
    await agentMain(['--proxy-server-port=1', '--health-server-host=127.0.0.1', `--health-server-port=${busyPort}`, '--admin-server-port=0'], io);
    expect(io.code).toBe(1);
    expect(io.err).toMatch(/"failed to start the agent".*EADDRINUSE/);
  });

  it('server: an unreadable certificate file exits 1 naming the file', async () => {
    const io = fakeIO();
    await serverMain([...local, '--server-port=0', '--agent-port=0', '--health-port=0', '--admin-port=0', '--cluster-cert=/nonexistent/c.pem', '--cluster-key=/nonexistent/k.pem'], io);
    expect(io.code).toBe(1);
    expect(io.err).toContain('failed to read certificate /nonexistent/c.pem');
  });
});
