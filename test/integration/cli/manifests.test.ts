/**
 * The reference's deployment manifests (`examples/kubernetes/konnectivity-server.yaml` and
 * `konnectivity-agent.yaml`, every flag of every version) start our programs unchanged: each flag is honoured, or
 * refused with exit 2 and a reason, as the Go binary refuses it too. Then both programs run with those flag lists
 * (fixed ports made 0, listeners bound to 127.0.0.1, paths in a temporary folder): the server logs to its
 * `--log-file` only, authenticates the agent by TokenReview against a stand-in Kubernetes API, and carries a
 * CONNECT on its Unix socket. Every flag of the Go binaries' `--help` is known to ours too.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { expectNoLeaks, snapshotResources, type ResourceSnapshot } from '../../helpers/leaks.js';
import { startKubeApi, type KubeApi } from '../../helpers/kube-api.js';
import { until, untilAsync } from '../../helpers/until.js';
import { agentFlagSpecs, parseAgentOptions } from '../../../src/cli/agent-options.js';
import { main as serverMain } from '../../../src/cli/server.js';
import { parseServerOptions, serverFlagSpecs } from '../../../src/cli/server-options.js';
import type { FlagSpec } from '../../../src/cli/flags.js';
import type { ProgramIO } from '../../../src/cli/process.js';
import { kit } from '../../interop/reference/kit.js';
import { httpGet, programPool } from './processes.js';

const fixture = (name: string): string => new URL(`../http-connect/fixtures/${name}`, import.meta.url).pathname;

/** examples/kubernetes/konnectivity-server.yaml (current version), flag by flag. */
const SERVER_MANIFEST = [
  '--log-file=/var/log/konnectivity-server.log',
  '--logtostderr=false',
  '--log-file-max-size=0',
  '--uds-name=/etc/srv/kubernetes/konnectivity-server/konnectivity-server.socket',
  '--cluster-cert=/etc/srv/kubernetes/pki/apiserver.crt',
  '--cluster-key=/etc/srv/kubernetes/pki/apiserver.key',
  '--server-port=0',
  '--agent-port=8091',
  '--health-port=8092',
  '--admin-port=8093',
  '--mode=http-connect',
  '--agent-namespace=kube-system',
  '--agent-service-account=konnectivity-agent',
  '--kubeconfig=/etc/srv/kubernetes/konnectivity-server/kubeconfig',
  '--authentication-audience=system:konnectivity-server',
];
/** Flags only older versions of that manifest use: `--udsName` (the v0.31 Go binary refuses it too). */
const OLD_SERVER_MANIFEST = ['--udsName=/etc/srv/kubernetes/konnectivity/konnectivity-server.socket', '--admin-port=8092'];
/** examples/kubernetes/konnectivity-agent.yaml (every version). */
const AGENT_MANIFEST = [
  '--logtostderr=true',
  '--ca-cert=/var/run/secrets/kubernetes.io/serviceaccount/ca.crt',
  '--proxy-server-host=${CLUSTER_IP}',
  '--proxy-server-port=8091',
  '--service-account-token-path=/var/run/secrets/tokens/konnectivity-agent-token',
];

/** The flags of `proxy-server --help` and `proxy-agent --help` (v0.31.4; checked against the binaries when the kit is there). */
const GO_SERVER_FLAGS = ['add-dir-header', 'admin-bind-address', 'admin-port', 'agent-bind-address', 'agent-namespace', 'agent-port', 'agent-service-account',
  'alsologtostderr', 'authentication-audience', 'cipher-suites', 'cluster-ca-cert', 'cluster-cert', 'cluster-key', 'delete-existing-uds-file',
  'enable-contention-profiling', 'enable-lease-controller', 'enable-profiling', 'frontend-keepalive-time', 'health-bind-address', 'health-port', 'help',
  'keepalive-time', 'kube-api-content-type', 'kubeconfig', 'kubeconfig-burst', 'kubeconfig-qps', 'lease-label', 'lease-namespace', 'log-backtrace-at',
  'log-dir', 'log-file', 'log-file-max-size', 'logtostderr', 'mode', 'one-output', 'proxy-strategies', 'server-bind-address', 'server-ca-cert',
  'server-cert', 'server-count', 'server-id', 'server-key', 'server-port', 'skip-headers', 'skip-log-headers', 'stderrthreshold', 'uds-name', 'v',
  'vmodule', 'xfr-channel-size'];
