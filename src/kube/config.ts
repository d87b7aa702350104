/**
 * Where and how to reach the Kubernetes API: a kubeconfig file (its current context) or the pod's in-cluster
 * service account, as client-go resolves them for the reference binaries' `--kubeconfig`.
 */
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { joinHostPort } from '../protocol/address.js';
import { ErrorCode, KonnectivityError } from '../protocol/errors.js';

/** Where and how to reach the Kubernetes API. */
export interface KubernetesApiConfig {
  /** `https://host:port` of the API server. */
  server: string;
  /** PEM CA bundle of the API server. */
  ca?: Buffer | undefined;
  /** A bearer token for the API, or a file holding one (read for every request, so rotation is picked up). */
  token?: string | undefined;
  /** A bearer token file, read again for each request (rotated tokens are picked up). */
  tokenFile?: string | undefined;
  /** A client certificate and key for the API. */
  cert?: Buffer | undefined;
  /** PEM client key, with `cert`. */
  key?: Buffer | undefined;
  /** Skip verifying the API server's certificate (kubeconfig's `insecure-skip-tls-verify`). */
  insecureSkipTLSVerify?: boolean | undefined;
}

const unsupported = (what: string): KonnectivityError => new KonnectivityError(ErrorCode.INVALID_OPTION, `kubeconfig: ${what}`);

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
  // yaml is loaded here, not at import: a program that reads no kubeconfig never pays for it.
  const { parse: parseYaml } = await import('yaml');
  const doc = parseYaml(await readFile(path, 'utf8')) as Record<string, unknown> | null;
  if (!doc || typeof doc !== 'object') throw unsupported(`${path} is empty`);
  const base = dirname(path);
  const file = (p: unknown): Promise<Buffer> => readFile(resolve(base, String(p)));
  const data = (d: unknown): Buffer => Buffer.from(String(d), 'base64');
  const { context } = byName(doc['contexts'] as Named<{ context: { cluster: string; user?: string } }>, doc['current-context'], 'context');
  const { cluster } = byName(doc['clusters'] as Named<{ cluster: Record<string, unknown> }>, context.cluster, 'cluster');
  const user: Record<string, unknown> = context.user
    ? (byName(doc['users'] as Named<{ user: Record<string, unknown> }>, context.user, 'user').user ?? {})
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

/** `--kubeconfig` when given, otherwise the in-cluster configuration (client-go's order). */
export function kubeApiConfig(kubeconfig: string): Promise<KubernetesApiConfig> {
  return kubeconfig ? loadKubeconfig(kubeconfig) : inClusterConfig();
}
