/**
 * The server's lease controller and the agent's lease counter against the stand-in Kubernetes API (HTTPS on
 * loopback), with the API server's semantics: resourceVersion conflicts, 404, 403 and an API server that dies
 * and comes back. Durations and the clock are injected, so nothing here waits 15 s.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  KubeClient,
  ServerLeaseController,
  ServerLeaseCounter,
  isLeaseValid,
  loadKubeconfig,
  microTime,
  parseLabels,
  serverLeaseName,
  type Lease,
} from '../../../src/index.js';
import { expectNoLeaks, snapshotResources, type ResourceSnapshot } from '../../helpers/leaks.js';
import { startKubeApi, type KubeApi } from '../../helpers/kube-api.js';
import { until } from '../../helpers/until.js';

const LABELS = { 'k8s-app': 'konnectivity-server' };
const NS = 'kube-system';


describe('leases', () => {
  let before: ResourceSnapshot;
  let api: KubeApi;
  let dir: string;
  let client: KubeClient;
  const stops: Array<() => Promise<void>> = [];

  beforeEach(async () => {
    before = snapshotResources();
    dir = mkdtempSync(join(tmpdir(), 'klease-'));
    api = await startKubeApi();
    client = new KubeClient(await loadKubeconfig(api.kubeconfig(dir)), { qps: -1, timeoutMs: 2000 });
  });

  afterEach(async () => {
    for (const stop of stops.splice(0)) await stop();
    client.close();
    await api.stop();
    rmSync(dir, { recursive: true, force: true });
    await expectNoLeaks(before);
  });

  function controller(serverID: string, extra: Partial<ConstructorParameters<typeof ServerLeaseController>[0]> = {}): ServerLeaseController {
    const c = new ServerLeaseController({ client, serverID, labels: LABELS, renewIntervalMs: 40, gcIntervalMs: 40, ...extra });
    stops.push(() => c.stop());
    return c;
  }

  const ours = (serverID: string): Lease | undefined => api.list(NS).find((l) => l.metadata.name === serverLeaseName(serverID));
  const calls = (method: string, name?: string) =>
    api.requests.filter((r) => r.method === method && (name === undefined || r.path.endsWith(`/leases/${name}`)));

  it('creates its lease with the labels and the reference durations, renews it, and deletes it on stop', async () => {
    const c = controller('s1', { renewIntervalMs: 15_000 });
    expect(c.leaseDurationSeconds).toBe(30);
    let renewals = 0;
    c.on('renewed', () => renewals++);
    c.start();
    await until(() => ours('s1') !== undefined, 'the lease');
    const lease = ours('s1')!;
    expect(lease.metadata.labels).toEqual(LABELS);
    expect(lease.spec).toMatchObject({ holderIdentity: 's1', leaseDurationSeconds: 30 });
    expect(lease.spec.renewTime).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
    expect(calls('POST')[0]!.body).toMatchObject({ kind: 'Lease', metadata: { name: 'konnectivity-proxy-server-s1', labels: LABELS } });
    await c.stop();
    expect(ours('s1')).toBeUndefined();
    expect(renewals).toBe(0);
  });

  it('renews with the resourceVersion it holds; after a 409 Conflict or a 404 it reads again or recreates', async () => {
    const c = controller('s1');
    const acquired: Lease[] = [];
    const failures: Error[] = [];
    c.on('acquired', (l) => acquired.push(l));
    c.on('renewFailed', (e) => failures.push(e));
    c.start();
    await until(() => calls('PUT', serverLeaseName('s1')).some((r) => r.status === 200), 'a renewal');
    // Someone else writes the lease: our next update carries a stale resourceVersion and gets 409.
    const theirs = api.put(NS, serverLeaseName('s1'), LABELS, { holderIdentity: 'other', leaseDurationSeconds: 30, renewTime: microTime(Date.now()) });
    await until(() => calls('PUT', serverLeaseName('s1')).some((r) => r.status === 409), 'a conflict');
    await until(() => ours('s1')?.spec.holderIdentity === 's1' && ours('s1')!.metadata.resourceVersion !== theirs.metadata.resourceVersion, 'our renewal after the conflict');
    // Someone deletes it: the update gets 404 and the lease is created again.
    api.failNext('PUT', /leases\/konnectivity-proxy-server-s1$/, 404, 'NotFound');
    await until(() => acquired.length >= 1 && calls('GET', serverLeaseName('s1')).length >= 1, 'a re-read after 404');
    expect(ours('s1')?.spec.holderIdentity).toBe('s1');
    expect(failures).toEqual([]);
  });

  it('a create racing another (409 AlreadyExists) reads the lease and takes it over', async () => {
    api.failNext('POST', /leases$/, 409, 'AlreadyExists');
    const c = controller('s1');
    const failures: Error[] = [];
    c.on('renewFailed', (e) => failures.push(e));
    c.start();
    await until(() => failures.length === 1, 'the AlreadyExists failure');
    expect((failures[0] as { status?: number }).status).toBe(409);
    await until(() => ours('s1') !== undefined, 'the lease after the retry');
  });

  it('403 Forbidden and a dead API server are reported and retried; it recovers when the API does', async () => {
    const unforbid = api.forbid(/^(POST|GET|PUT)$/, /leases/);
    const c = controller('s1');
    const failures: Array<{ err: Error; retryInMs: number }> = [];
    const gcFailures: Error[] = [];
    c.on('renewFailed', (err, retryInMs) => failures.push({ err, retryInMs }));
    c.on('gcFailed', (err) => gcFailures.push(err));
    c.start();
    await until(() => failures.length >= 2 && gcFailures.length >= 1, 'refusals');
    expect((failures[0]!.err as { status?: number }).status).toBe(403);
    expect(failures[0]!.err.message).toMatch(/403 Forbidden/);
    expect(failures[1]!.retryInMs).toBeGreaterThanOrEqual(failures[0]!.retryInMs);
    unforbid();
    await until(() => ours('s1') !== undefined, 'the lease once allowed');

    await api.stop();
    const n = failures.length;
    await until(() => failures.length > n, 'a failure while the API is down');
    expect(failures.at(-1)!.err.message).toMatch(/unreachable/);
    await api.start();
    const rv = ours('s1')!.metadata.resourceVersion;
    await until(() => ours('s1')!.metadata.resourceVersion !== rv, 'a renewal after the API came back', 15_000);
  });

  it('the GC deletes expired leases only in the version it saw; 404 and 409 leave the others alone', async () => {
    const now = Date.now();
    const old = microTime(now - 60_000);
    api.put(NS, 'expired-1', LABELS, { holderIdentity: 'x', leaseDurationSeconds: 30, renewTime: old });
    api.put(NS, 'expired-renewed', LABELS, { holderIdentity: 'y', leaseDurationSeconds: 30, renewTime: old });
    api.put(NS, 'expired-gone', LABELS, { holderIdentity: 'z', leaseDurationSeconds: 30, renewTime: old });
    api.put(NS, 'valid', LABELS, { holderIdentity: 'v', leaseDurationSeconds: 30, renewTime: microTime(now) });
    api.put(NS, 'other-app', { 'k8s-app': 'other' }, { holderIdentity: 'o', leaseDurationSeconds: 30, renewTime: old });
    api.put(NS, 'no-times', LABELS, { holderIdentity: 'n', leaseDurationSeconds: 30 });
    // Renewed between the GC's list and its delete: the precondition fails with 409.
    api.failNext('DELETE', /expired-renewed$/, 409, 'Conflict');
    // (The injected 404 stands for a lease another server deleted first; here it stays stored.)
    api.failNext('DELETE', /expired-gone$/, 404, 'NotFound');
    const c = controller('s1', { renewIntervalMs: 60_000, gcIntervalMs: 60_000 });
    const culled: string[] = [];
    const gone: string[] = [];
    const failed: string[] = [];
    const deletes: Array<{ status: number; reason: string }> = [];
    c.on('culled', (n) => culled.push(n));
    c.on('alreadyDeleted', (n) => gone.push(n));
    c.on('gcFailed', (_e, n) => failed.push(n ?? 'list'));
    c.on('call', (call) => call.call === 'delete' && deletes.push({ status: call.status, reason: call.reason }));
    c.start();
    await until(() => culled.length + gone.length + failed.length === 4, 'the GC round');
    expect(culled.sort()).toEqual(['expired-1', 'no-times']);
    expect(gone).toEqual(['expired-gone']);
    expect(failed).toEqual(['expired-renewed']);
    expect(deletes).toContainEqual({ status: 409, reason: 'Conflict' });
    expect(deletes).toContainEqual({ status: 404, reason: 'NotFound' });
    const del = api.requests.find((r) => r.method === 'DELETE' && r.path.endsWith('/expired-1') && r.status === 200)!;
    const seen = api.requests.find((r) => r.method === 'GET' && r.query.get('labelSelector') === 'k8s-app=konnectivity-server')!;
    expect(seen).toBeDefined();
    expect(del.body).toMatchObject({ kind: 'DeleteOptions', preconditions: { resourceVersion: expect.stringMatching(/^\d+$/) } });
    expect(api.list(NS).map((l) => l.metadata.name).sort()).toEqual(['expired-gone', 'expired-renewed', 'konnectivity-proxy-server-s1', 'other-app', 'valid']);
  });

  it('the counter counts valid leases of three servers as they come and go, at least 1, and keeps its count while the API is down', async () => {
    let clock = Date.now();
    const counter = new ServerLeaseCounter({ client, labelSelector: 'k8s-app=konnectivity-server', recheckIntervalMs: 20, retryMs: 20, now: () => clock });
    stops.push(() => counter.stop());
    const changes: number[] = [];
    counter.on('change', (n) => changes.push(n));
    expect(counter.count()).toBe(1);
    counter.start();
    const servers = ['a', 'b', 'c'].map((id) => controller(id, { renewIntervalMs: 60_000, gcIntervalMs: 60_000, now: () => clock }).start());
    await until(() => counter.count() === 3, 'three servers');
    api.put(NS, 'unrelated', { 'k8s-app': 'other' }, { leaseDurationSeconds: 30, renewTime: microTime(clock) });
    await servers[2]!.stop();
    await until(() => counter.count() === 2, 'two servers after one stopped');
    // A server that dies without deleting its lease stops counting once the lease expires.
    api.put(NS, serverLeaseName('d'), LABELS, { holderIdentity: 'd', leaseDurationSeconds: 30, renewTime: microTime(clock) });
    await until(() => counter.count() === 3, 'the new lease');
    clock += 31_000;
    await until(() => counter.count() === 1, 'every lease expired: at least 1');
    clock -= 31_000;
    await until(() => counter.count() === 3, 'valid again');
    // The API goes down: the count stays as last read; it comes back: the counter lists and watches again.
    const failures: Error[] = [];
    counter.on('failed', (e) => failures.push(e));
    await api.stop();
    await until(() => failures.length > 0 && !counter.upToDate, 'the counter noticing the outage');
    clock += 31_000;
    await sleep(60);
    expect(counter.count()).toBe(3);
    clock -= 31_000;
    await api.start();
    await until(() => counter.upToDate, 'the counter back in sync', 15_000);
    await servers[1]!.stop();
    await until(() => counter.count() === 2, 'a change seen after the outage');
    expect(changes.at(-1)).toBe(2);
    expect(changes).toContain(3);
  });

  it('validity and labels follow the reference', () => {
    const t = Date.parse('2026-01-01T00:00:00Z');
    const lease = (spec: Lease['spec']): Lease => ({ metadata: { name: 'x' }, spec });
    expect(isLeaseValid(lease({ renewTime: '2026-01-01T00:00:00.000000Z', leaseDurationSeconds: 30 }), t + 29_999)).toBe(true);
    expect(isLeaseValid(lease({ renewTime: '2026-01-01T00:00:00.000000Z', leaseDurationSeconds: 30 }), t + 30_000)).toBe(false);
    expect(isLeaseValid(lease({ acquireTime: '2026-01-01T00:00:00.000000Z', leaseDurationSeconds: 30 }), t)).toBe(true);
    expect(isLeaseValid(lease({ leaseDurationSeconds: 30 }), t)).toBe(false);
    expect(microTime(t + 1.5)).toBe('2026-01-01T00:00:00.001500Z');
    expect(parseLabels('k8s-app=konnectivity-server, tier=cp')).toEqual({ 'k8s-app': 'konnectivity-server', tier: 'cp' });
    expect(() => parseLabels('novalue')).toThrow(/key=value/);
  });
});
