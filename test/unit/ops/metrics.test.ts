import { EventEmitter } from 'node:events';
import perfHooks from 'node:perf_hooks';
import { Registry } from 'prom-client';
import { describe, expect, it, vi } from 'vitest';
import { parsePrometheusText } from '../../integration/ops/prom-text.js';
import { connectionRefusalReason, endpointDialFailureReason, instrumentAgent, instrumentServer, segmentLabel, servedStreamErrorCode, streamErrorCode } from '../../../src/ops/metrics.js';

class FakeServer extends EventEmitter {
  agentList: Array<{ agentID: string; identifiers: { host?: string[]; defaultRoute?: boolean } }> = [];
  stats = {
    pendingDials: 0,
    establishedConnections: 0,
    packets: { fromAgent: { DIAL_RSP: 0, DATA: 0 }, toAgent: { DIAL_REQ: 0 }, fromFrontend: { DIAL_REQ: 0 }, toFrontend: {} } as Record<string, Record<string, number>>,
  };
  get agentCount(): number {
    return this.agentList.length;
  }
  agents(): FakeServer['agentList'] {
    return this.agentList;
  }
}

class FakeAgent extends EventEmitter {
  tunnels: Array<{ serverCount: number; connectionCount: number }> = [];
}

const parse = parsePrometheusText;

const P = 'konnectivity_network_proxy_server_';

