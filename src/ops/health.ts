/**
 * The operational HTTP servers of the reference binaries (PROTOCOL.md §4, §6.3), same paths, codes and bodies:
 *
 * - server health port: `/healthz` 200 `ok`; `/readyz` and `/ready` 200 `ok` with at least one agent, otherwise
 *   500 `no connection to any proxy agent`; `/metrics`.
 * - server admin port: `/metrics` (`/debug/pprof/*` is not served: 404).
 * - agent health port: `/healthz` 200 `ok`; `/readyz` and `/ready` run the checks `ping` and `server-connected`:
 *   all pass -> 200 `ok` (with `?verbose`, the list and `check passed`); one fails -> 503 with the list,
 *   e.g. `[+]ping ok\n[-]server-connected failed: no servers connected\n`; `/metrics`.
 * - agent admin port: `/metrics` answers 301 to the same path on the health port.
 *
 * Anything else is 404 `404 page not found`, as Go's ServeMux answers.
 */
import { createServer, type IncomingMessage, type RequestListener, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { joinHostPort, splitHostPort } from '../protocol/address.js';
import { metricsHandlerInstrumentation } from './metric-families.js';

/** The server's readiness failure body (reference text). */
export const SERVER_NOT_READY_BODY = 'no connection to any proxy agent';
/** The agent's `server-connected` check failure (reference text). */
export const AGENT_NOT_CONNECTED = 'no servers connected';
/** Go's http.Server ReadHeaderTimeout used by the reference for these servers. */
export const READ_HEADER_TIMEOUT_MS = 60_000;

const TEXT = 'text/plain; charset=utf-8';

/** A listening ops server. */
export interface OpsServer {
  /** The node:http server behind it. */
  readonly server: Server;
  /** The bound address and port (the real port when 0 was asked for). */
  readonly address: string;
  /** The bound port. */
  readonly port: number;
  /** Stop listening and drop open connections. Idempotent. */
  close(): Promise<void>;
}

/** Options of {@link serverHealthHandler}. */
export interface ServerHealthOptions {
  /** True when at least one agent is connected. */
  ready: () => boolean;
  /** Served on `/metrics` when given. */
  registry?: Registry;
}

/** Options of {@link agentHealthHandler}. */
export interface AgentHealthOptions {
  /** True when at least one tunnel is up. */
  ready: () => boolean;
  /** The registry `/metrics` serves (default: none, and `/metrics` answers 404). */
  registry?: Registry;
}

type Routes = Record<string, (req: IncomingMessage, res: ServerResponse, query: URLSearchParams) => void | Promise<void>>;

function send(res: ServerResponse, status: number, body: string, contentType = TEXT): void {
  res.statusCode = status;
  res.setHeader('Content-Type', contentType);
  res.setHeader('Content-Length', Buffer.byteLength(body));
  res.end(body);
}

/** A tiny exact-path router with Go ServeMux's 404. Handler errors become 500 and never crash the process. */
function router(routes: Routes): RequestListener {
  return (req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const route = routes[url.pathname];
    if (!route) {
      res.setHeader('X-Content-Type-Options', 'nosniff');
      send(res, 404, '404 page not found\n');
      return;
    }
    Promise.resolve()
      .then(() => route(req, res, url.searchParams))
      .catch((err: unknown) => {
        if (!res.headersSent) send(res, 500, `${err instanceof Error ? err.message : String(err)}\n`);
        else res.destroy();
      });
  };
}

function metricsRoute(registry: Registry): Routes[string] {
  // Go's promhttp handler counts its scrapes; so do we.
  const scrapes = metricsHandlerInstrumentation(registry);
  return async (_req, res) => {
    const body = await scrapes.scrape(() => registry.metrics());
    send(res, 200, body, registry.contentType);
  };
}

const ok: Routes[string] = (_req, res) => send(res, 200, 'ok');

/** The server health port's handler. */
export function serverHealthHandler(options: ServerHealthOptions): RequestListener {
  const readiness: Routes[string] = (_req, res) => {
    if (options.ready()) send(res, 200, 'ok');
    else send(res, 500, SERVER_NOT_READY_BODY);
  };
  const routes: Routes = { '/healthz': ok, '/readyz': readiness, '/ready': readiness };
  if (options.registry) routes['/metrics'] = metricsRoute(options.registry);
  return router(routes);
}

/** The admin port's handler: `/metrics` only. */
export function adminHandler(registry: Registry): RequestListener {
  return router({ '/metrics': metricsRoute(registry) });
}

/** The agent health port's handler, with the reference's `ping` and `server-connected` checks. */
export function agentHealthHandler(options: AgentHealthOptions): RequestListener {
  const checks: Array<{ name: string; check: () => string | undefined }> = [
    { name: 'ping', check: () => undefined },
    { name: 'server-connected', check: () => (options.ready() ? undefined : AGENT_NOT_CONNECTED) },
  ];
  const readiness: Routes[string] = (_req, res, query) => {
    let out = '';
    let failed = false;
    for (const { name, check } of checks) {
      const problem = check();
      if (problem === undefined) out += `[+]${name} ok\n`;
      else {
        failed = true;
        out += `[-]${name} failed: ${problem}\n`;
      }
    }
    // Always verbose on failure, as the reference is.
    if (failed) send(res, 503, out);
    else if (query.has('verbose')) send(res, 200, `${out}check passed\n`);
    else send(res, 200, 'ok');
  };
  const routes: Routes = { '/healthz': ok, '/readyz': readiness, '/ready': readiness };
  if (options.registry) routes['/metrics'] = metricsRoute(options.registry);
  return router(routes);
}

/** The agent admin port's handler: `/metrics` redirects (301) to the same URL on the health port. */
export function agentAdminHandler(healthPort: () => number): RequestListener {
  return router({
    '/metrics': (req, res) => {
      const { host } = splitHostPort(req.headers.host ?? 'localhost');
      const location = `http://${joinHostPort(host, healthPort())}${req.url ?? '/metrics'}`;
      res.setHeader('Location', location);
      send(res, 301, `<a href="${location}">Moved Permanently</a>.\n\n`, 'text/html; charset=utf-8');
    },
  });
}

/**
 * Listen with `handler` on `host:port` (empty host: all interfaces; port 0: a free port). Rejects with the listen
 * error (EADDRINUSE, EACCES) so the program can report it.
 */
export function listenOps(handler: RequestListener, host: string, port: number): Promise<OpsServer> {
  const server = createServer(handler);
  server.headersTimeout = READ_HEADER_TIMEOUT_MS;
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    server.once('error', onError);
    server.listen({ host: host === '' ? undefined : host, port }, () => {
      server.off('error', onError);
      const addr = server.address() as AddressInfo;
      let closing: Promise<void> | undefined;
      resolve({
        server,
        address: addr.address,
        port: addr.port,
        close() {
          closing ??= new Promise<void>((done) => {
            server.close(() => done());
            // Health probes hold keep-alive connections; they carry no work worth waiting for.
            server.closeAllConnections();
          });
          return closing;
        },
      });
    });
  });
}
