/**
 * Shared pieces for the gRPC tests: test certificates made with openssl in a temp dir, and a server plus a client
 * call over TCP, TLS or a Unix socket.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  createGrpcServer,
  grpcAgentConnector,
  type GrpcClientOptions,
  type GrpcServer,
  type GrpcServerOptions,
} from '../../../src/transport/grpc/index.js';
import type { IncomingPacketStream, Metadata, PacketStream } from '../../../src/transport/packet-stream.js';
import { dataPacket } from '../../../src/protocol/index.js';

export type Kind = 'tcp' | 'tls' | 'uds';

/** PEM files of a test PKI: a CA, a server certificate for 127.0.0.1/localhost, a client certificate, and a rogue CA's client certificate. */
export interface TestPki {
  dir: string;
  ca: Buffer;
  serverKey: Buffer;
  serverCert: Buffer;
  clientKey: Buffer;
  clientCert: Buffer;
  rogueKey: Buffer;
  rogueCert: Buffer;
  /** Paths of the same files, for peers that read files (python). */
  files: Record<'ca' | 'serverKey' | 'serverCert' | 'clientKey' | 'clientCert' | 'rogueKey' | 'rogueCert', string>;
}

let pki: TestPki | undefined;

/** Make (once per test file) a CA and certificates with openssl. */
export function testPki(): TestPki {
  if (pki) return pki;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'konn-grpc-pki-'));
  const run = (...args: string[]): void => {
    execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  };
  const ca = (name: string): void => {
    run('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.crt`, '-days', '2', '-subj', `/CN=${name}`);
  };
  const leaf = (name: string, signer: string, ext: string): void => {
    run('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`);
    fs.writeFileSync(path.join(dir, `${name}.ext`), ext);
    run('x509', '-req', '-in', `${name}.csr`, '-CA', `${signer}.crt`, '-CAkey', `${signer}.key`, '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', '-extfile', `${name}.ext`);
  };
  ca('test-ca');
  ca('rogue-ca');
  leaf('server', 'test-ca', 'subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  leaf('agent-client', 'test-ca', 'extendedKeyUsage=clientAuth\n');
  leaf('rogue-client', 'rogue-ca', 'extendedKeyUsage=clientAuth\n');
  const files = {
    ca: path.join(dir, 'test-ca.crt'),
    serverKey: path.join(dir, 'server.key'),
    serverCert: path.join(dir, 'server.crt'),
    clientKey: path.join(dir, 'agent-client.key'),
    clientCert: path.join(dir, 'agent-client.crt'),
    rogueKey: path.join(dir, 'rogue-client.key'),
    rogueCert: path.join(dir, 'rogue-client.crt'),
  };
  const read = (p: string): Buffer => fs.readFileSync(p);
  pki = {
    dir,
    files,
    ca: read(files.ca),
    serverKey: read(files.serverKey),
    serverCert: read(files.serverCert),
    clientKey: read(files.clientKey),
    clientCert: read(files.clientCert),
    rogueKey: read(files.rogueKey),
    rogueCert: read(files.rogueCert),
  };
  return pki;
}

/** A fresh temp-dir Unix socket path. */
export function tempSocketPath(): string {
  return path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'konn-grpc-')), 'grpc.sock');
}

/** Server options for a kind (listen address and TLS); merge handlers and limits on top. */
export function serverListen(kind: Kind): GrpcServerOptions {
  if (kind === 'uds') return { socketPath: tempSocketPath() };
  if (kind === 'tls') {
    const p = testPki();
    return { port: 0, host: '127.0.0.1', tls: { key: p.serverKey, cert: p.serverCert, ca: p.ca } };
  }
  return { port: 0, host: '127.0.0.1' };
}

/** Client options that reach `server` the way `kind` says. */
export function clientTarget(server: GrpcServer, kind: Kind): GrpcClientOptions {
  const a = server.address();
  if (typeof a === 'string') return { socketPath: a };
  if (kind === 'tls') {
    const p = testPki();
    return { address: `127.0.0.1:${server.port}`, tls: { ca: p.ca, cert: p.clientCert, key: p.clientKey } };
  }
  return { address: `127.0.0.1:${server.port}` };
}

/**
 * A server whose agent handler accepts every call with `responseMetadata`, and one agent-leg call to it.
 * `a` is the client (agent) end, `b` the server end.
 */
export async function agentLegPair(
  kind: Kind,
  options: {
    windowBytes?: number;
    maxWindowBytes?: number;
    highWaterMarkBytes?: number;
    requestMetadata?: Metadata;
    responseMetadata?: Metadata;
  } = {},
): Promise<{ a: PacketStream; b: PacketStream; server: GrpcServer; cleanup: () => Promise<void> }> {
  let resolveServerEnd!: (s: PacketStream) => void;
  const serverEnd = new Promise<PacketStream>((r) => (resolveServerEnd = r));
  const limits = { windowBytes: options.windowBytes, maxWindowBytes: options.maxWindowBytes, highWaterMarkBytes: options.highWaterMarkBytes };
  const server = await createGrpcServer({
    ...serverListen(kind),
    ...limits,
    agent: (incoming: IncomingPacketStream) => resolveServerEnd(incoming.accept(options.responseMetadata ?? {})),
  });
  const connect = grpcAgentConnector({ ...clientTarget(server, kind), ...limits });
  const [a, b] = await Promise.all([connect(options.requestMetadata ?? {}, {}), serverEnd]);
  return { a, b, server, cleanup: () => server.close({ graceMs: 1000 }) };
}

/** Send `total` bytes of DATA on `stream` in packets of `chunkBytes`, respecting backpressure. */
export async function pushData(stream: PacketStream, total: number, chunkBytes = 32 * 1024): Promise<void> {
  const chunk = Buffer.alloc(chunkBytes, 7);
  for (let sent = 0; sent < total; sent += chunk.length) {
    if (!stream.write(dataPacket(1n, chunk))) await new Promise<void>((r) => stream.once('drain', () => r()));
  }
}

export { until } from '../../helpers/until.js';
