/**
 * A tiny request/response RPC over the Node IPC channel between the orchestrator (bench/run.ts) and a role process.
 * Every role also samples its own RSS so the orchestrator can ask for the peak over a window.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { takeRxTrace } from './rx-trace.js';

/** What a role reports about itself. */
export interface ProcessStats {
  rss: number;
  peakRss: number;
  heapUsed: number;
  /** Memory of buffers outside the V8 heap (ArrayBuffers included). */
  external: number;
  /** process.cpuUsage() in microseconds. */
  cpu: { user: number; system: number };
}

type Handler = (args: any) => unknown | Promise<unknown>;

interface Request {
  id: number;
  cmd: string;
  args: unknown;
}
interface Response {
  id: number;
  ok: boolean;
  result?: unknown;
  error?: string;
}

let peakRss = 0;

/** Current stats of this process; `gc` first when exposed, so RSS reflects live data. */
export function selfStats(): ProcessStats {
  const m = process.memoryUsage();
  if (m.rss > peakRss) peakRss = m.rss;
  return { rss: m.rss, peakRss, heapUsed: m.heapUsed, external: m.external, cpu: process.cpuUsage() };
}

/** The V8 CPU profiler of this process, driven over the inspector protocol so a profile covers one scenario only. */
const profiler = {
  session: undefined as Session | undefined,
  post(method: string, params?: object): Promise<any> {
    return new Promise((resolve, reject) =>
      this.session!.post(method, params ?? {}, (err, result) => (err ? reject(err) : resolve(result))),
    );
  },
  async start(): Promise<boolean> {
    if (!this.session) {
      this.session = new Session();
      this.session.connect();
      await this.post('Profiler.enable');
    }
    await this.post('Profiler.start');
    return true;
  },
  async stop(file: string): Promise<boolean> {
    if (!this.session) return false;
    const { profile } = (await this.post('Profiler.stop')) as { profile: unknown };
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, JSON.stringify(profile));
    return true;
  },
};

/**
 * Serve RPC requests from the parent. Built-in commands: `stats`, `gc`, `resetPeak`, `stopPeak`, `profileStart`,
 * `profileStop`, `rxTrace`, `exit`.
 * Call `ready(info)` once the role has bound its ports.
 */
export function serveRole(handlers: Record<string, Handler>): { ready(info: unknown): void } {
  if (!process.send) throw new Error('role processes must be started by bench/run.ts (no IPC channel)');
  // Peak RSS is sampled only between `resetPeak` and `stopPeak` (the stalled-reader scenario): even
  // memoryUsage.rss() shows up in the profiles when it runs all the time. Unref'd: it never holds the process open.
  let sampler: NodeJS.Timeout | undefined;
  const builtins: Record<string, Handler> = {
    stats: () => selfStats(),
    gc: async () => {
      const g = (globalThis as { gc?: () => void }).gc;
      for (let i = 0; i < 3; i++) {
        g?.();
        await new Promise((r) => setTimeout(r, 20));
      }
      return selfStats();
    },
    profileStart: () => profiler.start(),
    profileStop: ({ file }: { file: string }) => profiler.stop(file),
    rxTrace: () => takeRxTrace(),
    resetPeak: () => {
      peakRss = 0;
      clearInterval(sampler);
      sampler = setInterval(() => {
        const rss = process.memoryUsage.rss();
        if (rss > peakRss) peakRss = rss;
      }, 20).unref();
      return selfStats();
    },
    stopPeak: () => {
      clearInterval(sampler);
      sampler = undefined;
      return selfStats();
    },
    exit: () => {
      setImmediate(() => process.exit(0));
      return true;
    },
  };
  process.on('message', (msg: Request) => {
    const h = handlers[msg.cmd] ?? builtins[msg.cmd];
    const reply = (r: Response) => process.send?.(r);
    if (!h) {
      reply({ id: msg.id, ok: false, error: `unknown command ${msg.cmd}` });
      return;
    }
    Promise.resolve()
      .then(() => h(msg.args))
      .then(
        (result) => reply({ id: msg.id, ok: true, result }),
        (err: Error) => reply({ id: msg.id, ok: false, error: err?.stack ?? String(err) }),
      );
  });
  // The parent going away ends the role.
  process.on('disconnect', () => process.exit(0));
  return {
    ready: (info) => process.send?.({ id: 0, ok: true, result: info } satisfies Response),
  };
}

