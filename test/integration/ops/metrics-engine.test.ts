/**
 * The metrics fed by the real engine (ProxyServer and Agent joined in memory): a dial, a refused dial, the gauges
 * read at scrape time, and readiness through the health handler.
 */
import { once } from 'node:events';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Engine, echoServer } from '../../helpers/engine.js';
import { expectNoLeaks, snapshotResources, type ResourceSnapshot } from '../../helpers/leaks.js';
import { instrumentAgent, instrumentServer } from '../../../src/ops/metrics.js';
import { parsePrometheusText } from './prom-text.js';
import { refusedAddress } from '../../helpers/sockets.js';

const S = 'konnectivity_network_proxy_server_';
const A = 'konnectivity_network_proxy_agent_';

let before: ResourceSnapshot;
let engine: Engine;
beforeEach(() => {
  before = snapshotResources();
  engine = new Engine({});
});
afterEach(async () => {
  await engine.close();
  await expectNoLeaks(before);
});

describe('metrics over the real engine', () => {
  it('counts dials, failures, packets and connections', async () => {
    const server = instrumentServer(engine.server, undefined, { strategies: engine.server.strategies });
    const echo = await echoServer();
    engine.defer(() => echo.close());
    let m = parsePrometheusText(await server.registry.metrics());
    expect(m.get(`${S}ready_backends{proxy_strategy="default"}`)).toBe(0);

    const { agent } = await engine.agent();
    const agentMetrics = instrumentAgent(agent);
    const socket = await engine.server.dial(echo.address);
    socket.write('ping');
    await once(socket, 'data');
    m = parsePrometheusText(await server.registry.metrics());
    expect(m.get(`${S}dial_duration_seconds_count`)).toBe(1);
    expect(m.get(`${S}established_connections`)).toBe(1);
    expect(m.get(`${S}ready_backends{proxy_strategy="default"}`)).toBe(1);
    expect(m.get(`${S}stream_packets_total{segment="to_agent",packet_type="DIAL_REQ"}`)).toBe(1);
    expect(m.get(`${S}stream_packets_total{segment="from_agent",packet_type="DATA"}`)).toBeGreaterThanOrEqual(1);
    let am = parsePrometheusText(await agentMetrics.registry.metrics());
    expect(am.get(`${A}open_server_connections`)).toBe(1);
    expect(am.get(`${A}open_endpoint_connections`)).toBe(1);

    socket.destroy();
    await once(socket, 'close');
    await expect(engine.server.dial(await refusedAddress())).rejects.toMatchObject({ code: 'ERR_DIAL_FAILED' });
    m = parsePrometheusText(await server.registry.metrics());
    expect(m.get(`${S}dial_failure_count{reason="error_response"}`)).toBe(1);
    expect(m.get(`${S}pending_backend_dials`)).toBe(0);
    am = parsePrometheusText(await agentMetrics.registry.metrics());
    expect(am.get(`${A}endpoint_dial_failure_total{reason="unknown"}`)).toBe(1);
    server.detach();
    agentMetrics.detach();
  });
});
