/**
 * The reference section of `npm run bench`: konnectivity-ts against the Go reference v0.31.4, both as their
 * programs (server and agent processes, frontend on a Unix socket, TLS agent leg with the peer kit's
 * certificates), both driven by the same client, `konnbench` (the reference's konnectivity-client, as in
 * kube-apiserver), against the kit's Go `target`. Raw TCP is konnbench straight to that target, in the same run.
 * Idle connections are held by the bench's Node client over the Unix socket, for both stacks alike.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join, resolve } from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { track } from './lib/children.js';
import { RoleProcess } from './lib/ipc.js';
import { runKonnbench, type KonnbenchArgs, type PeerKit } from './lib/konnbench.js';
import { cpuSecondsOf, nofileOf, rssOf } from './lib/procfs.js';
import { collectRxTrace } from './lib/rx-trace.js';
import { emptyReference, REF_PATH_LABELS, REF_STACK_LABELS, type Impl, type RefDial, type RefIdle, type RefPathName, type RefRate, type RefResults, type RefStack } from './lib/results.js';
import { freePorts, Stack, type Programs } from './lib/stack.js';
import { median } from './lib/stats.js';

/** What the reference section runs and how much. */
export interface RefOptions {
  bulk: boolean;
  dial: boolean;
  idle: boolean;
  latency: boolean;
  paths: RefPathName[];
  /** Bytes of each loopback bulk case (one connection). */
  bytes: number;
  /** Bytes of each long-link case, over all its connections. */
  longLinkBytes: number;
  delayMs: number;
  repeats: number;
  /** About how long each dial-rate run lasts (its cycle count comes from a short pilot run). */
  dialMs: number;
  idleConns: number;
  /** Also hold as many idle connections as the open-files limit allows (20,000 at most). */
  idleMax: boolean;
  cpuProf: boolean;
  profileDir: string;
  logDir: string;
  /** The bench's own Node target (idle connections end there). */
  nodeTargetPort: number;
  nodeTarget: RoleProcess;
  /** Called with one line as each case finishes. */
  progress: (line: string) => void;
}

const GiB = 1024 ** 3;
/** Fewer than the limit by this much: every process also holds listeners, pipes and its agent leg. */
const NOFILE_MARGIN = 100;
const IDLE_MAX_CAP = 20_000;
/**
 * Warm-up before each dial-rate case: until this many cycles or seconds, whichever comes first. Our processes reach
 * V8's optimized code only after some thousand dials (bench/README.md, "One dial's timeline": 318/s after 500
 * dials, 879/s after 6,000, on the same processes); a server runs warm, so the rate is measured warm. Go gets the
 * same warm-up.
 */
const WARMUP_CYCLES = 6000;
const WARMUP_SEC = 15;
/** What a fresh stack moves each way before its bulk or long-link cases (see warmUp). */
const WARMUP_BYTES = 64 * 1024 * 1024;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Spawn the kit's Go target and wait until it accepts. */
async function startGoTarget(kit: PeerKit): Promise<{ port: number; child: ChildProcess }> {
  const [port] = await freePorts(1);
  const child = track(spawn(kit.bin.target, ['-listen', `127.0.0.1:${port}`], { stdio: 'ignore' }));
  child.on('error', () => {});
  const until = Date.now() + 10_000;
  for (;;) {
    const ok = await new Promise<boolean>((res) => {
      const s = net.connect({ port: port!, host: '127.0.0.1' }, () => (s.destroy(), res(true)));
      s.on('error', () => res(false));
    });
    if (ok) return { port: port!, child };
    if (Date.now() > until) throw new Error('the Go target did not start');
    await sleep(50);
  }
}

/** Labels for progress lines. */
function caseName(path: RefPathName | 'raw', stack: RefStack): string {
  return path === 'raw' ? REF_STACK_LABELS.raw : `${REF_PATH_LABELS[path]}, ${REF_STACK_LABELS[stack]}`;
}

