/**
 * Agent authentication by Kubernetes TokenReview, as the reference server does with `--agent-namespace`,
 * `--agent-service-account`, `--authentication-audience` and `--kubeconfig`: the agent's bearer token is reviewed
 * by the Kubernetes API, and the reviewed user must be `system:serviceaccount:<namespace>:<service account>`.
 * Every failure refuses the agent (fail closed).
 */
import https from 'node:https';
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { joinHostPort } from '../../protocol/address.js';
import { ErrorCode, KonnectivityError } from '../../protocol/errors.js';
import type { Metadata } from '../../transport/packet-stream.js';
import type { AgentAuthContext } from './agent-auth.js';

/** Where and how to reach the Kubernetes API. */
export interface KubernetesApiConfig {
  /** `https://host:port` of the API server. */
  server: string;
  /** PEM CA bundle of the API server. */
  ca?: Buffer | undefined;
  /** A bearer token for the API, or a file holding one (read for every request, so rotation is picked up). */
  token?: string | undefined;
  /** A bearer token file, read again for each review (rotated tokens are picked up). */
  tokenFile?: string | undefined;
  /** A client certificate and key for the API. */
  cert?: Buffer | undefined;
  /** PEM client key, with `cert`. */
  key?: Buffer | undefined;
  /** Skip verifying the API server's certificate (kubeconfig's `insecure-skip-tls-verify`). */
  insecureSkipTLSVerify?: boolean | undefined;
}

/** The agent's bearer token from the `authorization` metadata, or undefined. */
export function bearerToken(metadata: Metadata): string | undefined {
  const values = metadata['authorization'] ?? [];
  const header = values.length === 1 ? values[0]! : '';
  // A token file may end with a newline that the agent sends verbatim.
  const token = header.startsWith('Bearer ') ? header.slice('Bearer '.length).trim() : '';
  return token === '' ? undefined : token;
}

const unsupported = (what: string): KonnectivityError =>
  new KonnectivityError(ErrorCode.INVALID_OPTION, `kubeconfig: ${what}`);

type Named<T> = Array<{ name?: string } & T> | undefined;
function byName<T>(list: Named<T>, name: unknown, kind: string): T {
  const hit = list?.find((e) => e.name === name);
  if (!hit) throw unsupported(`no ${kind} named ${JSON.stringify(name)}`);
  return hit;
}

/**
 * Read a kubeconfig file (its current context): server, CA, and a token, token file or client certificate.
 * Exec plugins and auth providers are refused with a clear error.
 */
export async function loadKubeconfig(path: string): Promise<KubernetesApiConfig> {
  // yaml is loaded here, not at import: a server that reads no kubeconfig never pays for it.
  const { parse: parseYaml } = await import('yaml');
  const doc = parseYaml(await readFile(path, 'utf8')) as Record<string, unknown> | null;
  if (!doc || typeof doc !== 'object') throw unsupported(`${path} is empty`);
  const base = dirname(path);
  const file = (p: unknown): Promise<Buffer> => readFile(resolve(base, String(p)));
  const data = (d: unknown): Buffer => Buffer.from(String(d), 'base64');
  const { context } = byName(doc['contexts'] as Named<{ context: { cluster: string; user?: string } }>, doc['current-context'], 'context');
  const { cluster } = byName(doc['clusters'] as Named<{ cluster: Record<string, unknown> }>, context.cluster, 'cluster');
  const user: Record<string, unknown> = context.user
    ? byName(doc['users'] as Named<{ user: Record<string, unknown> }>, context.user, 'user').user ?? {}
    : {};
  if (user['exec'] || user['auth-provider']) throw unsupported('exec plugins and auth providers are not supported; use a token or a client certificate');
  if (typeof cluster['server'] !== 'string') throw unsupported(`cluster ${context.cluster} has no server`);
  const pick = async (dataKey: string, fileKey: string, from: Record<string, unknown>): Promise<Buffer | undefined> =>
    from[dataKey] ? data(from[dataKey]) : from[fileKey] ? file(from[fileKey]) : undefined;
  return {
    server: cluster['server'],
    ca: await pick('certificate-authority-data', 'certificate-authority', cluster),
    insecureSkipTLSVerify: cluster['insecure-skip-tls-verify'] === true,
    token: typeof user['token'] === 'string' ? user['token'] : undefined,
    tokenFile: typeof user['tokenFile'] === 'string' ? resolve(base, user['tokenFile']) : undefined,
    cert: await pick('client-certificate-data', 'client-certificate', user),
    key: await pick('client-key-data', 'client-key', user),
  };
}

