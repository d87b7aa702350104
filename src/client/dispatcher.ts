/**
 * `fetch()` through the tunnel: a `DialDispatcher` is what `fetch(url, { dispatcher })` takes (undici's Dispatcher
 * interface: `dispatch(options, handler)`), built on node:http and a {@link DialAgent}, so it needs no `undici`
 * package. Node's global fetch is undici inside, but Node 20 does not expose undici's classes; a `dispatch()` of our
 * own over node:http is what works on every Node we support, with keep-alive pooling by the http.Agent.
 *
 * A failed dial reaches the fetch error as its `cause` (`fetch failed`, cause: ERR_DIAL_FAILED "dial tcp ...:
 * connect: connection refused"). `dispatcher.fetch(url, init)` is the global fetch with this dispatcher set; it
 * type-checks as it is, where `fetch(url, { dispatcher })` in TypeScript wants the whole of undici's Dispatcher type
 * (request(), pipeline(), ...), which only `dispatch()` of it is: JavaScript takes it as it is.
 */
import { EventEmitter } from 'node:events';
import * as http from 'node:http';
import type * as https from 'node:https';
import { Readable } from 'node:stream';
import { abortError } from '../protocol/abort.js';
import { ErrorCode, KonnectivityError } from '../protocol/errors.js';
import { DialAgent, DialHttpsAgent, type DialFunction } from './http-agent.js';

/** What `dispatch()` is asked: undici's `Dispatcher.DispatchOptions`, the fields this dispatcher reads. */
export interface DispatchOptions {
  /** `http://host:port` or `https://host:port` of the endpoint. */
  origin?: string | URL;
  /** Path and query, `/index.html?x=1`. */
  path: string;
  /** Default `GET`. */
  method?: string;
  /** Request headers: a record, a flat `[name, value, ...]` list, or `[name, value]` pairs. */
  headers?: Record<string, string | string[] | undefined> | Array<string | Buffer> | Iterable<[string, string | string[] | undefined]> | null;
  /** Request body. */
  body?: string | Uint8Array | Readable | AsyncIterable<Uint8Array | string> | Iterable<Uint8Array | string> | null;
  /** Set for an upgrade (WebSocket) or CONNECT: not supported here. */
  upgrade?: string | boolean | null;
}

/** The callbacks of `dispatch()`: undici's `Dispatcher.DispatchHandlers` (what fetch passes). */
export interface DispatchHandlers {
  /** Called before the request goes out, with the function that aborts it. */
  onConnect?(abort: (err?: Error) => void): void;
  /** The request failed (a failed dial, an abort, a broken connection); nothing follows. */
  onError?(err: Error): void;
  /** The response began, before its headers were read. */
  onResponseStarted?(): void;
  /** Response status and raw headers (`[name, value, ...]`); return false to pause until `resume()`. */
  onHeaders?(statusCode: number, headers: Buffer[], resume: () => void, statusText: string): boolean;
  /** A body chunk; return false to pause until `resume()`. */
  onData?(chunk: Buffer): boolean;
  /** The body and trailers (raw, `[name, value, ...]`) arrived; the request is done. */
  onComplete?(trailers: Buffer[] | null): void;
  /** An upgrade's answer: never called here (upgrades are refused). */
  onUpgrade?(statusCode: number, headers: Buffer[] | string[] | null, socket: unknown): void;
}

/** Options of {@link createDialDispatcher}: the dial, plus `http.Agent` options for its pool (keepAlive, maxSockets). */
export interface DialDispatcherOptions extends http.AgentOptions {
  /** How each connection is opened, e.g. `(address, o) => server.dial(address, o)`. */
  dial: DialFunction;
  /** TLS options for `https:` origins (`ca`, `rejectUnauthorized`, ...): TLS to the endpoint, inside the tunnel. */
  tls?: https.AgentOptions;
}

/** The global fetch's `init` and result types, from @types/node (no import of undici's types). */
type FetchInit = NonNullable<Parameters<typeof fetch>[1]>;
type FetchInput = Parameters<typeof fetch>[0];

/**
 * A dispatcher for `fetch()` whose connections are tunnels: `fetch(url, { dispatcher })`, or `dispatcher.fetch(url)`.
 * Pools connections per `host:port` (keep-alive by default). `close()` lets requests in flight finish; `destroy()`
 * ends them.
 */
export class DialDispatcher extends EventEmitter {
  /** The pools, for `http:` and `https:` origins. */
  readonly httpAgent: DialAgent;
  /** The pool for `https:` origins (TLS to the endpoint inside the tunnel). */
  readonly httpsAgent: DialHttpsAgent;
  private readonly inFlight = new Set<http.ClientRequest>();
  private closed = false;

  constructor(options: DialDispatcherOptions) {
    super();
    const { dial, tls, ...agentOptions } = options;
    this.httpAgent = new DialAgent({ keepAlive: true, ...agentOptions, dial });
    this.httpsAgent = new DialHttpsAgent({ keepAlive: true, ...agentOptions, ...tls, dial });
  }

  /** The global `fetch` with this dispatcher. */
  fetch(input: FetchInput, init: FetchInit = {}): Promise<Response> {
    // The global types name undici's whole Dispatcher class (request(), pipeline(), ...); fetch calls dispatch() only.
    return fetch(input, { ...init, dispatcher: this as unknown as FetchInit['dispatcher'] });
  }

