/**
 * The TunnelConnector / IncomingPacketStream compliance suite: how every transport opens a tunnel (see
 * src/transport/packet-stream.ts). It registers vitest tests; call it from a transport's own test file:
 *
 *   import { describeTunnelConnectorCompliance } from '../../compliance/tunnel-connector.js';
 *
 *   describeTunnelConnectorCompliance('grpc over TCP', async (onIncoming) => {
 *     const server = await createGrpcServer({ port: 0, agent: onIncoming });
 *     return { connector: grpcAgentConnector({ address: server.address }), cleanup: () => server.close() };
 *   });
 *
 * `setup` is called once per test with the accepting side's handler (what a server does with each new stream) and
 * returns the connector an agent would use. `cleanup` releases the rest (servers) and runs after the streams closed.
 * Every test checks for leaked handles and timers from before `setup` to after `cleanup`.
 */
import { describe, expect, it } from 'vitest';
import { ErrorCode, isKonnectivityError, KonnectivityError } from '../../src/protocol/index.js';
import type { IncomingPacketStream, Metadata, TunnelConnector } from '../../src/transport/packet-stream.js';
import { snapshotResources } from '../helpers/leaks.js';
import {
  expectSamePackets,
  mixedPackets,
  record,
  runThenTearDown,
  turn,
  until,
  withTimeout,
  writeAll,
  type Recorded,
} from './helpers.js';

/** What `setup` returns. */
export interface ConnectorHarness {
  connector: TunnelConnector;
  /** Release what else the harness holds (servers); runs after every stream has closed. */
  cleanup?: () => Promise<void>;
}

export interface TunnelConnectorComplianceOptions {
  /** Resource types the leak check ignores for this transport. */
  ignoreResources?: readonly string[];
}

/** Metadata an agent sends: lower-case keys, one of them with two values. */
const AGENT_METADATA: Metadata = {
  agentid: ['agent-1'],
  agentidentifiers: ['host=node-1'],
  'x-konnectivity-test': ['one', 'two'],
};
const SERVER_METADATA: Metadata = { serverid: ['server-1'], servercount: ['2'] };

