/**
 * `konnectivity-server`: the reference proxy-server's command line (PROTOCOL.md §3.1, §6.1) on the library.
 *
 * Listeners: the agent listener (gRPC `AgentService/Connect`, or yamux with `--agent-transport=yamux`), one
 * frontend per `--mode` (gRPC `ProxyService/Proxy` or HTTP-CONNECT) on `--uds-name` or TCP, the health port and
 * the admin port. Each logs `"listening" listener=<name> address=<a> port=<p>` at start, with the real port when
 * 0 was asked for. TLS files are watched: new handshakes use rotated certificates, open connections keep theirs.
 * With `--enable-lease-controller` the server keeps its lease. First SIGTERM/SIGINT: graceful shutdown up to
 * `--graceful-shutdown-timeout`, exit 0; a second one exits 1 at once.
 */
import type { RequestListener } from 'node:http';
import type { SecureVersion } from 'node:tls';
import { Registry } from 'prom-client';
import { ProxyServer, tokenReviewVerifier } from '../server/index.js';
import { createGrpcServer, type GrpcServer } from '../transport/grpc/index.js';
import { createHttpConnectFrontend, type HttpConnectFrontend } from '../server/frontends/http-connect/index.js';
import type { Listener as LibraryListener } from '../transport/listener.js';
import type { IncomingPacketStream, PacketStream } from '../transport/packet-stream.js';
import { adminHandler, listenOps, serverHealthHandler, type OpsServer } from '../ops/health.js';
import type { Logger } from '../ops/logger.js';
import { connectionRefusalReason, instrumentServer, type ServerInstrumentation } from '../ops/metrics.js';
import { DEFAULT_CONNECTION_BUFFER_BYTES } from '../transport/windows.js';
import { WINDOW_METADATA_KEY } from '../tunnel/flow.js';
import { KubeClient, ServerLeaseController, kubeApiConfig } from '../kube/index.js';
import { goSignalName, logFrontendStream, logHttpConnectEvents, logLeaseControllerEvents, logServerEvents } from './event-logs.js';
import { listenOnBindAddress } from './listen.js';
import { processIO, runProgram, tokenFileVerifier, type ProgramIO } from './process.js';
import { serverOptionLines } from './option-lines.js';
import { parseServerOptions, serverFlagSpecs, type ServerOptions } from './server-options.js';
import { reloadingServerTls, type ReloadingTls, type ServerTlsOptions } from './tls.js';
import { listenYamuxAgents } from './yamux.js';

const PROGRAM = 'konnectivity-server';
const SUMMARY =
  'The Konnectivity proxy server: agents connect to the agent port; frontends (kube-apiserver) dial through them ' +
  'over gRPC or HTTP-CONNECT. Flags and defaults follow the reference proxy-server.';

/** How often certificate files are checked for rotation. */
export const TLS_RELOAD_INTERVAL_MS = 1000;

/** A started server: the library objects, the bound ports, and its shutdown. */
export interface RunningServer {
  readonly proxy: ProxyServer;
  readonly registry: Registry;
  /** Bound ports (the real ones when 0 was given); `frontend` is 0 on a Unix socket. */
  readonly ports: { agent: number; frontend: number; health: number; admin: number };
  /** The lease controller, with `--enable-lease-controller`. */
  readonly leases: ServerLeaseController | undefined;
  /**
   * Stop accepting, let connections finish for up to `graceMs` (0: at once), then close everything.
   * Idempotent.
   */
  shutdown(graceMs: number): Promise<void>;
}

/** Follows an accepted agent call in the metrics (`grpc_connections{service_method="Connect"}` and the rest); refusals come as `agentRefused`. */
function trackedIncoming(incoming: IncomingPacketStream, metrics: ServerInstrumentation, log: Logger, serverID: string): IncomingPacketStream {
  log.v(2).info('Connect request from agent', { agentID: incoming.metadata['agentid']?.[0], serverID });
  return {
    metadata: incoming.metadata,
    remoteAddress: incoming.remoteAddress,
    peerCommonName: incoming.peerCommonName,
    peerCertificateNames: incoming.peerCertificateNames,
    accept(responseMetadata) {
      const stream = incoming.accept(responseMetadata);
      // The server answers with a window exactly when it agreed to the credit regime.
      const window = responseMetadata?.[WINDOW_METADATA_KEY]?.[0];
      metrics.trackGrpcStream('Connect', stream, { creditWindowBytes: window === undefined ? undefined : Number(window) });
      return stream;
    },
    reject(err) {
      incoming.reject(err);
    },
  };
}

