/**
 * Spawn programs as processes and read what they log: `konnectivity-server` / `konnectivity-agent` from source
 * (node --import tsx), or any other program (the Go reference binaries). Lines are kept, so a test can wait for the
 * bound ports (`"listening" listener=<name> ... port=<n>`) or any line, written already or to come.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { request } from 'node:http';
import { fileURLToPath } from 'node:url';
import { parsePrometheusText } from '../ops/prom-text.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

export interface Program {
  /** What the test calls it in messages (`konnectivity-server`, `proxy-agent`, ...). */
  readonly name: string;
  readonly child: ChildProcessWithoutNullStreams;
  /** Everything written to stdout and stderr so far. */
  readonly output: () => string;
  /**
   * Resolve with the `count`-th (default first) output line matching `re`, already written or to come; reject if
   * the process exits first or after `timeoutMs` (default 30 s).
   */
  waitFor(re: RegExp, count?: number, timeoutMs?: number): Promise<string>;
  /** The ports of the named listeners, from the `listening` lines. */
  ports(names: readonly string[]): Promise<Record<string, number>>;
  /** Resolves with the exit code (or the signal) once the process has exited. */
  readonly exited: Promise<number | NodeJS.Signals>;
  /** True once the process has exited. */
  readonly done: () => boolean;
  /** SIGKILL if still running, then wait for the exit. */
  kill(): Promise<void>;
}

/** Start `command` with `args`, capturing its output; stdin is closed at once. */
export function startProcess(name: string, command: string, args: readonly string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Program {
  const child = spawn(command, args, { cwd: options.cwd ?? ROOT, env: options.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
  child.stdin.end();
  let out = '';
  // Complete lines, kept so a waiter scans each line once however long the output grows.
  const lines: string[] = [];
  let partial = '';
  const waiters = new Set<() => void>();
  const onData = (chunk: Buffer): void => {
    const text = chunk.toString('utf8');
    out += text;
    const parts = (partial + text).split('\n');
    partial = parts.pop()!;
    for (const l of parts) lines.push(l);
    for (const w of [...waiters]) w();
  };
  child.stderr.on('data', onData);
  child.stdout.on('data', onData);
  let done = false;
  const exited = new Promise<number | NodeJS.Signals>((resolve) =>
    child.once('close', (code, signal) => {
      done = true;
      if (partial) lines.push(partial);
      partial = '';
      for (const w of [...waiters]) w();
      resolve(code ?? signal ?? -1);
    }),
  );
  // A program that cannot be started at all (ENOENT) exits through 'close' with code -2; keep the reason.
  child.once('error', (err) => (out += `\n[spawn error: ${err.message}]\n`));

  const waitFor = (re: RegExp, count = 1, timeoutMs = 30_000): Promise<string> =>
    new Promise((resolve, reject) => {
      let scanned = 0;
      let seen = 0;
      const check = (): void => {
        for (; scanned < lines.length; scanned++) {
          if (re.test(lines[scanned]!) && ++seen === count) return finish(() => resolve(lines[scanned]!));
        }
        if (done) return finish(() => reject(new Error(`${name} exited before logging ${re}:\n${tail(out)}`)));
      };
      const timer = setTimeout(() => finish(() => reject(new Error(`timed out waiting for ${re} from ${name}:\n${tail(out)}`))), timeoutMs);
      timer.unref();
      const finish = (f: () => void): void => {
        clearTimeout(timer);
        waiters.delete(check);
        f();
      };
      waiters.add(check);
      check();
    });

  return {
    name,
    child,
    output: () => out,
    waitFor,
    async ports(names) {
      const result: Record<string, number> = {};
      for (const n of names) {
        // Text (`listener="agent" ... port=8091`) or JSON (`"listener":"agent",..."port":8091`).
        const line = await waitFor(new RegExp(`"listening".*\\blistener"?[=:]"${n}".*\\bport"?[=:](\\d+)`));
        result[n] = Number(/\bport"?[=:](\d+)/.exec(line)![1]);
      }
      return result;
    },
    exited,
    done: () => done,
    async kill() {
      if (!done) child.kill('SIGKILL');
      await exited;
    },
  };
}

/** The last 8 KiB of a program's output, for failure messages. */
function tail(out: string): string {
  return out.length > 8192 ? `...${out.slice(-8192)}` : out;
}

/** Start `src/cli/<entry>.ts` with `args`. */
export function startProgram(entry: 'konnectivity-server' | 'konnectivity-agent', args: readonly string[]): Program {
  return startProcess(entry, process.execPath, ['--import', 'tsx', `src/cli/${entry}.ts`, ...args], { env: { ...process.env, NO_COLOR: '1' } });
}

/** The families of a program's `/metrics` (admin port), parsed. */
export async function scrapeMetrics(port: number): Promise<Map<string, number>> {
  const r = await httpGet(port, '/metrics');
  if (r.status !== 200) throw new Error(`/metrics answered ${r.status}: ${r.body}`);
  return parsePrometheusText(r.body);
}

/** The server's TLS flags for both legs (`--server-*` for the frontend, `--cluster-*` for agents), one set of files. */
export function serverTlsFlags(files: { cert: string; key: string; ca: string }): string[] {
  const { cert, key, ca } = files;
  return [`--server-cert=${cert}`, `--server-key=${key}`, `--server-ca-cert=${ca}`, `--cluster-cert=${cert}`, `--cluster-key=${key}`, `--cluster-ca-cert=${ca}`];
}

/** GET over plain HTTP on 127.0.0.1 without keep-alive; resolves with the status and body. */
export function httpGet(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** The programs a test starts, all killed (and waited for) by `killAll()` in its afterEach. */
export function programPool(): { start(entry: 'konnectivity-server' | 'konnectivity-agent', args: readonly string[]): Program; killAll(): Promise<void> } {
  let programs: Program[] = [];
  return {
    start(entry, args) {
      const p = startProgram(entry, args);
      programs.push(p);
      return p;
    },
    async killAll() {
      await Promise.all(programs.map((p) => p.kill()));
      programs = [];
    },
  };
}
