/**
 * Refused connections under the server program: every listener (gRPC and yamux agent listeners, the HTTP-CONNECT
 * frontend) logs each one at the default verbosity and counts it in
 * `konnectivity_ts_server_connection_refusals_total{listener,reason}`; a refused agent stream is counted in
 * `konnectivity_ts_server_agent_refusals_total{code}`.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { expectNoLeaks, snapshotResources, type ResourceSnapshot } from '../../helpers/leaks.js';
import { untilAsync } from '../../helpers/until.js';
import { httpGet, programPool, scrapeMetrics, serverTlsFlags } from './processes.js';

const fixture = (name: string): string => new URL(`./fixtures/rotation/${name}`, import.meta.url).pathname;
const T = 'konnectivity_ts_server_';

let before: ResourceSnapshot;
let dir: string;
const pool = programPool();

beforeEach(() => {
  before = snapshotResources();
  dir = mkdtempSync(join(tmpdir(), 'kts-refusals-'));
});

afterEach(async () => {
  await pool.killAll();
  rmSync(dir, { recursive: true, force: true });
  await expectNoLeaks(before, { timeoutMs: 5000 });
});

function serverFlags(extra: string[]): string[] {
  return [
    '--mode=http-connect',
    '--server-port=0',
    '--server-bind-address=127.0.0.1',
    '--agent-port=0',
    '--agent-bind-address=127.0.0.1',
    '--health-port=0',
    '--health-bind-address=127.0.0.1',
    '--admin-port=0',
    '--admin-bind-address=127.0.0.1',
    ...serverTlsFlags({ cert: fixture('server-a.pem'), key: fixture('server-a-key.pem'), ca: fixture('ca.pem') }),
    '--graceful-shutdown-timeout=0s',
    ...extra,
  ];
}

/** Plain bytes to a TLS port; resolves once the server closed the connection. */
function plaintextTo(port: number): Promise<void> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1', () => s.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
    s.on('error', () => undefined);
    s.on('close', () => resolve());
    s.resume();
  });
}

/** A TLS connection without a client certificate: `send` once secured; resolves with what came back when closed. */
function noClientCertificate(port: number, alpn: string[], send: string): Promise<string> {
  return new Promise((resolve) => {
    let got = '';
    const s = tls.connect({ host: '127.0.0.1', port, ca: readFileSync(fixture('ca.pem')), ALPNProtocols: alpn }, () => s.write(send));
    s.setEncoding('utf8');
    s.on('data', (c: string) => (got += c));
    s.on('error', () => undefined);
    s.on('close', () => resolve(got));
  });
}

describe('refused connections in the server program', () => {
  it('gRPC agent listener and HTTP-CONNECT frontend: logged and counted by listener and reason', async () => {
    const server = pool.start('konnectivity-server', serverFlags([]));
    const sp = await server.ports(['frontend-http-connect', 'agent', 'admin']);

    await plaintextTo(sp['agent']!);
    // The gRPC listener answers the first call with why, and cuts a silent connection only after its deadline.
    const silent = tls.connect({ host: '127.0.0.1', port: sp['agent']!, ca: readFileSync(fixture('ca.pem')), ALPNProtocols: ['h2'] });
    silent.on('error', () => undefined);
    await plaintextTo(sp['frontend-http-connect']!);
    const forbidden = await noClientCertificate(sp['frontend-http-connect']!, ['http/1.1'], 'CONNECT 127.0.0.1:1 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    expect(forbidden).toMatch(/^HTTP\/1\.1 403 /);

    await server.waitFor(/"connection refused" listener="agent" remoteAddress="127\.0\.0\.1:\d+" reason="tls"/);
    await server.waitFor(/"connection refused" listener="agent" remoteAddress="127\.0\.0\.1:\d+" reason="client_certificate"/);
    silent.destroy();
    await server.waitFor(/"connection refused" listener="frontend-http-connect" remoteAddress="127\.0\.0\.1:\d+" reason="tls"/);
    await server.waitFor(/"connection refused" listener="frontend-http-connect" remoteAddress="127\.0\.0\.1:\d+" reason="client_certificate" code="ERR_UNAUTHENTICATED"/);
    const m = await scrapeMetrics(sp['admin']!);
    expect(m.get(`${T}connection_refusals_total{listener="agent",reason="tls"}`)).toBe(1);
    expect(m.get(`${T}connection_refusals_total{listener="agent",reason="client_certificate"}`)).toBe(1);
    expect(m.get(`${T}connection_refusals_total{listener="frontend-http-connect",reason="tls"}`)).toBe(1);
    expect(m.get(`${T}connection_refusals_total{listener="frontend-http-connect",reason="client_certificate"}`)).toBe(1);
  });

  it('yamux agent listener: a refused TLS handshake and a refused agent stream (bad token)', async () => {
    writeFileSync(join(dir, 'tokens'), 'secret-token\n');
    writeFileSync(join(dir, 'bad-token'), 'wrong');
    const server = pool.start('konnectivity-server', serverFlags(['--agent-transport=yamux', `--agent-token-file=${join(dir, 'tokens')}`]));
    const sp = await server.ports(['agent', 'admin']);
    await plaintextTo(sp['agent']!);
    await server.waitFor(/"connection refused" listener="agent" remoteAddress="127\.0\.0\.1:\d+" reason="tls"/);

    const agent = pool.start('konnectivity-agent', [
      '--proxy-server-host=127.0.0.1',
      `--proxy-server-port=${sp['agent']!}`,
      '--transport=yamux',
      '--agent-id=agent-1',
      `--ca-cert=${fixture('ca.pem')}`,
      `--agent-cert=${fixture('agent-a.pem')}`,
      `--agent-key=${fixture('agent-a-key.pem')}`,
      `--service-account-token-path=${join(dir, 'bad-token')}`,
      '--health-server-host=127.0.0.1',
      '--health-server-port=0',
      '--admin-bind-address=127.0.0.1',
      '--admin-server-port=0',
      '--sync-interval=100ms',
      '--sync-interval-cap=1s',
    ]);
    await agent.ports(['health']);
    await server.waitFor(/"Agent refused" err=".*" agentID="agent-1" remoteAddress="127\.0\.0\.1:\d+" code="ERR_UNAUTHENTICATED"/);
    await untilAsync(async () => ((await scrapeMetrics(sp['admin']!)).get(`${T}agent_refusals_total{code="ERR_UNAUTHENTICATED"}`) ?? 0) >= 1, 'the refused agent counted');
    const m = await scrapeMetrics(sp['admin']!);
    expect(m.get(`${T}connection_refusals_total{listener="agent",reason="tls"}`)).toBe(1);
  });
});
