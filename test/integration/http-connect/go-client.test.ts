/**
 * A Go client (net/http's response parser, the way kube-apiserver's egress selector dials in HTTPConnect mode)
 * against the frontend in front of the real engine, over TCP and a Unix socket. Skipped when `go` is not installed.
 */
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHttpConnectFrontend, type HttpConnectFrontend } from '../../../src/server/frontends/http-connect/index.js';
import { Engine } from '../../helpers/engine.js';
import { refusedAddress } from '../../helpers/sockets.js';
import { echoServer, type TestServer } from './helpers.js';

function hasGo(): boolean {
  try {
    execFileSync('go', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Run the Go client; resolves with its stdout, rejects with its stderr. */
function runClient(binary: string, proxy: string, target: string, message: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(binary, [proxy, target, message], { timeout: 30_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`go client failed: ${stderr || err.message}`));
      else resolve(stdout);
    });
  });
}

describe.skipIf(!hasGo())('a Go HTTP-CONNECT client (kube-apiserver style)', () => {
  let dir: string;
  let binary: string;
  let engine: Engine;
  let target: TestServer;
  const frontends: HttpConnectFrontend[] = [];
  let tcpProxy: string;
  let udsProxy: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'knp-go-'));
    binary = join(dir, 'go-client');
    const source = fileURLToPath(new URL('./go-client/main.go', import.meta.url));
    execFileSync('go', ['build', '-o', binary, source], {
      env: { ...process.env, GO111MODULE: 'off', GOFLAGS: '', CGO_ENABLED: '0' },
      stdio: 'pipe',
      timeout: 120_000,
    });
    engine = new Engine();
    await engine.agent();
    target = await echoServer();
    const tcp = createHttpConnectFrontend({ server: engine.server });
    await tcp.listen({ port: 0, host: '127.0.0.1' });
    tcpProxy = `127.0.0.1:${(tcp.address() as AddressInfo).port}`;
    const uds = createHttpConnectFrontend({ server: engine.server });
    udsProxy = join(dir, 'proxy.sock');
    await uds.listen({ path: udsProxy });
    frontends.push(tcp, uds);
  }, 150_000);

  afterAll(async () => {
    for (const f of frontends) await f.close({ graceMs: 1000 });
    await engine?.close();
    await target?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('tunnels over TCP', async () => {
    const out = await runClient(binary, tcpProxy, `127.0.0.1:${target.port}`, 'hello from go');
    expect(out).toBe('status=200\necho=hello from go\n');
  });

  it('tunnels over a Unix socket', async () => {
    const out = await runClient(binary, udsProxy, `127.0.0.1:${target.port}`, 'hello over uds');
    expect(out).toBe('status=200\necho=hello over uds\n');
  });

  it("reads the 502 and the agent's error text", async () => {
    const refused = await refusedAddress();
    const out = await runClient(binary, tcpProxy, refused, 'unused');
    expect(out).toBe(`status=502\nbody=dial tcp ${refused}: connect: connection refused\n`);
  });
});
