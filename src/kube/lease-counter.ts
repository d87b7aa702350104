/**
 * The agent's lease counter (`--count-server-leases`, PROTOCOL.md §4): how many proxy servers hold a valid lease
 * matching `--lease-label-selector` in `--lease-namespace`. Like the reference's informer it lists once and then
 * watches, so the count costs the API server nothing per sync; a watch that ends is resumed from the last
 * resourceVersion, one refused with 410 Gone (or failing) lists again, with a backoff (1 s doubling to 30 s).
 *
 * `count()` is the number of valid leases (`(renewTime or acquireTime) + leaseDurationSeconds > now`); when none
 * is valid it is 1, as the reference assumes; while the API cannot be read it is the last count read (at least 1),
 * so an API outage does not make the agent forget servers it knew.
 */
import { EventEmitter } from 'node:events';
import { KubeApiError, type KubeClient, type KubeWatch, type WatchEvent } from './client.js';
import { abortableSleep } from './lease-controller.js';
import { LeaseApi, isLeaseValid, type Lease } from './leases.js';

/** One list or watch call, for metrics: `status` 0 when the API was unreachable. */
export interface LeaseCounterCall {
  /** Which call. */
  call: 'list' | 'watch';
  /** The HTTP status (0 when the API was unreachable). */
  status: number;
  /** The `Status` reason of a failed call, empty on success. */
  reason: string;
  /** How long a list took (a watch's is its set-up). */
  durationMs: number;
}

/** Events of {@link ServerLeaseCounter}. */
export interface ServerLeaseCounterEvents {
  /** A list or watch call, with its outcome. */
  call: [call: LeaseCounterCall];
  /** The count changed (from leases appearing, expiring, or going away). */
  change: [count: number, previous: number];
  /** The leases cannot be read; the next try is in `retryInMs`. The count stays at the last one read. */
  failed: [err: Error, retryInMs: number];
  /** The leases were read and none is valid: the count is 1. */
  noValidLeases: [];
}

/** Options of {@link ServerLeaseCounter}. */
export interface ServerLeaseCounterOptions {
  /** The Kubernetes API client. */
  client: KubeClient;
  /** Default `kube-system`. */
  namespace?: string;
  /** Default `k8s-app=konnectivity-server`. */
  labelSelector?: string;
  /** How often the count is re-evaluated as leases expire, in ms (default 1000). */
  recheckIntervalMs?: number;
  /** How long one watch may last before it is renewed, in seconds (default 300-600, random, as client-go). */
  watchTimeoutSeconds?: number;
  /** First retry delay after a failure, in ms (default 1000; doubles to 30000). */
  retryMs?: number;
  /** The clock, in epoch milliseconds. */
  now?: () => number;
}

const MAX_RETRY_MS = 30_000;

/** See the module comment. `start()` begins reading; `stop()` ends it. */
export class ServerLeaseCounter extends EventEmitter<ServerLeaseCounterEvents> {
  /** The namespace of the leases. */
  readonly namespace: string;
  /** The label selector of the leases counted. */
  readonly labelSelector: string;
  private readonly api: LeaseApi;
  private readonly leases = new Map<string, Lease>();
  private readonly abort = new AbortController();
  private readonly now: () => number;
  private synced = false;
  private lastGood = 0;
  private current = 1;
  private noneValid = false;
  private loop: Promise<void> | undefined;
  private recheck: NodeJS.Timeout | undefined;
  private watch: KubeWatch | undefined;

  constructor(private readonly options: ServerLeaseCounterOptions) {
    super();
    this.namespace = options.namespace ?? 'kube-system';
    this.labelSelector = options.labelSelector ?? 'k8s-app=konnectivity-server';
    this.api = new LeaseApi(options.client, this.namespace);
    this.now = options.now ?? (() => performance.timeOrigin + performance.now());
  }

  /** The server count the leases say (see the module comment). */
  count(): number {
    return this.current;
  }

  /** True while the leases in hand are current (listed, and the watch is up). */
  get upToDate(): boolean {
    return this.synced;
  }

  /** List, then watch, the leases; the count follows them until `stop()`. */
  start(): this {
    if (this.loop || this.abort.signal.aborted) return this;
    this.loop = this.run();
    this.recheck = setInterval(() => this.evaluate(), this.options.recheckIntervalMs ?? 1000).unref();
    return this;
  }

