/**
 * When a gRPC server over TCP measures a connection's idle round trip (the window estimator's first PING): at once
 * for an agent's tunnel, which lives long and whose window grows with bandwidth x delay; never for a connection that
 * carries a short frontend call (kube-apiserver's one connection per dial), which would pay a PING per dial.
 */
import http2, { type ClientHttp2Session } from 'node:http2';
import { afterEach, describe, expect, it } from 'vitest';
import { createGrpcServer, type GrpcServer } from '../../../src/transport/grpc/index.js';
import type { PacketStream } from '../../../src/transport/packet-stream.js';

let cleanup: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanup.reverse()) await c();
  cleanup = [];
});

/** Call `path` on a fresh connection; once the call is answered and a PING of ours came back, say whether the server pinged us. */
async function serverPinged(server: GrpcServer, path: string): Promise<boolean> {
  const session: ClientHttp2Session = http2.connect(`http://127.0.0.1:${server.port}`);
  cleanup.push(() => new Promise<void>((r) => (session.destroyed ? r() : session.close(() => r()))));
  session.on('error', () => {});
  let pinged = false;
  session.on('ping', () => (pinged = true));
  const req = session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers', agentid: 'agent-1' });
  req.on('error', () => {});
  cleanup.push(() => void req.close(http2.constants.NGHTTP2_CANCEL));
  await new Promise<void>((resolve) => req.once('response', () => resolve()));
  // A PING the server sent when the call arrived is on the wire before its answer to ours.
  await new Promise<void>((resolve, reject) => session.ping((err) => (err ? reject(err) : resolve())));
  return pinged;
}

describe('gRPC server over TCP: the idle round-trip PING', () => {
  it("is sent for an agent's tunnel and not for a frontend call", async () => {
    const streams: PacketStream[] = [];
    // The client resets its calls at the end: the streams fail with that, as they should.
    const keep = (s: PacketStream): void => void streams.push(s.on('error', () => {}));
    const server = await createGrpcServer({ port: 0, agent: (incoming) => keep(incoming.accept({})), frontend: keep });
    cleanup.push(() => server.close({ graceMs: 0 }), () => streams.forEach((s) => s.destroy()));
    expect(await serverPinged(server, '/ProxyService/Proxy')).toBe(false);
    expect(await serverPinged(server, '/AgentService/Connect')).toBe(true);
  });
});
