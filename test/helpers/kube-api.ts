/**
 * A stand-in Kubernetes API over HTTPS on loopback (test certificates), with the API server's own semantics for
 * what the programs use: TokenReview, and coordination.k8s.io/v1 Leases (get, list with a label selector, watch,
 * create, update with resourceVersion conflicts, delete with a resourceVersion precondition). Errors are
 * `Status` objects with the API server's codes and reasons (401, 403 Forbidden, 404 NotFound, 409 AlreadyExists /
 * Conflict). Faults can be injected (`forbid`, `failNext`) and the whole API can go down and come back on the same
 * port (`stop`, `start`), as a dead API server does.
 *
 * It serves both our programs and the Go reference binaries (JSON only: run those with
 * `--kube-api-content-type=application/json`).
 */
import https from 'node:https';
import { once } from 'node:events';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AddressInfo, Socket } from 'node:net';
import type { IncomingMessage, ServerResponse } from 'node:http';

const fixtures = new URL('../integration/http-connect/fixtures/', import.meta.url);
const pem = (name: string): Buffer => readFileSync(new URL(name, fixtures));

/** The CA that signed the stand-in's certificate (PEM). */
export const KUBE_API_CA: Buffer = pem('ca.pem');

/** A stored Lease, as the API returns it. */
export interface StoredLease {
  apiVersion: 'coordination.k8s.io/v1';
  kind: 'Lease';
  metadata: { name: string; namespace: string; resourceVersion: string; uid: string; labels?: Record<string, string>; creationTimestamp: string };
  spec: { holderIdentity?: string; leaseDurationSeconds?: number; acquireTime?: string; renewTime?: string; leaseTransitions?: number };
}

/** One request the stand-in answered. */
export interface KubeApiRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  authorization: string | undefined;
  contentType: string | undefined;
  body: unknown;
  status: number;
}

/** Options of {@link startKubeApi}. */
export interface KubeApiOptions {
  /** The bearer token the API accepts (default `api-token`). */
  token?: string;
  /** TokenReview users: agent token -> username. */
  users?: Record<string, string>;
  /** The audience TokenReviews must name (default `system:konnectivity-server`). */
  audience?: string;
  /**
   * TokenReviews of these agent tokens answer badly: `trickle` sends a byte every 20 ms and never ends (no idle
   * timeout ever fires), `huge` answers 256 KiB.
   */
  misbehave?: Record<string, 'trickle' | 'huge'>;
}

type Fault = { status: number; reason: string; message: string; match: (method: string, path: string) => boolean };

const LEASES = /^\/apis\/coordination\.k8s\.io\/v1\/namespaces\/([^/]+)\/leases(?:\/([^/]+))?$/;

/** A running stand-in API. */
export class KubeApi {
  readonly requests: KubeApiRequest[] = [];
  private readonly leases = new Map<string, StoredLease>();
  private readonly watchers = new Set<{ namespace: string; selector: (l: Record<string, string> | undefined) => boolean; res: ServerResponse }>();
  private readonly sockets = new Set<Socket>();
  private readonly faults: Array<Fault & { remaining: number }> = [];
  /** Every change, so a watch from a resourceVersion replays what came after it, as the API server does. */
  private readonly history: Array<{ type: 'ADDED' | 'MODIFIED' | 'DELETED'; lease: StoredLease }> = [];
  private readonly forbidden: Array<(method: string, path: string) => boolean> = [];
  private server: https.Server | undefined;
  private resourceVersion = 1000;
  private uid = 0;
  port = 0;

  constructor(private readonly options: KubeApiOptions = {}) {}

  /** `https://127.0.0.1:<port>` */
  get url(): string {
    return `https://127.0.0.1:${this.port}`;
  }

  /** Listen (again, on the same port once one was picked). */
  async start(): Promise<this> {
    const server = https.createServer({ key: pem('server-key.pem'), cert: pem('server.pem') }, (req, res) => this.handle(req, res));
    server.on('connection', (s: Socket) => {
      this.sockets.add(s);
      s.once('close', () => this.sockets.delete(s));
    });
    server.on('tlsClientError', () => undefined);
    server.listen(this.port, '127.0.0.1');
    await once(server, 'listening');
    this.port = (server.address() as AddressInfo).port;
    this.server = server;
    return this;
  }