/** The in-cluster API config: `KUBERNETES_SERVICE_HOST`/`_PORT` and the pod's service account files. */
export async function inClusterConfig(
  env: NodeJS.ProcessEnv = process.env,
  dir = '/var/run/secrets/kubernetes.io/serviceaccount',
): Promise<KubernetesApiConfig> {
  const host = env['KUBERNETES_SERVICE_HOST'];
  const port = env['KUBERNETES_SERVICE_PORT'];
  if (!host || !port) {
    throw new KonnectivityError(ErrorCode.INVALID_OPTION, 'not running in a cluster (KUBERNETES_SERVICE_HOST/PORT unset): give --kubeconfig');
  }
  return {
    server: `https://${joinHostPort(host, port)}`,
    ca: await readFile(`${dir}/ca.crt`),
    tokenFile: `${dir}/token`,
  };
}

/** Options of the TokenReview authenticator: how to reach the API server and which service account to accept. */
export interface TokenReviewOptions {
  /** How to reach the Kubernetes API server. */
  api: KubernetesApiConfig;
  /** The agents' service account: the reviewed user must be `system:serviceaccount:<namespace>:<serviceAccount>`. */
  namespace: string;
  /** The service account agents must authenticate as (`--agent-service-account`). */
  serviceAccount: string;
  /** The audience the agent token is bound to (`--authentication-audience`). */
  audience?: string | undefined;
  /** How long one review may take (default 10000). */
  timeoutMs?: number;
}

interface TokenReviewStatus {
  authenticated?: boolean;
  user?: { username?: string };
  error?: string;
}

/** An `authenticateAgent` hook for ProxyServer that checks the agent's token with a TokenReview. */
export function tokenReviewVerifier(options: TokenReviewOptions): (ctx: AgentAuthContext) => Promise<void> {
  const want = `system:serviceaccount:${options.namespace}:${options.serviceAccount}`;
  const refuse = (agentID: string, why: string, cause?: unknown): KonnectivityError =>
    new KonnectivityError(ErrorCode.UNAUTHENTICATED, `agent ${agentID}: ${why}`, cause === undefined ? {} : { cause });
  return async ({ metadata, agentID }) => {
    const token = bearerToken(metadata);
    if (!token) throw refuse(agentID, 'missing bearer token');
    let status: TokenReviewStatus;
    try {
      status = await review(options, token);
    } catch (err) {
      throw refuse(agentID, `token review failed: ${(err as Error).message}`, err);
    }
    if (!status.authenticated) throw refuse(agentID, `token not authenticated${status.error ? `: ${status.error}` : ''}`);
    if (status.user?.username !== want) {
      throw refuse(agentID, `token belongs to ${JSON.stringify(status.user?.username ?? '')}, expected ${JSON.stringify(want)}`);
    }
  };
}

async function review(options: TokenReviewOptions, token: string): Promise<TokenReviewStatus> {
  const { api } = options;
  const apiToken = api.tokenFile ? (await readFile(api.tokenFile, 'utf8')).trim() : api.token;
  const body = JSON.stringify({
    apiVersion: 'authentication.k8s.io/v1',
    kind: 'TokenReview',
    spec: { token, ...(options.audience ? { audiences: [options.audience] } : {}) },
  });
  const url = new URL('/apis/authentication.k8s.io/v1/tokenreviews', api.server);
  return new Promise<TokenReviewStatus>((resolveReview, reject) => {
    const req = https.request(
      url,
      {
        method: 'POST',
        ...(api.ca ? { ca: api.ca } : {}),
        ...(api.cert && api.key ? { cert: api.cert, key: api.key } : {}),
        rejectUnauthorized: !api.insecureSkipTLSVerify,
        timeout: options.timeoutMs ?? 10_000,
        headers: {
          'content-type': 'application/json',
          accept: 'application/json',
          'content-length': Buffer.byteLength(body),
          ...(apiToken ? { authorization: `Bearer ${apiToken}` } : {}),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          if (res.statusCode !== 200 && res.statusCode !== 201) {
            reject(new Error(`the Kubernetes API answered ${res.statusCode}: ${text.slice(0, 200)}`));
            return;
          }
          try {
            resolveReview(((JSON.parse(text) as { status?: TokenReviewStatus }).status ?? {}) as TokenReviewStatus);
          } catch (err) {
            reject(new Error(`the Kubernetes API answered with bad JSON: ${(err as Error).message}`));
          }
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end(body);
  });
}
