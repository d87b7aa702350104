/**
 * Metric parity with the reference: the real Go server and agent (v0.31.4, from ../shared/peer) and ours run the
 * same workload — a tunnel with TLS on the agent leg and lease counting against a stand-in Kubernetes API (one
 * expired lease for the GC), gRPC dials through the Unix-socket frontend with konnbench (the reference client),
 * one to a refused endpoint, then the server killed under the agent — and every family the Go binaries export
 * (`go_*`, the Go runtime's, aside) must be in ours with the same HELP, TYPE, label names and buckets.
 *
 * Skipped, saying why, when the kit is absent, unless KONNECTIVITY_REQUIRE_INTEROP=1 (then it fails).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { microTime } from '../../../src/index.js';
import { startKubeApi, type KubeApi } from '../../helpers/kube-api.js';
import { until } from '../../helpers/until.js';
import { httpGet, programPool } from '../../integration/cli/processes.js';
import { compareFamily, mergeFamilies, parseFamilies, type Family } from './families.js';
import { findPeerKit, goPort, installPeerKit, runGo, startGo, startGoOnPorts, untilListening, type GoProcess, type PeerKit } from './go-peer.js';

const kitDir = findPeerKit();
const required = process.env['KONNECTIVITY_REQUIRE_INTEROP'] === '1';
if (!kitDir && required) throw new Error('metric parity needs the Go peer kit (KONNECTIVITY_REQUIRE_INTEROP=1) but ../shared/peer was not found');

const S = 'konnectivity_network_proxy_server_';
const A = 'konnectivity_network_proxy_agent_';
/** What the workload must make the reference export, so the comparison cannot pass on an empty scrape. */
const EXPECTED_SERVER = ['dial_duration_seconds', 'frontend_write_duration_seconds', 'grpc_connections', 'http_connections', 'pending_backend_dials',
  'established_connections', 'ready_backend_connections', 'dial_failure_count', 'stream_packets_total', 'stream_errors_total', 'culled_leases_count',
  'lease_list_total', 'lease_list_latency_seconds', 'lease_delete_total', 'lease_delete_latency_seconds'].map((m) => S + m);
const EXPECTED_AGENT = ['dial_duration_seconds', 'endpoint_dial_failure_total', 'known_server_count', 'open_endpoint_connections', 'open_server_connections',
  'stream_packets_total', 'stream_errors_total', 'server_connection_failure_count', 'lease_lists_total', 'lease_list_latency_seconds'].map((m) => A + m);

interface Scrapes {
  server: Map<string, Family>;
  agent: Map<string, Family>;
}

const LABELS = { 'k8s-app': 'konnectivity-server' };

/** The stand-in API with one lease that expired long ago, for the GC to cull. */
async function kubeApiWithExpiredLease(): Promise<KubeApi> {
  const api = await startKubeApi();
  api.put('kube-system', 'konnectivity-proxy-server-gone', LABELS, { holderIdentity: 'gone', leaseDurationSeconds: 30, renewTime: microTime(Date.now() - 3_600_000) });
  return api;
}

const scrape = async (port: number): Promise<Map<string, Family>> => parseFamilies((await httpGet(port, '/metrics')).body);

