/**
 * A proxy server and an agent as their programs, started the way a user starts them: the Go reference's binaries
 * from the peer kit, or the konnectivity-ts programs with the same flags, from the package built for the run
 * (`build.ts`, as users run `dist/`: tsx's hooks are loaded for the bench's `cli-hooks.ts` only and leave the built
 * code untransformed, so no `__name` wrappers), or src/cli through tsx with `--from-source`. The frontend is on a
 * Unix socket (plaintext, as the reference allows only there), the agent leg is TLS with the kit's certificates
 * (the Go agent always uses TLS). Readiness is the server's /readyz, as an operator would check it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { dirname, resolve } from 'node:path';
import { track } from './children.js';
import { RoleProcess } from './ipc.js';
import type { PeerKit } from './konnbench.js';
import type { Impl } from './results.js';

const HOOKS = new URL('./cli-hooks.ts', import.meta.url).href;

/** One server or agent process of a stack. */
export interface StackProcess {
  readonly impl: Impl;
  readonly pid: number;
  /** Collect garbage (Node: `gc()`; Go: the pprof heap handler with `gc=1`), so RSS shows live memory. */
  gc(): Promise<void>;
  /** The konnectivity-ts programs only: the IPC handle (CPU profiler). */
  readonly role?: RoleProcess;
  /** The process has ended (a program that cannot start exits). */
  readonly exited: boolean;
  stop(): Promise<void>;
}

/** The first port of the kernel's ephemeral range (source ports of outgoing connections come from there). */
function ephemeralLow(): number {
  try {
    return Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]) || 32768;
  } catch {
    return 32768;
  }
}

function tryListen(port: number): Promise<net.Server | undefined> {
  return new Promise((res) => {
    const s = net.createServer();
    s.once('error', () => res(undefined));
    s.listen(port, '127.0.0.1', () => res(s));
  });
}

/**
 * `n` free loopback ports for programs that take a port number (the reference's flags need one; 0 is not
 * reported back by Go). Chosen below the ephemeral range, so a released port is not taken at once as the source
 * port of someone's outgoing connection; bound together, then released. A program can still lose one to another
 * process in between: {@link Stack.start} retries.
 */
