/**
 * Lease-based server counting with the programs, against the stand-in Kubernetes API (HTTPS on loopback): three
 * servers behind a load balancer keep their leases (`--enable-lease-controller`), two agents count them
 * (`--count-server-leases`) and hold a tunnel to each; a fourth server comes and the agents reach it, one goes
 * (its lease is deleted on shutdown) and the agents count one less. The servers all claim `--server-count=5`:
 * the agent with `--server-count-source=default` follows the leases, the one with `max` takes the larger count.
 * Nothing waits for the 15 s renewal: a server creates its lease at start and deletes it at shutdown.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { expectNoLeaks, snapshotResources, type ResourceSnapshot } from '../../helpers/leaks.js';
import { startKubeApi, type KubeApi } from '../../helpers/kube-api.js';
import { until, untilAsync } from '../../helpers/until.js';
import { LoadBalancer } from '../ha/load-balancer.js';
import { parsePrometheusText } from '../ops/prom-text.js';
import { httpGet, programPool, type Program } from './processes.js';

const A = 'konnectivity_network_proxy_agent_';
const S = 'konnectivity_network_proxy_server_';

let before: ResourceSnapshot;
let dir: string;
let api: KubeApi;
let lb: LoadBalancer | undefined;
const pool = programPool();

beforeEach(async () => {
  before = snapshotResources();
  dir = mkdtempSync(join(tmpdir(), 'kts-leases-'));
  api = await startKubeApi();
});

afterEach(async () => {
  await pool.killAll();
  await lb?.close();
  lb = undefined;
  await api.stop();
  rmSync(dir, { recursive: true, force: true });
  await expectNoLeaks(before, { timeoutMs: 5000 });
});

async function metric(port: number, series: string): Promise<number | undefined> {
  return parsePrometheusText((await httpGet(port, '/metrics')).body).get(series);
}

describe('lease-based server counting', () => {
  it('three servers keep leases; agents count them as servers come and go', async () => {
    const kubeconfig = api.kubeconfig(dir);
    const server = async (id: string): Promise<{ program: Program; agentPort: number; adminPort: number }> => {
      const program = pool.start('konnectivity-server', [
        `--uds-name=${join(dir, `${id}.sock`)}`,
        '--server-port=0',
        '--agent-bind-address=127.0.0.1',
        '--agent-port=0',
        '--health-bind-address=127.0.0.1',
        '--health-port=0',
        '--admin-port=0',
        `--server-id=${id}`,
        '--server-count=5',
        '--enable-lease-controller',
        `--kubeconfig=${kubeconfig}`,
        '--kubeconfig-qps=0.5',
        '--kubeconfig-burst=20',
        '-v=2',
      ]);
      const ports = await program.ports(['agent', 'admin']);
      return { program, agentPort: ports['agent']!, adminPort: ports['admin']! };
    };
    const servers = new Map<string, Awaited<ReturnType<typeof server>>>();
    for (const id of ['s1', 's2', 's3']) servers.set(id, await server(id));
    lb = await LoadBalancer.start([...servers.values()].map((s) => ({ host: '127.0.0.1', port: s.agentPort })));
    await until(() => api.list('kube-system').length === 3, 'three leases');
    expect(api.list('kube-system').map((l) => l.metadata.name).sort()).toEqual(['s1', 's2', 's3'].map((id) => `konnectivity-proxy-server-${id}`));
    expect(api.list('kube-system')[0]!.metadata.labels).toEqual({ 'k8s-app': 'konnectivity-server' });

    const agent = async (id: string, source: 'default' | 'max'): Promise<{ program: Program; health: number }> => {
      const program = pool.start('konnectivity-agent', [
        '--proxy-server-host=127.0.0.1',
        `--proxy-server-port=${lb!.port}`,
        '--count-server-leases',
        `--server-count-source=${source}`,
        `--kubeconfig=${kubeconfig}`,
        '--lease-label-selector=k8s-app=konnectivity-server',
        '--sync-interval=50ms',
        '--sync-interval-cap=200ms',
        '--health-server-host=127.0.0.1',
        '--health-server-port=0',
        '--admin-server-port=0',
        `--agent-id=${id}`,
        '-v=2',
      ]);
      return { program, health: (await program.ports(['health']))['health']! };
    };
    const byLeases = await agent('a1', 'default');
    const byMax = await agent('a2', 'max');
    const tunnels = (a: { health: number }) => metric(a.health, `${A}open_server_connections`);
    const known = (a: { health: number }) => metric(a.health, `${A}known_server_count`);
    await untilAsync(async () => (await tunnels(byLeases)) === 3 && (await tunnels(byMax)) === 3, 'a tunnel from each agent to each server');
    expect(await known(byLeases)).toBe(3);
    expect(await known(byMax)).toBe(5);
    await byLeases.program.waitFor(/change detected in proxy server count \(was: \d, now: 3, source: "KNP lease count"\)/);
    expect(await metric(byLeases.health, `${A}lease_lists_total{http_response_code="200",reason=""}`)).toBeGreaterThanOrEqual(1);
    expect(await metric(servers.get('s1')!.adminPort, `${S}lease_list_total{http_status_code="200",reason=""}`)).toBeGreaterThanOrEqual(1);

    // A fourth server comes: its lease appears at once and the agents reach it through the balancer.
    servers.set('s4', await server('s4'));
    lb.backends.push({ host: '127.0.0.1', port: servers.get('s4')!.agentPort });
    await untilAsync(async () => (await tunnels(byLeases)) === 4 && (await tunnels(byMax)) === 4, 'tunnels to the fourth server');
    expect(await known(byLeases)).toBe(4);
    await byLeases.program.waitFor(/change detected in proxy server count \(was: 3, now: 4, source: "KNP lease count"\)/);

    // A server goes: it deletes its lease on shutdown, the count drops; the tunnel to it ends.
    const s2 = servers.get('s2')!;
    lb.backends.splice(lb.backends.findIndex((b) => b.port === s2.agentPort), 1);
    s2.program.child.kill('SIGTERM');
    expect(await s2.program.exited).toBe(0);
    expect(s2.program.output()).toContain('Cleaning up server lease "konnectivity-proxy-server-s2"');
    expect(api.list('kube-system').some((l) => l.metadata.name === 'konnectivity-proxy-server-s2')).toBe(false);
    await untilAsync(async () => (await known(byLeases)) === 3 && (await tunnels(byLeases)) === 3, 'three servers again');
    expect(await known(byMax)).toBe(5);
  });
});
