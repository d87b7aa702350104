/**
 * The two programs spawned as processes with reference-style flag sets: a CONNECT request and a gRPC dial carried
 * end to end, /metrics counting the dial, /readyz flipping, drain on the first signal, exit on the second.
 */
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { expectNoLeaks, snapshotResources, type ResourceSnapshot } from '../../helpers/leaks.js';
import { refusedAddress } from '../../helpers/sockets.js';
import { openProxyStream } from '../../../src/transport/grpc/index.js';
import { dialOverStream } from '../../../src/client/index.js';
import { connectViaHttpProxy } from '../../../src/client/http-connect.js';
import { httpGet, programPool, scrapeMetrics, serverTlsFlags } from './processes.js';

const S = 'konnectivity_network_proxy_server_';
const A = 'konnectivity_network_proxy_agent_';

let before: ResourceSnapshot;
const pool = programPool();
let echo: Server;
let echoPort: number;
let dir: string;

beforeEach(async () => {
  before = snapshotResources();
  dir = mkdtempSync(join(tmpdir(), 'kts-cli-it-'));
  echo = createServer((s) => s.pipe(s));
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
  echoPort = (echo.address() as { port: number }).port;
});

afterEach(async () => {
  await pool.killAll();
  await new Promise<void>((r) => echo.close(() => r()));
  rmSync(dir, { recursive: true, force: true });
  await expectNoLeaks(before, { timeoutMs: 5000 });
});

const start = pool.start;

/** CONNECT through the HTTP-CONNECT frontend; resolves with the status line and, on 200, an echo round trip. */
function connectRequest(port: number, target: string, payload = 'hello through the tunnel'): Promise<{ head: string; echoed: string }> {
  return new Promise((resolve, reject) => {
    const sock: Socket = connect(port, '127.0.0.1');
    let buf = '';
    let head: string | undefined;
    sock.setEncoding('utf8');
    sock.on('error', reject);
    sock.on('connect', () => sock.write(`CONNECT ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`));
    sock.on('data', (chunk: string) => {
      buf += chunk;
      if (head === undefined) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        head = buf.slice(0, end);
        buf = buf.slice(end + 4);
        if (!head.startsWith('HTTP/1.1 200')) {
          sock.on('end', () => resolve({ head: `${head}\r\n\r\n${buf}`, echoed: '' }));
          return;
        }
        sock.write(payload);
      }
      if (buf.length >= payload.length) {
        sock.end();
        sock.destroy();
        resolve({ head, echoed: buf });
      }
    });
  });
}

/** Read a socket's text up to and including a delimiter, one chunk of the stream at a time. */
function lineReader(sock: Socket): { next(delimiter: string): Promise<string> } {
  let buf = '';
  let wake: (() => void) | undefined;
  sock.on('data', (c: string) => {
    buf += c;
    wake?.();
  });
  return {
    async next(delimiter) {
      for (;;) {
        const i = buf.indexOf(delimiter);
        if (i >= 0) {
          const out = buf.slice(0, i + delimiter.length);
          buf = buf.slice(i + delimiter.length);
          return out;
        }
        await new Promise<void>((r) => (wake = r));
      }
    },
  };
}

