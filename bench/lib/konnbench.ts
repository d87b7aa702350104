/**
 * The Go reference peer kit (`../shared/peer/install.sh .peer`, see its README): where its binaries and test
 * certificates are, and how to run `konnbench`, the client linked against the reference's konnectivity-client
 * (the one kube-apiserver uses) that drives both stacks in the reference section.
 */
import { execFile } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { resolve } from 'node:path';
import { track } from './children.js';

/** The peer kit's files. */
export interface PeerKit {
  dir: string;
  bin: { proxyServer: string; proxyAgent: string; konnbench: string; target: string };
  certs: { ca: string; serverCert: string; serverKey: string; agentCert: string; agentKey: string };
}

/**
 * Find the kit in `dir` (default: `$KONNECTIVITY_PEER_DIR`, else `.peer/` of the checkout). Returns what is
 * missing instead when it is not (fully) installed.
 */
export function findPeerKit(root: string, dir = process.env.KONNECTIVITY_PEER_DIR ?? resolve(root, '.peer')): PeerKit | { missing: string } {
  const kit: PeerKit = {
    dir,
    bin: {
      proxyServer: resolve(dir, 'bin/proxy-server'),
      proxyAgent: resolve(dir, 'bin/proxy-agent'),
      konnbench: resolve(dir, 'bin/konnbench'),
      target: resolve(dir, 'bin/target'),
    },
    certs: {
      ca: resolve(dir, 'certs/ca.crt'),
      serverCert: resolve(dir, 'certs/server.crt'),
      serverKey: resolve(dir, 'certs/server.key'),
      agentCert: resolve(dir, 'certs/agent.crt'),
      agentKey: resolve(dir, 'certs/agent.key'),
    },
  };
  const missing: string[] = [];
  for (const f of Object.values(kit.bin)) {
    try {
      accessSync(f, constants.X_OK);
    } catch {
      missing.push(f);
    }
  }
  for (const f of Object.values(kit.certs)) {
    try {
      accessSync(f, constants.R_OK);
    } catch {
      missing.push(f);
    }
  }
  return missing.length ? { missing: missing.length > 3 ? `${dir} (not installed)` : missing.join(', ') } : kit;
}

/** konnbench's one JSON output line (see the peer kit's README). */
export interface KonnbenchResult {
  ok: boolean;
  test: string;
  mode: string;
  bytes: number;
  secs: number;
  /** 10^6 bytes per second. */
  MBps: number;
  dials_per_s: number;
  p50_ms: number;
  p99_ms: number;
  errors: number;
  error: string;
}

/** The JSON line in konnbench's stdout; a result with `ok: false` and the reason when there is none. */
export function parseKonnbenchOutput(stdout: string, stderr = ''): KonnbenchResult {
  const line = stdout
    .split('\n')
    .map((l) => l.trim())
    .reverse()
    .find((l) => l.startsWith('{'));
  const fail = (error: string): KonnbenchResult => ({
    ok: false, test: '', mode: '', bytes: 0, secs: 0, MBps: 0, dials_per_s: 0, p50_ms: 0, p99_ms: 0, errors: 1, error,
  });
  if (!line) return fail(`no result line from konnbench${stderr.trim() ? `: ${stderr.trim().split('\n').pop()}` : ''}`);
  try {
    const r = JSON.parse(line) as Partial<KonnbenchResult>;
    if (typeof r.ok !== 'boolean') return fail(`unexpected konnbench output: ${line}`);
    return { ...fail(''), ...r, errors: r.errors ?? 0, error: r.error ?? '' } as KonnbenchResult;
  } catch {
    return fail(`unexpected konnbench output: ${line}`);
  }
}

/** The arguments of one konnbench run. */
export interface KonnbenchArgs {
  mode: 'direct' | 'grpc' | 'http-connect';
  /** The frontend's Unix socket (not for `direct`). */
  uds?: string;
  /** host:port of the target program. */
  target: string;
  test: 'bulk' | 'rr' | 'smoke';
  dir?: 'up' | 'down';
  bytes?: number;
  conns?: number;
  /** rr: cycles and concurrent dialers. */
  n?: number;
  c?: number;
  timeoutSec?: number;
}

/** konnbench's command line for `a`. */
export function konnbenchArgv(a: KonnbenchArgs): string[] {
  const argv = ['-mode', a.mode, '-target', a.target, '-test', a.test];
  if (a.uds) argv.push('-uds', a.uds);
  if (a.dir) argv.push('-dir', a.dir);
  if (a.bytes !== undefined) argv.push('-bytes', String(a.bytes));
  if (a.conns !== undefined) argv.push('-conns', String(a.conns));
  if (a.n !== undefined) argv.push('-n', String(a.n));
  if (a.c !== undefined) argv.push('-c', String(a.c));
  if (a.timeoutSec !== undefined) argv.push('-timeout', `${a.timeoutSec}s`);
  return argv;
}

/** Run konnbench once; never rejects (a failure is a result with `ok: false`). */
export function runKonnbench(bin: string, a: KonnbenchArgs): Promise<KonnbenchResult> {
  const timeoutSec = a.timeoutSec ?? 120;
  return new Promise((res) => {
    track(execFile(bin, konnbenchArgv({ ...a, timeoutSec }), { timeout: (timeoutSec + 15) * 1000, maxBuffer: 1 << 20 }, (err, stdout, stderr) => {
      const r = parseKonnbenchOutput(stdout, stderr);
      if (!r.ok && !r.error && err) r.error = err.message.split('\n')[0]!;
      res(r);
    }));
  });
}