  /** Stop watching; resolves once the watch has ended. */
  async stop(): Promise<void> {
    this.abort.abort();
    clearInterval(this.recheck);
    this.watch?.abort();
    await this.loop;
  }

  /** Recompute the count now (also done on every change and every `recheckIntervalMs`). */
  evaluate(): number {
    let next: number;
    if (!this.synced) {
      next = Math.max(1, this.lastGood);
    } else {
      const now = this.now();
      let valid = 0;
      for (const l of this.leases.values()) if (isLeaseValid(l, now)) valid++;
      if (valid > 0) this.lastGood = valid;
      if (valid === 0 && !this.noneValid) this.emit('noValidLeases');
      this.noneValid = valid === 0;
      next = Math.max(1, valid);
    }
    if (next !== this.current) {
      const previous = this.current;
      this.current = next;
      this.emit('change', next, previous);
    }
    return next;
  }

  private async run(): Promise<void> {
    let retry = this.options.retryMs ?? 1000;
    let version: string | undefined;
    while (!this.abort.signal.aborted) {
      try {
        if (version === undefined) version = await this.relist();
        version = await this.watchFrom(version);
        retry = this.options.retryMs ?? 1000;
      } catch (err) {
        if (this.abort.signal.aborted) return;
        this.setSynced(false);
        // 410 Gone: our version is too old to watch from; any other failure: read everything again too.
        version = undefined;
        this.emit('failed', err as Error, retry);
        await abortableSleep(retry, this.abort.signal);
        retry = Math.min(retry * 2, MAX_RETRY_MS);
      }
    }
  }

  /** List and replace what we hold; returns the list's resourceVersion. */
  private async relist(): Promise<string> {
    const started = performance.now();
    try {
      const list = await this.api.list(this.labelSelector, this.abort.signal);
      this.emit('call', { call: 'list', status: 200, reason: '', durationMs: performance.now() - started });
      this.leases.clear();
      for (const l of list.items ?? []) this.leases.set(l.metadata.name, l);
      this.setSynced(true);
      return list.metadata?.resourceVersion ?? '0';
    } catch (err) {
      const e = err instanceof KubeApiError ? err : undefined;
      this.emit('call', { call: 'list', status: e?.status ?? 0, reason: e?.statusReason ?? '', durationMs: performance.now() - started });
      throw err;
    }
  }

  /** Watch from `version` until the watch ends; returns the last version seen (throws to list again). */
  private async watchFrom(version: string): Promise<string> {
    let last = version;
    let gone: Error | undefined;
    const timeout = this.options.watchTimeoutSeconds ?? Math.round(300 * (1 + Math.random()));
    const started = performance.now();
    let w: KubeWatch | undefined;
    try {
      w = await this.api.watch(this.labelSelector, version, timeout, (e: WatchEvent<Lease>) => {
        if (e.type === 'ERROR') {
          const status = e.object as unknown as { code?: number; reason?: string; message?: string };
          gone = new KubeApiError(status.code ?? 0, status.reason ?? '', `lease watch: ${status.message ?? 'error event'}`);
          w?.abort();
          return;
        }
        last = e.object.metadata.resourceVersion ?? last;
        if (e.type === 'BOOKMARK') return;
        if (e.type === 'DELETED') this.leases.delete(e.object.metadata.name);
        else this.leases.set(e.object.metadata.name, e.object);
        this.evaluate();
      });
    } catch (err) {
      const e = err instanceof KubeApiError ? err : undefined;
      this.emit('call', { call: 'watch', status: e?.status ?? 0, reason: e?.statusReason ?? '', durationMs: performance.now() - started });
      throw err;
    }
    this.emit('call', { call: 'watch', status: 200, reason: '', durationMs: performance.now() - started });
    if (this.abort.signal.aborted) w.abort();
    this.watch = w;
    this.setSynced(true);
    const err = await w.done;
    this.watch = undefined;
    if (gone) throw gone;
    if (err) throw err;
    return last;
  }

  private setSynced(synced: boolean): void {
    this.synced = synced;
    this.evaluate();
  }
}