describe('instrumentServer', () => {
  it('exports the reference series fed by events and live stats', async () => {
    const server = new FakeServer();
    const { registry } = instrumentServer(server, undefined, { strategies: ['destHost', 'default', 'defaultRoute'] });
    let m = parse(await registry.metrics());
    expect(m.get(`${P}pending_backend_dials`)).toBe(0);
    expect(m.get(`${P}ready_backends{proxy_strategy="default"}`)).toBe(0);
    expect(m.get(`${P}grpc_connections{service_method="Proxy"}`)).toBe(0);
    expect(m.get(`${P}dial_duration_seconds_count`)).toBe(0);

    server.agentList.push({ agentID: 'a', identifiers: { host: ['node1'] } }, { agentID: 'b', identifiers: { defaultRoute: true } }, { agentID: 'c', identifiers: {} });
    server.stats.pendingDials = 2;
    server.stats.establishedConnections = 5;
    server.stats.packets.fromAgent!['DATA'] = 7;
    server.stats.packets.toAgent!['DIAL_REQ'] = 3;
    server.emit('dialSucceeded', { address: '10.0.0.1:443', agentID: 'a', frontend: 'grpc', durationMs: 20 });
    server.emit('dialFailed', { address: 'x:1', frontend: 'grpc', reason: 'no_agent', error: new Error('No agent available') });
    server.emit('dialFailed', { address: 'x:1', frontend: 'grpc', reason: 'no_agent', error: new Error('No agent available') });
    server.emit('dialFailed', { address: 'x:1', frontend: 'grpc', reason: 'error_response', error: new Error('refused') });

    m = parse(await registry.metrics());
    expect(m.get(`${P}pending_backend_dials`)).toBe(2);
    expect(m.get(`${P}established_connections`)).toBe(5);
    expect(m.get(`${P}ready_backends{proxy_strategy="default"}`)).toBe(3);
    expect(m.get(`${P}ready_backends{proxy_strategy="destHost"}`)).toBe(1);
    expect(m.get(`${P}ready_backends{proxy_strategy="defaultRoute"}`)).toBe(1);
    expect(m.get(`${P}ready_backend_connections`)).toBe(3);
    expect(m.get(`${P}dial_duration_seconds_count`)).toBe(1);
    expect(m.get(`${P}dial_duration_seconds_sum`)).toBeCloseTo(0.02);
    expect(m.get(`${P}dial_duration_seconds_bucket{le="0.025"}`)).toBe(1);
    expect(m.get(`${P}dial_duration_seconds_bucket{le="0.005"}`)).toBe(0);
    expect(m.get(`${P}dial_failure_count{reason="no_agent"}`)).toBe(2);
    expect(m.get(`${P}dial_failure_count{reason="error_response"}`)).toBe(1);
    expect(m.get(`${P}stream_packets_total{segment="from_agent",packet_type="DATA"}`)).toBe(7);
    expect(m.get(`${P}stream_packets_total{segment="to_agent",packet_type="DIAL_REQ"}`)).toBe(3);
    expect(m.has(`${P}stream_packets_total{segment="from_agent",packet_type="DIAL_RSP"}`)).toBe(false);

    // Counts read at scrape time follow the engine, never accumulate twice.
    server.stats.packets.fromAgent!['DATA'] = 9;
    m = parse(await registry.metrics());
    expect(m.get(`${P}stream_packets_total{segment="from_agent",packet_type="DATA"}`)).toBe(9);
  });

  it('tracks gRPC streams and HTTP connections until they close', async () => {
    const server = new FakeServer();
    const inst = instrumentServer(server);
    const s1 = new EventEmitter();
    const s2 = new EventEmitter();
    const sock = new EventEmitter();
    inst.trackGrpcStream('Connect', s1);
    inst.trackGrpcStream('Proxy', s2);
    inst.trackHttpConnection(sock);
    let m = parse(await inst.registry.metrics());
    expect(m.get(`${P}grpc_connections{service_method="Connect"}`)).toBe(1);
    expect(m.get(`${P}grpc_connections{service_method="Proxy"}`)).toBe(1);
    expect(m.get(`${P}http_connections`)).toBe(1);
    s1.emit('close');
    s1.emit('close');
    sock.emit('close');
    m = parse(await inst.registry.metrics());
    expect(m.get(`${P}grpc_connections{service_method="Connect"}`)).toBe(0);
    expect(m.get(`${P}http_connections`)).toBe(0);
  });

  it('stream errors, full receive channels, frontend write latency, refusals and our own families', async () => {
    const server = new FakeServer();
    const inst = instrumentServer(server, undefined, { connectionBufferBytes: 1 << 20 });
    const frontend = Object.assign(new EventEmitter(), { isPaused: false, writes: 0, write(_p: never) { this.writes++; return true; } });
    const agentCredit = Object.assign(new EventEmitter(), { isPaused: true });
    const agentLegacy = new EventEmitter();
    inst.trackGrpcStream('Proxy', frontend);
    inst.trackGrpcStream('Connect', agentCredit, { creditWindowBytes: 65536 });
    inst.trackGrpcStream('Connect', agentLegacy);
    frontend.write(undefined as never);
    frontend.write(undefined as never);
    server.emit('dialFailed', { reason: 'shutting_down' });
    server.emit('agentRefused', { agentID: 'a', remoteAddress: '127.0.0.1:1', error: { code: 'ERR_UNAUTHENTICATED' } });
    server.emit('dialFailed', { reason: 'too_many_pending_dials' });
    inst.connectionRefused('agent', 'client_certificate');
    inst.connectionRefused('agent', 'client_certificate');
    inst.connectionRefused('frontend-http-connect', 'bad_request');
    inst.httpConnectFailed(502);
    inst.httpConnectFailed(undefined);
    let m = parse(await inst.registry.metrics());
    expect(frontend.writes).toBe(2);
    expect(m.get(`${P}frontend_write_duration_seconds_count`)).toBe(2);
    expect(m.get(`${P}full_receive_channels{service_method="Connect"}`)).toBe(1);
    expect(m.has(`${P}full_receive_channels{service_method="Proxy"}`)).toBe(false);
    expect(m.has(`${P}dial_failure_count{reason="shutting_down"}`)).toBe(false);
    const T = 'konnectivity_ts_server_';
    expect(m.get(`${T}dial_refusals_total{reason="shutting_down"}`)).toBe(1);
    expect(m.get(`${T}dial_refusals_total{reason="too_many_pending_dials"}`)).toBe(1);
    expect(m.get(`${T}agent_refusals_total{code="ERR_UNAUTHENTICATED"}`)).toBe(1);
    expect(m.get(`${T}connection_refusals_total{listener="agent",reason="client_certificate"}`)).toBe(2);
    expect(m.get(`${T}connection_refusals_total{listener="frontend-http-connect",reason="bad_request"}`)).toBe(1);
    expect(m.get(`${T}http_connect_failures_total{status="502"}`)).toBe(1);
    expect(m.get(`${T}http_connect_failures_total{status="client_gone"}`)).toBe(1);
    expect(m.get(`${T}agent_tunnels{flow_control="credit"}`)).toBe(1);
    expect(m.get(`${T}agent_tunnels{flow_control="legacy"}`)).toBe(1);
    expect(m.get(`${T}connection_buffer_bytes`)).toBe(1 << 20);
    frontend.emit('close', new Error('the peer reset the stream (HTTP/2 error code 8)'));
    agentLegacy.emit('close', undefined);
    m = parse(await inst.registry.metrics());
    expect(m.get(`${P}stream_errors_total{segment="from_client",code="Canceled",packet_type="Unknown"}`)).toBe(1);
    expect(m.has(`${P}stream_errors_total{segment="from_agent",code="Canceled",packet_type="Unknown"}`)).toBe(false);
    expect(m.get(`${T}agent_tunnels{flow_control="legacy"}`)).toBe(0);
  });

  it('feeds the lease GC families from a lease controller', async () => {
    const inst = instrumentServer(new FakeServer());
    let m = parse(await inst.registry.metrics());
    expect(m.get(`${P}culled_leases_count`)).toBe(0);
    const controller = new EventEmitter();
    const detach = inst.trackLeaseController(controller);
    controller.emit('call', { call: 'list', status: 200, reason: '', durationMs: 3 });
    controller.emit('call', { call: 'delete', status: 409, reason: 'Conflict', durationMs: 2 });
    controller.emit('call', { call: 'delete', status: 0, reason: 'Unreachable', durationMs: 2 });
    controller.emit('culled', 'x');
    detach();
    controller.emit('culled', 'y');
    m = parse(await inst.registry.metrics());
    expect(m.get(`${P}culled_leases_count`)).toBe(1);
    expect(m.get(`${P}lease_list_total{http_status_code="200",reason=""}`)).toBe(1);
    expect(m.get(`${P}lease_list_latency_seconds_count{http_status_code="200"}`)).toBe(1);
    expect(m.get(`${P}lease_delete_total{http_status_code="409",reason="Conflict"}`)).toBe(1);
    expect(m.get(`${P}lease_delete_latency_seconds_bucket{le="0.005",http_status_code="409"}`)).toBe(1);
    expect(m.has(`${P}lease_delete_total{http_status_code="0",reason="Unreachable"}`)).toBe(false);
  });

  it('detach stops counting; two servers in one process do not collide', async () => {
    const a = new FakeServer();
    const b = new FakeServer();
    const ia = instrumentServer(a);
    const ib = instrumentServer(b);
    a.emit('dialFailed', { reason: 'no_agent' });
    ia.detach();
    ia.detach();
    a.emit('dialFailed', { reason: 'no_agent' });
    expect(a.listenerCount('dialFailed')).toBe(0);
    expect(parse(await ia.registry.metrics()).get(`${P}dial_failure_count{reason="no_agent"}`)).toBe(1);
    expect(parse(await ib.registry.metrics()).has(`${P}dial_failure_count{reason="no_agent"}`)).toBe(false);
  });

  it('adds the process metrics into a given registry on request', async () => {
    const registry = new Registry();
    instrumentServer(new FakeServer(), registry, { defaultMetrics: true });
    const text = await registry.metrics();
    expect(text).toContain('process_cpu_user_seconds_total');
    expect(text).toContain(`${P}pending_backend_dials`);
  });

  it('samples the event-loop delay every 100 ms by default, or as asked', () => {
    // Each sample is a timer that wakes the process: prom-client's own 10 ms wakes an idle one 100 times a second.
    const monitor = vi.spyOn(perfHooks, 'monitorEventLoopDelay');
    try {
      instrumentServer(new FakeServer(), new Registry(), { defaultMetrics: true });
      instrumentAgent(new FakeAgent(), new Registry(), { defaultMetrics: true, eventLoopSampleMs: 20 });
      expect(monitor.mock.calls.map(([o]) => o?.resolution)).toEqual([100, 20]);
    } finally {
      monitor.mockRestore();
    }
  });
});

