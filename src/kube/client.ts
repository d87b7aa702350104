/**
 * A small Kubernetes API client over node:https, for the few calls the programs make (TokenReview, Leases): JSON
 * requests, the API's `Status` errors as {@link KubeApiError} (HTTP status and `reason`: `NotFound`, `Conflict`,
 * `AlreadyExists`, `Forbidden`, ...), client-go's rate limit (`--kubeconfig-qps`, `--kubeconfig-burst`: a token
 * bucket, 5 QPS and burst 10 when 0), a timeout per request, and watches (newline-delimited JSON events).
 */
import https from 'node:https';
import { readFile } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import { ErrorCode, KonnectivityError } from '../protocol/errors.js';
import type { KubernetesApiConfig } from './config.js';

/** client-go's QPS when `--kubeconfig-qps` is 0. */
export const DEFAULT_KUBE_QPS = 5;
/** client-go's burst when `--kubeconfig-burst` is 0. */
export const DEFAULT_KUBE_BURST = 10;

/** The API answered with an error (or could not be reached: `status` 0, `reason` `Unreachable`). */
export class KubeApiError extends KonnectivityError {
  /** The HTTP status (404, 409, 403, 500, ...), 0 when there was no answer. */
  readonly status: number;
  /**
   * The `Status` reason (`NotFound`, `Conflict`, `AlreadyExists`, `Forbidden`, ...), or `Unreachable` (not
   * `reason`, which on KonnectivityError is a dial failure reason).
   */
  readonly statusReason: string;

  constructor(status: number, statusReason: string, message: string, options: { cause?: unknown } = {}) {
    super(ErrorCode.KUBE_API, message, options);
    this.status = status;
    this.statusReason = statusReason;
  }
}

/** True when `err` is a {@link KubeApiError} with HTTP status `status`. */
export function isKubeStatus(err: unknown, status: number): boolean {
  return err instanceof KubeApiError && err.status === status;
}

/** Options of {@link KubeClient}. */
export interface KubeClientOptions {
  /** Requests per second (`--kubeconfig-qps`); 0 means 5, a negative value no limit. */
  qps?: number;
  /** Burst (`--kubeconfig-burst`); 0 means 10. */
  burst?: number;
  /** How long one request may take, in ms (default 10000; watches are not limited). */
  timeoutMs?: number;
  /** The User-Agent header (default `konnectivity-ts`). */
  userAgent?: string;
}

/** Options of one request. */
export interface KubeRequestOptions {
  /** Query parameters; undefined ones are left out. */
  query?: Record<string, string | undefined>;
  /** The JSON body. */
  body?: unknown;
  /** Aborts the request. */
  signal?: AbortSignal;
  /** This request's deadline for the whole answer, in ms, when shorter than the client's. */
  timeoutMs?: number;
  /** The most bytes of an answer read before the request fails (default 16 MiB). */
  maxResponseBytes?: number;
}

const DEFAULT_MAX_RESPONSE_BYTES = 16 * 1024 * 1024;

/** One watch event. */
export interface WatchEvent<T> {
  /** The watch event's type, as the API sends it. */
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  /** The object the event is about (a `Status` for `ERROR`). */
  object: T;
}

/** A running watch: events until the server ends it, the connection fails or `abort` is called. */
export interface KubeWatch {
  /** Resolves when the watch has ended: undefined when the server closed it normally, the error otherwise. */
  readonly done: Promise<Error | undefined>;
  /** End the watch. */
  abort(): void;
}

/** A token bucket: `take()` resolves when a request may go. */
class RateLimiter {
  private tokens: number;
  private last = performance.now();
  private queue: Promise<void> = Promise.resolve();

  constructor(
    private readonly qps: number,
    private readonly burst: number,
  ) {
    this.tokens = burst;
  }

