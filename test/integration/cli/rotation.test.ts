/**
 * Certificate rotation without a restart, by rotating the files under the running programs: new handshakes use
 * the new certificate, the established tunnel keeps working, and a broken new file (not PEM, key not matching) is
 * logged while the old material stays in use. The agent re-reads its files before each new tunnel: a test TLS
 * listener in its server list records the client certificate and the ALPN protocols of every attempt.
 */
import { copyFileSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { expectNoLeaks, snapshotResources, type ResourceSnapshot } from '../../helpers/leaks.js';
import { programPool } from './processes.js';
import { until } from '../../helpers/until.js';

const FIXTURES = new URL('./fixtures/rotation/', import.meta.url);
const fixture = (name: string): string => new URL(name, FIXTURES).pathname;

let before: ResourceSnapshot;
let dir: string;
const pool = programPool();
const closers: Array<() => Promise<void>> = [];

beforeEach(() => {
  before = snapshotResources();
  dir = mkdtempSync(join(tmpdir(), 'kts-rotate-'));
});

afterEach(async () => {
  await pool.killAll();
  for (const close of closers.splice(0)) await close();
  rmSync(dir, { recursive: true, force: true });
  await expectNoLeaks(before, { timeoutMs: 5000 });
});

const start = pool.start;

/** Replace `to` with a copy of fixture `from` in one rename, as a Secret volume swaps its files. */
function install(from: string, to: string): void {
  const tmp = join(dir, `.tmp-${to}`);
  copyFileSync(fixture(from), tmp);
  renameSync(tmp, join(dir, to));
}

function writeBroken(to: string, text: string): void {
  const tmp = join(dir, `.tmp-${to}`);
  writeFileSync(tmp, text);
  renameSync(tmp, join(dir, to));
}

/** The CN of the certificate a new TLS handshake to 127.0.0.1:port gets (mTLS with agent-a when `mtls`). */
function peerCN(port: number, mtls: boolean): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({
      host: '127.0.0.1',
      port,
      ca: readFileSync(fixture('ca.pem')),
      ...(mtls ? { cert: readFileSync(fixture('agent-a.pem')), key: readFileSync(fixture('agent-a-key.pem')) } : {}),
      ALPNProtocols: ['h2', 'http/1.1'],
    });
    s.once('secureConnect', () => {
      const cn = s.getPeerCertificate().subject?.CN;
      s.destroy();
      resolve(Array.isArray(cn) ? cn[0]! : String(cn));
    });
    s.once('error', reject);
  });
}