describe('instrumentAgent', () => {
  const A = 'konnectivity_network_proxy_agent_';
  it('exports tunnels, known servers, endpoint connections and dial failures', async () => {
    const agent = new FakeAgent();
    const { registry } = instrumentAgent(agent);
    let m = parse(await registry.metrics());
    expect(m.get(`${A}open_server_connections`)).toBe(0);
    expect(m.get(`${A}known_server_count`)).toBe(0);
    agent.tunnels.push({ serverCount: 2, connectionCount: 3 }, { serverCount: 2, connectionCount: 1 });
    agent.emit('dialFailed', { address: 'x:1', error: Object.assign(new Error('dial tcp 10.0.0.1:1: i/o timeout'), { code: 'ERR_DIAL_FAILED' }) });
    agent.emit('dialFailed', { address: 'x:1', error: new Error('dial tcp 127.0.0.1:1: connect: connection refused') });
    agent.emit('dialFailed', { address: 'x:1', error: 'too many pending dials on the agent (limit 2)', refused: 'too_many_pending_dials' });
    agent.emit('connectionOpened', { address: 'x:1', connectID: 1n, durationMs: 1 });
    m = parse(await registry.metrics());
    expect(m.get(`${A}open_server_connections`)).toBe(2);
    expect(m.get(`${A}known_server_count`)).toBe(2);
    expect(m.get(`${A}open_endpoint_connections`)).toBe(4);
    expect(m.get(`${A}endpoint_dial_failure_total{reason="timeout"}`)).toBe(1);
    expect(m.get(`${A}endpoint_dial_failure_total{reason="unknown"}`)).toBe(1);
    // A dial the agent refused is not an endpoint failure.
    expect(m.get('konnectivity_ts_agent_dial_refusals_total{reason="too_many_pending_dials"}')).toBe(1);
    expect(m.get(`${A}dial_duration_seconds_count`)).toBe(1);
  });

  it('feeds failures from the client set and lease calls from the lease counter', async () => {
    const inst = instrumentAgent(new FakeAgent(), undefined, { connectionBufferBytes: 4096 });
    const set = new EventEmitter();
    const counter = new EventEmitter();
    inst.trackClientSet(set);
    inst.trackLeaseCounter(counter);
    set.emit('tunnelRemoved', {}, Object.assign(new Error('UNAVAILABLE: error reading from server: EOF'), { code: 'ERR_SHUTTING_DOWN' }));
    set.emit('tunnelRemoved', {}, undefined);
    set.emit('connectFailed', Object.assign(new Error('refused'), { code: 'ERR_UNAUTHENTICATED' }), 1000);
    set.emit('duplicate', 's1', 1000);
    counter.emit('call', { call: 'list', status: 200, reason: '', durationMs: 7 });
    counter.emit('call', { call: 'watch', status: 200, reason: '', durationMs: 1 });
    counter.emit('call', { call: 'list', status: 403, reason: 'Forbidden', durationMs: 1 });
    const m = parse(await inst.registry.metrics());
    expect(m.get(`${A}server_connection_failure_count{direction="from_server"}`)).toBe(1);
    expect(m.get(`${A}stream_errors_total{segment="to_agent",code="Unavailable",packet_type="Unknown"}`)).toBe(1);
    expect(m.get(`${A}lease_lists_total{http_response_code="200",reason=""}`)).toBe(1);
    expect(m.get(`${A}lease_lists_total{http_response_code="403",reason="Forbidden"}`)).toBe(1);
    expect(m.get(`${A}lease_watches_total{http_response_code="200",reason=""}`)).toBe(1);
    expect(m.get(`${A}lease_list_latency_seconds_bucket{le="0.025",http_response_code="200"}`)).toBe(1);
    expect(m.get('konnectivity_ts_agent_tunnel_failures_total{code="ERR_UNAUTHENTICATED"}')).toBe(1);
    expect(m.get('konnectivity_ts_agent_duplicate_tunnels_total')).toBe(1);
    expect(m.get('konnectivity_ts_agent_connection_buffer_bytes')).toBe(4096);
  });

  it('uses the client set count when given', async () => {
    const { registry } = instrumentAgent(new FakeAgent(), undefined, { knownServerCount: () => 3 });
    expect(parse(await registry.metrics()).get(`${A}known_server_count`)).toBe(3);
  });
});

