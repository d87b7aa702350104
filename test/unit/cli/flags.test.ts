import { describe, expect, it } from 'vitest';
import { FlagError, formatGoDuration, formatHelp, parseFlags, parseGoDuration, type FlagSpec } from '../../../src/cli/flags.js';
import { parseServerOptions, serverFlagSpecs } from '../../../src/cli/server-options.js';
import { agentFlagSpecs, parseAgentIdentifiers, parseAgentOptions, parseServerAddresses } from '../../../src/cli/agent-options.js';

const specs: FlagSpec[] = [
  { name: 'name', type: 'string', default: 'x', usage: 'a name' },
  { name: 'count', type: 'int', default: 1, usage: 'a count' },
  { name: 'on', type: 'bool', default: false, usage: 'a switch' },
  { name: 'wait', type: 'duration', default: 1000, usage: 'a wait' },
  { name: 'v', type: 'int', default: 4, usage: 'verbosity' },
  { name: 'old', type: 'string', default: '', usage: 'old', ignored: true },
];

describe('parseGoDuration', () => {
  it.each([
    ['0', 0],
    ['1s', 1000],
    ['1h', 3_600_000],
    ['500ms', 500],
    ['1m30s', 90_000],
    ['1.5h', 5_400_000],
    ['-2s', -2000],
    ['100us', 0.1],
    ['1h0m0s', 3_600_000],
  ])('%s -> %d ms', (text, ms) => {
    expect(parseGoDuration(text)).toBeCloseTo(ms, 9);
  });
  it.each(['', '1', '10', 's', '1x', '1s2', 'abc', '.s'])('rejects %j', (text) => {
    expect(() => parseGoDuration(text)).toThrow(/invalid duration|unknown unit/);
  });
  it('formats like Go', () => {
    expect(formatGoDuration(3_600_000)).toBe('1h0m0s');
    expect(formatGoDuration(1000)).toBe('1s');
    expect(formatGoDuration(0)).toBe('0s');
    expect(formatGoDuration(500)).toBe('500ms');
    expect(formatGoDuration(90_000)).toBe('1m30s');
  });
});

