/**
 * TokenReview agent authentication against a stand-in Kubernetes API on loopback (HTTPS, test certificates): the
 * server reviews each agent's bearer token and admits only the configured service account.
 */
import https from 'node:https';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
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

const fixtures = new URL('../http-connect/fixtures/', import.meta.url);
const pem = (name: string) => readFileSync(new URL(name, fixtures));

/** Tokens the stand-in API knows: token -> username. */
const USERS: Record<string, string> = {
  'good-token': 'system:serviceaccount:kube-system:konnectivity-agent',
  'other-sa-token': 'system:serviceaccount:default:someone-else',
};

describe('TokenReview agent authentication', () => {
  let before: ResourceSnapshot;
  let api: https.Server;
  let apiURL: string;
  let dir: string;
  const requests: Array<{ authorization: string | undefined; body: { spec: { token: string; audiences?: string[] } } }> = [];

  beforeEach(async () => {
    before = snapshotResources();
    requests.length = 0;
    dir = mkdtempSync(join(tmpdir(), 'ktr-'));
    api = https.createServer({ key: pem('server-key.pem'), cert: pem('server.pem') }, (req, res) => {
      let text = '';
      req.setEncoding('utf8').on('data', (c: string) => (text += c));
      req.on('end', () => {
        if (req.method !== 'POST' || req.url !== '/apis/authentication.k8s.io/v1/tokenreviews') {
          res.writeHead(404).end();
          return;
        }
        if (req.headers.authorization !== 'Bearer api-token') {
          res.writeHead(401).end('{"kind":"Status","message":"Unauthorized"}');
          return;
        }
        const body = JSON.parse(text) as { spec: { token: string; audiences?: string[] } };
        requests.push({ authorization: req.headers.authorization, body });
        const username = USERS[body.spec.token];
        const status = username && body.spec.audiences?.[0] === 'system:konnectivity-server'
          ? { authenticated: true, user: { username } }
          : { authenticated: false, error: 'token not recognised' };
        res.writeHead(201, { 'content-type': 'application/json' }).end(JSON.stringify({ kind: 'TokenReview', status }));
      });
    });
    api.listen(0, '127.0.0.1');
    await once(api, 'listening');
    apiURL = `https://127.0.0.1:${(api.address() as AddressInfo).port}`;
  });

  afterEach(async () => {
    await new Promise<void>((r) => api.close(() => r()));
    rmSync(dir, { recursive: true, force: true });
    await expectNoLeaks(before);
  });

  function kubeconfig(user: string): string {
    const path = join(dir, 'kubeconfig');
    writeFileSync(join(dir, 'ca.pem'), pem('ca.pem'));
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
        `    server: ${apiURL}`,
        '    certificate-authority: ca.pem',
        'users:',
        '- name: proxy',
        '  user:',
        `    ${user}`,
        '',
      ].join('\n'),
    );
    return path;
  }

  async function serverWith(kubeconfigPath: string): Promise<ProxyServer> {
    return new ProxyServer({
      authenticateAgent: tokenReviewVerifier({
        api: await loadKubeconfig(kubeconfigPath),
        namespace: 'kube-system',
        serviceAccount: 'konnectivity-agent',
        audience: 'system:konnectivity-server',
      }),
    });
  }

  it('admits the configured service account and refuses other tokens, with clear errors', async () => {
    const server = await serverWith(kubeconfig('token: api-token'));
    const connector = memoryConnector((incoming) => void server.acceptAgent(incoming));
    const connect = (token?: string) => new Agent({ agentID: 'a', ...(token ? { token: () => token } : {}) }).connect(connector);
    try {
      const tunnel = await connect('good-token');
      expect(tunnel.serverID).toBe(server.serverID);
      expect(requests[0]!.body.spec).toEqual({ token: 'good-token', audiences: ['system:konnectivity-server'] });
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
    writeFileSync(join(dir, 'ca.crt'), pem('ca.pem'));
    expect(await inClusterConfig({ KUBERNETES_SERVICE_HOST: 'fd00::1', KUBERNETES_SERVICE_PORT: '443' }, dir)).toMatchObject({
      server: 'https://[fd00::1]:443',
      tokenFile: `${dir}/token`,
    });
    await expect(inClusterConfig({}, dir)).rejects.toThrow(/not running in a cluster/);
  });
});