  take(): Promise<void> {
    if (this.qps < 0) return Promise.resolve();
    // One after another, so waiting callers keep their order.
    const next = this.queue.then(async () => {
      const now = performance.now();
      this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.qps);
      this.last = now;
      if (this.tokens < 1) {
        const waitMs = ((1 - this.tokens) / this.qps) * 1000;
        await new Promise((r) => setTimeout(r, waitMs).unref());
        this.tokens = 1;
        this.last = performance.now();
      }
      this.tokens -= 1;
    });
    this.queue = next;
    return next;
  }
}

/** A client for one API server (see the module comment). `close()` drops its idle connections. */
export class KubeClient {
  private readonly agent: https.Agent;
  private readonly limiter: RateLimiter;
  private readonly timeoutMs: number;
  private readonly userAgent: string;
  private readonly watches = new Set<() => void>();

  constructor(
    readonly config: KubernetesApiConfig,
    options: KubeClientOptions = {},
  ) {
    const qps = options.qps ?? 0;
    const burst = options.burst ?? 0;
    if (!Number.isFinite(qps)) throw new KonnectivityError(ErrorCode.INVALID_OPTION, `qps must be a number, got ${qps}`);
    if (!Number.isInteger(burst) || burst < 0) throw new KonnectivityError(ErrorCode.INVALID_OPTION, `burst must be an integer >= 0, got ${burst}`);
    this.limiter = new RateLimiter(qps === 0 ? DEFAULT_KUBE_QPS : qps, burst === 0 ? DEFAULT_KUBE_BURST : burst);
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.userAgent = options.userAgent ?? 'konnectivity-ts';
    this.agent = new https.Agent({
      keepAlive: true,
      ...(config.ca ? { ca: config.ca } : {}),
      ...(config.cert && config.key ? { cert: config.cert, key: config.key } : {}),
      rejectUnauthorized: !config.insecureSkipTLSVerify,
    });
  }

  /** Send one request; resolves with the decoded JSON body of a 2xx answer, rejects with a KubeApiError. */
  async request<T>(method: string, path: string, options: KubeRequestOptions = {}): Promise<T> {
    await this.limiter.take();
    const timeoutMs = options.timeoutMs !== undefined && (this.timeoutMs <= 0 || options.timeoutMs < this.timeoutMs) ? options.timeoutMs : this.timeoutMs;
    const res = await this.send(method, path, options, timeoutMs);
    const text = await readAll(res, options.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES, `${method} ${path}`);
    const status = res.statusCode ?? 0;
    if (status < 200 || status > 299) throw apiError(status, text, method, path);
    try {
      return (text === '' ? undefined : JSON.parse(text)) as T;
    } catch (err) {
      throw new KubeApiError(status, 'BadResponse', `the Kubernetes API answered ${method} ${path} with bad JSON: ${(err as Error).message}`, { cause: err });
    }
  }

