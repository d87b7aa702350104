import { readFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { onShutdownSignals, parseCommandLine, tokenFileReader, tokenFileVerifier, type ProgramIO } from '../../../src/cli/process.js';
import { parseServerOptions, serverFlagSpecs } from '../../../src/cli/server-options.js';
import { loadClientTls, loadServerTls } from '../../../src/cli/tls.js';

const dir = mkdtempSync(join(tmpdir(), 'kts-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function fakeIO(): ProgramIO & { out: string; err: string; code: number | undefined } {
  const io = {
    out: '',
    err: '',
    code: undefined as number | undefined,
    stdout: { write: (s: string) => (io.out += s) },
    stderr: { write: (s: string) => (io.err += s) },
    exit: (c: number) => void (io.code = c),
  };
  return io;
}

describe('parseCommandLine', () => {
  const run = (argv: string[], io: ProgramIO) =>
    parseCommandLine('konnectivity-server', 'summary', serverFlagSpecs, (a) => parseServerOptions(a, {}), argv, io);

  it('returns the options for a good command line', () => {
    const io = fakeIO();
    const r = run(['--server-port=0', '--agent-port', '0', '--mode=http-connect'], io);
    expect(r?.options.mode).toBe('http-connect');
    expect(io.code).toBeUndefined();
  });
  it('prints the flags and exits 0 on --help', () => {
    const io = fakeIO();
    expect(run(['--help'], io)).toBeUndefined();
    expect(io.code).toBe(0);
    expect(io.out).toContain('--proxy-strategies');
    expect(io.out).toContain('--graceful-shutdown-timeout');
  });
  it.each([
    [['--no-such-flag'], /unknown flag: --no-such-flag/],
    [['--server-port=abc'], /invalid argument "abc" for "--server-port"/],
    [['--mode=tcp'], /must be grpc or http-connect/],
    [['--keepalive-time=5'], /invalid duration/],
    [['--uds-name=/tmp/x.sock', '--server-port=8090'], /--server-port must be 0/],
  ])('exits 2 with a clear message for %j', (argv, message) => {
    const io = fakeIO();
    expect(run(argv, io)).toBeUndefined();
    expect(io.code).toBe(2);
    expect(io.err).toMatch(message);
    expect(io.err).toContain("Run 'konnectivity-server --help'");
  });
});

describe('onShutdownSignals', () => {
  it('calls first then second, and stops after dispose', () => {
    const seen: string[] = [];
    const dispose = onShutdownSignals(
      (s) => seen.push(`first:${s}`),
      (s) => seen.push(`second:${s}`),
    );
    process.emit('SIGTERM', 'SIGTERM');
    process.emit('SIGINT', 'SIGINT');
    process.emit('SIGTERM', 'SIGTERM');
    dispose();
    expect(seen).toEqual(['first:SIGTERM', 'second:SIGINT', 'second:SIGTERM']);
    expect(process.listenerCount('SIGTERM')).toBe(0);
  });
});

describe('tokens', () => {
  it('reads the agent token verbatim on every call', async () => {
    const path = join(dir, 'token');
    writeFileSync(path, 'abc\n');
    const read = tokenFileReader(path);
    expect(await read()).toBe('abc\n');
    writeFileSync(path, 'rotated');
    expect(await read()).toBe('rotated');
    await expect(tokenFileReader(join(dir, 'missing'))()).rejects.toMatchObject({ code: 'ERR_UNAUTHENTICATED' });
  });

  it('accepts listed bearer tokens and refuses others', async () => {
    const path = join(dir, 'accepted');
    writeFileSync(path, '# tokens\nt1\n\nt2\n');
    const verify = tokenFileVerifier(path);
    await expect(verify({ agentID: 'a', metadata: { authorization: ['Bearer t1\n'] } })).resolves.toBeUndefined();
    await expect(verify({ agentID: 'a', metadata: { authorization: ['Bearer t2'] } })).resolves.toBeUndefined();
    const refused: Array<Record<string, string[]>> = [{}, { authorization: ['Bearer t3'] }, { authorization: ['t1'] }, { authorization: ['Bearer t1', 'Bearer t2'] }, { authorization: ['Bearer # tokens'] }];
    for (const md of refused) {
      await expect(verify({ agentID: 'a', metadata: md })).rejects.toMatchObject({ code: 'ERR_UNAUTHENTICATED' });
    }
    await expect(tokenFileVerifier(join(dir, 'missing'))({ agentID: 'a', metadata: {} })).rejects.toMatchObject({ code: 'ERR_UNAUTHENTICATED' });
  });
});

describe('tls files', () => {
  it('is plaintext without certificates, mTLS with a CA', () => {
    expect(loadServerTls({})).toBeUndefined();
    expect(loadClientTls({})).toBeUndefined();
    const cert = join(dir, 'c.pem');
    const key = join(dir, 'k.pem');
    const ca = join(dir, 'ca.pem');
    const fixture = (name: string): Buffer => readFileSync(new URL(`../../integration/http-connect/fixtures/${name}`, import.meta.url));
    writeFileSync(cert, fixture('server.pem'));
    writeFileSync(key, fixture('server-key.pem'));
    writeFileSync(ca, fixture('ca.pem'));
    expect(loadServerTls({ cert, key })).toMatchObject({ requestCert: false, rejectUnauthorized: false, minVersion: 'TLSv1.2' });
    expect(loadServerTls({ cert, key, ca, minVersion: 'TLSv1.3' })).toMatchObject({ requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.3' });
    expect(loadClientTls({ ca, servername: 'proxy' })).toMatchObject({ servername: 'proxy' });
    // A key that does not match the certificate, or a file that is not PEM, is refused with the file names.
    writeFileSync(key, fixture('client-key.pem'));
    expect(() => loadServerTls({ cert, key })).toThrow(/bad TLS material in .*c\.pem, .*k\.pem/);
    writeFileSync(ca, 'not a certificate');
    expect(() => loadClientTls({ ca })).toThrow(/bad TLS material/);
  });
  it('names the file it cannot read', () => {
    expect(() => loadServerTls({ cert: join(dir, 'nope.pem'), key: join(dir, 'k.pem') })).toThrow(/failed to read certificate .*nope\.pem/);
  });
});

describe('TokenReview and lease flags', () => {
  it('checks the TokenReview flags together; the lease flags configure the lease controller', () => {
    const parse = (argv: string[]) => parseServerOptions(argv, {}).options;
    expect(parse([]).tokenReview).toBeUndefined();
    expect(parse(['--agent-namespace=ns', '--agent-service-account=sa', '--authentication-audience=aud', '--kubeconfig=/k']).tokenReview).toEqual({
      namespace: 'ns',
      serviceAccount: 'sa',
      audience: 'aud',
    });
    expect(parse(['--kubeconfig=/k', '--kubeconfig-qps=0.5', '--kubeconfig-burst=3'])).toMatchObject({ kubeconfig: '/k', kubeconfigQps: 0.5, kubeconfigBurst: 3 });
    expect(() => parse(['--agent-namespace=ns'])).toThrow(/must be given together/);
    expect(() => parse(['--agent-namespace=ns', '--agent-service-account=sa', '--authentication-audience=a', '--agent-token-file=/x'])).toThrow(/agent-token-file/);
    expect(parse([]).leases).toBeUndefined();
    expect(parse(['--enable-lease-controller', '--lease-namespace=ns', '--lease-label=a=b,c=d']).leases).toEqual({ namespace: 'ns', labels: { a: 'b', c: 'd' } });
    expect(parse(['--enable-lease-controller']).leases).toEqual({ namespace: 'kube-system', labels: { 'k8s-app': 'konnectivity-server' } });
    expect(() => parse(['--lease-label=novalue'])).toThrow(/key=value/);
  });
});

describe('deployment manifests run unchanged', () => {
  it('takes the reference kubernetes example flags for the server and the agent', async () => {
    const { parseAgentOptions } = await import('../../../src/cli/agent-options.js');
    // The flag lists of the reference's examples/kubernetes manifests (paths shortened).
    const server = parseServerOptions(
      [
        '--logtostderr=true',
        '--uds-name=/etc/kubernetes/konnectivity-server/konnectivity-server.socket',
        '--delete-existing-uds-file',
        '--cluster-cert=/etc/kubernetes/pki/apiserver.crt',
        '--cluster-key=/etc/kubernetes/pki/apiserver.key',
        '--server-port=0',
        '--agent-port=8091',
        '--health-port=8092',
        '--admin-port=8093',
        '--keepalive-time=1h',
        '--mode=grpc',
        '--agent-namespace=kube-system',
        '--agent-service-account=konnectivity-agent',
        '--kubeconfig=/etc/kubernetes/admin.conf',
        '--authentication-audience=system:konnectivity-server',
      ],
      {},
    );
    expect(server.options).toMatchObject({ mode: 'grpc', serverPort: 0, agentPort: 8091, adminPort: 8093, deleteExistingUdsFile: true, keepaliveTimeMs: 3_600_000 });
    // The manifest authenticates agents by TokenReview, and that is what the server will do.
    expect(server.options.tokenReview).toEqual({ namespace: 'kube-system', serviceAccount: 'konnectivity-agent', audience: 'system:konnectivity-server' });
    expect(server.options.kubeconfig).toBe('/etc/kubernetes/admin.conf');
    const agent = parseAgentOptions(
      [
        '--logtostderr=true',
        '--ca-cert=/var/run/secrets/kubernetes.io/serviceaccount/ca.crt',
        '--proxy-server-host=konnectivity-server.kube-system.svc.cluster.local',
        '--proxy-server-port=8091',
        '--admin-server-port=8133',
        '--health-server-port=8134',
        '--service-account-token-path=/var/run/secrets/tokens/konnectivity-agent-token',
      ],
      {},
    );
    expect(agent.options).toMatchObject({ proxyServerPort: 8091, adminServerPort: 8133, healthServerPort: 8134, transport: 'grpc' });
    expect(agent.parsed.warnings).toEqual([]);
  });
});