const GO_AGENT_FLAGS = ['add-dir-header', 'admin-bind-address', 'admin-server-port', 'agent-cert', 'agent-id', 'agent-identifiers', 'agent-key', 'alpn-proto',
  'alsologtostderr', 'ca-cert', 'count-server-leases', 'enable-contention-profiling', 'enable-profiling', 'health-server-host', 'health-server-port', 'help',
  'keepalive-time', 'kube-api-content-type', 'kubeconfig', 'lease-label', 'lease-namespace', 'log-backtrace-at', 'log-dir', 'log-file', 'log-file-max-size',
  'logtostderr', 'one-output', 'probe-interval', 'proxy-server-host', 'proxy-server-port', 'server-count-source', 'service-account-token-path',
  'skip-headers', 'skip-log-headers', 'stderrthreshold', 'sync-forever', 'sync-interval', 'sync-interval-cap', 'v', 'vmodule', 'warn-on-channel-limit',
  'xfr-channel-size'];

const nameOf = (flag: string): string => flag.replace(/^--?/, '').split('=')[0]!;

/** Run the server's main() in-process on `argv`; resolves with the exit code and what it wrote. */
async function runServer(argv: string[]): Promise<{ code: number | undefined; err: string }> {
  let code: number | undefined;
  let err = '';
  const io: ProgramIO = { stdout: { write: () => true }, stderr: { write: (s: string) => void (err += s) }, exit: (c) => void (code = c) };
  await serverMain(argv, io);
  return { code, err };
}

describe('the reference manifests', () => {
  it('every server manifest flag is honoured', () => {
    const { options, parsed } = parseServerOptions(SERVER_MANIFEST, {});
    const specs = new Map(serverFlagSpecs().map((s) => [s.name, s]));
    for (const flag of SERVER_MANIFEST) {
      const spec = specs.get(nameOf(flag));
      expect(spec, flag).toBeDefined();
      expect(spec!.ignored ?? false, `${flag} is honoured, not just accepted`).toBe(false);
    }
    expect(parsed.warnings).toEqual([]);
    expect(options.log).toMatchObject({ logFile: '/var/log/konnectivity-server.log', logtostderr: false, logFileMaxSizeMB: 0 });
    expect(options).toMatchObject({
      udsName: '/etc/srv/kubernetes/konnectivity-server/konnectivity-server.socket',
      clusterCert: '/etc/srv/kubernetes/pki/apiserver.crt',
      clusterKey: '/etc/srv/kubernetes/pki/apiserver.key',
      serverPort: 0,
      agentPort: 8091,
      healthPort: 8092,
      adminPort: 8093,
      mode: 'http-connect',
      kubeconfig: '/etc/srv/kubernetes/konnectivity-server/kubeconfig',
      tokenReview: { namespace: 'kube-system', serviceAccount: 'konnectivity-agent', audience: 'system:konnectivity-server' },
    });
  });

  it('every agent manifest flag is honoured', () => {
    const { options, parsed } = parseAgentOptions(AGENT_MANIFEST, {});
    const specs = new Map(agentFlagSpecs().map((s) => [s.name, s]));
    for (const flag of AGENT_MANIFEST) expect(specs.get(nameOf(flag))?.ignored ?? false, flag).toBe(false);
    expect(parsed.warnings).toEqual([]);
    expect(options).toMatchObject({
      caCert: '/var/run/secrets/kubernetes.io/serviceaccount/ca.crt',
      proxyServerHost: '${CLUSTER_IP}',
      proxyServerPort: 8091,
      serviceAccountTokenPath: '/var/run/secrets/tokens/konnectivity-agent-token',
    });
    expect(options.log.logtostderr).toBe(true);
  });

  it('the old manifest\'s --udsName is refused with exit 2 and a reason, as the reference refuses it', async () => {
    const { code, err } = await runServer(OLD_SERVER_MANIFEST);
    expect(code).toBe(2);
    expect(err).toContain('unknown flag: --udsName');
    expect(parseServerOptions(OLD_SERVER_MANIFEST.slice(1), {}).options.adminPort).toBe(8092);
  });

  it('every flag of the Go binaries\' --help is one of ours', () => {
    if (kit) {
      // The lists above are what the binaries say.
      const flags = (bin: string): string[] => {
        const r = spawnSync(bin, ['--help'], { encoding: 'utf8' });
        return [...(r.stdout + r.stderr).matchAll(/^\s+(?:-\w, )?--([a-z0-9-]+)/gm)].map((m) => m[1]!).sort();
      };
      expect(flags(kit.bin.proxyServer)).toEqual([...GO_SERVER_FLAGS].sort());
      expect(flags(kit.bin.proxyAgent)).toEqual([...GO_AGENT_FLAGS].sort());
    }
    const ours = (specs: FlagSpec[]): Set<string> => new Set(['help', ...specs.map((s) => s.name)]);
    const server = ours(serverFlagSpecs());
    const agent = ours(agentFlagSpecs());
    expect(GO_SERVER_FLAGS.filter((f) => !server.has(f))).toEqual([]);
    expect(GO_AGENT_FLAGS.filter((f) => !agent.has(f))).toEqual([]);
  });
});