  /** Start one request (undici's `Dispatcher.dispatch`). Always returns true: the pools queue what they cannot send. */
  dispatch(options: DispatchOptions, handler: DispatchHandlers): boolean {
    let finished = false;
    const fail = (err: Error): void => {
      if (finished) return;
      finished = true;
      handler.onError?.(err);
    };
    if (this.closed) {
      queueMicrotask(() => fail(new KonnectivityError(ErrorCode.SHUTTING_DOWN, 'the dispatcher is closed')));
      return true;
    }
    let url: URL;
    try {
      url = new URL(options.path, options.origin);
      if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(`unsupported protocol ${url.protocol}`);
      if (options.upgrade || options.method === 'CONNECT') throw new Error('upgrade and CONNECT are not supported');
    } catch (err) {
      queueMicrotask(() => fail(new KonnectivityError(ErrorCode.INVALID_OPTION, (err as Error).message, { cause: err })));
      return true;
    }
    const secure = url.protocol === 'https:';
    const req = http.request({
      agent: secure ? this.httpsAgent : this.httpAgent,
      protocol: url.protocol,
      hostname: url.hostname.replace(/^\[|\]$/g, ''),
      port: url.port || (secure ? 443 : 80),
      method: options.method ?? 'GET',
      path: `${url.pathname}${url.search}`,
      headers: headerList(options.headers, url.host),
    });
    this.inFlight.add(req);
    req.once('close', () => {
      this.inFlight.delete(req);
      if (this.inFlight.size === 0) this.emit('idle');
    });
    handler.onConnect?.((err) => {
      fail(err ?? abortError('the request was aborted'));
      req.destroy(err);
    });
    req.on('error', fail);
    req.on('response', (res) => {
      handler.onResponseStarted?.();
      const resume = (): void => void res.resume();
      if (handler.onHeaders?.(res.statusCode ?? 0, raw(res.rawHeaders), resume, res.statusMessage ?? '') === false) res.pause();
      res.on('data', (chunk: Buffer) => {
        if (!finished && handler.onData?.(chunk) === false) res.pause();
      });
      res.on('end', () => {
        if (finished) return;
        finished = true;
        handler.onComplete?.(raw(res.rawTrailers));
      });
      res.on('error', fail);
      // The connection went away before the body was complete.
      res.on('aborted', () => fail(new KonnectivityError(ErrorCode.STREAM_CLOSED, 'the response ended before its body was complete')));
    });
    writeBody(req, options.body, fail);
    return true;
  }

  /** Take no more requests; resolves once those in flight are done, then closes the pools. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.inFlight.size > 0) await new Promise<void>((resolve) => this.once('idle', resolve));
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
  }

  /** Take no more requests and end those in flight (their fetch rejects with `err`). */
  async destroy(err?: Error): Promise<void> {
    this.closed = true;
    const reason = err ?? new KonnectivityError(ErrorCode.SHUTTING_DOWN, 'the dispatcher was destroyed');
    for (const req of this.inFlight) req.destroy(reason);
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
  }
}

/** A dispatcher for `fetch(url, { dispatcher })` over any dial: `createDialDispatcher({ dial: (a, o) => server.dial(a, o) })`. */
export function createDialDispatcher(options: DialDispatcherOptions): DialDispatcher {
  return new DialDispatcher(options);
}

/**
 * undici's header forms as node:http's flat `[name, value, ...]` list (as rawHeaders; repeated names stay
 * repeated), with `Host` added when absent: node:http adds none to a list (undici adds it from the origin).
 */
function headerList(headers: DispatchOptions['headers'], host: string): string[] {
  const out: string[] = [];
  const add = (name: unknown, value: unknown): void => {
    if (value === undefined || value === null) return;
    if (Array.isArray(value)) for (const v of value) out.push(String(name), String(v));
    else out.push(String(name), String(value));
  };
  if (headers == null) {
    // nothing but Host
  } else if (Array.isArray(headers)) {
    if (headers.length > 0 && Array.isArray(headers[0])) for (const [n, v] of headers as unknown as Array<[string, string]>) add(n, v);
    else for (let i = 0; i + 1 < headers.length; i += 2) add(headers[i], headers[i + 1]);
  } else if (typeof (headers as Iterable<unknown>)[Symbol.iterator] === 'function') {
    for (const [n, v] of headers as Iterable<[string, string]>) add(n, v);
  } else {
    for (const [n, v] of Object.entries(headers)) add(n, v);
  }
  if (!out.some((v, i) => i % 2 === 0 && v.toLowerCase() === 'host')) out.unshift('host', host);
  return out;
}

function raw(list: string[]): Buffer[] {
  return list.map((s) => Buffer.from(s, 'latin1'));
}

function writeBody(req: http.ClientRequest, body: DispatchOptions['body'], fail: (err: Error) => void): void {
  if (body == null) {
    req.end();
    return;
  }
  if (typeof body === 'string' || body instanceof Uint8Array) {
    req.end(body);
    return;
  }
  const source = body instanceof Readable ? body : Readable.from(body as AsyncIterable<Uint8Array | string>);
  source.on('error', (err) => {
    fail(err);
    req.destroy(err);
  });
  source.pipe(req);
}