describe('helpers', () => {
  it('maps directions to the reference segments', () => {
    expect(segmentLabel('fromFrontend')).toBe('from_client');
    expect(segmentLabel('toFrontend')).toBe('to_client');
    expect(segmentLabel('toAgent')).toBe('to_agent');
    // The agent names them from the server's side, as the reference agent does.
    expect(segmentLabel('fromServer')).toBe('to_agent');
    expect(segmentLabel('toServer')).toBe('from_agent');
  });
  it('names stream error codes as Go does', () => {
    expect(streamErrorCode(new Error('the peer reset the stream (HTTP/2 error code 8)'))).toBe('Canceled');
    expect(streamErrorCode(new Error('UNAVAILABLE: server shutting down'))).toBe('Unavailable');
    expect(streamErrorCode(Object.assign(new Error('gone'), { code: 'ERR_TUNNEL_CLOSED' }))).toBe('Unavailable');
    expect(streamErrorCode(Object.assign(new Error('x'), { code: 'ERR_UNAUTHENTICATED' }))).toBe('Unauthenticated');
    expect(streamErrorCode(new Error('something else'))).toBe('Unknown');
    // A stream we serve: a client that leaves is Canceled, as grpc-go's server sees it; ours shutting down is not.
    const lost = Object.assign(new Error('http2 stream error: read ECONNRESET'), { code: 'ERR_STREAM_CLOSED' });
    expect(streamErrorCode(lost)).toBe('Unavailable');
    expect(servedStreamErrorCode(lost)).toBe('Canceled');
    expect(servedStreamErrorCode(Object.assign(new Error('x'), { code: 'ERR_SHUTTING_DOWN' }))).toBe('Unavailable');
    expect(servedStreamErrorCode(new Error('UNAUTHENTICATED: bad token'))).toBe('Unauthenticated');
  });
  it('classifies endpoint dial failures', () => {
    expect(endpointDialFailureReason({ code: 'ERR_DIAL_TIMEOUT', message: 'x' })).toBe('timeout');
    expect(endpointDialFailureReason(new Error('context deadline exceeded'))).toBe('timeout');
    expect(endpointDialFailureReason(new Error('connection refused'))).toBe('unknown');
    expect(endpointDialFailureReason(undefined)).toBe('unknown');
  });
  it('tells why a yamux or HTTP-CONNECT listener refused a connection', () => {
    const err = (message: string, fields: object = {}) => Object.assign(new Error(message), fields);
    expect(connectionRefusalReason(err('more than 2 connections', { code: 'ERR_LIMIT_EXCEEDED' }))).toBe('too_many_connections');
    expect(connectionRefusalReason(err('client certificate refused: certificate has expired', { code: 'ERR_UNAUTHENTICATED' }))).toBe('client_certificate');
    expect(connectionRefusalReason(err('TLS handshake timeout', { code: 'ERR_TLS_HANDSHAKE_TIMEOUT' }))).toBe('handshake_timeout');
    expect(connectionRefusalReason(err('yamux handshake: waiting for the agent timed out after 10000 ms', { code: 'ERR_TUNNEL_CLOSED' }))).toBe('handshake_timeout');
    expect(connectionRefusalReason(err('no request header within 10000 ms', { code: 'ERR_PROTOCOL' }))).toBe('handshake_timeout');
    expect(connectionRefusalReason(err('wrong version number', { code: 'ERR_SSL_WRONG_VERSION_NUMBER', library: 'SSL routines' }))).toBe('tls');
    expect(connectionRefusalReason(err('Client network socket disconnected before secure TLS connection was established', { code: 'ECONNRESET' }))).toBe('tls');
    expect(connectionRefusalReason(err('Parse Error: Invalid method encountered', { code: 'HPE_INVALID_METHOD' }))).toBe('bad_request');
    expect(connectionRefusalReason(err('method GET not allowed', { code: 'ERR_PROTOCOL' }))).toBe('bad_request');
    expect(connectionRefusalReason(err('accept EMFILE', { code: 'EMFILE' }))).toBe('other');
    expect(connectionRefusalReason(undefined)).toBe('other');
  });
});
