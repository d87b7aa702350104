/**
 * coordination.k8s.io/v1 Leases: the object, the calls the lease controller and the lease counter make, and the
 * reference's validity rule (`renewTime`, or `acquireTime`, plus `leaseDurationSeconds` is still in the future).
 */
import type { KubeClient, KubeWatch, WatchEvent } from './client.js';

/** A Lease as the API returns it (the fields we use). */
export interface Lease {
  /** The API group and version. */
  apiVersion?: 'coordination.k8s.io/v1';
  /** The kind. */
  kind?: 'Lease';
  /** Name, namespace, the resourceVersion for preconditions, and the labels. */
  metadata: { name: string; namespace?: string; resourceVersion?: string; labels?: Record<string, string> };
  /** Who holds the lease and until when. */
  spec: {
    holderIdentity?: string;
    leaseDurationSeconds?: number;
    /** MicroTime: RFC 3339 with microseconds. */
    acquireTime?: string;
    renewTime?: string;
  };
}

/** A LeaseList (the fields we use). */
export interface LeaseList {
  /** The list's resourceVersion, to watch from. */
  metadata: { resourceVersion?: string };
  /** The leases. */
  items: Lease[];
}

/** A Kubernetes MicroTime (`2026-12-01T09:12:17.392936Z`) for an epoch time in (fractional) milliseconds. */
export function microTime(epochMs: number): string {
  const whole = Math.floor(epochMs);
  const micros = Math.floor((epochMs - whole) * 1000);
  const iso = new Date(whole).toISOString(); // ...T09:12:17.392Z
  return `${iso.slice(0, -1)}${String(micros).padStart(3, '0')}Z`;
}

/** The reference's rule: valid while `(renewTime or acquireTime) + leaseDurationSeconds > now`. */
export function isLeaseValid(lease: Lease, nowMs: number): boolean {
  const since = lease.spec.renewTime ?? lease.spec.acquireTime;
  if (since === undefined) return false;
  const t = Date.parse(since);
  if (Number.isNaN(t)) return false;
  return t + (lease.spec.leaseDurationSeconds ?? 0) * 1000 > nowMs;
}

/** Parse `k=v,k2=v2` (the `--lease-label` form) into labels; throws on a malformed pair. */
export function parseLabels(text: string): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const part of text.split(',')) {
    const pair = part.trim();
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new Error(`"${pair}" is not key=value`);
    labels[pair.slice(0, eq).trim()] = pair.slice(eq + 1).trim();
  }
  return labels;
}

/** The label selector that matches exactly these labels (`k=v,k2=v2`, sorted as client-go formats it). */
export function formatLabels(labels: Record<string, string>): string {
  return Object.keys(labels)
    .sort()
    .map((k) => `${k}=${labels[k]}`)
    .join(',');
}

/** The Lease calls of one namespace. */
export class LeaseApi {
  private readonly base: string;

  constructor(
    readonly client: KubeClient,
    readonly namespace: string,
  ) {
    this.base = `/apis/coordination.k8s.io/v1/namespaces/${encodeURIComponent(namespace)}/leases`;
  }

  /** Read one lease by name. */
  get(name: string, signal?: AbortSignal): Promise<Lease> {
    return this.client.request<Lease>('GET', `${this.base}/${encodeURIComponent(name)}`, { ...(signal ? { signal } : {}) });
  }

  /** List the leases matching a label selector. */
  list(labelSelector: string, signal?: AbortSignal): Promise<LeaseList> {
    return this.client.request<LeaseList>('GET', this.base, { query: { labelSelector: labelSelector || undefined }, ...(signal ? { signal } : {}) });
  }

  /** Create a lease (409 AlreadyExists when the name is taken). */
  create(lease: Lease, signal?: AbortSignal): Promise<Lease> {
    return this.client.request<Lease>('POST', this.base, { body: { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', ...lease }, ...(signal ? { signal } : {}) });
  }

  /** Update; the API refuses it with 409 Conflict when `lease.metadata.resourceVersion` is not the current one. */
  update(lease: Lease, signal?: AbortSignal): Promise<Lease> {
    return this.client.request<Lease>('PUT', `${this.base}/${encodeURIComponent(lease.metadata.name)}`, {
      body: { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', ...lease },
      ...(signal ? { signal } : {}),
    });
  }

  /** Delete; with `resourceVersion`, only that version (409 Conflict otherwise: it was renewed meanwhile). */
  delete(name: string, resourceVersion?: string, signal?: AbortSignal): Promise<unknown> {
    return this.client.request('DELETE', `${this.base}/${encodeURIComponent(name)}`, {
      body: { apiVersion: 'v1', kind: 'DeleteOptions', ...(resourceVersion ? { preconditions: { resourceVersion } } : {}) },
      ...(signal ? { signal } : {}),
    });
  }

  /** Watch the leases matching a label selector from `resourceVersion`, for at most `timeoutSeconds`. */
  watch(labelSelector: string, resourceVersion: string, timeoutSeconds: number, onEvent: (e: WatchEvent<Lease>) => void): Promise<KubeWatch> {
    return this.client.watch<Lease>(
      this.base,
      { labelSelector: labelSelector || undefined, resourceVersion, allowWatchBookmarks: 'true', timeoutSeconds: String(timeoutSeconds) },
      onEvent,
    );
  }
}
