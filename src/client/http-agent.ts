/**
 * `http.Agent`s and `https.Agent`s whose connections are tunnels, so `http.get(url, { agent })` reaches endpoints
 * behind a konnectivity server: through its HTTP-CONNECT frontend (`createTunnelAgent`), or through any dial
 * function, such as the programmatic `server.dial()` or `GrpcProxyClient.dial()` (`createDialAgent`). Pooling and
 * keep-alive work as with the stock agents: each pooled socket is one tunnel to one `host:port`.
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
  /** Where the HTTP-CONNECT proxy listens. */
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
  /** Where the HTTP-CONNECT proxy listens. */
  proxy: HttpProxyOptions['proxy'];
  /** TLS to the proxy itself (the endpoint's TLS is the agent's own options). */
  proxyTls?: HttpProxyOptions['tls'];
  /** Extra CONNECT request headers (e.g. `Proxy-Authorization`). */
  proxyHeaders?: HttpProxyOptions['headers'];
  /** How long the CONNECT may take, in ms. Default 30000. */
  connectTimeoutMs?: number;
}

type ConnectionCallback = (err: Error | null, stream: Duplex) => void;

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
 * Dials `address` (`host:port`): `server.dial` and `GrpcProxyClient.dial` have this shape, and so does the CONNECT of
 * the tunnel agents. The signal aborts the dial.
 */
export type DialFunction = (address: string, options: { signal?: AbortSignal }) => Promise<Duplex>;

/** Options of {@link createDialAgent}: the dial, plus any `http.Agent` option (keepAlive, maxSockets, ...). */
export interface DialAgentOptions extends http.AgentOptions {
  /** How each connection is opened, e.g. `(address, o) => server.dial(address, o)`. */
  dial: DialFunction;
}

/** Options of {@link createDialHttpsAgent}: as {@link DialAgentOptions}, plus `https.Agent` TLS options. */
export interface DialHttpsAgentOptions extends https.AgentOptions {
  /** How each connection is opened, e.g. `(address, o) => server.dial(address, o)`. */
  dial: DialFunction;
}

/** An `http.Agent` whose sockets are tunnels opened by a dial function (`server.dial()`, a gRPC client's dial). */
export class DialAgent extends http.Agent {
  /** How each connection is opened. */
  readonly dial: DialFunction;

  constructor(options: DialAgentOptions) {
    const { dial, ...agentOptions } = options;
    super(agentOptions);
    this.dial = dial;
  }

  override createConnection(options: http.ClientRequestArgs, callback?: ConnectionCallback): undefined {
    connectTunnel(this.dial, options, callback, (socket) => socket);
    return undefined;
  }
}

/** An `https.Agent` whose TLS sessions to the endpoint run inside tunnels opened by a dial function. */
export class DialHttpsAgent extends https.Agent {
  /** How each connection is opened. */
  readonly dial: DialFunction;

  constructor(options: DialHttpsAgentOptions) {
    const { dial, ...agentOptions } = options;
    super(agentOptions);
    this.dial = dial;
  }

  override createConnection(options: https.RequestOptions, callback?: ConnectionCallback): undefined {
    connectTunnel(this.dial, options, callback, (socket) => tlsOver(socket, options));
    return undefined;
  }
}

/** An `http.Agent` whose sockets are HTTP-CONNECT tunnels: a {@link DialAgent} whose dial is the CONNECT. */
export class HttpTunnelAgent extends DialAgent {
  /** How this agent reaches the proxy. */
  readonly proxyOptions: HttpProxyOptions;

  constructor(options: TunnelAgentOptions) {
    const [agentOptions, proxyOptions] = splitOptions(options);
    super({ ...agentOptions, dial: connectDial(proxyOptions) });
    this.proxyOptions = proxyOptions;
  }
}

/** An `https.Agent` whose TLS sessions to the endpoint run inside HTTP-CONNECT tunnels. */
export class HttpsTunnelAgent extends DialHttpsAgent {
  /** How this agent reaches the proxy. */
  readonly proxyOptions: HttpProxyOptions;

  constructor(options: HttpsTunnelAgentOptions) {
    const [agentOptions, proxyOptions] = splitOptions(options);
    super({ ...agentOptions, dial: connectDial(proxyOptions) });
    this.proxyOptions = proxyOptions;
  }
}

/** An `http.Agent` for `http.get(url, { agent })` through any dial: `createDialAgent({ dial: (a, o) => server.dial(a, o) })`. */
export function createDialAgent(options: DialAgentOptions): DialAgent {
  return new DialAgent(options);
}

/** An `https.Agent` for `https.get(url, { agent })` through any dial (TLS end to end, inside the tunnel). */
export function createDialHttpsAgent(options: DialHttpsAgentOptions): DialHttpsAgent {
  return new DialHttpsAgent(options);
}

/** The CONNECT through the proxy as a {@link DialFunction}. */
function connectDial(proxy: HttpProxyOptions): DialFunction {
  return (target, { signal }) => connectViaHttpProxy({ ...proxy, target, ...(signal ? { signal } : {}) });
}

/** A TLS session to the endpoint over `socket`, with the request's and the agent's TLS settings (merged by Node). */
function tlsOver(socket: Duplex, options: https.RequestOptions): tls.TLSSocket {
  const host = options.hostname ?? options.host ?? 'localhost';
  const servername = options.servername ?? (net.isIP(host) ? undefined : host);
  return tls.connect({ ...(options as tls.ConnectionOptions), socket, ...(servername ? { servername } : {}) });
}

/**
 * The dial for one request's `host:port`; `wrap` turns the tunnel into the request's socket (itself, or a TLS
 * session over it). Node's Agent takes the socket through `callback`.
 */
function connectTunnel(
  dial: DialFunction,
  options: http.ClientRequestArgs,
  callback: ConnectionCallback | undefined,
  wrap: (socket: Duplex) => Duplex,
): void {
  const host = options.hostname ?? options.host ?? 'localhost';
  const port = options.port ?? (options.protocol === 'https:' ? 443 : 80);
  const target = joinHostPort(host, port);
  // A signal given here aborts the dial only: once connected the request owns its abort (Node's ClientRequest
  // destroys the socket it is using), and a pooled socket must outlive the signal of the request that opened it.
  // (A ClientRequest keeps its signal to itself; direct callers of createConnection may pass one.)
  const connecting = new AbortController();
  const { signal } = options;
  const onAbort = (): void => connecting.abort(signal?.reason);
  if (signal?.aborted) onAbort();
  else signal?.addEventListener('abort', onAbort, { once: true });
  let dialing: Promise<Duplex>;
  try {
    dialing = dial(target, { signal: connecting.signal });
  } catch (err) {
    dialing = Promise.reject(err);
  }
  dialing.then(
    (socket) => {
      signal?.removeEventListener('abort', onAbort);
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
    (err: Error) => {
      signal?.removeEventListener('abort', onAbort);
      callback?.(err, undefined as unknown as Duplex);
    },
  );
}
