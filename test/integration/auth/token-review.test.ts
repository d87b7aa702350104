/**
 * TokenReview agent authentication against a stand-in Kubernetes API on loopback (HTTPS, test certificates): the
 * server reviews each agent's bearer token and admits only the configured service account.
 */
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  Agent,
  ErrorCode,
  ProxyServer,
  inClusterConfig,
  isKonnectivityError,
  loadKubeconfig,
  memoryConnector,
  tokenReviewVerifier,
} from '../../../src/index.js';
import { expectNoLeaks, snapshotResources, type ResourceSnapshot } from '../../helpers/leaks.js';
import { KUBE_API_CA, startKubeApi, type KubeApi } from '../../helpers/kube-api.js';

/** Tokens the stand-in API knows: token -> username. */
const USERS: Record<string, string> = {
  'good-token': 'system:serviceaccount:kube-system:konnectivity-agent',
  'other-sa-token': 'system:serviceaccount:default:someone-else',
};

describe('TokenReview agent authentication', () => {
  let before: ResourceSnapshot;
  let api: KubeApi;
  let apiURL: string;
  let dir: string;
  const reviews = () => api.requests.filter((r) => r.path === '/apis/authentication.k8s.io/v1/tokenreviews' && r.status === 201);

  beforeEach(async () => {
    before = snapshotResources();
    dir = mkdtempSync(join(tmpdir(), 'ktr-'));
    api = await startKubeApi({ users: USERS, misbehave: { 'trickle-token': 'trickle', 'huge-token': 'huge' } });
    apiURL = api.url;
  });

  afterEach(async () => {
    await api.stop();
    rmSync(dir, { recursive: true, force: true });
    await expectNoLeaks(before);
  });

  const kubeconfig = (user: string): string => api.kubeconfig(dir, user);

  async function serverWith(kubeconfigPath: string, limits: { timeoutMs?: number; maxResponseBytes?: number } = {}): Promise<ProxyServer> {
    return new ProxyServer({
      authenticateAgent: tokenReviewVerifier({
        api: await loadKubeconfig(kubeconfigPath),
        namespace: 'kube-system',
        serviceAccount: 'konnectivity-agent',
        audience: 'system:konnectivity-server',
        ...limits,
      }),
    });
  }

  it('refuses the agent when the review has no complete answer within timeoutMs, even one that trickles', async () => {
    const server = await serverWith(kubeconfig('token: api-token'), { timeoutMs: 200 });
    try {
      const err = await new Agent({ agentID: 'a', token: () => 'trickle-token' })
        .connect(memoryConnector((incoming) => void server.acceptAgent(incoming)))
        .catch((e: unknown) => e);
      expect(isKonnectivityError(err, ErrorCode.UNAUTHENTICATED)).toBe(true);
      expect((err as Error).message).toMatch(/token review failed: no answer within 200 ms/);
    } finally {
      server.destroy();
    }
  });

  it('refuses the agent when the answer is larger than maxResponseBytes, without reading it all', async () => {
    const server = await serverWith(kubeconfig('token: api-token'), { maxResponseBytes: 4096 });
    try {
      const err = await new Agent({ agentID: 'a', token: () => 'huge-token' })
        .connect(memoryConnector((incoming) => void server.acceptAgent(incoming)))
        .catch((e: unknown) => e);
      expect(isKonnectivityError(err, ErrorCode.UNAUTHENTICATED)).toBe(true);
      expect((err as Error).message).toMatch(/answer is over 4096 bytes/);
    } finally {
      server.destroy();
    }
  });

  it('checks its limits when made', async () => {
    const api = await loadKubeconfig(kubeconfig('token: api-token'));
    const make = (limits: object) => () => tokenReviewVerifier({ api, namespace: 'n', serviceAccount: 's', ...limits });
    expect(make({ timeoutMs: 0 })).toThrow(expect.objectContaining({ code: ErrorCode.INVALID_OPTION }));
    expect(make({ maxResponseBytes: -1 })).toThrow(expect.objectContaining({ code: ErrorCode.INVALID_OPTION }));
  });

  it('admits the configured service account and refuses other tokens, with clear errors', async () => {
    const server = await serverWith(kubeconfig('token: api-token'));
    const connector = memoryConnector((incoming) => void server.acceptAgent(incoming));
    const connect = (token?: string) => new Agent({ agentID: 'a', ...(token ? { token: () => token } : {}) }).connect(connector);
    try {
      const tunnel = await connect('good-token');
      expect(tunnel.serverID).toBe(server.serverID);
      expect((reviews()[0]!.body as { spec: unknown }).spec).toEqual({ token: 'good-token', audiences: ['system:konnectivity-server'] });
      for (const [token, message] of [
        ['other-sa-token', /belongs to "system:serviceaccount:default:someone-else"/],
        ['forged', /not authenticated: token not recognised/],
        [undefined, /missing bearer token/],
      ] as const) {
        const err = await connect(token).catch((e: unknown) => e);
        expect(isKonnectivityError(err, ErrorCode.UNAUTHENTICATED)).toBe(true);
        expect((err as Error).message).toMatch(message);
      }
      expect(server.agentCount).toBe(1);
      tunnel.destroy();
    } finally {
      server.destroy();
    }
  });

  it('fails closed when the Kubernetes API refuses the proxy server itself', async () => {
    const server = await serverWith(kubeconfig('token: wrong-api-token'));
    try {
      const err = await new Agent({ agentID: 'a', token: () => 'good-token' })
        .connect(memoryConnector((incoming) => void server.acceptAgent(incoming)))
        .catch((e: unknown) => e);
      expect(isKonnectivityError(err, ErrorCode.UNAUTHENTICATED)).toBe(true);
      expect((err as Error).message).toMatch(/token review failed: the Kubernetes API answered 401/);
    } finally {
      server.destroy();
    }
  });

  it('reads kubeconfig token files, refuses exec plugins, and builds the in-cluster config', async () => {
    writeFileSync(join(dir, 'api-token'), 'api-token\n');
    const fromFile = await loadKubeconfig(kubeconfig('tokenFile: api-token'));
    expect(fromFile).toMatchObject({ server: apiURL, tokenFile: join(dir, 'api-token') });
    await expect(loadKubeconfig(kubeconfig('exec: {command: aws}'))).rejects.toThrow(/exec plugins/);
    writeFileSync(join(dir, 'ca.crt'), KUBE_API_CA);
    expect(await inClusterConfig({ KUBERNETES_SERVICE_HOST: 'fd00::1', KUBERNETES_SERVICE_PORT: '443' }, dir)).toMatchObject({
      server: 'https://[fd00::1]:443',
      tokenFile: `${dir}/token`,
    });
    await expect(inClusterConfig({}, dir)).rejects.toThrow(/not running in a cluster/);
  });
});
