/**
 * Just enough of the Go reference kit for the parity tests (the interop kit in test/interop/reference/ will take
 * this over): find and unpack `../shared/peer` into `.peer/`, start its binaries on free ports, read their logs.
 *
 * The Go binaries refuse port 0 and ephemeral ports (49152 and up), so ports are picked at random in 20000-32767
 * (below Linux's ephemeral range, so the kernel hands them to no one else), checked free, and the start is
 * retried on new ports if a port was taken meanwhile.
 */
import { execFileSync, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { join } from 'node:path';
import { ROOT, findShared } from '../../helpers/shared.js';


/** Where the kit is: `$KONNECTIVITY_PEER`, `../shared/peer` beside this checkout, or beside the one it was cloned from. */
export function findPeerKit(): string | undefined {
  const kit = findShared('peer', process.env['KONNECTIVITY_PEER']);
  return kit && existsSync(join(kit, 'install.sh')) ? kit : undefined;
}

/** The unpacked kit. */
export interface PeerKit {
  bin: (name: 'proxy-server' | 'proxy-agent' | 'konnbench' | 'target') => string;
  cert: (name: string) => string;
}

/** Unpack the kit into `.peer/` (idempotent). */
export function installPeerKit(kit: string): PeerKit {
  const dest = join(ROOT, '.peer');
  execFileSync('bash', [join(kit, 'install.sh'), dest], { stdio: 'ignore' });
  return { bin: (name) => join(dest, 'bin', name), cert: (name) => join(dest, 'certs', name) };
}

function isFree(port: number): Promise<boolean> {
  return new Promise((resolveFree) => {
    const s = createServer();
    s.once('error', () => resolveFree(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolveFree(true)));
  });
}

/** A free port the Go binaries accept. */
export async function goPort(): Promise<number> {
  for (;;) {
    const port = 20000 + Math.floor(Math.random() * 12768);
    if (await isFree(port)) return port;
  }
}

/** Resolve once something accepts connections on 127.0.0.1:port. */
export async function untilListening(port: number, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((r) => {
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => (s.destroy(), r(true)));
      s.once('error', () => r(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on 127.0.0.1:${port}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A running Go process. */
export interface GoProcess {
  readonly child: ChildProcessWithoutNullStreams;
  output(): string;
  waitFor(re: RegExp, timeoutMs?: number): Promise<void>;
  readonly exited: Promise<number | NodeJS.Signals>;
  /** SIGKILL (or `signal`) and wait for the exit. */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/** Start `bin` with `args`. */
export function startGo(bin: string, args: readonly string[]): GoProcess {
  const child = spawn(bin, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  child.stdin.end();
  let out = '';
  let done = false;
  const onData = (c: Buffer): void => void (out += c.toString('utf8'));
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  const exited = new Promise<number | NodeJS.Signals>((r) =>
    child.once('exit', (code, signal) => {
      done = true;
      r(code ?? signal ?? -1);
    }),
  );
  return {
    child,
    output: () => out,
    async waitFor(re, timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs;
      while (!re.test(out)) {
        if (done) throw new Error(`${bin} exited before ${re}:\n${out}`);
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${re} from ${bin}:\n${out}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    exited,
    async stop(signal = 'SIGKILL') {
      if (!done) child.kill(signal);
      await exited;
    },
  };
}

/**
 * Start a Go binary that listens on the ports `args(ports)` names, retrying with new ports when one was taken;
 * resolves once `ready` matches its output.
 */
export async function startGoOnPorts<K extends string>(
  bin: string,
  names: readonly K[],
  args: (ports: Record<K, number>) => string[],
  ready: RegExp,
): Promise<{ process: GoProcess; ports: Record<K, number> }> {
  for (let attempt = 1; ; attempt++) {
    const ports = {} as Record<K, number>;
    for (const n of names) ports[n] = await goPort();
    const process = startGo(bin, args(ports));
    try {
      await process.waitFor(ready);
      return { process, ports };
    } catch (err) {
      await process.stop();
      if (attempt >= 5 || !/address already in use/.test(process.output())) throw err;
    }
  }
}

/** Run a Go binary to completion; resolves with its output. */
export function runGo(bin: string, args: readonly string[], timeoutMs = 60_000): Promise<string> {
  return new Promise((resolveRun, reject) => {
    const p = startGo(bin, args);
    const timer = setTimeout(() => void p.stop().then(() => reject(new Error(`${bin} timed out:\n${p.output()}`))), timeoutMs);
    void p.exited.then(() => {
      clearTimeout(timer);
      resolveRun(p.output());
    });
  });
}
