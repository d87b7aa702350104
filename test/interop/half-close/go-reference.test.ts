/**
 * Half-close with the Go reference on the other side (proxy-server and proxy-agent v0.31.4 from the peer kit):
 * neither offers the extension, so HALF_CLOSE is never sent to them; `end()` then stops writing and reads until the
 * peer closes, and `halfCloseTimeoutMs` closes (CLOSE_REQ) a connection whose endpoint waits for an EOF that cannot
 * reach it. Our agent -> Go server (our client on its gRPC frontend), and Go agent -> our server (server.dial() and
 * the HTTP-CONNECT frontend).
 *
 * The kit is `.peer/` (../shared/peer/install.sh installs it, and this file runs the script when it finds it);
 * without it the file skips, and with KONNECTIVITY_REQUIRE_INTEROP=1 it fails instead.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from '../../../src/agent/index.js';
import { GrpcProxyClient } from '../../../src/client/index.js';
import { ProxyServer, createHttpConnectFrontend } from '../../../src/server/index.js';
import { createGrpcServer, grpcAgentConnector, type GrpcServer } from '../../../src/transport/grpc/index.js';
import { drain, requestTarget, silentTarget } from '../../helpers/half-close.js';
import { rawConnect, readUntil } from '../../integration/http-connect/helpers.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const KIT = join(ROOT, '.peer');
const BIN = (name: string): string => join(KIT, 'bin', name);
const CERT = (name: string): string => join(KIT, 'certs', name);

/** Install the kit from a shared/peer found beside the checkout (or one level up, for worktrees), if need be. */
function kitReady(): boolean {
  if (existsSync(BIN('proxy-server')) && existsSync(BIN('proxy-agent')) && existsSync(CERT('ca.crt'))) return true;
  for (const shared of [join(ROOT, '..', 'shared'), join(ROOT, '..', '..', 'shared')]) {
    const script = join(shared, 'peer', 'install.sh');
    if (!existsSync(script)) continue;
    execFileSync('bash', [script, KIT], { cwd: ROOT, stdio: 'ignore', timeout: 120_000 });
    return existsSync(BIN('proxy-server'));
  }
  return false;
}
const ready = kitReady();
if (!ready && process.env['KONNECTIVITY_REQUIRE_INTEROP'] === '1') {
  throw new Error('KONNECTIVITY_REQUIRE_INTEROP=1 but the Go reference peer kit is not installed in .peer/ (run ../shared/peer/install.sh .peer)');
}

/**
 * A TCP port free on 127.0.0.1 now, for the Go programs, which take fixed ports. Below the kernel's ephemeral range
 * (from 32768) and the Go server's limit (49151), so neither port 0 elsewhere nor the Go server's check collide.
 */
async function freePort(): Promise<number> {
  for (;;) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    const s = net.createServer();
    const ok = await new Promise<boolean>((done) => {
      s.once('error', () => done(false));
      s.listen(port, '127.0.0.1', () => done(true));
    });
    if (ok) {
      await new Promise<void>((done) => s.close(() => done()));
      return port;
    }
  }
}