/** CONNECT through the TLS HTTP-CONNECT frontend and echo `payload` through the tunnel. */
function connectThrough(port: number, target: string, payload: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, ca: readFileSync(fixture('ca.pem')) });
    let buf = '';
    let open = false;
    s.setEncoding('utf8');
    s.once('error', reject);
    s.once('secureConnect', () => s.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`));
    s.on('data', (c: string) => {
      buf += c;
      if (!open) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        if (!buf.startsWith('HTTP/1.1 200')) return reject(new Error(buf));
        open = true;
        buf = buf.slice(end + 4);
        s.write(payload);
      }
      if (buf.length >= payload.length) {
        s.destroy();
        resolve(buf);
      }
    });
  });
}

/** A TLS listener that asks for a client certificate and records each handshake's CN and offered ALPN protocols. */
async function recorder(): Promise<{ port: number; seen: Array<{ cn: string; alpn: string[] }> }> {
  const seen: Array<{ cn: string; alpn: string[] }> = [];
  const sockets = new Set<Socket>();
  let offered: string[] = [];
  const server = tls.createServer({
    cert: readFileSync(fixture('server-a.pem')),
    key: readFileSync(fixture('server-a-key.pem')),
    ca: readFileSync(fixture('ca.pem')),
    requestCert: true,
    rejectUnauthorized: false,
    ALPNCallback: ({ protocols }) => {
      offered = protocols;
      return protocols.includes('h2') ? 'h2' : undefined;
    },
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  server.on('secureConnection', (s) => {
    const cn = s.getPeerCertificate().subject?.CN;
    seen.push({ cn: Array.isArray(cn) ? cn[0]! : String(cn ?? ''), alpn: offered });
    s.destroy();
  });
  server.on('tlsClientError', () => undefined);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  closers.push(
    () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  );
  return { port: (server.address() as { port: number }).port, seen };
}

describe('certificate rotation without a restart', () => {
  it('the server: new handshakes get the new certificate, the tunnel keeps working, a broken file is logged and ignored', async () => {
    const echo = createServer((s) => s.pipe(s));
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
    closers.push(() => new Promise<void>((r) => echo.close(() => r())));
    const target = `127.0.0.1:${(echo.address() as { port: number }).port}`;
    install('ca.pem', 'ca.crt');
    install('server-a.pem', 'server.crt');
    install('server-a-key.pem', 'server.key');
    install('agent-a.pem', 'agent.crt');
    install('agent-a-key.pem', 'agent.key');
    const server = start('konnectivity-server', [
      '--mode=http-connect',
      '--server-bind-address=127.0.0.1',
      '--server-port=0',
      `--server-cert=${join(dir, 'server.crt')}`,
      `--server-key=${join(dir, 'server.key')}`,
      '--agent-bind-address=127.0.0.1',
      '--agent-port=0',
      `--cluster-cert=${join(dir, 'server.crt')}`,
      `--cluster-key=${join(dir, 'server.key')}`,
      `--cluster-ca-cert=${join(dir, 'ca.crt')}`,
      '--health-bind-address=127.0.0.1',
      '--health-port=0',
      '--admin-port=0',
      '--server-id=s1',
      '-v=2',
    ]);
    const sp = await server.ports(['agent', 'frontend-http-connect']);
    const agent = start('konnectivity-agent', [
      '--proxy-server-host=127.0.0.1',
      `--proxy-server-port=${sp['agent']}`,
      `--ca-cert=${join(dir, 'ca.crt')}`,
      `--agent-cert=${join(dir, 'agent.crt')}`,
      `--agent-key=${join(dir, 'agent.key')}`,
      '--health-server-host=127.0.0.1',
      '--health-server-port=0',
      '--admin-server-port=0',
      '--agent-id=a1',
      '-v=2',
    ]);
    await agent.waitFor(/"Ready: a tunnel is up"/);
    expect(await peerCN(sp['agent']!, true)).toBe('server-a');
    expect(await peerCN(sp['frontend-http-connect']!, false)).toBe('server-a');
    expect(await connectThrough(sp['frontend-http-connect']!, target, 'before')).toBe('before');

    install('server-b.pem', 'server.crt');
    install('server-b-key.pem', 'server.key');
    await server.waitFor(/"Reloaded TLS certificate" listener="agent"/);
    await server.waitFor(/"Reloaded TLS certificate" listener="frontend"/);
    expect(await peerCN(sp['agent']!, true)).toBe('server-b');
    expect(await peerCN(sp['frontend-http-connect']!, false)).toBe('server-b');
    // The agent's tunnel from before the rotation still carries connections; it was never re-made.
    expect(await connectThrough(sp['frontend-http-connect']!, target, 'after')).toBe('after');
    expect(server.output().match(/"Agent connected"/g)).toHaveLength(1);

    // A file that is not PEM: logged, the old material stays.
    writeBroken('server.crt', 'this is not a certificate\n');
    await server.waitFor(/"Could not reload TLS certificate, keeping the old one" err=".*" listener="agent"/);
    expect(await peerCN(sp['agent']!, true)).toBe('server-b');
    // A certificate whose key does not match: the same.
    install('server-a.pem', 'server.crt');
    await server.waitFor(/"Could not reload TLS certificate, keeping the old one" err=".*" listener="agent"/, 2);
    expect(await peerCN(sp['agent']!, true)).toBe('server-b');
    expect(await peerCN(sp['frontend-http-connect']!, false)).toBe('server-b');
    expect(await connectThrough(sp['frontend-http-connect']!, target, 'still')).toBe('still');
  });

  it('the agent: each new tunnel reads rotated files (a broken one is logged and the old one used) and offers --alpn-proto', async () => {
    const rec = await recorder();
    install('ca.pem', 'ca.crt');
    install('agent-a.pem', 'agent.crt');
    install('agent-a-key.pem', 'agent.key');
    const agent = start('konnectivity-agent', [
      `--proxy-server-addresses=127.0.0.1:${rec.port}`,
      `--ca-cert=${join(dir, 'ca.crt')}`,
      `--agent-cert=${join(dir, 'agent.crt')}`,
      `--agent-key=${join(dir, 'agent.key')}`,
      '--alpn-proto=konnectivity',
      '--sync-interval=50ms',
      '--sync-interval-cap=100ms',
      '--health-server-host=127.0.0.1',
      '--health-server-port=0',
      '--admin-server-port=0',
      '--agent-id=a1',
      '-v=2',
    ]);
    await until(() => rec.seen.length > 0, 'a first handshake');
    expect(rec.seen[0]).toEqual({ cn: 'agent-a', alpn: ['konnectivity', 'h2'] });

    install('agent-b.pem', 'agent.crt');
    install('agent-b-key.pem', 'agent.key');
    await until(() => rec.seen.some((h) => h.cn === 'agent-b'), 'a handshake with the new certificate');
    await agent.waitFor(/"Reloaded TLS certificate"/);

    writeBroken('agent.key', 'not a key\n');
    await agent.waitFor(/"Could not reload TLS certificate, keeping the old one"/);
    const n = rec.seen.length;
    await until(() => rec.seen.length > n + 1, 'handshakes after the broken file');
    expect(rec.seen.slice(n).every((h) => h.cn === 'agent-b')).toBe(true);
    // Reported once, not at every attempt.
    expect(agent.output().match(/Could not reload TLS certificate/g)).toHaveLength(1);
  });
});