const ROLE_DIR = fileURLToPath(new URL('../roles/', import.meta.url));

/** How to start a process that is not one of bench/roles (e.g. the konnectivity-ts programs). */
export interface SpawnOptions {
  /** Run this script with `argv` instead of bench/roles/<role>.ts with the JSON args. */
  script?: string;
  argv?: string[];
  /** More Node options, after `--import tsx --expose-gc` (e.g. `--import` of bench/lib/cli-hooks.ts). */
  execArgv?: string[];
  /** Send the process's stdout and stderr to this file instead of the bench's own. */
  logFile?: string;
}

/** The parent's handle on one role process. */
export class RoleProcess {
  readonly child: ChildProcess;
  readonly ready: Promise<any>;
  private nextId = 1;
  private waiters = new Map<number, { resolve: (v: any) => void; reject: (e: Error) => void }>();
  private exited = false;

  constructor(
    readonly role: string,
    args: Record<string, unknown>,
    options: SpawnOptions = {},
  ) {
    const execArgv = ['--import', 'tsx', '--expose-gc', ...(options.execArgv ?? [])];
    let out: number | 'inherit' = 'inherit';
    if (options.logFile) {
      mkdirSync(dirname(options.logFile), { recursive: true });
      out = openSync(options.logFile, 'a');
    }
    this.child = fork(options.script ?? `${ROLE_DIR}${role}.ts`, options.argv ?? [JSON.stringify(args)], {
      execArgv,
      stdio: ['ignore', out, out, 'ipc'],
    });
    if (typeof out === 'number') closeSync(out);
    let readyResolve!: (v: unknown) => void;
    let readyReject!: (e: Error) => void;
    this.ready = new Promise((res, rej) => {
      readyResolve = res;
      readyReject = rej;
    });
    this.waiters.set(0, { resolve: readyResolve, reject: readyReject });
    this.child.on('message', (msg: Response) => {
      const w = this.waiters.get(msg.id);
      if (!w) return;
      this.waiters.delete(msg.id);
      if (msg.ok) w.resolve(msg.result);
      else w.reject(new Error(`${role}: ${msg.error}`));
    });
    this.child.on('exit', (code, signal) => {
      this.exited = true;
      const err = new Error(`${role} process exited (code ${code}, signal ${signal})`);
      for (const w of this.waiters.values()) w.reject(err);
      this.waiters.clear();
    });
  }

  call<T = any>(cmd: string, args: unknown = {}, timeoutMs = 120_000): Promise<T> {
    if (this.exited) return Promise.reject(new Error(`${this.role} process has exited`));
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(id);
        reject(new Error(`${this.role}: ${cmd} timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      timer.unref();
      this.waiters.set(id, {
        resolve: (v) => (clearTimeout(timer), resolve(v)),
        reject: (e) => (clearTimeout(timer), reject(e)),
      });
      this.child.send({ id, cmd, args } satisfies Request);
    });
  }

  /** The process id (for /proc). */
  get pid(): number {
    return this.child.pid!;
  }

  get hasExited(): boolean {
    return this.exited;
  }

  stats(): Promise<ProcessStats> {
    return this.call('stats');
  }

  /** Ask politely, then kill after a grace period. */
  async stop(graceMs = 2000): Promise<void> {
    if (this.exited) return;
    const gone = new Promise<void>((r) => this.child.once('exit', () => r()));
    this.call('exit', {}, graceMs).catch(() => {});
    const t = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    t.unref();
    await gone;
    clearTimeout(t);
  }

  kill(): void {
    if (!this.exited) this.child.kill('SIGKILL');
  }
}

/** Parse the JSON argument a role was started with. */
export function roleArgs<T>(): T {
  return JSON.parse(process.argv[2] ?? '{}') as T;
}
