/**
 * The server's lease controller (`--enable-lease-controller`, PROTOCOL.md §4), as the reference runs it: a Lease
 * `konnectivity-proxy-server-<serverID>` in the lease namespace, labelled with `--lease-label`, held for 30 s and
 * renewed every 15 s; a garbage collector that deletes expired leases with those labels every 15 s, each with a
 * resourceVersion precondition so a lease renewed meanwhile is kept; the lease is deleted on shutdown.
 *
 * The API server's answers are handled as the reference's client-go does: a renewal refused with 409 Conflict or
 * 404 (someone else changed or deleted the lease) re-reads it and creates it again when it is gone; a create that
 * races another (409 AlreadyExists) re-reads; 403 and a dead API server are logged and retried with a backoff
 * (200 ms doubling to 7 s, never beyond the renew interval), and the GC tries again at its next round.
 */
import { EventEmitter } from 'node:events';
import { ErrorCode, KonnectivityError } from '../protocol/errors.js';
import { KubeApiError, isKubeStatus, type KubeClient } from './client.js';
import { LeaseApi, formatLabels, isLeaseValid, microTime, type Lease } from './leases.js';

/** How long a server lease is valid without renewal, as the reference sets it. */
export const LEASE_DURATION_SECONDS = 30;
/** How often a server renews its lease, as the reference does. */
export const LEASE_RENEW_INTERVAL_MS = 15_000;
/** How often the lease GC looks for expired leases, as the reference does. */
export const LEASE_GC_INTERVAL_MS = 15_000;

/** The reference's lease name for a server. */
export function serverLeaseName(serverID: string): string {
  return `konnectivity-proxy-server-${serverID}`;
}

/** One call the GC made, for metrics: `status` is the HTTP status (0 when the API was unreachable). */
export interface LeaseCall {
  /** Which call. */
  call: 'list' | 'delete';
  /** The HTTP status (0 when the API was unreachable). */
  status: number;
  /** The `Status` reason of a failed call (`Conflict`, `NotFound`, ...), empty on success. */
  reason: string;
  /** How long the call took. */
  durationMs: number;
}

/** Events of {@link ServerLeaseController}. */
export interface ServerLeaseControllerEvents {
  /** Our lease was created (also again after someone deleted it). */
  acquired: [lease: Lease];
  /** Our lease was renewed. */
  renewed: [lease: Lease];
  /** Creating or renewing failed; the next try is in `retryInMs`. */
  renewFailed: [err: Error, retryInMs: number];
  /** The GC deleted an expired lease. */
  culled: [name: string];
  /** The GC found an expired lease already gone (404). */
  alreadyDeleted: [name: string];
  /** The GC could not list or delete (`name` undefined for a list). */
  gcFailed: [err: Error, name: string | undefined];
  /** A list or delete call of the GC, with its outcome. */
  call: [call: LeaseCall];
  /** On stop: our lease is being deleted. */
  releasing: [name: string];
  /** Deleting our lease on stop failed. */
  releaseFailed: [err: Error];
}

/** Options of {@link ServerLeaseController}. */
export interface ServerLeaseControllerOptions {
  /** The Kubernetes API client. */
  client: KubeClient;
  /** This server's ID: the lease's `holderIdentity` and name suffix. */
  serverID: string;
  /** `--lease-namespace` (default `kube-system`). */
  namespace?: string;
  /** `--lease-label` as labels (default `{ 'k8s-app': 'konnectivity-server' }`). */
  labels?: Record<string, string>;
  /** Default 30 (the reference's). */
  leaseDurationSeconds?: number;
  /** Default 15000. */
  renewIntervalMs?: number;
  /** Default 15000. */
  gcIntervalMs?: number;
  /** The clock, in epoch milliseconds (tests move it). */
  now?: () => number;
}

const MIN_BACKOFF_MS = 200;
const MAX_BACKOFF_MS = 7_000;

/** See the module comment. `start()` begins; `stop()` ends the loops and deletes the lease. */
export class ServerLeaseController extends EventEmitter<ServerLeaseControllerEvents> {
  /** This server's lease name. */
  readonly leaseName: string;
  /** The namespace of the leases. */
  readonly namespace: string;
  /** The labels of our lease (the GC looks at leases with the same labels). */
  readonly labels: Record<string, string>;
  /** How long the lease is valid without renewal. */
  readonly leaseDurationSeconds: number;
  /** How often the lease is renewed. */
  readonly renewIntervalMs: number;
  /** How often the GC runs. */
  readonly gcIntervalMs: number;
  private readonly api: LeaseApi;
  private readonly selector: string;
  private readonly now: () => number;
  private readonly abort = new AbortController();
  private latest: Lease | undefined;
  private loops: Promise<void>[] = [];
  private stopping: Promise<void> | undefined;

  constructor(private readonly options: ServerLeaseControllerOptions) {
    super();
    if (!options.serverID) throw new KonnectivityError(ErrorCode.INVALID_OPTION, 'serverID must not be empty');
    this.namespace = options.namespace ?? 'kube-system';
    this.labels = options.labels ?? { 'k8s-app': 'konnectivity-server' };
    this.leaseDurationSeconds = options.leaseDurationSeconds ?? LEASE_DURATION_SECONDS;
    this.renewIntervalMs = options.renewIntervalMs ?? LEASE_RENEW_INTERVAL_MS;
    this.gcIntervalMs = options.gcIntervalMs ?? LEASE_GC_INTERVAL_MS;
    for (const [name, v] of Object.entries({ leaseDurationSeconds: this.leaseDurationSeconds, renewIntervalMs: this.renewIntervalMs, gcIntervalMs: this.gcIntervalMs })) {
      if (!(Number.isFinite(v) && v > 0)) throw new KonnectivityError(ErrorCode.INVALID_OPTION, `${name} must be > 0, got ${v}`);
    }
    this.leaseName = serverLeaseName(options.serverID);
    this.api = new LeaseApi(options.client, this.namespace);
    this.selector = formatLabels(this.labels);
    this.now = options.now ?? (() => performance.timeOrigin + performance.now());
  }

