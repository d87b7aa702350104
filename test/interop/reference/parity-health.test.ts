/**
 * Health and readiness parity: every path below, on the health and the admin port, answers with the Go program's
 * status and body in the same state (server: no agent, an agent up, its only agent draining; agent: no server, a
 * tunnel up, draining after its first SIGTERM). Metrics bodies differ by nature and are only checked for status;
 * the one known difference is our server also serving /metrics on its health port (the Go server answers 404).
 */
import { expect, it } from 'vitest';
import { describeKit, freePort, until, useKit, type AgentProcess, type HttpAnswer, type Impl, type ServerProcess } from './kit.js';

const PATHS = ['/healthz', '/readyz', '/ready', '/readyz?verbose', '/healthz?verbose', '/livez', '/', '/readyz/ping', '/healthz/ping', '/metrics', '/debug/pprof/'];

type Answers = Record<string, string>;

/** Status and body of every path on both ports, metrics and redirect bodies reduced to what they are. */
async function answers(p: { get(path: string, on?: 'health' | 'admin'): Promise<HttpAnswer> }): Promise<Answers> {
  const out: Answers = {};
  for (const on of ['health', 'admin'] as const) {
    for (const path of PATHS) {
      const r = await p.get(path, on);
      const body = r.status === 200 && path === '/metrics' ? '(metrics)' : r.status === 301 ? '(redirect)' : r.body;
      out[`${on} ${path}`] = `${r.status} ${body}`;
    }
  }
  return out;
}

/** Our answers must be Go's, but for the paths in `extra`, where ours are given. */
function expectSame(state: string, go: Answers, ts: Answers, extra: Answers = {}): void {
  expect({ state, ...ts }).toEqual({ state, ...go, ...extra });
}

describeKit('health and readiness parity with the Go binaries', () => {
  const fx = useKit();

  it('the server: same paths, statuses and bodies with no agent, an agent up, and its only agent draining', async () => {
    const servers = {} as Record<Impl, ServerProcess>;
    const agents = {} as Record<Impl, AgentProcess>;
    for (const impl of ['go', 'ts'] as const) servers[impl] = await fx.server(impl, { frontend: 'grpc-uds', v: 2 });
    // Our server also serves its metrics registry on the health port.
    const extra = { 'health /metrics': '200 (metrics)' };
    expectSame('no agent', await answers(servers.go), await answers(servers.ts), extra);

    // Our agent on both: it sends DRAIN at once (the Go agent waits for its next packet).
    for (const impl of ['go', 'ts'] as const) agents[impl] = await fx.agent('ts', { server: servers[impl] });
    for (const impl of ['go', 'ts'] as const) await servers[impl].waitReady();
    expectSame('agent up', await answers(servers.go), await answers(servers.ts), extra);

    for (const impl of ['go', 'ts'] as const) {
      await agents[impl].drain();
      await servers[impl].program.waitFor(new RegExp(`agent (is )?draining.*agentID="${agents[impl].agentID}"`, 'i'));
    }
    expectSame('only agent draining', await answers(servers.go), await answers(servers.ts), extra);
  });

  it('the agent: same paths, statuses and bodies with no server, a tunnel up, and draining (first SIGTERM)', async () => {
    const nobody = await freePort();
    const agents = {} as Record<Impl, AgentProcess>;
    for (const impl of ['go', 'ts'] as const) agents[impl] = await fx.agent(impl, { server: { host: '127.0.0.1', port: nobody } });
    for (const impl of ['go', 'ts'] as const) await until(async () => (await agents[impl].get('/healthz')).status === 200, `${impl} agent health`);
    expectSame('no server', await answers(agents.go), await answers(agents.ts));

    const server = await fx.server('go', { frontend: 'grpc-uds' });
    for (const impl of ['go', 'ts'] as const) agents[impl] = await fx.agent(impl, { server });
    for (const impl of ['go', 'ts'] as const) await agents[impl].waitServerConnections(1);
    expectSame('tunnel up', await answers(agents.go), await answers(agents.ts));

    for (const impl of ['go', 'ts'] as const) await agents[impl].drain();
    expectSame('draining', await answers(agents.go), await answers(agents.ts));
  });
});