/** Register the connector tests for a transport. See the module comment. */
export function describeTunnelConnectorCompliance(
  name: string,
  setup: (onIncoming: (incoming: IncomingPacketStream) => void) => Promise<ConnectorHarness>,
  options: TunnelConnectorComplianceOptions = {},
): void {
  /**
   * Run `body` with a fresh harness whose accepting side calls `handler`; every stream recorded through `track` is
   * destroyed and awaited afterwards. A failure of the body wins over one of the teardown.
   */
  async function withHarness(
    handler: (incoming: IncomingPacketStream) => void,
    body: (h: ConnectorHarness, track: (r: Recorded) => Recorded) => Promise<void>,
  ): Promise<void> {
    const before = snapshotResources();
    const harness = await withTimeout(setup((incoming) => handler(incoming)), 'setup()');
    const tracked: Recorded[] = [];
    await runThenTearDown(() => body(harness, (r) => (tracked.push(r), r)), {
      streams: () => tracked,
      cleanup: harness.cleanup,
      before,
      ignoreResources: options.ignoreResources,
    });
  }

  describe(`TunnelConnector compliance: ${name}`, () => {
    it('carries metadata both ways, then packets, then a graceful close', async () => {
      const incoming: IncomingPacketStream[] = [];
      await withHarness(
        (i) => incoming.push(i),
        async (h, track) => {
          const connecting = h.connector(AGENT_METADATA, {});
          await until(() => incoming.length === 1, 'the accepting side to see the stream');
          const inc = incoming[0]!;
          for (const [key, values] of Object.entries(AGENT_METADATA)) {
            expect(inc.metadata[key], `request metadata ${key}`).toEqual(values);
          }
          expect(typeof inc.remoteAddress).toBe('string');
          expect(inc.remoteAddress.length).toBeGreaterThan(0);
          const server = track(record(inc.accept(SERVER_METADATA)));
          const agent = track(record(await withTimeout(connecting, 'connect() after accept()')));
          for (const [key, values] of Object.entries(SERVER_METADATA)) {
            expect(agent.stream.remoteMetadata[key], `response metadata ${key}`).toEqual(values);
          }
          const up = mixedPackets(50, 21, 64 * 1024);
          const down = mixedPackets(50, 22, 64 * 1024);
          await Promise.all([writeAll(agent.stream, up), writeAll(server.stream, down)]);
          await until(() => server.packets.length === up.length && agent.packets.length === down.length, 'packets');
          expectSamePackets(server.packets, up);
          expectSamePackets(agent.packets, down);
          server.stream.once('end', () => void server.stream.close());
          await agent.stream.close();
          await until(() => server.closeCount > 0 && agent.closeCount > 0, "'close' on both sides");
          expect([...agent.errors, ...server.errors]).toEqual([]);
        },
      );
    });

    // The codes a refusal keeps across every transport (gRPC carries them as UNAUTHENTICATED, INVALID_ARGUMENT and
    // UNAVAILABLE): an agent backs off differently for each.
    for (const code of [ErrorCode.UNAUTHENTICATED, ErrorCode.PROTOCOL, ErrorCode.SHUTTING_DOWN]) {
      it(`a refusal with ${code} rejects connect() with ${code} and its text`, async () => {
        await withHarness(
          (inc) => inc.reject(new KonnectivityError(code, `refused for the test (${code})`)),
          async (h) => {
            const err = await withTimeout(h.connector(AGENT_METADATA, {}), 'connect()').then(
              () => undefined,
              (e: unknown) => e,
            );
            expect(isKonnectivityError(err, code), `got ${String(err)}`).toBe(true);
            expect((err as Error).message).toContain(`refused for the test (${code})`);
          },
        );
      });
    }

    it('an already-aborted signal rejects with ABORT_ERR without reaching the peer', async () => {
      let seen = 0;
      await withHarness(
        () => seen++,
        async (h) => {
          const controller = new AbortController();
          controller.abort();
          const err = await h.connector(AGENT_METADATA, { signal: controller.signal }).then(
            () => undefined,
            (e: unknown) => e,
          );
          expect(isKonnectivityError(err, ErrorCode.ABORTED), `got ${String(err)}`).toBe(true);
          for (let i = 0; i < 20; i++) await turn();
          expect(seen).toBe(0);
        },
      );
    });

    it('aborting while the peer has not answered rejects with ABORT_ERR; a late answer changes nothing', async () => {
      const incoming: IncomingPacketStream[] = [];
      await withHarness(
        (i) => incoming.push(i),
        async (h, track) => {
          const controller = new AbortController();
          const connecting = h.connector(AGENT_METADATA, { signal: controller.signal });
          connecting.catch(() => {});
          await until(() => incoming.length === 1, 'the accepting side to see the stream');
          controller.abort();
          const err = await withTimeout(connecting, 'connect() after abort').then(
            () => undefined,
            (e: unknown) => e,
          );
          expect(isKonnectivityError(err, ErrorCode.ABORTED), `got ${String(err)}`).toBe(true);
          // The server answers too late: the stream it gets is, or soon becomes, closed.
          const late = track(record(incoming[0]!.accept(SERVER_METADATA)));
          await until(() => late.stream.closed, 'the late stream to close');
        },
      );
    });

    it('two tunnels from one connector are independent', async () => {
      const incoming: IncomingPacketStream[] = [];
      await withHarness(
        (i) => incoming.push(i),
        async (h, track) => {
          const first = h.connector({ agentid: ['agent-1'] }, {});
          const second = h.connector({ agentid: ['agent-2'] }, {});
          await until(() => incoming.length === 2, 'both streams at the accepting side');
          const servers = incoming.map((i) => track(record(i.accept({ serverid: [String(i.metadata.agentid?.[0])] }))));
          const agents = (await Promise.all([first, second])).map((s) => track(record(s)));
          for (const a of agents) {
            // Each agent reached the server end that saw its own agentid.
            const id = a.stream.remoteMetadata.serverid?.[0];
            expect(['agent-1', 'agent-2']).toContain(id);
          }
          agents[0]!.stream.destroy(new Error('first tunnel dies'));
          const byId = (id: string): Recorded => servers[incoming.findIndex((i) => i.metadata.agentid?.[0] === id)]!;
          const deadID = agents[0]!.stream.remoteMetadata.serverid![0]!;
          const liveID = deadID === 'agent-1' ? 'agent-2' : 'agent-1';
          await until(() => byId(deadID).closeCount > 0, "the first tunnel's server end to close");
          // The other tunnel still works both ways.
          const up = mixedPackets(10, 23, 1024);
          await writeAll(agents[1]!.stream, up);
          await until(() => byId(liveID).packets.length === up.length, 'the second tunnel to carry packets');
          expectSamePackets(byId(liveID).packets, up);
          expect(agents[1]!.closeCount).toBe(0);
        },
      );
    });
  });
}