export async function freePorts(n: number): Promise<number[]> {
  const hi = ephemeralLow();
  const lo = Math.min(10_000, hi - 1000);
  const held: net.Server[] = [];
  for (let tries = 0; held.length < n && tries < 1000; tries++) {
    const s = await tryListen(lo + Math.floor(Math.random() * (hi - lo)));
    if (s) held.push(s);
  }
  if (held.length < n) {
    // Fall back to ports the kernel picks.
    while (held.length < n) held.push((await tryListen(0))!);
  }
  const ports = held.map((s) => (s.address() as net.AddressInfo).port);
  await Promise.all(held.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

function httpGet(url: string, timeoutMs = 2000): Promise<number> {
  return new Promise((res) => {
    const req = http.get(url, { timeout: timeoutMs }, (r) => {
      r.resume();
      r.on('end', () => res(r.statusCode ?? 0));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => res(0));
  });
}

/**
 * Wait until the server's /readyz answers 200 (`ready`) or anything else (`!ready`); fail at once when one of
 * `procs` has exited.
 */
export async function waitReadyz(healthPort: number, ready: boolean, procs: readonly StackProcess[] = [], timeoutMs = 30_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const dead = procs.find((p) => p.exited);
    if (dead) throw new Error(`the ${dead.impl === 'go' ? 'Go' : 'konnectivity-ts'} process ${dead.pid} exited (see bench/results/logs/)`);
    const code = await httpGet(`http://127.0.0.1:${healthPort}/readyz`);
    if ((code === 200) === ready && code !== 0) return;
    if (Date.now() > until) throw new Error(`/readyz on port ${healthPort} did not turn ${ready ? '200' : 'non-200'} in ${timeoutMs} ms (last: ${code || 'no answer'})`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

class GoProcess implements StackProcess {
  readonly impl = 'go' as const;
  readonly role = undefined;
  private readonly child: ChildProcess;
  private readonly exit: Promise<void>;

  constructor(bin: string, argv: string[], logFile: string, private readonly adminPort: number) {
    mkdirSync(dirname(logFile), { recursive: true });
    const out = openSync(logFile, 'a');
    this.child = track(spawn(bin, argv, { stdio: ['ignore', out, out] }));
    closeSync(out);
    this.exit = new Promise((r) => this.child.once('exit', () => r()));
    this.child.on('error', () => {});
  }

  get pid(): number {
    return this.child.pid!;
  }

  get exited(): boolean {
    return this.child.exitCode !== null || this.child.signalCode !== null;
  }

  async gc(): Promise<void> {
    // Needs --enable-profiling; runtime.GC() runs before the heap profile is written.
    await httpGet(`http://127.0.0.1:${this.adminPort}/debug/pprof/heap?gc=1`, 10_000);
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
    await this.exit;
  }
}

class TsProcess implements StackProcess {
  readonly impl = 'ts' as const;
  readonly role: RoleProcess;

  constructor(script: string, argv: string[], logFile: string, label: string) {
    this.role = new RoleProcess(label, {}, { script, argv, execArgv: ['--import', HOOKS], logFile });
  }

  get pid(): number {
    return this.role.pid;
  }

  get exited(): boolean {
    return this.role.hasExited;
  }

  async gc(): Promise<void> {
    await this.role.call('gc', {}, 30_000);
  }

  async stop(): Promise<void> {
    await this.role.stop(1000);
  }
}

/** Where the processes' programs are. */
export interface Programs {
  kit: PeerKit;
  /** The konnectivity-ts programs, when this checkout has them. */
  ts?: { server: string; agent: string };
  /** Where the processes' logs go. */
  logDir: string;
}

/** What {@link Stack.start} starts. */
export interface StackOptions {
  /** Names the processes' logs and IDs. */
  name: string;
  server: Impl;
  /** The agent to start with the server (none: start one later with `startAgent`). */
  agent?: Impl;
  mode: 'grpc' | 'http-connect';
  leg: 'grpc' | 'yamux';
  /** The frontend's Unix socket. */
  uds: string;
}

/** A server with the frontend on a Unix socket and an agent (or none, between agents). */
export class Stack {
  agent: StackProcess | undefined;
  private agents = 0;

  private constructor(
    private readonly programs: Programs,
    readonly name: string,
    readonly server: StackProcess,
    readonly leg: 'grpc' | 'yamux',
    readonly uds: string,
    readonly agentPort: number,
    readonly healthPort: number,
  ) {}

  /**
   * Start the server and, if `agent` is given, an agent, and wait until the server is ready. A start that fails
   * (a port taken by another process between choosing and binding it) is retried with new ports, twice.
   */
  static async start(programs: Programs, o: StackOptions): Promise<Stack> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await Stack.startOnce(programs, o);
      } catch (err) {
        if (attempt >= 3) throw err;
      }
    }
  }

  private static async startOnce(programs: Programs, o: StackOptions): Promise<Stack> {
    const [agentPort, healthPort, adminPort] = await freePorts(3);
    const c = programs.kit.certs;
    const argv = [
      `--mode=${o.mode}`, `--uds-name=${o.uds}`, '--delete-existing-uds-file', '--server-port=0',
      `--cluster-cert=${c.serverCert}`, `--cluster-key=${c.serverKey}`, `--cluster-ca-cert=${c.ca}`,
      '--agent-bind-address=127.0.0.1', `--agent-port=${agentPort}`,
      '--admin-bind-address=127.0.0.1', `--admin-port=${adminPort}`,
      '--health-bind-address=127.0.0.1', `--health-port=${healthPort}`,
      '--server-count=1', `--server-id=${o.name}-server`, '--v=0',
    ];
    if (o.leg === 'yamux') argv.push('--agent-transport=yamux');
    const log = resolve(programs.logDir, `${o.name}-server.log`);
    const server: StackProcess = o.server === 'go'
      ? new GoProcess(programs.kit.bin.proxyServer, [...argv, '--enable-profiling'], log, adminPort!)
      : new TsProcess(tsProgram(programs, 'server'), argv, log, `${o.name} server`);
    const stack = new Stack(programs, o.name, server, o.leg, o.uds, agentPort!, healthPort!);
    try {
      await server.role?.ready;
      if (o.agent) await stack.startAgent(o.agent, agentPort!);
      return stack;
    } catch (err) {
      await stack.stop();
      throw err;
    }
  }

  /**
   * Start an agent of `impl` towards `port` (the agent port, or a relay in front of it) and wait until the
   * server is ready; retried with new ports, twice, like the server.
   */
  async startAgent(impl: Impl, port: number): Promise<void> {
    if (this.agent) throw new Error('stop the agent first');
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.startAgentOnce(impl, port);
      } catch (err) {
        // (this.agent is set by the attempt; TypeScript still narrows it to undefined from the check above.)
        await (this.agent as StackProcess | undefined)?.stop();
        this.agent = undefined;
        if (attempt >= 3 || this.server.exited) throw err;
      }
    }
  }

  private async startAgentOnce(impl: Impl, port: number): Promise<void> {
    const [healthPort, adminPort] = await freePorts(2);
    const c = this.programs.kit.certs;
    const n = ++this.agents;
    const argv = [
      '--proxy-server-host=127.0.0.1', `--proxy-server-port=${port}`,
      `--ca-cert=${c.ca}`, `--agent-cert=${c.agentCert}`, `--agent-key=${c.agentKey}`,
      '--admin-bind-address=127.0.0.1', `--admin-server-port=${adminPort}`,
      '--health-server-host=127.0.0.1', `--health-server-port=${healthPort}`,
      `--agent-id=${this.name}-agent-${n}`, '--v=0',
      // Server and agent start together: retry soon rather than after the default 1 s.
      '--sync-interval=200ms',
    ];
    if (this.leg === 'yamux') argv.push('--transport=yamux');
    const log = resolve(this.programs.logDir, `${this.name}-agent-${n}.log`);
    this.agent = impl === 'go'
      ? new GoProcess(this.programs.kit.bin.proxyAgent, [...argv, '--enable-profiling'], log, adminPort!)
      : new TsProcess(tsProgram(this.programs, 'agent'), argv, log, `${this.name} agent`);
    await this.agent.role?.ready;
    await waitReadyz(this.healthPort, true, [this.server, this.agent]);
  }

  /** Kill the agent and wait until the server has noticed (its /readyz turns non-200). */
  async stopAgent(): Promise<void> {
    if (!this.agent) return;
    await this.agent.stop();
    this.agent = undefined;
    await waitReadyz(this.healthPort, false, [this.server]);
  }

  async stop(): Promise<void> {
    await Promise.all([this.agent?.stop(), this.server.stop()]);
    this.agent = undefined;
  }
}

function tsProgram(p: Programs, which: 'server' | 'agent'): string {
  if (!p.ts) throw new Error('the konnectivity-ts programs are not in this checkout');
  return p.ts[which];
}