/** Our gRPC listeners speak TLS 1.2 and 1.3 only; an older --tls-min-version is raised to 1.2 with a warning. */
function grpcTls(t: ServerTlsOptions, log?: Logger): ServerTlsOptions & { minVersion: 'TLSv1.2' | 'TLSv1.3' } {
  if (log && t.minVersion !== 'TLSv1.2' && t.minVersion !== 'TLSv1.3') log.warn('--tls-min-version below TLS 1.2 is not supported on gRPC listeners; using TLS 1.2');
  return { ...t, minVersion: t.minVersion === 'TLSv1.3' ? 'TLSv1.3' : 'TLSv1.2' };
}

/**
 * A connection a listener refused before it carried a tunnel or a request (TLS, client certificate, deadline,
 * limit, bad request): logged at the default verbosity and counted in `konnectivity_ts_server_connection_refusals_total`.
 */
function connectionRefused(ctx: Context, listener: string, remoteAddress: string, reason: string, err: Error): void {
  ctx.metrics.connectionRefused(listener, reason);
  const code = (err as { code?: unknown }).code;
  ctx.log.info('connection refused', { listener, remoteAddress, reason, ...(typeof code === 'string' ? { code } : {}), err: err.message });
}

/** The refusals of a gRPC listener, which names its reasons itself. */
function reportRefusals(server: GrpcServer, listener: string, ctx: Context): GrpcServer {
  server.on('connectionRefused', (r) => connectionRefused(ctx, listener, r.remoteAddress, r.reason, new Error(r.message)));
  return server;
}

/** The refusals of a listener that reports errors only (yamux, HTTP-CONNECT): their reason told from the error. */
function refusalReporter(listener: string, ctx: Context): (err: Error, remoteAddress: string) => void {
  return (err, remoteAddress) => connectionRefused(ctx, listener, remoteAddress, connectionRefusalReason(err), err);
}

/** A started listener: where it is and how it stops. */
interface Listener {
  name: string;
  address: string;
  port: number;
  close(graceMs: number): Promise<void>;
}

/** A listener of the library (gRPC server, yamux server, HTTP-CONNECT frontend) as one of the program's; its TLS watch ends with it. */
function named(name: string, listener: LibraryListener, tls: WatchedTls | undefined): Listener {
  const a = listener.address();
  const tcp = typeof a === 'object' && a !== null ? a : undefined;
  return {
    name,
    address: tcp?.address ?? `unix:${String(a)}`,
    port: tcp?.port ?? 0,
    close: (graceMs) => {
      tls?.stop();
      return listener.close({ graceMs });
    },
  };
}

/** What the listener builders share. */
interface Context {
  o: ServerOptions;
  proxy: ProxyServer;
  metrics: ServerInstrumentation;
  log: Logger;
}

/** A listener's TLS material: what it starts with, and how it follows rotated files. */
interface WatchedTls {
  readonly initial: ServerTlsOptions;
  /** Hand rotated material to `apply` (for new handshakes) from now on. */
  follow(apply: (t: ServerTlsOptions) => void): void;
  stop(): void;
}

/**
 * A listener's TLS files, read now (a bad file fails the start) and then watched: rotated material goes to the
 * listener for new handshakes; a broken file is logged and the old material kept.
 */
function watchedTls(name: string, files: { cert: string; key: string; ca: string }, { o, log }: Context): WatchedTls | undefined {
  let apply: ((t: ServerTlsOptions) => void) | undefined;
  const fields = (paths: readonly string[]) => ({ listener: name, files: paths.join(',') });
  const tls: ReloadingTls<ServerTlsOptions> | undefined = reloadingServerTls(
    { ...files, minVersion: o.tlsMinVersion as SecureVersion, ...(o.ciphers ? { ciphers: o.ciphers } : {}) },
    {
      onReload: (t, paths) => {
        try {
          apply?.(t);
          log.info('Reloaded TLS certificate', fields(paths));
        } catch (err) {
          log.error('Could not use the new TLS certificate, keeping the old one', err, fields(paths));
        }
      },
      onError: (err, paths) => log.error('Could not reload TLS certificate, keeping the old one', err, fields(paths)),
    },
  );
  if (!tls) return undefined;
  return {
    initial: tls.current,
    follow(fn) {
      apply = fn;
      tls.watch(TLS_RELOAD_INTERVAL_MS);
    },
    stop: () => tls.stop(),
  };
}