describe('the manifests run', () => {
  let before: ResourceSnapshot;
  let dir: string;
  let api: KubeApi;
  let echo: Server;
  const pool = programPool();

  beforeEach(async () => {
    before = snapshotResources();
    dir = mkdtempSync(join(tmpdir(), 'kts-manifest-'));
    api = await startKubeApi({ users: { 'good-token': 'system:serviceaccount:kube-system:konnectivity-agent' } });
    echo = createServer((s) => s.pipe(s));
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
  });

  afterEach(async () => {
    await pool.killAll();
    await new Promise<void>((r) => echo.close(() => r()));
    await api.stop();
    rmSync(dir, { recursive: true, force: true });
    await expectNoLeaks(before, { timeoutMs: 5000 });
  });

  it('server and agent with the manifests\' flags: a log file only, TokenReview, a CONNECT on the Unix socket', async () => {
    const path = (p: string): string => join(dir, p.split('/').at(-1)!);
    const logFile = path('/var/log/konnectivity-server.log');
    const socket = path('/etc/srv/kubernetes/konnectivity-server/konnectivity-server.socket');
    const kubeconfig = api.kubeconfig(dir);
    const substitute = (flag: string): string => {
      const [name, value] = [nameOf(flag), flag.slice(flag.indexOf('=') + 1)];
      if (/-port$/.test(name) && value !== '0') return `--${name}=0`;
      if (name === 'cluster-cert') return `--${name}=${fixture('server.pem')}`;
      if (name === 'cluster-key') return `--${name}=${fixture('server-key.pem')}`;
      if (name === 'kubeconfig') return `--${name}=${kubeconfig}`;
      if (value.startsWith('/')) return `--${name}=${path(value)}`;
      return flag;
    };
    // The test's own additions: loopback only.
    const server = pool.start('konnectivity-server', [...SERVER_MANIFEST.map(substitute), '--agent-bind-address=127.0.0.1', '--health-bind-address=127.0.0.1']);
    // Everything goes to the log file: read the ports there.
    const logged = (): string => (existsSync(logFile) ? readFileSync(logFile, 'utf8') : '');
    await until(() => /"listening" listener="health"/.test(logged()), 'the server\'s log file', 30_000);
    const port = (listener: string): number => Number(new RegExp(`"listening" listener="${listener}" address="[^"]*" port=(\\d+)`).exec(logged())![1]);
    expect(logged()).toMatch(/^Log file created at: /);
    expect(logged()).toMatch(/\nI\d{4} \d\d:\d\d:\d\d\.\d{6} +\d+ server\.ts:\d+\] Starting frontend server for client connections\.\n/);
    expect(existsSync(socket)).toBe(true);
    expect(await httpGet(port('health'), '/healthz')).toEqual({ status: 200, body: 'ok' });
    expect((await httpGet(port('admin'), '/metrics')).status).toBe(200);

    const token = path('/var/run/secrets/tokens/konnectivity-agent-token');
    writeFileSync(token, 'good-token');
    const agent = pool.start('konnectivity-agent', [
      '--logtostderr=true',
      `--ca-cert=${fixture('ca.pem')}`,
      '--proxy-server-host=127.0.0.1',
      `--proxy-server-port=${port('agent')}`,
      `--service-account-token-path=${token}`,
      '--health-server-host=127.0.0.1',
      '--health-server-port=0',
      '--admin-server-port=0',
    ]);
    await agent.waitFor(/"Ready: a tunnel is up"/);
    expect(api.requests.some((r) => r.path === '/apis/authentication.k8s.io/v1/tokenreviews' && (r.body as { spec: { token: string } }).spec.token === 'good-token')).toBe(true);
    await until(() => /"Agent connected"/.test(logged()), 'the server logging the agent');

    const echoed = await new Promise<string>((resolve, reject) => {
      const s = connect(socket);
      let buf = '';
      s.setEncoding('utf8');
      s.once('error', reject);
      s.once('connect', () => s.write(`CONNECT 127.0.0.1:${(echo.address() as { port: number }).port} HTTP/1.1\r\n\r\n`));
      s.on('data', (c: string) => {
        buf += c;
        if (buf.startsWith('HTTP/1.1 200') && buf.includes('\r\n\r\n') && !buf.includes('ping')) s.write('ping');
        if (buf.endsWith('ping')) {
          s.destroy();
          resolve(buf);
        }
      });
    });
    expect(echoed).toMatch(/^HTTP\/1\.1 200 Connection Established\r\n\r\nping$/);
    // Nothing but errors went to stderr (--stderrthreshold=2 with --logtostderr=false).
    expect(server.output().split('\n').filter((l) => /^[IW]\d{4} /.test(l))).toEqual([]);
    await untilAsync(async () => (await httpGet(port('health'), '/readyz')).status === 200, 'server readiness');
  });
});