  /**
   * Watch a collection: `onEvent` gets each event in order. The returned watch ends when the server closes it
   * (`timeoutSeconds`), on an error (a non-2xx answer is a KubeApiError), or on `abort()`.
   */
  async watch<T>(path: string, query: Record<string, string | undefined>, onEvent: (event: WatchEvent<T>) => void): Promise<KubeWatch> {
    await this.limiter.take();
    const abort = new AbortController();
    const res = await this.send('GET', path, { query: { ...query, watch: 'true' }, signal: abort.signal }, 0);
    const status = res.statusCode ?? 0;
    if (status < 200 || status > 299) throw apiError(status, await readAll(res, DEFAULT_MAX_RESPONSE_BYTES, `GET ${path}`), 'GET', path);
    const stop = (): void => abort.abort();
    this.watches.add(stop);
    const done = new Promise<Error | undefined>((resolve) => {
      let buffered = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buffered += chunk;
        let nl: number;
        while ((nl = buffered.indexOf('\n')) >= 0) {
          const line = buffered.slice(0, nl).trim();
          buffered = buffered.slice(nl + 1);
          if (line === '') continue;
          try {
            onEvent(JSON.parse(line) as WatchEvent<T>);
          } catch (err) {
            res.destroy(err as Error);
            return;
          }
        }
      });
      const finish = (err: Error | undefined): void => {
        this.watches.delete(stop);
        resolve(abort.signal.aborted ? undefined : err);
      };
      res.once('end', () => finish(undefined));
      res.once('error', (err) => finish(err));
      res.once('close', () => finish(res.complete ? undefined : new KubeApiError(0, 'Unreachable', 'the watch connection was cut')));
    });
    return { done, abort: stop };
  }

  /** Stop every watch and drop idle connections. */
  close(): void {
    for (const stop of [...this.watches]) stop();
    this.agent.destroy();
  }

  private async send(method: string, path: string, options: KubeRequestOptions, timeoutMs: number): Promise<IncomingMessage> {
    const { config } = this;
    const token = config.tokenFile ? (await readFile(config.tokenFile, 'utf8')).trim() : config.token;
    const url = new URL(path, config.server);
    for (const [k, v] of Object.entries(options.query ?? {})) if (v !== undefined) url.searchParams.set(k, v);
    const body = options.body === undefined ? undefined : JSON.stringify(options.body);
    return new Promise<IncomingMessage>((resolve, reject) => {
      const req = https.request(url, {
        method,
        agent: this.agent,
        headers: {
          accept: 'application/json',
          'user-agent': this.userAgent,
          ...(body !== undefined ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } : {}),
          ...(token ? { authorization: `Bearer ${token}` } : {}),
        },
        ...(options.signal ? { signal: options.signal } : {}),
      });
      let timer: NodeJS.Timeout | undefined;
      let response: IncomingMessage | undefined;
      if (timeoutMs > 0) {
        // One deadline for the whole answer: a socket idle timeout restarts with every byte of a trickling answer.
        timer = setTimeout(() => {
          const err = new KubeApiError(0, 'Timeout', `no answer within ${timeoutMs} ms to ${method} ${url.pathname}`);
          req.destroy(err);
          response?.destroy(err);
        }, timeoutMs);
        timer.unref();
      }
      req.once('response', (res) => {
        response = res;
        // The timeout covers the whole answer of a plain request, not the life of a watch.
        if (timer) res.once('end', () => clearTimeout(timer)).once('close', () => clearTimeout(timer));
        resolve(res);
      });
      req.once('error', (err) => {
        clearTimeout(timer);
        if (err instanceof KubeApiError) reject(err);
        else reject(new KubeApiError(0, 'Unreachable', `the Kubernetes API is unreachable (${method} ${url.pathname}): ${err.message}`, { cause: err }));
      });
      req.end(body);
    });
  }
}

/** The whole body as text, failing past `maxBytes` (the rest is not read) or when the answer is cut. */
function readAll(res: IncomingMessage, maxBytes: number, what: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let bytes = 0;
    res.on('data', (c: Buffer) => {
      bytes += c.length;
      if (bytes > maxBytes) res.destroy(new KubeApiError(0, 'TooLarge', `the answer is over ${maxBytes} bytes (${what})`));
      else chunks.push(c);
    });
    res.once('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    res.once('error', (err) => reject(err instanceof KubeApiError ? err : new KubeApiError(0, 'Unreachable', `reading the answer: ${err.message}`, { cause: err })));
    res.once('close', () => {
      if (!res.complete) reject(new KubeApiError(0, 'Unreachable', `the answer to ${what} was cut`));
    });
  });
}

/** A KubeApiError from an error answer: the `Status` object's reason and message when there is one. */
function apiError(status: number, text: string, method: string, path: string): KubeApiError {
  let reason = '';
  let message = text.slice(0, 200);
  try {
    const s = JSON.parse(text) as { kind?: string; reason?: string; message?: string };
    if (s && s.kind === 'Status') {
      reason = s.reason ?? '';
      message = s.message ?? message;
    }
  } catch {
    // Not a Status: keep the text.
  }
  return new KubeApiError(status, reason, `the Kubernetes API answered ${status}${reason ? ` ${reason}` : ''} to ${method} ${path}: ${message}`);
}