  /** Begin renewing and collecting (idempotent). */
  start(): this {
    if (this.loops.length > 0 || this.abort.signal.aborted) return this;
    this.loops = [this.renewLoop(), this.gcLoop()];
    return this;
  }

  /** Stop the loops and delete our lease (no precondition: it is ours). Idempotent; never rejects. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.abort.abort();
      await Promise.allSettled(this.loops);
      this.emit('releasing', this.leaseName);
      try {
        await this.api.delete(this.leaseName);
      } catch (err) {
        if (!isKubeStatus(err, 404)) this.emit('releaseFailed', err as Error);
      }
    })();
    return this.stopping;
  }

  // ---- renewing ----

  private async renewLoop(): Promise<void> {
    let backoff = MIN_BACKOFF_MS;
    while (!this.abort.signal.aborted) {
      let delay = this.renewIntervalMs;
      try {
        await this.renewOnce();
        backoff = MIN_BACKOFF_MS;
      } catch (err) {
        if (this.abort.signal.aborted) return;
        delay = Math.min(backoff, this.renewIntervalMs);
        backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
        this.emit('renewFailed', err as Error, delay);
      }
      await this.sleep(delay);
    }
  }

  /** One heartbeat: update the lease we know, or (re)read it and create it when it is gone. */
  private async renewOnce(): Promise<void> {
    if (this.latest) {
      try {
        this.latest = await this.api.update(this.renewed(this.latest), this.abort.signal);
        this.emit('renewed', this.latest);
        return;
      } catch (err) {
        // Changed or deleted by someone else: start again from what the API has now.
        if (!isKubeStatus(err, 409) && !isKubeStatus(err, 404)) throw err;
        this.latest = undefined;
      }
    }
    let current: Lease | undefined;
    try {
      current = await this.api.get(this.leaseName, this.abort.signal);
    } catch (err) {
      if (!isKubeStatus(err, 404)) throw err;
    }
    if (current) {
      this.latest = await this.api.update(this.renewed(current), this.abort.signal);
      this.emit('renewed', this.latest);
      return;
    }
    try {
      this.latest = await this.api.create(this.renewed({ metadata: { name: this.leaseName }, spec: {} }), this.abort.signal);
      this.emit('acquired', this.latest);
    } catch (err) {
      // Another writer created it between our read and our create: read it again next time.
      if (isKubeStatus(err, 409)) this.latest = undefined;
      throw err;
    }
  }

  private renewed(lease: Lease): Lease {
    return {
      metadata: { ...lease.metadata, name: this.leaseName, namespace: this.namespace, labels: { ...lease.metadata.labels, ...this.labels } },
      spec: {
        ...lease.spec,
        holderIdentity: this.options.serverID,
        leaseDurationSeconds: this.leaseDurationSeconds,
        renewTime: microTime(this.now()),
      },
    };
  }

  // ---- garbage collection ----

  private async gcLoop(): Promise<void> {
    while (!this.abort.signal.aborted) {
      await this.gcOnce();
      await this.sleep(this.gcIntervalMs);
    }
  }

  /** List the leases with our labels and delete the expired ones (each only in the version we saw). */
  async gcOnce(): Promise<void> {
    const list = await this.timed('list', () => this.api.list(this.selector, this.abort.signal)).catch((err: unknown) => {
      if (!this.abort.signal.aborted) this.emit('gcFailed', err as Error, undefined);
      return undefined;
    });
    if (!list) return;
    const now = this.now();
    for (const lease of list.items ?? []) {
      if (this.abort.signal.aborted) return;
      if (isLeaseValid(lease, now)) continue;
      const name = lease.metadata.name;
      try {
        await this.timed('delete', () => this.api.delete(name, lease.metadata.resourceVersion, this.abort.signal));
        this.emit('culled', name);
      } catch (err) {
        if (isKubeStatus(err, 404)) this.emit('alreadyDeleted', name);
        else if (!this.abort.signal.aborted) this.emit('gcFailed', err as Error, name);
      }
    }
  }

  private async timed<T>(call: LeaseCall['call'], run: () => Promise<T>): Promise<T> {
    const started = performance.now();
    try {
      const result = await run();
      this.emit('call', { call, status: 200, reason: '', durationMs: performance.now() - started });
      return result;
    } catch (err) {
      const e = err instanceof KubeApiError ? err : undefined;
      this.emit('call', { call, status: e?.status ?? 0, reason: e?.statusReason ?? '', durationMs: performance.now() - started });
      throw err;
    }
  }

  private sleep(ms: number): Promise<void> {
    return abortableSleep(ms, this.abort.signal);
  }
}

/** Resolve after `ms` (an unref'd timer) or as soon as `signal` aborts; never rejects. */
export function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    timer.unref();
    signal.addEventListener('abort', done, { once: true });
  });
}
