/**
 * Agent authentication by Kubernetes TokenReview, as the reference server does with `--agent-namespace`,
 * `--agent-service-account`, `--authentication-audience` and `--kubeconfig`: the agent's bearer token is reviewed
 * by the Kubernetes API, and the reviewed user must be `system:serviceaccount:<namespace>:<service account>`.
 * Every failure refuses the agent (fail closed).
 */
import { ErrorCode, KonnectivityError } from '../../protocol/errors.js';
import { checkNumber } from '../../protocol/options.js';
import type { Metadata } from '../../transport/packet-stream.js';
import { KubeClient } from '../../kube/client.js';
import type { KubernetesApiConfig } from '../../kube/config.js';
import type { AgentAuthContext } from './agent-auth.js';

export { inClusterConfig, loadKubeconfig, type KubernetesApiConfig } from '../../kube/config.js';

/** The agent's bearer token from the `authorization` metadata, or undefined. */
export function bearerToken(metadata: Metadata): string | undefined {
  const values = metadata['authorization'] ?? [];
  const header = values.length === 1 ? values[0]! : '';
  // A token file may end with a newline that the agent sends verbatim.
  const token = header.startsWith('Bearer ') ? header.slice('Bearer '.length).trim() : '';
  return token === '' ? undefined : token;
}

/** Options of the TokenReview authenticator: how to reach the API server and which service account to accept. */
export interface TokenReviewOptions {
  /** The API to ask; give `client` instead to share one (and its rate limit) with other callers. */
  api?: KubernetesApiConfig;
  /** A Kubernetes API client to share (instead of `api`). */
  client?: KubeClient;
  /** The agents' service account: the reviewed user must be `system:serviceaccount:<namespace>:<serviceAccount>`. */
  namespace: string;
  /** The service account agents must authenticate as (`--agent-service-account`). */
  serviceAccount: string;
  /** The audience the agent token is bound to (`--authentication-audience`). */
  audience?: string | undefined;
  /**
   * How long one review may take, from the request to the end of the answer, in ms (default 10000). With `client`,
   * the shorter of this and the client's own timeout applies.
   */
  timeoutMs?: number;
  /** The most bytes of an answer read before the review fails (default 1 MiB; an answer is a few hundred bytes). */
  maxResponseBytes?: number;
}

const DEFAULT_REVIEW_TIMEOUT_MS = 10_000;
const DEFAULT_MAX_RESPONSE_BYTES = 1024 * 1024;

interface TokenReviewStatus {
  authenticated?: boolean;
  user?: { username?: string };
  error?: string;
}

/** An `authenticateAgent` hook for ProxyServer that checks the agent's token with a TokenReview. */
export function tokenReviewVerifier(options: TokenReviewOptions): (ctx: AgentAuthContext) => Promise<void> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_REVIEW_TIMEOUT_MS;
  const maxResponseBytes = options.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES;
  checkNumber('timeoutMs', timeoutMs, { above: 0, max: 2 ** 31 - 1 });
  checkNumber('maxResponseBytes', maxResponseBytes, { integer: true, above: 0 });
  const client = options.client ?? (options.api ? new KubeClient(options.api, { timeoutMs }) : undefined);
  if (!client) throw new KonnectivityError(ErrorCode.INVALID_OPTION, 'tokenReviewVerifier: give `api` or `client`');
  const want = `system:serviceaccount:${options.namespace}:${options.serviceAccount}`;
  const refuse = (agentID: string, why: string, cause?: unknown): KonnectivityError =>
    new KonnectivityError(ErrorCode.UNAUTHENTICATED, `agent ${agentID}: ${why}`, cause === undefined ? {} : { cause });
  return async ({ metadata, agentID }) => {
    const token = bearerToken(metadata);
    if (!token) throw refuse(agentID, 'missing bearer token');
    let status: TokenReviewStatus;
    try {
      status = await review(client, options.audience, token, { timeoutMs, maxResponseBytes });
    } catch (err) {
      throw refuse(agentID, `token review failed: ${(err as Error).message}`, err);
    }
    if (!status.authenticated) throw refuse(agentID, `token not authenticated${status.error ? `: ${status.error}` : ''}`);
    if (status.user?.username !== want) {
      throw refuse(agentID, `token belongs to ${JSON.stringify(status.user?.username ?? '')}, expected ${JSON.stringify(want)}`);
    }
  };
}

async function review(client: KubeClient, audience: string | undefined, token: string, limits: { timeoutMs: number; maxResponseBytes: number }): Promise<TokenReviewStatus> {
  const answer = await client.request<{ status?: TokenReviewStatus }>('POST', '/apis/authentication.k8s.io/v1/tokenreviews', {
    ...limits,
    body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token, ...(audience ? { audiences: [audience] } : {}) } },
  });
  return answer?.status ?? {};
}