describe('parseFlags', () => {
  it('gives defaults', () => {
    const p = parseFlags(specs, []);
    expect(p.values).toMatchObject({ name: 'x', count: 1, on: false, wait: 1000, v: 4 });
    expect(p.set.size).toBe(0);
  });
  it('accepts = and separate values, single dash, and underscores', () => {
    const p = parseFlags(specs, ['--name=a', '--count', '7', '-v=5', '--wait', '1m', '--on']);
    expect(p.values).toMatchObject({ name: 'a', count: 7, v: 5, wait: 60_000, on: true });
    expect(parseFlags(specs, ['-v', '2']).values['v']).toBe(2);
    expect(parseFlags(specs, ['-name=b']).values['name']).toBe('b');
    expect(parseFlags([{ name: 'log-file', type: 'string', default: '', usage: '' }], ['--log_file=f']).values['log-file']).toBe('f');
  });
  it('parses booleans like Go', () => {
    expect(parseFlags(specs, ['--on=false']).values['on']).toBe(false);
    expect(parseFlags(specs, ['--on=T']).values['on']).toBe(true);
    expect(parseFlags(specs, ['--on=0']).values['on']).toBe(false);
  });
  it('keeps an empty value given with =', () => {
    expect(parseFlags(specs, ['--name=']).values['name']).toBe('');
  });
  it.each([
    [['--nope'], /unknown flag: --nope/],
    [['--count=x'], /invalid argument "x" for "--count"/],
    [['--count'], /flag needs an argument: --count/],
    [['--wait=10'], /invalid argument "10" for "--wait" flag: time: invalid duration/],
    [['--on=maybe'], /ParseBool/],
    [['stray'], /unexpected argument "stray"/],
  ])('rejects %j', (argv, message) => {
    let caught: unknown;
    try {
      parseFlags(specs, argv);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(FlagError);
    expect((caught as FlagError).exitCode).toBe(2);
    expect((caught as Error).message).toMatch(message);
  });
  it('warns when an ignored flag is set to something else than its default', () => {
    expect(parseFlags(specs, ['--old=y']).warnings).toEqual(['flag --old is accepted for compatibility and ignored']);
    expect(parseFlags(specs, ['--old=']).warnings).toEqual([]);
  });
  it('recognises --help and -h', () => {
    expect(parseFlags(specs, ['--help']).help).toBe(true);
    expect(parseFlags(specs, ['-h']).help).toBe(true);
  });
  it('parses floats like Go (the reference\'s float32 flags)', () => {
    const f: FlagSpec[] = [{ name: 'qps', type: 'float', default: 0, usage: 'q' }];
    expect(parseFlags(f, ['--qps=2.5']).values['qps']).toBe(2.5);
    expect(parseFlags(f, ['--qps', '50']).values['qps']).toBe(50);
    expect(parseFlags(f, ['--qps=1e3']).values['qps']).toBe(1000);
    expect(() => parseFlags(f, ['--qps=fast'])).toThrow(/strconv.ParseFloat/);
  });
  it('help lists every flag with its default and marks ignored ones', () => {
    const text = formatHelp('prog', 'does things', specs);
    for (const s of specs) expect(text).toContain(`-${s.name}`);
    expect(text).toContain('(default 1s)');
    expect(text).toContain('[accepted, ignored]');
  });
});

describe('server options', () => {
  it('has the reference defaults', () => {
    const { options } = parseServerOptions([], {});
    expect(options).toMatchObject({
      mode: 'grpc',
      serverPort: 8090,
      agentPort: 8091,
      healthPort: 8092,
      adminPort: 8095,
      adminBindAddress: '127.0.0.1',
      deleteExistingUdsFile: true,
      serverCount: 1,
      proxyStrategies: ['default'],
      keepaliveTimeMs: 3_600_000,
      frontendKeepaliveTimeMs: 3_600_000,
      backendDialTimeoutMs: 0,
      gracefulShutdownTimeoutMs: 0,
      verbosity: 4,
      tlsMinVersion: 'TLSv1.2',
    });
    expect(options.serverID).toMatch(/^[0-9a-f-]{36}$/);
    expect(parseServerOptions([], { PROXY_SERVER_ID: 'env-id' }).options.serverID).toBe('env-id');
  });
  it('accepts a reference flag set', () => {
    const { options, parsed } = parseServerOptions(
      [
        '--mode=http-connect', '--uds-name=/tmp/x.sock', '--delete-existing-uds-file=true', '--server-port=0',
        '--agent-port=8091', '--cluster-cert=c', '--cluster-key=k', '--cluster-ca-cert=ca', '--health-port=8092',
        '--admin-port=8093', '--server-id', 's1', '--server-count=3', '--proxy-strategies=destHost,default',
        '--keepalive-time=30m', '--frontend-keepalive-time=1h', '--backend-dial-timeout=5s', '--graceful-shutdown-timeout=15s',
        '--xfr-channel-size=20', '--kubeconfig=/etc/k', '--enable-profiling', '-v=5', '--logtostderr=true',
      ],
      {},
    );
    expect(options).toMatchObject({ mode: 'http-connect', udsName: '/tmp/x.sock', serverID: 's1', serverCount: 3, proxyStrategies: ['destHost', 'default'], backendDialTimeoutMs: 5000, verbosity: 5, keepaliveTimeMs: 1_800_000 });
    expect(parsed.warnings.map((w) => w.split(' ')[1])).toEqual(['--enable-profiling']);
    // --xfr-channel-size is honoured: 20 packets of 32 KiB per connection.
    expect(options.connectionBufferBytes).toBe(20 * 32 * 1024);
    expect(parseServerOptions([], {}).options.connectionBufferBytes).toBeUndefined();
  });
  it('rejects bad combinations and values', () => {
    expect(() => parseServerOptions(['--uds-name=/x', '--server-port=8090'], {})).toThrow(/must be 0/);
    expect(() => parseServerOptions(['--proxy-strategies=random'], {})).toThrow(/unknown proxy strategy/);
    expect(() => parseServerOptions(['--mode=socks'], {})).toThrow(/grpc or http-connect/);
    expect(() => parseServerOptions(['--server-cert=a'], {})).toThrow(/together/);
  });
  it('takes the reference\'s value types and prints its klog defaults', () => {
    // --kubeconfig-qps is a float32 in the reference; --log-backtrace-at prints ":0" there.
    expect(parseServerOptions(['--kubeconfig-qps=2.5'], {}).parsed.values['kubeconfig-qps']).toBe(2.5);
    const help = formatHelp('konnectivity-server', '', serverFlagSpecs());
    expect(help).toMatch(/--log-backtrace-at string +\[accepted, ignored\] .*\(default ":0"\)/);
  });
  it('help names every reference flag', () => {
    const names = serverFlagSpecs().map((s) => s.name);
    for (const n of ['mode', 'uds-name', 'delete-existing-uds-file', 'server-port', 'server-bind-address', 'server-cert', 'server-key', 'server-ca-cert', 'agent-port', 'agent-bind-address', 'cluster-cert', 'cluster-key', 'cluster-ca-cert', 'health-port', 'health-bind-address', 'admin-port', 'admin-bind-address', 'server-id', 'server-count', 'proxy-strategies', 'keepalive-time', 'frontend-keepalive-time', 'backend-dial-timeout', 'graceful-shutdown-timeout', 'xfr-channel-size', 'v']) {
      expect(names).toContain(n);
    }
  });
});

describe('agent options', () => {
  it('has the reference defaults', () => {
    const { options } = parseAgentOptions([], {});
    expect(options).toMatchObject({
      proxyServerHost: '127.0.0.1',
      proxyServerPort: 8091,
      healthServerPort: 8093,
      adminServerPort: 8094,
      adminBindAddress: '127.0.0.1',
      syncIntervalMs: 1000,
      syncIntervalCapMs: 10_000,
      probeIntervalMs: 1000,
      keepaliveTimeMs: 3_600_000,
      syncForever: false,
      verbosity: 4,
      transport: 'grpc',
      proxyServerAddresses: [],
    });
    expect(parseAgentOptions([], { PROXY_AGENT_ID: 'a1' }).options.agentID).toBe('a1');
  });
  it('takes our own endpoint dial and keepalive ping timeouts, with the fixed values of before as defaults', () => {
    expect(parseAgentOptions([], {}).options).toMatchObject({ endpointDialTimeoutMs: 5000, keepaliveTimeoutMs: 20_000 });
    const { options, parsed } = parseAgentOptions(['--endpoint-dial-timeout=150ms', '--keepalive-timeout=3s'], {});
    expect(options).toMatchObject({ endpointDialTimeoutMs: 150, keepaliveTimeoutMs: 3000 });
    expect(parsed.warnings).toEqual([]);
    expect(() => parseAgentOptions(['--endpoint-dial-timeout=0s'], {})).toThrow(/endpoint-dial-timeout/);
    expect(formatHelp('konnectivity-agent', '', agentFlagSpecs())).toMatch(/--keepalive-timeout duration +.*\[konnectivity-ts\] \(default 20s\)/);
  });
  it('parses identifiers and server lists', () => {
    expect(parseAgentIdentifiers('host=node1&ipv4=10.0.0.5&ipv4=10.0.0.6&default-route=true&cidr=10.0.0.0/16')).toEqual({
      host: ['node1'],
      ipv4: ['10.0.0.5', '10.0.0.6'],
      cidr: ['10.0.0.0/16'],
      defaultRoute: true,
    });
    expect(() => parseAgentIdentifiers('uid=1')).toThrow(/unknown address type: uid/);
    expect(parseServerAddresses('a:1,[::1]:2')).toEqual([{ host: 'a', port: 1 }, { host: '::1', port: 2 }]);
    expect(() => parseServerAddresses('a')).toThrow(/host:port/);
    expect(() => parseAgentOptions(['--agent-identifiers=bogus=1'], {})).toThrow(/unknown address type/);
  });
  it('accepts the flag set of the reference test harness', () => {
    const { options, parsed } = parseAgentOptions(
      ['--agent-id=a', '--proxy-server-host=localhost', '--proxy-server-port=9000', '--sync-interval=100ms', '--sync-interval-cap=1s', '--probe-interval=200ms', '--sync-forever=true', '--lease-label=k8s-app=x', '--count-server-leases=false', '--health-server-port=0', '--admin-server-port=0', '--xfr-channel-size=150'],
      {},
    );
    expect(options).toMatchObject({ agentID: 'a', proxyServerHost: 'localhost', proxyServerPort: 9000, syncIntervalMs: 100, syncIntervalCapMs: 1000, probeIntervalMs: 200, syncForever: true });
    // Every flag of the harness is honoured now (--lease-label included); none is only accepted.
    expect(parsed.warnings).toEqual([]);
    expect(options.connectionBufferBytes).toBe(150 * 32 * 1024);
    expect(() => parseAgentOptions(['--sync-interval=2s', '--sync-interval-cap=1s'], {})).toThrow(/sync-interval-cap/);
  });
  it('help lists --lease-label, the reference v0.31 name, honoured as --lease-label-selector', () => {
    expect(formatHelp('konnectivity-agent', '', agentFlagSpecs())).toMatch(/--lease-label string +the same as --lease-label-selector .*\(default "k8s-app=konnectivity-server"\)/);
    const selector = (argv: string[]) => parseAgentOptions(['--count-server-leases', ...argv], {}).options.leases?.labelSelector;
    expect(selector(['--lease-label=app=x'])).toBe('app=x');
    expect(selector(['--lease-label-selector=app=y'])).toBe('app=y');
    expect(selector([])).toBe('k8s-app=konnectivity-server');
  });
});

describe('float, string-slice and TLS flags', () => {
  it('--kubeconfig-qps takes a float as Go parses it; junk is exit 2', () => {
    const qps = (v: string) => parseServerOptions([`--kubeconfig-qps=${v}`], {}).options.kubeconfigQps;
    expect(qps('0.5')).toBe(0.5);
    expect(qps('20')).toBe(20);
    expect(qps('1e2')).toBe(100);
    expect(qps('-1')).toBe(-1);
    let err: unknown;
    try {
      qps('fast');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(FlagError);
    expect((err as FlagError).exitCode).toBe(2);
    expect((err as Error).message).toMatch(/strconv\.ParseFloat: parsing "fast": invalid syntax/);
  });

  it('--alpn-proto is a string slice: comma-separated and repeatable', () => {
    expect(parseAgentOptions([], {}).options.alpnProtocols).toEqual([]);
    expect(parseAgentOptions(['--alpn-proto=konnectivity,x', '--alpn-proto', 'y'], {}).options.alpnProtocols).toEqual(['konnectivity', 'x', 'y']);
  });

  it('--cipher-suites maps Go names to OpenSSL, keeps TLS 1.3, and refuses what the reference refuses with exit 2', () => {
    const ciphers = (v: string) => parseServerOptions([`--cipher-suites=${v}`], {}).options.ciphers;
    expect(ciphers('')).toBeUndefined();
    expect(ciphers('TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256')).toBe(
      'ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305:TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256',
    );
    expect(ciphers('TLS_AES_128_GCM_SHA256')).toBe('TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256');
    // Unknown, insecure (RC4, 3DES, CBC-SHA256) and RSA key exchange names: the reference refuses them all.
    for (const bad of ['FOO', 'TLS_RSA_WITH_RC4_128_SHA', 'TLS_RSA_WITH_3DES_EDE_CBC_SHA', 'TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256', 'TLS_RSA_WITH_AES_128_GCM_SHA256']) {
      expect(() => ciphers(bad)).toThrow(FlagError);
      expect(() => ciphers(bad)).toThrow(new RegExp(`cipher suite ${bad} not supported, doesn't exist or considered as insecure`));
    }
  });

  it('help tells the truth about the lease flags', () => {
    const help = formatHelp('konnectivity-server', '', serverFlagSpecs());
    for (const name of ['enable-lease-controller', 'lease-namespace', 'lease-label', 'kubeconfig-qps']) {
      const line = help.split('\n').find((l) => l.includes(`--${name} `))!;
      expect(line).toBeDefined();
      expect(line).not.toContain('[accepted, ignored]');
    }
    expect(help).toMatch(/--kubeconfig-qps float32/);
    const agentHelp = formatHelp('konnectivity-agent', '', agentFlagSpecs());
    for (const name of ['count-server-leases', 'lease-label-selector', 'server-count-source', 'alpn-proto']) {
      const line = agentHelp.split('\n').find((l) => l.includes(`--${name} `))!;
      expect(line).toBeDefined();
      expect(line).not.toContain('[accepted, ignored]');
    }
  });
});
