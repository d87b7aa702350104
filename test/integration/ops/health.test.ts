import { request } from 'node:http';
import { Registry, Counter } from 'prom-client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { expectNoLeaks, snapshotResources, type ResourceSnapshot } from '../../helpers/leaks.js';
import {
  adminHandler,
  agentAdminHandler,
  agentHealthHandler,
  listenOps,
  serverHealthHandler,
  type OpsServer,
} from '../../../src/ops/health.js';

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

function get(port: number, path: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

let before: ResourceSnapshot;
const servers: OpsServer[] = [];
async function start(handler: Parameters<typeof listenOps>[0]): Promise<OpsServer> {
  const s = await listenOps(handler, '127.0.0.1', 0);
  servers.push(s);
  return s;
}

beforeEach(() => {
  before = snapshotResources();
});
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
  await expectNoLeaks(before);
});

describe('server health port', () => {
  it('answers /healthz ok and flips /readyz and /ready with readiness', async () => {
    let ready = false;
    const registry = new Registry();
    new Counter({ name: 'test_total', help: 'x', registers: [registry] }).inc();
    const s = await start(serverHealthHandler({ ready: () => ready, registry }));
    expect(s.port).toBeGreaterThan(0);
    const h = await get(s.port, '/healthz');
    expect([h.status, h.body, h.headers['content-type']]).toEqual([200, 'ok', 'text/plain; charset=utf-8']);
    for (const path of ['/readyz', '/ready', '/readyz?verbose']) {
      const r = await get(s.port, path);
      expect([r.status, r.body]).toEqual([500, 'no connection to any proxy agent']);
    }
    ready = true;
    for (const path of ['/readyz', '/ready']) {
      const r = await get(s.port, path);
      expect([r.status, r.body]).toEqual([200, 'ok']);
    }
    const m = await get(s.port, '/metrics');
    expect(m.status).toBe(200);
    expect(m.headers['content-type']).toContain('text/plain; version=0.0.4');
    expect(m.body).toContain('test_total 1');
    const nf = await get(s.port, '/nope');
    expect([nf.status, nf.body]).toEqual([404, '404 page not found\n']);
  });

  it('admin port serves /metrics and 404s pprof', async () => {
    const registry = new Registry();
    const s = await start(adminHandler(registry));
    expect((await get(s.port, '/metrics')).status).toBe(200);
    expect((await get(s.port, '/debug/pprof/')).status).toBe(404);
  });

  it('a failing /metrics collector answers 500 instead of crashing', async () => {
    const registry = new Registry();
    new Counter({
      name: 'broken_total',
      help: 'x',
      registers: [registry],
      collect() {
        throw new Error('collector broke');
      },
    });
    const s = await start(adminHandler(registry));
    const r = await get(s.port, '/metrics');
    expect(r.status).toBe(500);
    expect(r.body).toContain('collector broke');
  });
});

describe('agent health port', () => {
  it('lists the reference checks and answers 503 when no tunnel is up', async () => {
    let ready = false;
    const s = await start(agentHealthHandler({ ready: () => ready }));
    expect(await get(s.port, '/healthz')).toMatchObject({ status: 200, body: 'ok' });
    for (const path of ['/readyz', '/ready']) {
      expect(await get(s.port, path)).toMatchObject({ status: 503, body: '[+]ping ok\n[-]server-connected failed: no servers connected\n' });
    }
    ready = true;
    expect(await get(s.port, '/readyz')).toMatchObject({ status: 200, body: 'ok' });
    expect(await get(s.port, '/readyz?verbose')).toMatchObject({ status: 200, body: '[+]ping ok\n[+]server-connected ok\ncheck passed\n' });
  });

  it('admin /metrics redirects (301) to the health port', async () => {
    const health = await start(agentHealthHandler({ ready: () => true, registry: new Registry() }));
    const admin = await start(agentAdminHandler(() => health.port));
    const r = await get(admin.port, '/metrics?x=1');
    expect(r.status).toBe(301);
    expect(r.headers['location']).toBe(`http://127.0.0.1:${health.port}/metrics?x=1`);
    const followed = await get(health.port, new URL(r.headers['location'] as string).pathname);
    expect(followed.status).toBe(200);
  });
});

describe('listenOps', () => {
  it('rejects with the listen error when the port is taken', async () => {
    const a = await start(adminHandler(new Registry()));
    await expect(listenOps(adminHandler(new Registry()), '127.0.0.1', a.port)).rejects.toMatchObject({ code: 'EADDRINUSE' });
  });
  it('close is idempotent', async () => {
    const a = await listenOps(adminHandler(new Registry()), '127.0.0.1', 0);
    await Promise.all([a.close(), a.close()]);
    await a.close();
  });
});
