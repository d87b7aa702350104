/**
 * A proxy server and an agent as their programs, started the way a user starts them: the Go reference's binaries
 * from the peer kit, or the konnectivity-ts programs (src/cli, through tsx) with the same flags. The frontend is
 * on a Unix socket (plaintext, as the reference allows only there), the agent leg is TLS with the kit's
 * certificates (the Go agent always uses TLS). Readiness is the server's /readyz, as an operator would check it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync } from 'node:fs';
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
  stop(): Promise<void>;
}

/** `n` free loopback ports (bound at once, then released). */
export async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: n }, () => new Promise<net.Server>((res, rej) => {
      const s = net.createServer();
      s.once('error', rej);
      s.listen(0, '127.0.0.1', () => res(s));
    })),
  );
  const ports = servers.map((s) => (s.address() as net.AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
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

/** Wait until the server's /readyz answers 200 (`ready`) or anything else (`!ready`). */
export async function waitReadyz(healthPort: number, ready: boolean, timeoutMs = 30_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
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

  /** Start the server; `agent` (if given) connects to `agentVia` (default: the server's agent port). */
  static async start(
    programs: Programs,
    o: { name: string; server: Impl; mode: 'grpc' | 'http-connect'; leg: 'grpc' | 'yamux'; uds: string; agent?: Impl },
  ): Promise<Stack> {
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

  /** Start an agent of `impl` towards `port` (the agent port, or a relay in front of it) and wait until ready. */
  async startAgent(impl: Impl, port: number): Promise<void> {
    if (this.agent) throw new Error('stop the agent first');
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
    await waitReadyz(this.healthPort, true);
  }

  /** Kill the agent and wait until the server has noticed (its /readyz turns non-200). */
  async stopAgent(): Promise<void> {
    if (!this.agent) return;
    await this.agent.stop();
    this.agent = undefined;
    await waitReadyz(this.healthPort, false);
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