/** The frontend of `--mode`: gRPC `ProxyService` or HTTP-CONNECT, on `--uds-name` or TCP. */
async function startFrontend(ctx: Context): Promise<Listener> {
  const { o, proxy, metrics, log } = ctx;
  log.v(1).infoText('Starting frontend server for client connections.');
  const tls = watchedTls('frontend', { cert: o.serverCert, key: o.serverKey, ca: o.serverCaCert }, ctx);
  if (!o.udsName && !tls) log.warn('frontend on TCP without TLS: anyone who reaches the port can dial through the tunnels (the reference requires --server-cert/--server-key/--server-ca-cert)');
  if (o.mode === 'grpc') {
    const onFrontend = (stream: PacketStream): void => {
      metrics.trackGrpcStream('Proxy', stream);
      logFrontendStream(stream, log);
      proxy.acceptFrontend(stream);
    };
    const common = { frontend: onFrontend, keepaliveTimeMs: o.frontendKeepaliveTimeMs };
    const server: GrpcServer = o.udsName
      ? await createGrpcServer({ ...common, socketPath: o.udsName, deleteExistingSocket: o.deleteExistingUdsFile })
      : await listenOnBindAddress(o.serverBindAddress, (host) => createGrpcServer({ ...common, host, port: o.serverPort, ...(tls ? { tls: grpcTls(tls.initial, log) } : {}) }));
    tls?.follow((t) => server.setSecureContext(grpcTls(t)));
    return named('frontend-grpc', reportRefusals(server, 'frontend-grpc', ctx), tls);
  }
  const frontend: HttpConnectFrontend = createHttpConnectFrontend({
    server: proxy,
    ...(tls ? { tls: tls.initial } : {}),
    ...(o.backendDialTimeoutMs > 0 ? { dialTimeoutMs: o.backendDialTimeoutMs } : {}),
    deleteExistingSocket: o.deleteExistingUdsFile,
  });
  frontend.on('tunnelOpened', () => metrics.httpConnections.inc());
  frontend.on('tunnelClosed', () => metrics.httpConnections.dec());
  frontend.on('dialFailed', (e) => metrics.httpConnectFailed(e.statusCode));
  frontend.on('clientError', refusalReporter('frontend-http-connect', ctx));
  logHttpConnectEvents(frontend, log);
  if (o.udsName) await frontend.listen({ path: o.udsName });
  else await listenOnBindAddress(o.serverBindAddress, (host) => frontend.listen({ host, port: o.serverPort }));
  tls?.follow((t) => frontend.setSecureContext(t));
  return named('frontend-http-connect', frontend, tls);
}

/** The agent listener: gRPC `AgentService` or yamux (`--agent-transport`), TLS with the `--cluster-*` files. */
async function startAgentListener(ctx: Context): Promise<Listener> {
  const { o, proxy, metrics, log } = ctx;
  log.v(1).infoText('Starting agent server for tunnel connections.');
  const tls = watchedTls('agent', { cert: o.clusterCert, key: o.clusterKey, ca: o.clusterCaCert }, ctx);
  if (!tls) log.warn('agent listener without TLS (the reference requires --cluster-cert/--cluster-key)');
  const acceptAgent = (incoming: IncomingPacketStream): Promise<void> => proxy.acceptAgent(trackedIncoming(incoming, metrics, log, proxy.serverID));
  if (o.agentTransport === 'yamux') {
    const listener = await listenOnBindAddress(o.agentBindAddress, (host) =>
      listenYamuxAgents({
        host,
        port: o.agentPort,
        ...(tls ? { tls: tls.initial } : {}),
        onIncoming: acceptAgent,
        onRefused: refusalReporter('agent', ctx),
      }),
    );
    tls?.follow((t) => listener.setSecureContext(t));
    return named('agent', listener, tls);
  }
  const server = await listenOnBindAddress(o.agentBindAddress, (host) =>
    createGrpcServer({ host, port: o.agentPort, ...(tls ? { tls: grpcTls(tls.initial, log) } : {}), keepaliveTimeMs: o.keepaliveTimeMs, agent: acceptAgent }),
  );
  tls?.follow((t) => server.setSecureContext(grpcTls(t)));
  return named('agent', reportRefusals(server, 'agent', ctx), tls);
}

/** An ops HTTP server as a Listener. */
async function startOps(name: string, bindAddress: string, port: number, handler: RequestListener): Promise<Listener> {
  const ops: OpsServer = await listenOnBindAddress(bindAddress, (host) => listenOps(handler, host, port));
  return { name, address: ops.address, port: ops.port, close: () => ops.close() };
}