const children = new Set<ChildProcess>();
function start(bin: string, args: string[]): ChildProcess {
  const child = spawn(bin, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  child.stderr!.resume();
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}
async function stopAll(): Promise<void> {
  await Promise.all(
    [...children].map(async (c) => {
      if (c.exitCode !== null || c.signalCode !== null) return;
      c.kill('SIGKILL');
      await once(c, 'exit');
    }),
  );
}

/** GET `url` until it answers 200 (the Go server's /readyz once an agent is connected). */
async function until200(url: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const status = await new Promise<number>((done) => {
      http.get(url, (res) => (res.resume(), done(res.statusCode ?? 0))).on('error', () => done(0));
    });
    if (status === 200) return;
    if (Date.now() > deadline) throw new Error(`${url} did not answer 200 within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

let cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const fn of cleanups.reverse()) await fn();
  cleanups = [];
});
afterAll(stopAll);

describe.skipIf(!ready)('half-close with the Go reference', () => {
  describe('our agent -> Go proxy-server, our GrpcProxyClient on its gRPC frontend', () => {
    let dir: string;
    let admin: number;
    let agent: Agent;
    let client: GrpcProxyClient;

    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), 'kts-hc-go-'));
      const [agentPort, adminPort, healthPort] = [await freePort(), await freePort(), await freePort()];
      admin = adminPort;
      const uds = join(dir, 'konn.sock');
      start(BIN('proxy-server'), [
        '--mode=grpc', `--uds-name=${uds}`, '--delete-existing-uds-file', '--server-port=0',
        `--cluster-cert=${CERT('server.crt')}`, `--cluster-key=${CERT('server.key')}`, `--cluster-ca-cert=${CERT('ca.crt')}`,
        '--agent-bind-address=127.0.0.1', `--agent-port=${agentPort}`, '--admin-bind-address=127.0.0.1', `--admin-port=${adminPort}`,
        '--health-bind-address=127.0.0.1', `--health-port=${healthPort}`, '--server-count=1', '--server-id=go-1', '--v=0',
      ]);
      agent = new Agent({ agentID: 'ts-agent' });
      const connector = grpcAgentConnector({
        address: `127.0.0.1:${agentPort}`,
        tls: { ca: readFileSync(CERT('ca.crt')), cert: readFileSync(CERT('agent.crt')), key: readFileSync(CERT('agent.key')) },
      });
      // The Go server may still be starting: try until it takes the tunnel.
      for (let attempt = 0; ; attempt++) {
        try {
          await agent.connect(connector);
          break;
        } catch (err) {
          if (attempt > 100) throw err;
          await new Promise((r) => setTimeout(r, 200));
        }
      }
      await until200(`http://127.0.0.1:${healthPort}/readyz`);
      client = new GrpcProxyClient({ socketPath: uds });
    }, 120_000);

    afterAll(async () => {
      client?.destroy();
      agent?.destroy();
      await stopAll();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    it('the Go server confirms nothing: end() sends no HALF_CLOSE, and the answer still arrives', async () => {
      const target = await requestTarget();
      cleanups.push(() => target.close());
      const socket = await client.dial(target.address);
      socket.end('GET /');
      expect(await drain(socket)).toEqual({ text: 'answer to GET /', errored: null });
      // The Go server never sends the extension on to our agent either.
      expect(agent.stats.packets.fromServer['HALF_CLOSE']).toBeUndefined();
      expect(agent.stats.packets.fromServer['CLOSE_REQ']).toBeUndefined();
    });

    it('an endpoint waiting for EOF is closed after halfCloseTimeoutMs, with CLOSE_REQ through the Go server', async () => {
      const target = await silentTarget();
      cleanups.push(() => target.close());
      const before = agent.stats.packets.fromServer['CLOSE_REQ'] ?? 0;
      const socket = await client.dial(target.address, { halfCloseTimeoutMs: 300 });
      socket.end('no EOF will reach you');
      expect(await drain(socket)).toEqual({ text: '', errored: null });
      await target.closed;
      expect(agent.stats.packets.fromServer['CLOSE_REQ']).toBe(before + 1);
      expect(agent.stats.packets.fromServer['HALF_CLOSE']).toBeUndefined();
    });

    it('the Go server counted no packet of an unknown type from our client', async () => {
      const metrics = await new Promise<string>((done, fail) => {
        http
          .get(`http://127.0.0.1:${admin}/metrics`, (res) => {
            let text = '';
            res.setEncoding('utf8').on('data', (s: string) => (text += s)).on('end', () => done(text));
          })
          .on('error', fail);
      });
      const types = [...metrics.matchAll(/stream_packets_total\{[^}]*packet_type="([^"]+)"/g)].map((m) => m[1]);
      expect(types.length).toBeGreaterThan(0);
      expect(types.filter((t) => !/^(DIAL_REQ|DIAL_RSP|CLOSE_REQ|CLOSE_RSP|DATA|DIAL_CLS|DRAIN)$/.test(t!))).toEqual([]);
    });
  });

  describe('Go proxy-agent -> our server', () => {
    let server: ProxyServer;
    let grpc: GrpcServer;

    beforeAll(async () => {
      server = new ProxyServer({ serverID: 'ts-1' });
      grpc = await createGrpcServer({
        port: 0,
        tls: { key: readFileSync(CERT('server.key')), cert: readFileSync(CERT('server.crt')), ca: readFileSync(CERT('ca.crt')) },
        agent: (i) => server.acceptAgent(i),
      });
      const connected = once(server, 'agentConnected');
      start(BIN('proxy-agent'), [
        '--proxy-server-host=127.0.0.1', `--proxy-server-port=${grpc.port}`, `--ca-cert=${CERT('ca.crt')}`,
        `--agent-cert=${CERT('agent.crt')}`, `--agent-key=${CERT('agent.key')}`, '--admin-bind-address=127.0.0.1',
        `--admin-server-port=${await freePort()}`, '--health-server-host=127.0.0.1', `--health-server-port=${await freePort()}`,
        '--agent-id=go-agent', '--v=0',
      ]);
      await connected;
    }, 120_000);

    afterAll(async () => {
      server?.destroy();
      await stopAll();
      grpc?.destroy();
    });

    it('server.dial(): end() sends no HALF_CLOSE to the Go agent, and the answer still arrives', async () => {
      const target = await requestTarget();
      cleanups.push(() => target.close());
      const socket = await server.dial(target.address);
      socket.end('GET /');
      expect(await drain(socket)).toEqual({ text: 'answer to GET /', errored: null });
      expect(server.stats.packets.toAgent['HALF_CLOSE']).toBeUndefined();
    });

    it('an endpoint waiting for EOF is closed after halfCloseTimeoutMs: the Go agent answers our CLOSE_REQ', async () => {
      const target = await silentTarget();
      cleanups.push(() => target.close());
      const socket = await server.dial(target.address, { halfCloseTimeoutMs: 300 });
      socket.end('no EOF will reach you');
      expect(await drain(socket)).toEqual({ text: '', errored: null });
      await target.closed;
      expect(server.stats.packets.toAgent['HALF_CLOSE']).toBeUndefined();
    });

    it("HTTP-CONNECT: a client's FIN is not passed to the Go agent; the answer still arrives", async () => {
      const target = await requestTarget();
      cleanups.push(() => target.close());
      const frontend = createHttpConnectFrontend({ server });
      await frontend.listen({ port: 0, host: '127.0.0.1' });
      cleanups.push(() => frontend.close({ graceMs: 0 }));
      const { socket } = await rawConnect((frontend.address() as net.AddressInfo).port, target.address);
      socket.end('GET /via-connect');
      const answer = await readUntil(socket, () => false);
      socket.destroy();
      expect(answer.toString()).toBe('answer to GET /via-connect');
      expect(server.stats.packets.toAgent['HALF_CLOSE']).toBeUndefined();
    });
  });
});