describe.skipIf(!kitDir)('metric parity with the Go reference (v0.31.4)', () => {
  let kit: PeerKit;
  let dir: string;
  let target: GoProcess;
  let targetPort: number;
  const apis: KubeApi[] = [];
  const pool = programPool();
  const gos: GoProcess[] = [];
  let go: Scrapes;
  let ours: Scrapes;

  /** The workload, the same for both: dials (one refused), the GC's round, then the server killed under the agent. */
  async function workload(uds: string, api: KubeApi, scrapeServer: () => Promise<Map<string, Family>>, scrapeAgent: () => Promise<Map<string, Family>>, killServer: () => Promise<void>, agentSawLoss: () => Promise<void>): Promise<Scrapes> {
    await runGo(kit.bin('konnbench'), ['-mode', 'grpc', '-uds', uds, '-target', `127.0.0.1:${targetPort}`, '-test', 'rr', '-n', '3', '-c', '1']);
    await runGo(kit.bin('konnbench'), ['-mode', 'grpc', '-uds', uds, '-target', '127.0.0.1:1', '-test', 'rr', '-n', '1', '-c', '1', '-timeout', '5s']);
    await until(() => !api.list('kube-system').some((l) => l.metadata.name === 'konnectivity-proxy-server-gone'), 'the GC culling the expired lease', 30_000);
    // Let the frontends' stream ends be counted.
    await new Promise((r) => setTimeout(r, 300));
    const server = await scrapeServer();
    const agentBefore = await scrapeAgent();
    await killServer();
    await agentSawLoss();
    const agentAfter = await scrapeAgent();
    return { server, agent: mergeFamilies(agentBefore, agentAfter) };
  }

  beforeAll(async () => {
    kit = installPeerKit(kitDir!);
    dir = mkdtempSync(join(tmpdir(), 'kts-parity-'));
    targetPort = await goPort();
    target = startGo(kit.bin('target'), ['-listen', `127.0.0.1:${targetPort}`]);
    await untilListening(targetPort);
    const tls = {
      server: [`--cluster-cert=${kit.cert('server.crt')}`, `--cluster-key=${kit.cert('server.key')}`, `--cluster-ca-cert=${kit.cert('ca.crt')}`],
      agent: [`--ca-cert=${kit.cert('ca.crt')}`, `--agent-cert=${kit.cert('agent.crt')}`, `--agent-key=${kit.cert('agent.key')}`],
    };

    // The reference.
    {
      const api = await kubeApiWithExpiredLease();
      apis.push(api);
      const kubeconfig = api.kubeconfig(mkdtempSync(join(dir, 'go-')));
      const uds = join(dir, 'go.sock');
      const kube = [`--kubeconfig=${kubeconfig}`, '--kube-api-content-type=application/json'];
      const server = await startGoOnPorts(
        kit.bin('proxy-server'),
        ['agent', 'admin', 'health'] as const,
        (p) => [`--uds-name=${uds}`, '--server-port=0', ...tls.server, '--agent-bind-address=127.0.0.1', `--agent-port=${p.agent}`, '--admin-bind-address=127.0.0.1',
          `--admin-port=${p.admin}`, '--health-bind-address=127.0.0.1', `--health-port=${p.health}`, '--server-id=go-1', '--enable-lease-controller', ...kube, '--v=2'],
        /Starting health server/,
      );
      gos.push(server.process);
      const agent = await startGoOnPorts(
        kit.bin('proxy-agent'),
        ['admin', 'health'] as const,
        (p) => ['--proxy-server-host=127.0.0.1', `--proxy-server-port=${server.ports.agent}`, ...tls.agent, '--admin-bind-address=127.0.0.1', `--admin-server-port=${p.admin}`,
          '--health-server-host=127.0.0.1', `--health-server-port=${p.health}`, '--agent-id=go-agent', '--count-server-leases', ...kube, '--v=2'],
        /"Start serving"/,
      );
      gos.push(agent.process);
      go = await workload(
        uds,
        api,
        () => scrape(server.ports.admin),
        () => scrape(agent.ports.health),
        () => server.process.stop(),
        () => agent.process.waitFor(/could not read stream/),
      );
    }

    // Ours, with the same flags (ports 0).
    {
      const api = await kubeApiWithExpiredLease();
      apis.push(api);
      const kubeconfig = api.kubeconfig(mkdtempSync(join(dir, 'ts-')));
      const uds = join(dir, 'ts.sock');
      const kube = [`--kubeconfig=${kubeconfig}`, '--kube-api-content-type=application/json'];
      const server = pool.start('konnectivity-server', [`--uds-name=${uds}`, '--server-port=0', ...tls.server, '--agent-bind-address=127.0.0.1', '--agent-port=0',
        '--admin-bind-address=127.0.0.1', '--admin-port=0', '--health-bind-address=127.0.0.1', '--health-port=0', '--server-id=ts-1', '--enable-lease-controller', ...kube, '--v=2']);
      const sp = await server.ports(['agent', 'admin']);
      const agent = pool.start('konnectivity-agent', ['--proxy-server-host=127.0.0.1', `--proxy-server-port=${sp['agent']}`, ...tls.agent, '--admin-bind-address=127.0.0.1',
        '--admin-server-port=0', '--health-server-host=127.0.0.1', '--health-server-port=0', '--agent-id=ts-agent', '--count-server-leases', ...kube, '--v=2']);
      const ap = await agent.ports(['health']);
      await agent.waitFor(/"Start serving"/);
      ours = await workload(
        uds,
        api,
        () => scrape(sp['admin']!),
        () => scrape(ap['health']!),
        () => server.kill(),
        () => agent.waitFor(/"could not read stream"/).then(() => undefined),
      );
    }
  }, 180_000);

  afterAll(async () => {
    await pool.killAll();
    for (const p of gos) await p.stop();
    await target?.stop();
    for (const api of apis) await api.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const compare = (side: 'server' | 'agent', expected: string[]): void => {
    const reference = [...go[side].values()].filter((f) => !f.name.startsWith('go_'));
    // The workload made the reference export what we mean to compare.
    for (const name of expected) expect(go[side].get(name)?.samples ?? 0, `${name} in the reference's scrape`).toBeGreaterThan(0);
    const problems = reference.flatMap((f) => compareFamily(f, ours[side].get(f.name)));
    expect(problems).toEqual([]);
    // For the report: how many families were compared.
    console.info(`metric parity (${side}): ${reference.length} reference families compared: ${reference.map((f) => f.name).sort().join(' ')}`);
  };

  it('the server exports every reference family with the same HELP, TYPE, labels and buckets', () => compare('server', EXPECTED_SERVER));
  it('the agent exports every reference family with the same HELP, TYPE, labels and buckets', () => compare('agent', EXPECTED_AGENT));
});