/** Start every listener of the server. On failure, what was started is closed again and the error thrown. */
export async function startServer(o: ServerOptions, log: Logger): Promise<RunningServer> {
  const registry = new Registry();
  const tr = o.tokenReview;
  // One client (and one rate limit, --kubeconfig-qps/--kubeconfig-burst) for TokenReview and the leases.
  const kube = tr || o.leases ? new KubeClient(await kubeApiConfig(o.kubeconfig), { qps: o.kubeconfigQps, burst: o.kubeconfigBurst }) : undefined;
  const verifyToken = tr
    ? tokenReviewVerifier({ client: kube!, namespace: tr.namespace, serviceAccount: tr.serviceAccount, audience: tr.audience })
    : o.agentTokenFile
      ? tokenFileVerifier(o.agentTokenFile)
      : undefined;
  const proxy = new ProxyServer({
    serverID: o.serverID,
    serverCount: o.serverCount,
    strategies: o.proxyStrategies,
    // gRPC frontends: 0 = wait for DIAL_RSP as long as the frontend does, as the reference.
    backendDialTimeoutMs: o.backendDialTimeoutMs,
    // dial() (HTTP-CONNECT): the flag when set, else the library's bound.
    ...(o.backendDialTimeoutMs > 0 ? { dialTimeoutMs: o.backendDialTimeoutMs } : {}),
    ...(verifyToken ? { authenticateAgent: verifyToken } : {}),
    ...(o.connectionBufferBytes ? { connectionBufferBytes: o.connectionBufferBytes } : {}),
  });
  const metrics = instrumentServer(proxy, registry, {
    strategies: o.proxyStrategies,
    defaultMetrics: true,
    connectionBufferBytes: o.connectionBufferBytes ?? DEFAULT_CONNECTION_BUFFER_BYTES,
  });
  logServerEvents(proxy, log);
  const ctx: Context = { o, proxy, metrics, log };

  const closers: Array<(graceMs: number) => Promise<void>> = [(graceMs) => proxy.close({ graceMs })];
  const add = (l: Listener): Listener => {
    closers.push((graceMs) => l.close(graceMs));
    log.info('listening', { listener: l.name, address: l.address, port: l.port });
    return l;
  };
  let leases: ServerLeaseController | undefined;
  try {
    const frontend = add(await startFrontend(ctx));
    const agent = add(await startAgentListener(ctx));
    log.v(1).infoText('Starting admin server for debug connections.');
    const admin = add(await startOps('admin', o.adminBindAddress, o.adminPort, adminHandler(registry)));
    log.v(1).infoText('Starting health server for healthchecks.');
    const health = add(await startOps('health', o.healthBindAddress, o.healthPort, serverHealthHandler({ ready: () => proxy.ready, registry })));
    if (o.leases && kube) {
      log.v(1).infoText('Starting lease acquisition and garbage collection controller.');
      const controller = new ServerLeaseController({ client: kube, serverID: o.serverID, namespace: o.leases.namespace, labels: o.leases.labels });
      leases = controller;
      logLeaseControllerEvents(controller, log);
      const detachLeases = metrics.trackLeaseController(controller);
      // Its lease goes first on shutdown, so agents stop counting this server while it drains.
      closers.push(() => controller.stop().finally(detachLeases));
      controller.start();
    }
    let shuttingDown: Promise<void> | undefined;
    return {
      proxy,
      registry,
      leases,
      ports: { agent: agent.port, frontend: frontend.port, health: health.port, admin: admin.port },
      shutdown(graceMs) {
        shuttingDown ??= runClosers(closers, graceMs).finally(() => {
          metrics.detach();
          kube?.close();
        });
        return shuttingDown;
      },
    };
  } catch (err) {
    proxy.destroy();
    await runClosers(closers, 0);
    metrics.detach();
    kube?.close();
    throw err;
  }
}

/**
 * Close everything at once, each with the same grace period, so the whole shutdown takes at most `graceMs` (plus
 * the destroy): the listeners stop accepting at once and the connections drain in parallel. A failing closer
 * does not stop the others.
 */
async function runClosers(closers: ReadonlyArray<(graceMs: number) => Promise<void>>, graceMs: number): Promise<void> {
  await Promise.allSettled(closers.map((close) => close(graceMs)));
}

/** The program: parse flags, start, run until signalled. Resolves when the process should exit. */
export function main(argv: readonly string[] = process.argv.slice(2), io: ProgramIO = processIO): Promise<void> {
  let shutdownGraceMs = 0;
  return runProgram<ServerOptions, RunningServer>(
    {
      program: PROGRAM,
      summary: SUMMARY,
      specs: serverFlagSpecs,
      parse: (a) => parseServerOptions(a),
      name: 'server',
      optionLines: (o, parsed) => serverOptionLines(serverFlagSpecs(), parsed, o.serverID),
      start: async (o, log) => {
        const running = await startServer(o, log);
        log.info('server started', { serverID: o.serverID, serverCount: o.serverCount, mode: o.mode, agentTransport: o.agentTransport });
        shutdownGraceMs = o.gracefulShutdownTimeoutMs;
        return running;
      },
      onFirstSignal: (running, signal, log, exit) => {
        log.v(2).info('Received first signal', { signal: goSignalName(signal) });
        log.infoText('Shutting down server.');
        void running.shutdown(shutdownGraceMs).then(() => {
          log.info('server stopped');
          exit(0);
        });
      },
      onSecondSignal: (_running, signal, log, exit) => {
        log.v(2).info('Received second signal', { signal: goSignalName(signal) });
        exit(1);
      },
    },
    argv,
    io,
  );
}
