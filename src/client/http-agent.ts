/**
 * `http.Agent` and `https.Agent` whose connections are tunnels through an HTTP-CONNECT proxy, so
 * `http.get(url, { agent })` reaches endpoints behind a konnectivity server. Pooling and keep-alive work as with the
 * stock agents: each pooled socket is one tunnel to one `host:port`.
 */
import * as http from 'node:http';
import * as https from 'node:https';
import * as net from 'node:net';
import type { Duplex } from 'node:stream';
import * as tls from 'node:tls';
import { joinHostPort } from '../protocol/address.js';
import { connectViaHttpProxy, type ConnectViaHttpProxyOptions } from './http-connect.js';

/** How the agents reach the proxy: {@link ConnectViaHttpProxyOptions} without the per-request fields. */
export type HttpProxyOptions = Pick<ConnectViaHttpProxyOptions, 'proxy' | 'tls' | 'headers' | 'timeoutMs' | 'maxHeaderBytes'>;

/** Options of {@link createTunnelAgent}: the proxy, plus any `http.Agent` option (keepAlive, maxSockets, ...). */
export interface TunnelAgentOptions extends http.AgentOptions {
  proxy: HttpProxyOptions['proxy'];
  /** TLS to the proxy itself (not to the endpoint; use {@link createHttpsTunnelAgent} for that). */
  proxyTls?: HttpProxyOptions['tls'];
  /** Extra CONNECT request headers (e.g. `Proxy-Authorization`). */
  proxyHeaders?: HttpProxyOptions['headers'];
  /** How long the CONNECT may take. Default 30000. */
  connectTimeoutMs?: number;
}

/** Options of {@link createHttpsTunnelAgent}: as {@link TunnelAgentOptions}, plus `https.Agent` TLS options. */
export interface HttpsTunnelAgentOptions extends https.AgentOptions {
  proxy: HttpProxyOptions['proxy'];
  proxyTls?: HttpProxyOptions['tls'];
  proxyHeaders?: HttpProxyOptions['headers'];
  connectTimeoutMs?: number;
}

type ConnectionCallback = (err: Error | null, stream: Duplex) => void;

/** An `http.Agent` whose sockets are HTTP-CONNECT tunnels. */
export class HttpTunnelAgent extends http.Agent {
  /** How this agent reaches the proxy. */
  readonly proxyOptions: HttpProxyOptions;

  constructor(options: TunnelAgentOptions) {
    const [agentOptions, proxyOptions] = splitOptions(options);
    super(agentOptions);
    this.proxyOptions = proxyOptions;
  }

  override createConnection(options: http.ClientRequestArgs, callback?: ConnectionCallback): undefined {
    connectTunnel(this.proxyOptions, options, callback, (socket) => socket);
    return undefined;
  }
}

/** An `https.Agent` whose TLS sessions to the endpoint run inside HTTP-CONNECT tunnels. */
export class HttpsTunnelAgent extends https.Agent {
  readonly proxyOptions: HttpProxyOptions;

  constructor(options: HttpsTunnelAgentOptions) {
    const [agentOptions, proxyOptions] = splitOptions(options);
    super(agentOptions);
    this.proxyOptions = proxyOptions;
  }

  override createConnection(options: https.RequestOptions, callback?: ConnectionCallback): undefined {
    connectTunnel(this.proxyOptions, options, callback, (socket) => {
      // `options` holds the request's and the agent's TLS settings (ca, rejectUnauthorized, ...), merged by Node.
      const host = options.hostname ?? options.host ?? 'localhost';
      const servername = options.servername ?? (net.isIP(host) ? undefined : host);
      return tls.connect({ ...(options as tls.ConnectionOptions), socket, ...(servername ? { servername } : {}) });
    });
    return undefined;
  }
}

/** An `http.Agent` for `http.get(url, { agent })` through an HTTP-CONNECT proxy. */
export function createTunnelAgent(options: TunnelAgentOptions): HttpTunnelAgent {
  return new HttpTunnelAgent(options);
}

/** An `https.Agent` for `https.get(url, { agent })` through an HTTP-CONNECT proxy (TLS end to end). */
export function createHttpsTunnelAgent(options: HttpsTunnelAgentOptions): HttpsTunnelAgent {
  return new HttpsTunnelAgent(options);
}

/**
 * Split the proxy fields from the Agent's own options, so Node does not merge them into every request's options
 * (and from there into tls.connect).
 */
function splitOptions<T extends TunnelAgentOptions | HttpsTunnelAgentOptions>(
  options: T,
): [Omit<T, 'proxy' | 'proxyTls' | 'proxyHeaders' | 'connectTimeoutMs'>, HttpProxyOptions] {
  const { proxy, proxyTls, proxyHeaders, connectTimeoutMs, ...agentOptions } = options;
  const proxyOptions: HttpProxyOptions = {
    proxy,
    ...(proxyTls === undefined ? {} : { tls: proxyTls }),
    ...(proxyHeaders === undefined ? {} : { headers: proxyHeaders }),
    ...(connectTimeoutMs === undefined ? {} : { timeoutMs: connectTimeoutMs }),
  };
  return [agentOptions, proxyOptions];
}

/**
 * The CONNECT for one request's `host:port`, aborted with the request's signal; `wrap` turns the tunnel into the
 * request's socket (itself, or a TLS session over it). Node's Agent takes the socket through `callback`.
 */
function connectTunnel(
  proxy: HttpProxyOptions,
  options: http.ClientRequestArgs,
  callback: ConnectionCallback | undefined,
  wrap: (socket: net.Socket) => Duplex,
): void {
  const host = options.hostname ?? options.host ?? 'localhost';
  const port = options.port ?? (options.protocol === 'https:' ? 443 : 80);
  const target = joinHostPort(host, port);
  connectViaHttpProxy({ ...proxy, target, ...(options.signal ? { signal: options.signal } : {}) }).then(
    (socket) => {
      let wrapped: Duplex;
      try {
        wrapped = wrap(socket);
      } catch (err) {
        // Bad TLS options throw from tls.connect; fail this request, never the process.
        socket.destroy();
        callback?.(err as Error, undefined as unknown as Duplex);
        return;
      }
      callback?.(null, wrapped);
    },
    (err: Error) => callback?.(err, undefined as unknown as Duplex),
  );
}