export async function runReference(kit: PeerKit, ts: Programs['ts'], o: RefOptions): Promise<RefResults> {
  const r = emptyReference('ok');
  const programs: Programs = { kit, ts, logDir: o.logDir };
  const tmp = mkdtempSync(join(os.tmpdir(), 'kbench-'));
  const konnbench = (a: KonnbenchArgs) => runKonnbench(kit.bin.konnbench, a);
  const goTarget = await startGoTarget(kit);
  const target = `127.0.0.1:${goTarget.port}`;
  const client = o.idle || o.idleMax ? new RoleProcess('client', {}) : undefined;
  const fail = (what: string, err: unknown) => {
    const error = (err as Error)?.message?.split('\n')[0] ?? String(err);
    r.failures.push({ what, error });
    o.progress(`${what}: FAILED (${error})`);
  };

  /** Run `fn` under the CPU profiler of the stack's konnectivity-ts processes (with --cpu-prof). */
  async function profiled<T>(stack: Stack | undefined, name: string, fn: () => Promise<T>): Promise<T> {
    const roles = o.cpuProf && stack
      ? ([['server', stack.server.role], ['agent', stack.agent?.role]] as const).filter((e): e is readonly ['server' | 'agent', RoleProcess] => !!e[1])
      : [];
    await Promise.all(roles.map(([, p]) => p.call('profileStart')));
    try {
      return await fn();
    } finally {
      await Promise.all(roles.map(([role, p]) => p.call('profileStop', { file: resolve(o.profileDir, `kb-${stack!.name}-${name}-${role}.cpuprofile`) })));
      if (roles.length) await collectRxTrace(`konnbench ${stack!.name} ${name}`, roles, resolve(o.profileDir, `kb-${stack!.name}-${name}-rx.json`), o.progress);
    }
  }

  /**
   * Move WARMUP_BYTES up and down through a fresh stack before its bulk or long-link cases, not measured: V8
   * optimizes our code over the first tens of MiB (2-3x the CPU on the first 64 MiB cases, bench/README.md "The
   * yamux leg on the long link"), and a server runs warm. Go's stacks get the same.
   */
  async function warmUp(path: RefPathName, stack: Stack, via = target): Promise<void> {
    const mode = path === 'grpcfe' ? 'grpc' : 'http-connect';
    for (const dir of ['up', 'down'] as const) {
      await konnbench({ mode, uds: stack.uds, target: via, test: 'bulk', dir, bytes: WARMUP_BYTES, conns: 1, timeoutSec: 300 });
    }
  }

  /** One konnbench bulk case, `--repeats` times; `via` is where konnbench dials (the target, or a relay to it). */
  async function bulkCase(
    path: RefPathName | 'raw', stackName: RefStack, stack: Stack | undefined, dir: 'up' | 'down', conns: number,
    { bytes = o.bytes, via = target, withCpu = true }: { bytes?: number; via?: string; withCpu?: boolean } = {},
  ): Promise<RefRate> {
    const mode = path === 'raw' ? 'direct' : path === 'grpcfe' ? 'grpc' : 'http-connect';
    const pids = withCpu && stack?.agent ? [stack.server.pid, stack.agent.pid] : [];
    const cpu0 = pids.map(cpuSecondsOf);
    const samples: number[] = [];
    let errors = 0;
    let error: string | undefined;
    let moved = 0;
    for (let i = 0; i < o.repeats; i++) {
      const res = await konnbench({ mode, uds: stack?.uds, target: via, test: 'bulk', dir, bytes, conns, timeoutSec: 300 });
      if (res.ok) {
        samples.push(res.bytes / res.secs);
        moved += res.bytes;
      } else {
        errors += res.errors || 1;
        error ??= res.error;
      }
    }
    const cpu1 = pids.map(cpuSecondsOf);
    const out: RefRate = { path, stack: stackName, dir, conns, rate: samples.length ? median(samples) : 0, samples, errors };
    if (error) out.error = error;
    if (pids.length && moved) out.cpu = { server: (cpu1[0]! - cpu0[0]!) / (moved / GiB), agent: (cpu1[1]! - cpu0[1]!) / (moved / GiB) };
    const cpu = out.cpu ? `, CPU ${(out.cpu.server + out.cpu.agent).toFixed(2)} s/GiB (server + agent)` : '';
    o.progress(`${caseName(path, stackName)}: ${dir} x${conns} ${(out.rate / 1e6).toFixed(1)} MB/s${cpu}${errors ? `, ${errors} errors: ${error}` : ''}`);
    return out;
  }

  async function dialCase(path: RefPathName | 'raw', stackName: RefStack, stack: Stack | undefined, dialers: number): Promise<RefDial> {
    const mode = path === 'raw' ? 'direct' : path === 'grpcfe' ? 'grpc' : 'http-connect';
    const run = (n: number) => konnbench({ mode, uds: stack?.uds, target, test: 'rr', n, c: dialers, timeoutSec: 120 });
    // Warm both ends up first (a JIT reaches its steady state after some thousand dials; Go needs none, and
    // gets the same), then size the runs to about --dial-ms each from the warm rate.
    let n = Math.max(20, 4 * dialers);
    let warm = await run(n);
    for (let done = n, spent = warm.secs; spent < WARMUP_SEC && done < WARMUP_CYCLES; done += n, spent += warm.secs || 0.5) {
      n = Math.min(WARMUP_CYCLES - done, Math.max(50, Math.round((warm.dials_per_s || 100) / 2)));
      warm = await run(n);
    }
    const cycles = Math.min(20_000, Math.max(20, Math.round(((warm.dials_per_s || 100) * o.dialMs) / 1000)));
    const pids = stack?.agent ? [stack.server.pid, stack.agent.pid] : [];
    const cpu0 = pids.map(cpuSecondsOf);
    const runs = [];
    for (let i = 0; i < o.repeats; i++) runs.push(await run(cycles));
    const cpu1 = pids.map(cpuSecondsOf);
    const mid = runs.slice().sort((a, b) => a.dials_per_s - b.dials_per_s)[runs.length >> 1]!;
    const errors = runs.reduce((n, x) => n + (x.ok ? 0 : x.errors || 1), 0);
    const error = runs.find((x) => x.error)?.error;
    const out: RefDial = { path, stack: stackName, dialers, rate: mid.dials_per_s, p50Ms: mid.p50_ms, p99Ms: mid.p99_ms, cycles, samples: runs.map((x) => x.dials_per_s), errors };
    if (error) out.error = error;
    const dials = cycles * o.repeats;
    if (pids.length) out.cpuMs = { server: ((cpu1[0]! - cpu0[0]!) * 1000) / dials, agent: ((cpu1[1]! - cpu0[1]!) * 1000) / dials };
    const cpu = out.cpuMs ? `, CPU ${out.cpuMs.server.toFixed(2)}+${out.cpuMs.agent.toFixed(2)} ms/dial (server+agent)` : '';
    o.progress(`${caseName(path, stackName)}: dial x${dialers} ${out.rate.toFixed(0)}/s, p50 ${out.p50Ms.toFixed(2)} ms, p99 ${out.p99Ms.toFixed(2)} ms${cpu}${errors ? `, ${errors} errors: ${error}` : ''}`);
    return out;
  }

  async function idleCase(path: RefPathName, stackName: RefStack, stack: Stack, n: number): Promise<RefIdle> {
    await client!.call('configure', { kind: path === 'grpcfe' ? 'grpc' : 'http-connect', socketPath: stack.uds, targetAddress: `127.0.0.1:${o.nodeTargetPort}` });
    const settle = async () => {
      await Promise.all([stack.server.gc(), stack.agent!.gc()]);
      await sleep(300);
      return [rssOf(stack.server.pid), rssOf(stack.agent!.pid)];
    };
    const before = await settle();
    const res = await client!.call<{ opened: number; seconds: number; error?: string }>('openIdle', { n }, 1_800_000);
    const after = await settle();
    const out: RefIdle = { path, stack: stackName, requested: n, ...res };
    if (res.opened) {
      out.serverBytesPerConn = (after[0]! - before[0]!) / res.opened;
      out.agentBytesPerConn = (after[1]! - before[1]!) / res.opened;
    }
    const lim = nofileOf(stack.server.pid);
    if (lim) out.nofile = lim;
    await client!.call('closeIdle');
    const until = Date.now() + 60_000;
    while ((await o.nodeTarget.call<number>('connections')) > 0 && Date.now() < until) await sleep(100);
    const kibs = (b: number | undefined) => (b === undefined ? '-' : (b / 1024).toFixed(1));
    o.progress(
      `${caseName(path, stackName)}: ${res.opened}/${n} idle connections in ${res.seconds.toFixed(1)} s, ` +
        `RSS per connection server ${kibs(out.serverBytesPerConn)} KiB, agent ${kibs(out.agentBytesPerConn)} KiB${res.error ? ` (stopped: ${res.error})` : ''}`,
    );
    return out;
  }

  async function longLinkCases(path: RefPathName | 'raw', stackName: RefStack, stack: Stack | undefined, via: string): Promise<void> {
    for (const dir of ['up', 'down'] as const) {
      for (const conns of [1, 8]) {
        r.longLink.push(await bulkCase(path, stackName, stack, dir, conns, { bytes: o.longLinkBytes, via, withCpu: false }));
      }
    }
  }

  const relays: RoleProcess[] = [];
  const relayTo = async (upstreamPort: number): Promise<number> => {
    const relay = new RoleProcess('relay', { upstreamPort, delayMs: o.delayMs });
    relays.push(relay);
    return ((await relay.ready) as { port: number }).port;
  };

  try {
    // Raw TCP, konnbench straight to the target: the baseline of every ratio in this section.
    if (o.bulk) for (const dir of ['up', 'down'] as const) r.bulk.push(await bulkCase('raw', 'raw', undefined, dir, 1));
    if (o.dial) for (const dialers of [1, 8]) r.dial.push(await dialCase('raw', 'raw', undefined, dialers));
    if (o.latency) {
      const port = await relayTo(goTarget.port);
      await longLinkCases('raw', 'raw', undefined, `127.0.0.1:${port}`);
    }

    /** Start the stack of `impl` on `path`, run `fn` on it, stop it; a failure is recorded and ends only this stack. */
    const withStack = async (path: RefPathName, impl: Impl, fn: (s: Stack) => Promise<void>): Promise<void> => {
      const what = `${REF_PATH_LABELS[path]}, ${REF_STACK_LABELS[impl]}`;
      if (impl === 'ts' && !ts) return fail(what, new Error('the konnectivity-ts programs are not in this checkout'));
      let stack: Stack | undefined;
      try {
        stack = await Stack.start(programs, {
          name: `${path}-${impl}`,
          server: impl,
          agent: impl,
          mode: path === 'grpcfe' ? 'grpc' : 'http-connect',
          leg: path === 'connect-yamux' ? 'yamux' : 'grpc',
          uds: join(tmp, `${path}-${impl}.sock`),
        });
        await fn(stack);
      } catch (err) {
        fail(what, err);
      } finally {
        await stack?.stop();
        await Promise.all(relays.splice(0).map((x) => x.stop()));
      }
    };
    const implsOf = (path: RefPathName): Impl[] => (path === 'connect-yamux' ? ['ts'] : ['ts', 'go']);

    for (const path of o.paths) {
      for (const impl of implsOf(path)) {
        await withStack(path, impl, async (s) => {
          if (o.bulk) await profiled(s, 'bulk', async () => {
            await warmUp(path, s);
            for (const dir of ['up', 'down'] as const) r.bulk.push(await bulkCase(path, impl, s, dir, 1));
          });
          if (o.dial) await profiled(s, 'dial', async () => {
            for (const dialers of [1, 8]) r.dial.push(await dialCase(path, impl, s, dialers));
          });
          if (o.idle) r.idle.push(await profiled(s, 'idle', () => idleCase(path, impl, s, o.idleConns)));
          if (!o.latency || path === 'grpcfe') return;
          // The relay sits on the agent leg (TLS passes through it); the same server gets an agent through it.
          const port = await relayTo(s.agentPort);
          await s.stopAgent();
          await s.startAgent(impl, port);
          await warmUp(path, s);
          await profiled(s, 'longlink', () => longLinkCases(path, impl, s, target));
          if (path !== 'connect') return;
          const other: Impl = impl === 'ts' ? 'go' : 'ts';
          if (other === 'ts' && !ts) return fail(`${REF_PATH_LABELS[path]}: mixed pair`, new Error('the konnectivity-ts programs are not in this checkout'));
          await s.stopAgent();
          await s.startAgent(other, port);
          await warmUp(path, s);
          const mixed: RefStack = impl === 'go' ? 'go-server+ts-agent' : 'ts-server+go-agent';
          await profiled(s, 'longlink-mixed', () => longLinkCases(path, mixed, s, target));
        });
      }
    }
    // On fresh stacks, so that what the allocator kept from earlier cases does not hide part of the growth.
    if (o.idleMax) {
      for (const path of o.paths) {
        for (const impl of implsOf(path)) {
          await withStack(path, impl, async (s) => {
            const hard = Math.min(...[s.server.pid, s.agent!.pid, client!.pid, o.nodeTarget.pid].map((pid) => nofileOf(pid)?.hard ?? 0));
            r.idleMax.push(await idleCase(path, impl, s, Math.min(IDLE_MAX_CAP, hard - NOFILE_MARGIN)));
          });
        }
      }
    }
  } finally {
    await Promise.all(relays.map((x) => x.stop()));
    await client?.stop();
    goTarget.child.kill('SIGKILL');
    rmSync(tmp, { recursive: true, force: true });
  }
  return r;
}