/** A CA, a server certificate for 127.0.0.1/localhost and client certificates `agent` and `client`, with openssl. */
function makeCerts(where: string): void {
  const openssl = (args: string[]): void => void execFileSync('openssl', args, { cwd: where, stdio: 'ignore' });
  openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '1', '-subj', '/CN=test-ca']);
  const leaf = (name: string, ext: string): void => {
    openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`]);
    writeFileSync(join(where, `${name}.ext`), ext);
    openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '1', '-extfile', `${name}.ext`]);
  };
  leaf('server', 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  leaf('agent', 'extendedKeyUsage=clientAuth\n');
  leaf('client', 'extendedKeyUsage=clientAuth\n');
}

function serverFlags(extra: string[]): string[] {
  // The reference's flag names, in both `--flag=value` and `--flag value` forms.
  return [
    '--server-port=0',
    '--server-bind-address=127.0.0.1',
    '--agent-port',
    '0',
    '--agent-bind-address=127.0.0.1',
    '--health-port=0',
    '--health-bind-address=127.0.0.1',
    '--admin-port=0',
    '--admin-bind-address=127.0.0.1',
    '--server-id=server-1',
    '--server-count=1',
    '--proxy-strategies=destHost,default',
    '--keepalive-time=1h',
    '--frontend-keepalive-time=1h',
    '--backend-dial-timeout=10s',
    '--graceful-shutdown-timeout=2s',
    '--xfr-channel-size=10',
    '--logtostderr=true',
    '-v=4',
    ...extra,
  ];
}

function agentFlags(agentPort: number, extra: string[]): string[] {
  return [
    '--proxy-server-host=127.0.0.1',
    `--proxy-server-port=${agentPort}`,
    '--agent-id=agent-1',
    '--agent-identifiers=host=localhost&ipv4=127.0.0.1',
    '--health-server-host=127.0.0.1',
    '--health-server-port=0',
    '--admin-bind-address=127.0.0.1',
    '--admin-server-port=0',
    '--sync-interval=100ms',
    '--sync-interval-cap=1s',
    '--probe-interval=1s',
    '--keepalive-time=1h',
    '--sync-forever=false',
    '-v',
    '4',
    ...extra,
  ];
}

describe('konnectivity-server and konnectivity-agent as processes', () => {
  it('http-connect mode: CONNECT through the tunnel, metrics count the dial, readiness flips, drain then exit', async () => {
    const server = start('konnectivity-server', serverFlags(['--mode=http-connect']));
    const sp = await server.ports(['frontend-http-connect', 'agent', 'health', 'admin']);

    expect(await httpGet(sp['health']!, '/healthz')).toEqual({ status: 200, body: 'ok' });
    expect(await httpGet(sp['health']!, '/readyz')).toEqual({ status: 500, body: 'no connection to any proxy agent' });
    const noAgent = await connectRequest(sp['frontend-http-connect']!, `127.0.0.1:${echoPort}`);
    expect(noAgent.head).toMatch(/^HTTP\/1\.1 500 .*currently no tunnels available: No agent available/s);

    const agent = start('konnectivity-agent', agentFlags(sp['agent']!, []));
    const ap = await agent.ports(['health', 'admin']);
    await agent.waitFor(/Ready: a tunnel is up/);
    await server.waitFor(/"Agent connected" agentID="agent-1" serverID=/);
    // The reference's option dump at -v=1 (test/interop/reference/parity-flags.test.ts compares it with Go's).
    expect(server.output()).toMatch(/^I\d{4} [\d:.]+ +\d+ process\.ts:\d+\] ServerID set to server-1\.$/m);
    expect(agent.output()).toMatch(/^I\d{4} [\d:.]+ +\d+ process\.ts:\d+\] AgentID set to agent-1\.$/m);
    // The reference's warning, word for word.
    await agent.waitFor(/^W\d{4} [\d:.]+ +\d+ event-logs\.ts:\d+\] change detected in proxy server count \(was: 0, now: 1, source: "KNP server response headers"\)$/m);
    expect(await httpGet(sp['health']!, '/readyz')).toEqual({ status: 200, body: 'ok' });
    expect(await httpGet(sp['health']!, '/ready')).toEqual({ status: 200, body: 'ok' });
    expect(await httpGet(ap['health']!, '/readyz')).toEqual({ status: 200, body: 'ok' });

    const ok = await connectRequest(sp['frontend-http-connect']!, `127.0.0.1:${echoPort}`);
    expect(ok.head).toBe('HTTP/1.1 200 Connection Established');
    expect(ok.echoed).toBe('hello through the tunnel');
    // The per-dial lines of -v=3 and -v=4 (listened to only at such a verbosity).
    await server.waitFor(/"Proxy connection established" dialID=\d+ connectionID=1 agentID="agent-1" dialAddress="127\.0\.0\.1:\d+" dialDuration="[\d.]+[µm]?s"$/m);
    await server.waitFor(/"Connection established, sent 200 OK" host="127\.0\.0\.1:\d+"/);
    await agent.waitFor(/"Endpoint connection established" dialID=\d+ connectionID=1 dialAddress="127\.0\.0\.1:\d+"$/m);
    const refusedAt = await refusedAddress();
    const refused = await connectRequest(sp['frontend-http-connect']!, refusedAt);
    expect(refused.head).toMatch(/^HTTP\/1\.1 502 .*connection refused/s);
    // As the Go programs word and key them.
    const at = refusedAt.replace(/\./g, '\\.');
    await server.waitFor(new RegExp(`^E\\d{4} [\\d:.]+ +\\d+ event-logs\\.ts:\\d+\\] "DIAL_RSP contains failure" err="dial tcp ${at}: connect: connection refused" dialID=\\d+ agentID="agent-1"$`, 'm'));
    await agent.waitFor(new RegExp(`"error dialing backend" error="dial tcp ${at}: connect: connection refused" dialID=\\d+ connectionID=2 dialAddress="${at}"$`, 'm'));

    const m = await scrapeMetrics(sp['admin']!);
    expect(m.get(`${S}dial_duration_seconds_count`)).toBe(1);
    expect(m.get(`${S}dial_failure_count{reason="no_agent"}`)).toBe(1);
    expect(m.get(`${S}dial_failure_count{reason="error_response"}`)).toBe(1);
    expect(m.get(`${S}ready_backends{proxy_strategy="default"}`)).toBe(1);
    expect(m.get(`${S}ready_backends{proxy_strategy="destHost"}`)).toBe(1);
    expect(m.get(`${S}grpc_connections{service_method="Connect"}`)).toBe(1);
    expect(m.get(`${S}stream_packets_total{segment="to_agent",packet_type="DIAL_REQ"}`)).toBe(2);
    expect(m.get(`${S}stream_packets_total{segment="from_agent",packet_type="DIAL_RSP"}`)).toBe(2);
    // The health port serves the same registry.
    expect((await scrapeMetrics(sp['health']!)).get(`${S}dial_duration_seconds_count`)).toBe(1);

    const am = await scrapeMetrics(ap['health']!);
    expect(am.get(`${A}open_server_connections`)).toBe(1);
    expect(am.get(`${A}known_server_count`)).toBe(1);
    expect(am.get(`${A}endpoint_dial_failure_total{reason="unknown"}`)).toBe(1);
    const redirect = await httpGet(ap['admin']!, '/metrics');
    expect(redirect.status).toBe(301);

    // First signal: DRAIN, the agent keeps serving; second signal: exit 0.
    agent.child.kill('SIGTERM');
    await agent.waitFor(/Draining: DRAIN sent on every tunnel/);
    await server.waitFor(/"agent is draining" agentID="agent-1"/);
    const whileDraining = await connectRequest(sp['frontend-http-connect']!, `127.0.0.1:${echoPort}`, 'still served');
    expect(whileDraining.echoed).toBe('still served');
    agent.child.kill('SIGTERM');
    expect(await agent.exited).toBe(0);
    await server.waitFor(/"Stream read from agent (cancelled|failure)".*agentID="agent-1"/);
    expect(await httpGet(sp['health']!, '/readyz')).toEqual({ status: 500, body: 'no connection to any proxy agent' });

    server.child.kill('SIGTERM');
    expect(await server.exited).toBe(0);
    expect(server.output()).toContain('"server stopped"');
  });

  it('grpc mode on a Unix socket with an mTLS agent leg and a bearer token: a gRPC dial is carried', async () => {
    makeCerts(dir);
    writeFileSync(join(dir, 'tokens'), 'secret-token\n');
    writeFileSync(join(dir, 'agent-token'), 'secret-token');
    const uds = join(dir, 'konnectivity-server.socket');
    const f = (name: string): string => join(dir, name);

    const server = start(
      'konnectivity-server',
      serverFlags([
        '--mode=grpc',
        `--uds-name=${uds}`,
        '--delete-existing-uds-file=true',
        `--cluster-cert=${f('server.crt')}`,
        `--cluster-key=${f('server.key')}`,
        `--cluster-ca-cert=${f('ca.crt')}`,
        `--agent-token-file=${f('tokens')}`,
        '--log-format=json',
      ]).filter((a) => !a.startsWith('--server-port') && !a.startsWith('--server-bind-address')),
    );
    const sp = await server.ports(['frontend-grpc', 'agent', 'health', 'admin']);
    expect(sp['frontend-grpc']).toBe(0);

    const tlsFlags = [`--ca-cert=${f('ca.crt')}`, `--agent-cert=${f('agent.crt')}`, `--agent-key=${f('agent.key')}`];
    const agent = start('konnectivity-agent', agentFlags(sp['agent']!, [...tlsFlags, `--service-account-token-path=${f('agent-token')}`, '--proxy-server-host=localhost']));
    await agent.waitFor(/Ready: a tunnel is up/);
    await server.waitFor(/"msg":"Agent connected".*"agentID":"agent-1"/);

    const stream = openProxyStream({ socketPath: uds });
    const socket = await dialOverStream(stream, `127.0.0.1:${echoPort}`);
    const echoed = await new Promise<string>((resolve, reject) => {
      let got = '';
      socket.setEncoding('utf8');
      socket.on('data', (c: string) => {
        got += c;
        if (got.length >= 9) resolve(got);
      });
      socket.on('error', reject);
      socket.write('grpc dial');
    });
    expect(echoed).toBe('grpc dial');
    socket.destroy();
    await new Promise<void>((r) => (stream.closed ? r() : stream.once('close', () => r())));
    // The end of the frontend's call in the reference's words: a clean end or a cancel, not a failure.
    await server.waitFor(/"(Receive stream from frontend closed|Stream read from frontend cancelled)"/);
    expect(server.output()).not.toContain('Stream read from frontend failure');

    const m = await scrapeMetrics(sp['admin']!);
    expect(m.get(`${S}dial_duration_seconds_count`)).toBe(1);
    expect(m.get(`${S}stream_packets_total{segment="from_client",packet_type="DIAL_REQ"}`)).toBe(1);

    agent.child.kill('SIGTERM');
    await agent.waitFor(/Draining/);
    agent.child.kill('SIGTERM');
    const code = await agent.exited;
    expect(code, agent.output()).toBe(0);
    server.child.kill('SIGTERM');
    expect(await server.exited).toBe(0);
  });

  it('http-connect mode on TCP with mTLS on both legs, as kube-apiserver connects', async () => {
    makeCerts(dir);
    const f = (name: string): string => join(dir, name);
    const server = start(
      'konnectivity-server',
      serverFlags([
        '--mode=http-connect',
        ...serverTlsFlags({ cert: f('server.crt'), key: f('server.key'), ca: f('ca.crt') }),
        '--tls-min-version=VersionTLS12',
      ]),
    );
    const sp = await server.ports(['frontend-http-connect', 'agent']);
    const agent = start('konnectivity-agent', agentFlags(sp['agent']!, [`--ca-cert=${f('ca.crt')}`, `--agent-cert=${f('agent.crt')}`, `--agent-key=${f('agent.key')}`]));
    await agent.waitFor(/Ready: a tunnel is up/);

    const ca = readFileSync(f('ca.crt'));
    const socket = await connectViaHttpProxy({
      proxy: { host: '127.0.0.1', port: sp['frontend-http-connect']! },
      tls: { ca, cert: readFileSync(f('client.crt')), key: readFileSync(f('client.key')), servername: 'localhost' },
      target: `127.0.0.1:${echoPort}`,
    });
    socket.write('over mTLS');
    const [chunk] = (await once(socket, 'data')) as [Buffer];
    expect(chunk.toString()).toBe('over mTLS');
    socket.destroy();
    // Without a client certificate the TLS handshake is refused.
    await expect(connectViaHttpProxy({ proxy: { host: '127.0.0.1', port: sp['frontend-http-connect']! }, tls: { ca, servername: 'localhost' }, target: `127.0.0.1:${echoPort}` })).rejects.toThrow();
  });

  it('yamux agent leg (--agent-transport=yamux / --transport=yamux) over TLS carries a CONNECT', async () => {
    makeCerts(dir);
    const f = (name: string): string => join(dir, name);
    const server = start(
      'konnectivity-server',
      serverFlags(['--mode=http-connect', '--agent-transport=yamux', `--cluster-cert=${f('server.crt')}`, `--cluster-key=${f('server.key')}`, `--cluster-ca-cert=${f('ca.crt')}`]),
    );
    const sp = await server.ports(['frontend-http-connect', 'agent', 'admin']);
    const agent = start('konnectivity-agent', agentFlags(sp['agent']!, ['--transport=yamux', `--ca-cert=${f('ca.crt')}`, `--agent-cert=${f('agent.crt')}`, `--agent-key=${f('agent.key')}`]));
    await agent.waitFor(/Ready: a tunnel is up/);
    const ok = await connectRequest(sp['frontend-http-connect']!, `127.0.0.1:${echoPort}`, 'over yamux');
    expect(ok.echoed).toBe('over yamux');
    expect((await scrapeMetrics(sp['admin']!)).get(`${S}dial_duration_seconds_count`)).toBe(1);
    server.child.kill('SIGTERM');
    expect(await server.exited).toBe(0);
  });

  it('an agent with a wrong bearer token is refused, keeps retrying and stays not ready', async () => {
    writeFileSync(join(dir, 'tokens'), 'secret-token\n');
    writeFileSync(join(dir, 'bad-token'), 'wrong');
    const server = start('konnectivity-server', serverFlags(['--mode=http-connect', `--agent-token-file=${join(dir, 'tokens')}`]));
    const sp = await server.ports(['agent']);
    const agent = start('konnectivity-agent', agentFlags(sp['agent']!, [`--service-account-token-path=${join(dir, 'bad-token')}`]));
    const ap = await agent.ports(['health']);
    await agent.waitFor(/"cannot connect once" err=.*invalid bearer token/);
    // A second refusal shows the agent survived the first and retries.
    await agent.waitFor(/"cannot connect once" err=.*invalid bearer token/, 2);
    expect(await httpGet(ap['health']!, '/readyz')).toEqual({ status: 503, body: '[+]ping ok\n[-]server-connected failed: no servers connected\n' });
    // Two signals sent at once may merge into one: send the second once the first was handled.
    agent.child.kill('SIGTERM');
    await agent.waitFor(/Draining/);
    agent.child.kill('SIGTERM');
    expect(await agent.exited).toBe(0);
  });

  it('an agent started before its server keeps retrying and connects once the server is up', async () => {
    // Learn a free agent port from a first server, then stop it: the agent starts with nothing listening there.
    const first = start('konnectivity-server', serverFlags(['--mode=http-connect']));
    const { agent: agentPort } = await first.ports(['agent']);
    await first.kill();
    const agent = start('konnectivity-agent', agentFlags(agentPort!, []));
    await agent.waitFor(/"cannot connect once"/, 2);
    const server = start('konnectivity-server', serverFlags(['--mode=http-connect', `--agent-port=${agentPort}`]));
    const sp = await server.ports(['frontend-http-connect']);
    await agent.waitFor(/Ready: a tunnel is up/);
    expect((await connectRequest(sp['frontend-http-connect']!, `127.0.0.1:${echoPort}`, 'late server')).echoed).toBe('late server');
  });

  it('server graceful shutdown keeps open tunnels working; a second signal exits 1 at once', async () => {
    const server = start('konnectivity-server', serverFlags(['--mode=http-connect', '--graceful-shutdown-timeout=10m']));
    const sp = await server.ports(['frontend-http-connect', 'agent']);
    const agent = start('konnectivity-agent', agentFlags(sp['agent']!, []));
    await agent.waitFor(/Ready: a tunnel is up/);

    const sock = connect(sp['frontend-http-connect']!, '127.0.0.1');
    sock.setEncoding('utf8');
    const reader = lineReader(sock);
    sock.write(`CONNECT 127.0.0.1:${echoPort} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
    expect(await reader.next('\r\n\r\n')).toBe('HTTP/1.1 200 Connection Established\r\n\r\n');

    server.child.kill('SIGTERM');
    await server.waitFor(/Shutting down server\./);
    sock.write('after SIGTERM\n');
    expect(await reader.next('\n')).toBe('after SIGTERM\n');

    server.child.kill('SIGTERM');
    expect(await server.exited).toBe(1);
    sock.destroy();
  });

  it('server-list mode: one agent holds a tunnel to each --proxy-server-addresses entry', async () => {
    const s1 = start('konnectivity-server', serverFlags(['--server-id=s1', '--server-count=2', '--mode=http-connect']));
    const s2 = start('konnectivity-server', serverFlags(['--server-id=s2', '--server-count=2', '--mode=http-connect']));
    const p1 = await s1.ports(['agent', 'health']);
    const p2 = await s2.ports(['agent', 'health']);
    const agent = start('konnectivity-agent', agentFlags(0, [`--proxy-server-addresses=127.0.0.1:${p1['agent']},127.0.0.1:${p2['agent']}`]));
    const ap = await agent.ports(['health']);
    await agent.waitFor(/"Start serving" serverID="s1"/);
    await agent.waitFor(/"Start serving" serverID="s2"/);
    expect((await scrapeMetrics(ap['health']!)).get(`${A}open_server_connections`)).toBe(2);
    expect((await scrapeMetrics(ap['health']!)).get(`${A}known_server_count`)).toBe(2);
    expect((await httpGet(p1['health']!, '/readyz')).status).toBe(200);
    expect((await httpGet(p2['health']!, '/readyz')).status).toBe(200);

    await s1.kill();
    await agent.waitFor(/"could not read stream".*serverID="s1"/);
    expect((await scrapeMetrics(ap['health']!)).get(`${A}open_server_connections`)).toBe(1);
    expect(await httpGet(ap['health']!, '/readyz')).toEqual({ status: 200, body: 'ok' });
  });

  it('rejects a bad command line with exit 2 and prints --help with exit 0', async () => {
    const bad = start('konnectivity-server', ['--server-port=http']);
    expect(await bad.exited).toBe(2);
    expect(bad.output()).toContain('invalid argument "http" for "--server-port" flag');
    const unknown = start('konnectivity-agent', ['--proxy-server-hots=x']);
    expect(await unknown.exited).toBe(2);
    expect(unknown.output()).toContain('unknown flag: --proxy-server-hots');
    const help = start('konnectivity-agent', ['--help']);
    expect(await help.exited).toBe(0);
    expect(help.output()).toContain('--service-account-token-path');
  });
});
