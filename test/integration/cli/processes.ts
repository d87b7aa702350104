/**
 * Spawn `konnectivity-server` / `konnectivity-agent` from source (node --import tsx) and read what they log: the
 * bound ports (`"listening" listener=<name> ... port=<n>`) and any line a test waits for.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { request } from 'node:http';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

export interface Program {
  readonly child: ChildProcessWithoutNullStreams;
  /** Everything written to stderr so far. */
  readonly output: () => string;
  /**
   * Resolve with the `count`-th (default first) output line matching `re`, already written or to come; reject if
   * the process exits first.
   */
  waitFor(re: RegExp, count?: number): Promise<string>;
  /** The ports of the named listeners, from the `listening` lines. */
  ports(names: readonly string[]): Promise<Record<string, number>>;
  /** Resolves with the exit code (or the signal) once the process has exited. */
  readonly exited: Promise<number | NodeJS.Signals>;
  /** SIGKILL if still running, then wait for the exit. */
  kill(): Promise<void>;
}

/** Start `src/cli/<entry>.ts` with `args`. */
export function startProgram(entry: 'konnectivity-server' | 'konnectivity-agent', args: readonly string[]): Program {
  const child = spawn(process.execPath, ['--import', 'tsx', `src/cli/${entry}.ts`, ...args], {
    cwd: ROOT,
    env: { ...process.env, NO_COLOR: '1' },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  child.stdin.end();
  let out = '';
  const waiters = new Set<() => void>();
  const onData = (chunk: Buffer): void => {
    out += chunk.toString('utf8');
    for (const w of [...waiters]) w();
  };
  child.stderr.on('data', onData);
  child.stdout.on('data', onData);
  let done = false;
  const exited = new Promise<number | NodeJS.Signals>((resolve) =>
    child.once('exit', (code, signal) => {
      done = true;
      for (const w of [...waiters]) w();
      resolve(code ?? signal ?? -1);
    }),
  );

  const waitFor = (re: RegExp, count = 1, timeoutMs = 30_000): Promise<string> =>
    new Promise((resolve, reject) => {
      const check = (): void => {
        const line = out.split('\n').filter((l) => re.test(l))[count - 1];
        if (line !== undefined) return finish(() => resolve(line));
        if (done) return finish(() => reject(new Error(`${entry} exited before logging ${re}:\n${out}`)));
      };
      const timer = setTimeout(() => finish(() => reject(new Error(`timed out waiting for ${re} from ${entry}:\n${out}`))), timeoutMs);
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
    child,
    output: () => out,
    waitFor,
    async ports(names) {
      const result: Record<string, number> = {};
      for (const name of names) {
        // Text (`listener="agent" ... port=8091`) or JSON (`"listener":"agent",..."port":8091`).
        const line = await waitFor(new RegExp(`"listening".*\\blistener"?[=:]"${name}".*\\bport"?[=:](\\d+)`));
        result[name] = Number(/\bport"?[=:](\d+)/.exec(line)![1]);
      }
      return result;
    },
    exited,
    async kill() {
      if (!done) child.kill('SIGKILL');
      await exited;
    },
  };
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
