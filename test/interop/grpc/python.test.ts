/**
 * Interop with gRPC C-core (Debian's python3-grpcio) through test/interop/grpc/peer.py: a Python agent serving our
 * ProxyServer, and a Python frontend dialing through our server to our agent, with checksummed transfers both ways.
 * Skipped (loudly) when python3-grpcio is missing, unless KONNECTIVITY_REQUIRE_INTEROP=1, which makes it fail.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Agent } from '../../../src/agent/index.js';
import { ProxyServer } from '../../../src/server/index.js';
import { createGrpcServer, grpcAgentConnector, type GrpcServer } from '../../../src/transport/grpc/index.js';
import { echoServer, receiveAll, sendPattern } from '../../helpers/engine.js';
import { refusedAddress } from '../../helpers/sockets.js';
import { expectNoLeaks, snapshotResources, type ResourceSnapshot } from '../../helpers/leaks.js';
import { tempSocketPath, until } from '../../integration/grpc/helpers.js';

const PYTHON = '/usr/bin/python3';
const PEER = path.join(path.dirname(fileURLToPath(import.meta.url)), 'peer.py');
const required = process.env.KONNECTIVITY_REQUIRE_INTEROP === '1';
const probe = spawnSync(PYTHON, ['-c', 'import grpc'], { stdio: 'pipe' });
const available = probe.status === 0;
if (!available && !required) {
  console.warn(`SKIPPED: gRPC C-core interop needs ${PYTHON} with python3-grpcio (apt-get install python3-grpcio)`);
}

const MiB = 1024 * 1024;


/** Start peer.py; resolves with the process and a reader of its JSON lines. */
function startPeer(args: string[]): { child: ChildProcess; nextLine: () => Promise<Record<string, unknown>>; stderr: () => string } {
  const child = spawn(PYTHON, [PEER, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const lines: string[] = [];
  const waiters: Array<(l: string) => void> = [];
  readline.createInterface({ input: child.stdout! }).on('line', (l) => {
    const w = waiters.shift();
    if (w) w(l);
    else lines.push(l);
  });
  const nextLine = (): Promise<Record<string, unknown>> =>
    new Promise((resolve, reject) => {
      const take = (l: string): void => resolve(JSON.parse(l) as Record<string, unknown>);
      const l = lines.shift();
      if (l !== undefined) return take(l);
      waiters.push(take);
      child.once('exit', (code) => reject(new Error(`peer.py exited with ${code}: ${err}`)));
    });
  return { child, nextLine, stderr: () => err };
}

function exited(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve() : child.once('exit', () => resolve())));
}

describe.skipIf(!available && !required)('gRPC C-core (python3-grpcio) interop', () => {
  let before: ResourceSnapshot;
  let proxy: ProxyServer;
  let listeners: GrpcServer[];
  let echo: Awaited<ReturnType<typeof echoServer>>;
  let children: ChildProcess[];

  beforeEach(async () => {
    expect(available, `${PYTHON} -c 'import grpc' failed: ${probe.stderr?.toString()}`).toBe(true);
    before = snapshotResources();
    proxy = new ProxyServer({ serverID: 'ts-server', serverCount: 2 });
    listeners = [];
    children = [];
    echo = await echoServer();
  });
  afterEach(async () => {
    for (const c of children) {
      c.stdin?.end();
      if (c.exitCode === null) c.kill();
      await exited(c);
    }
    await proxy.close({ graceMs: 1000 });
    await Promise.all(listeners.map((l) => l.close({ graceMs: 1000 })));
    await echo.close();
    await expectNoLeaks(before, { timeoutMs: 5000, ignore: ['PipeWrap', 'ProcessWrap'] });
  });

  it('a Python agent serves dials from our ProxyServer: 4 MiB checksummed each way', async () => {
    const agentListener = await createGrpcServer({ port: 0, agent: (i) => proxy.acceptAgent(i) });
    listeners.push(agentListener);
    const peer = startPeer(['agent', `127.0.0.1:${agentListener.port}`, 'python-agent']);
    children.push(peer.child);
    expect(await peer.nextLine()).toEqual({ serverid: 'ts-server', servercount: '2' });
    await until(() => proxy.ready, 'the python agent to register');
    expect(proxy.agents().map((a) => a.agentID)).toEqual(['python-agent']);
    const socket = await proxy.dial(echo.address);
    const [sent, received] = await Promise.all([sendPattern(socket, 4 * MiB), receiveAll(socket, 4 * MiB)]);
    expect(received).toBe(sent);
    socket.destroy();
    await expect(proxy.dial(await refusedAddress())).rejects.toMatchObject({ code: 'ERR_DIAL_FAILED' });
  });

  for (const kind of ['tcp', 'uds'] as const) {
    it(`a Python frontend dials through our server (${kind}) to our agent: 4 MiB checksummed each way`, async () => {
      const agentListener = await createGrpcServer({ port: 0, agent: (i) => proxy.acceptAgent(i) });
      const socketPath = kind === 'uds' ? tempSocketPath() : undefined;
      const frontendListener = await createGrpcServer({
        ...(socketPath ? { socketPath } : { port: 0 }),
        frontend: (s) => proxy.acceptFrontend(s),
      });
      listeners.push(agentListener, frontendListener);
      const agent = new Agent({ agentID: 'ts-agent' });
      try {
        await agent.connect(grpcAgentConnector({ address: `127.0.0.1:${agentListener.port}` }));
        await until(() => proxy.ready, 'our agent to register');
        const target = socketPath ? `unix:${socketPath}` : `127.0.0.1:${frontendListener.port}`;
        const peer = startPeer(['frontend', target, echo.address, String(4 * MiB)]);
        children.push(peer.child);
        const result = await peer.nextLine();
        expect(result.bytes).toBe(4 * MiB);
        expect(result.received).toBe(result.sent);
        expect(result.closeRsp).toBe(true);
        await exited(peer.child);
        expect(peer.child.exitCode, peer.stderr()).toBe(0);
      } finally {
        await agent.close();
      }
    });
  }
});