  /** Go down: stop listening and cut every connection (watches included), as a dead API server. */
  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    for (const w of this.watchers) w.res.destroy();
    this.watchers.clear();
    const closed = new Promise<void>((r) => server.close(() => r()));
    for (const s of this.sockets) s.destroy();
    await closed;
  }

  /** Answer requests matching `method` and a path pattern with 403 Forbidden until cleared. */
  forbid(method: string | RegExp, path: RegExp = /.*/): () => void {
    const rule = (m: string, p: string): boolean => (typeof method === 'string' ? m === method : method.test(m)) && path.test(p);
    this.forbidden.push(rule);
    return () => {
      const i = this.forbidden.indexOf(rule);
      if (i >= 0) this.forbidden.splice(i, 1);
    };
  }

  /** Answer the next `count` requests matching `method` and `path` with `status` (e.g. 409 Conflict, 500). */
  failNext(method: string, path: RegExp, status: number, reason: string, count = 1): void {
    this.faults.push({ status, reason, message: `injected ${reason}`, match: (m, p) => m === method && path.test(p), remaining: count });
  }

  /** The leases stored in `namespace` (copies). */
  list(namespace: string): StoredLease[] {
    return [...this.leases.values()].filter((l) => l.metadata.namespace === namespace).map((l) => structuredClone(l));
  }

  /** Store a lease as another client would (e.g. one whose holder died long ago). */
  put(namespace: string, name: string, labels: Record<string, string>, spec: StoredLease['spec']): StoredLease {
    const lease: StoredLease = {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { name, namespace, labels, resourceVersion: this.nextVersion(), uid: `uid-${++this.uid}`, creationTimestamp: new Date().toISOString() },
      spec,
    };
    this.leases.set(`${namespace}/${name}`, lease);
    this.notify('ADDED', lease);
    return structuredClone(lease);
  }

  /** A kubeconfig for this API in `dir` (CA file beside it); `user` is the YAML of the user entry. */
  kubeconfig(dir: string, user = `token: ${this.options.token ?? 'api-token'}`): string {
    const path = join(dir, 'kubeconfig');
    writeFileSync(join(dir, 'kube-ca.pem'), KUBE_API_CA);
    writeFileSync(
      path,
      [
        'apiVersion: v1',
        'kind: Config',
        'current-context: test',
        'contexts:',
        '- name: test',
        '  context: {cluster: local, user: proxy}',
        'clusters:',
        '- name: local',
        '  cluster:',
        `    server: ${this.url}`,
        '    certificate-authority: kube-ca.pem',
        'users:',
        '- name: proxy',
        '  user:',
        `    ${user}`,
        '',
      ].join('\n'),
    );
    return path;
  }

  // ---- the API ----

  private nextVersion(): string {
    return String(++this.resourceVersion);
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    let text = '';
    req.setEncoding('utf8').on('data', (c: string) => (text += c));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'https://localhost');
      let body: unknown;
      try {
        body = text ? JSON.parse(text) : undefined;
      } catch {
        body = text;
      }
      const record: KubeApiRequest = {
        method: req.method ?? '',
        path: url.pathname,
        query: url.searchParams,
        authorization: req.headers.authorization,
        contentType: req.headers['content-type'],
        body,
        status: 0,
      };
      this.requests.push(record);
      const answer = (status: number, object: unknown): void => {
        record.status = status;
        const out = JSON.stringify(object);
        res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(out) }).end(out);
      };
      const status = (code: number, reason: string, message: string): void =>
        answer(code, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code });

      if (req.headers.authorization !== `Bearer ${this.options.token ?? 'api-token'}`) {
        status(401, 'Unauthorized', 'Unauthorized');
        return;
      }
      if (this.forbidden.some((f) => f(record.method, record.path))) {
        status(403, 'Forbidden', `${record.method} ${record.path} is forbidden: User "system:konnectivity-server" cannot do this`);
        return;
      }
      const fault = this.faults.find((f) => f.remaining > 0 && f.match(record.method, record.path));
      if (fault) {
        fault.remaining -= 1;
        status(fault.status, fault.reason, fault.message);
        return;
      }
      if (record.method === 'POST' && record.path === '/apis/authentication.k8s.io/v1/tokenreviews') {
        const bad = this.options.misbehave?.[(body as { spec?: { token?: string } } | undefined)?.spec?.token ?? ''];
        if (bad === 'trickle') {
          record.status = 201;
          res.writeHead(201, { 'content-type': 'application/json' });
          const timer = setInterval(() => res.write(' '), 20);
          res.once('close', () => clearInterval(timer));
          return;
        }
        if (bad === 'huge') {
          answer(201, { pad: 'x'.repeat(256 * 1024) });
          return;
        }
        this.tokenReview(body as { spec: { token: string; audiences?: string[] } }, answer);
        return;
      }
      const m = LEASES.exec(record.path);
      if (!m) {
        status(404, 'NotFound', 'the server could not find the requested resource');
        return;
      }
      this.leaseCall(record, decodeURIComponent(m[1]!), m[2] === undefined ? undefined : decodeURIComponent(m[2]), req, res, answer, status);
    });
  }

  private tokenReview(body: { spec: { token: string; audiences?: string[] } }, answer: (s: number, o: unknown) => void): void {
    const username = this.options.users?.[body.spec.token];
    const audience = this.options.audience ?? 'system:konnectivity-server';
    const review = username && body.spec.audiences?.[0] === audience ? { authenticated: true, user: { username } } : { authenticated: false, error: 'token not recognised' };
    answer(201, { kind: 'TokenReview', apiVersion: 'authentication.k8s.io/v1', status: review });
  }

  private leaseCall(
    r: KubeApiRequest,
    namespace: string,
    name: string | undefined,
    req: IncomingMessage,
    res: ServerResponse,
    answer: (s: number, o: unknown) => void,
    status: (code: number, reason: string, message: string) => void,
  ): void {
    const key = `${namespace}/${name}`;
    const notFound = (): void => status(404, 'NotFound', `leases.coordination.k8s.io "${name}" not found`);
    if (name === undefined) {
      if (r.method === 'GET') {
        const selector = parseSelector(r.query.get('labelSelector') ?? '');
        if (r.query.get('watch') === 'true' || r.query.get('watch') === '1') {
          this.watch(namespace, selector, r.query.get('resourceVersion') ?? '', Number(r.query.get('timeoutSeconds') ?? 0), req, res);
          r.status = 200;
          return;
        }
        const items = [...this.leases.values()].filter((l) => l.metadata.namespace === namespace && selector(l.metadata.labels));
        answer(200, { kind: 'LeaseList', apiVersion: 'coordination.k8s.io/v1', metadata: { resourceVersion: String(this.resourceVersion) }, items });
        return;
      }
      if (r.method === 'POST') {
        const lease = r.body as StoredLease;
        const leaseName = lease?.metadata?.name;
        if (!leaseName) {
          status(422, 'Invalid', 'Lease.coordination.k8s.io "" is invalid: metadata.name: Required value');
          return;
        }
        if (this.leases.has(`${namespace}/${leaseName}`)) {
          status(409, 'AlreadyExists', `leases.coordination.k8s.io "${leaseName}" already exists`);
          return;
        }
        const stored: StoredLease = {
          apiVersion: 'coordination.k8s.io/v1',
          kind: 'Lease',
          metadata: {
            name: leaseName,
            namespace,
            ...(lease.metadata.labels ? { labels: lease.metadata.labels } : {}),
            resourceVersion: this.nextVersion(),
            uid: `uid-${++this.uid}`,
            creationTimestamp: new Date().toISOString(),
          },
          spec: lease.spec ?? {},
        };
        this.leases.set(`${namespace}/${leaseName}`, stored);
        this.notify('ADDED', stored);
        answer(201, stored);
        return;
      }
      status(405, 'MethodNotAllowed', `${r.method} is not allowed on a lease list`);
      return;
    }
    const current = this.leases.get(key);
    switch (r.method) {
      case 'GET':
        if (!current) notFound();
        else answer(200, current);
        return;
      case 'PUT': {
        const lease = r.body as StoredLease;
        if (!current) {
          notFound();
          return;
        }
        const rv = lease?.metadata?.resourceVersion;
        if (!rv || rv !== current.metadata.resourceVersion) {
          status(409, 'Conflict', `Operation cannot be fulfilled on leases.coordination.k8s.io "${name}": the object has been modified; please apply your changes to the latest version and try again`);
          return;
        }
        const stored: StoredLease = {
          ...current,
          metadata: { ...current.metadata, ...(lease.metadata.labels ? { labels: lease.metadata.labels } : {}), resourceVersion: this.nextVersion() },
          spec: lease.spec ?? {},
        };
        this.leases.set(key, stored);
        this.notify('MODIFIED', stored);
        answer(200, stored);
        return;
      }
      case 'DELETE': {
        if (!current) {
          notFound();
          return;
        }
        const want = (r.body as { preconditions?: { resourceVersion?: string } } | undefined)?.preconditions?.resourceVersion;
        if (want !== undefined && want !== current.metadata.resourceVersion) {
          status(
            409,
            'Conflict',
            `Operation cannot be fulfilled on leases.coordination.k8s.io "${name}": Precondition failed: ResourceVersion in precondition: ${want}, ResourceVersion in object meta: ${current.metadata.resourceVersion}`,
          );
          return;
        }
        this.leases.delete(key);
        const gone = { ...current, metadata: { ...current.metadata, resourceVersion: this.nextVersion() } };
        this.notify('DELETED', gone);
        answer(200, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', details: { name, group: 'coordination.k8s.io', kind: 'leases', uid: current.metadata.uid } });
        return;
      }
      default:
        status(405, 'MethodNotAllowed', `${r.method} is not allowed on a lease`);
    }
  }

  private watch(
    namespace: string,
    selector: (l: Record<string, string> | undefined) => boolean,
    fromVersion: string,
    timeoutSeconds: number,
    req: IncomingMessage,
    res: ServerResponse,
  ): void {
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    res.flushHeaders();
    const w = { namespace, selector, res };
    const wanted = (l: StoredLease): boolean => l.metadata.namespace === namespace && selector(l.metadata.labels);
    // No version (or "0"): the current state as ADDED events; otherwise every change after that version.
    if (fromVersion === '' || fromVersion === '0') {
      for (const l of this.leases.values()) if (wanted(l)) res.write(`${JSON.stringify({ type: 'ADDED', object: l })}\n`);
    } else {
      for (const e of this.history) {
        if (Number(e.lease.metadata.resourceVersion) > Number(fromVersion) && wanted(e.lease)) res.write(`${JSON.stringify({ type: e.type, object: e.lease })}\n`);
      }
    }
    this.watchers.add(w);
    let timer: NodeJS.Timeout | undefined;
    const end = (): void => {
      clearTimeout(timer);
      this.watchers.delete(w);
      if (!res.writableEnded) res.end();
    };
    req.socket.once('close', end);
    res.once('close', end);
    if (timeoutSeconds > 0) timer = setTimeout(end, timeoutSeconds * 1000).unref();
  }

  private notify(type: 'ADDED' | 'MODIFIED' | 'DELETED', lease: StoredLease): void {
    this.history.push({ type, lease: structuredClone(lease) });
    for (const w of this.watchers) {
      if (w.namespace === lease.metadata.namespace && w.selector(lease.metadata.labels)) w.res.write(`${JSON.stringify({ type, object: lease })}\n`);
    }
  }
}

/** Start a stand-in API on a free loopback port. */
export function startKubeApi(options: KubeApiOptions = {}): Promise<KubeApi> {
  return new KubeApi(options).start();
}

/** Equality-based label selectors (`a=b`, `a==b`, `a!=b`, `a`, `!a`, comma-separated), as the API server reads them. */
export function parseSelector(text: string): (labels: Record<string, string> | undefined) => boolean {
  const terms = text
    .split(',')
    .map((t) => t.trim())
    .filter((t) => t !== '')
    .map((t) => {
      let m = /^([^!=]+)!=(.*)$/.exec(t);
      if (m) return (l: Record<string, string>) => l[m![1]!.trim()] !== m![2]!.trim();
      m = /^([^!=]+)==?(.*)$/.exec(t);
      if (m) return (l: Record<string, string>) => l[m![1]!.trim()] === m![2]!.trim();
      if (t.startsWith('!')) return (l: Record<string, string>) => !(t.slice(1) in l);
      return (l: Record<string, string>) => t in l;
    });
  return (labels) => terms.every((term) => term(labels ?? {}));
}
