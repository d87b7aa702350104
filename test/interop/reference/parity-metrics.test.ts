/**
 * Metric parity with the reference: the real Go server and agent (v0.31.4) and ours run the same workload — a
 * tunnel with mTLS on the agent leg and lease counting against a stand-in Kubernetes API (one expired lease for the
 * GC), gRPC dials through the Unix-socket frontend with konnbench (the reference client), one to a refused
 * endpoint, then the server killed under the agent — and every family the Go binaries export (`go_*`, the Go
 * runtime's, aside) must be in ours with the same HELP, TYPE, label names and buckets.
 */
import { expect, it } from 'vitest';
import { microTime } from '../../../src/kube/leases.js';
import { startKubeApi, type KubeApi } from '../../helpers/kube-api.js';
import { until } from '../../helpers/until.js';
import { httpGet } from '../../integration/cli/processes.js';
import { compareFamily, mergeFamilies, parseFamilies, type Family } from './families.js';
import { describeKit, useKit, type Impl } from './kit.js';
import { refusedAddress } from '../../helpers/sockets.js';

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
const EXPIRED = 'konnectivity-proxy-server-gone';

const scrape = async (port: number): Promise<Map<string, Family>> => parseFamilies((await httpGet(port, '/metrics')).body);

describeKit('metric parity with the Go reference (v0.31.4)', () => {
  const fx = useKit('all');
  const apis: KubeApi[] = [];
  const scrapes = new Map<Impl, Scrapes>();

  /** The same workload for both: dials (one refused), the lease GC's first round, then the server killed under the agent. */
  async function run(impl: Impl): Promise<Scrapes> {
    const api = await startKubeApi();
    apis.push(api);
    fx.defer(() => api.stop());
    api.put('kube-system', EXPIRED, LABELS, { holderIdentity: 'gone', leaseDurationSeconds: 30, renewTime: microTime(Date.now() - 3_600_000) });
    const kube = [`--kubeconfig=${api.kubeconfig(fx.dir)}`, '--kube-api-content-type=application/json'];
    const target = await fx.target();
    const server = await fx.server(impl, { frontend: 'grpc-uds', args: ['--enable-lease-controller', ...kube] });
    const agent = await fx.agent(impl, { server, args: ['--count-server-leases', ...kube] });
    await server.waitReady();
    expect((await fx.konnbench(server, target, ['-test', 'rr', '-n', '3', '-c', '1'])).ok).toBe(true);
    const refused = { address: await refusedAddress(), program: target.program };
    expect((await fx.konnbench(server, refused, ['-test', 'rr', '-n', '1', '-c', '1'])).ok).toBe(false);
    await until(() => !api.list('kube-system').some((l) => l.metadata.name === EXPIRED), 'the GC culling the expired lease', 30_000);
    // The frontends' stream ends are counted once their streams close.
    await new Promise((r) => setTimeout(r, 300));
    const serverFamilies = await scrape(server.ports.admin);
    const agentBefore = await scrape(agent.ports.health);
    await server.kill();
    await agent.program.waitFor(/could not read stream/);
    return { server: serverFamilies, agent: mergeFamilies(agentBefore, await scrape(agent.ports.health)) };
  }

  const compare = async (side: 'server' | 'agent', expected: string[]): Promise<void> => {
    for (const impl of ['go', 'ts'] as const) if (!scrapes.has(impl)) scrapes.set(impl, await run(impl));
    const go = scrapes.get('go')![side];
    const ours = scrapes.get('ts')![side];
    // The workload made the reference export what we mean to compare.
    for (const name of expected) expect(go.get(name)?.samples ?? 0, `${name} in the reference's scrape`).toBeGreaterThan(0);
    const reference = [...go.values()].filter((f) => !f.name.startsWith('go_'));
    expect(reference.flatMap((f) => compareFamily(f, ours.get(f.name)))).toEqual([]);
    console.info(`metric parity (${side}): ${reference.length} reference families compared: ${reference.map((f) => f.name).sort().join(' ')}`);
  };

  it('the server exports every reference family with the same HELP, TYPE, labels and buckets', () => compare('server', EXPECTED_SERVER), 180_000);
  it('the agent exports every reference family with the same HELP, TYPE, labels and buckets', () => compare('agent', EXPECTED_AGENT), 180_000);
});
