/**
 * The client side of every scenario, written against one `Dial` function so the same code runs over raw TCP,
 * HTTP-CONNECT, the gRPC frontend (in the client process) and ProxyServer.dial (in the server process).
 *
 * The target (bench/roles/target.ts) reads a one-byte mode and, for bulk modes, an 8-byte length:
 *   'U' n  upload:   the target checks the n bytes it receives against PATTERN, then sends one byte, 1 if all matched
 *   'D' n  download: the target sends n bytes of PATTERN, which the client checks
 *   'R'    request/response: echo 64-byte requests
 *   'I'    idle: send one byte 'k' (so the client knows the path is up end to end), then hold
 *   'S' n  slow reader: the target pushes up to n bytes, respecting backpressure, to a client that never reads
 */
import type { Duplex } from 'node:stream';
import { percentile } from './stats.js';

/** Opens one connection to the target. */
export type Dial = () => Promise<Duplex>;

export const WRITE_SIZE = 32 * 1024;

/** 1 MiB of fixed pseudo-random bytes that both ends cycle through (generation must not dominate the cost). */
export const PATTERN: Buffer = (() => {
  const b = Buffer.allocUnsafe(1 << 20);
  let x = 0x9e3779b9;
  for (let i = 0; i < b.length; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b.writeUInt32LE(x >>> 0, i);
  }
  return b;
})();

/** The chunk that starts at byte `offset` of an endless PATTERN stream, at most `len` bytes. */
export function patternChunk(offset: number, len: number): Buffer {
  const start = offset % PATTERN.length;
  return PATTERN.subarray(start, Math.min(PATTERN.length, start + len));
}

export function header(mode: string, n = 0): Buffer {
  const b = Buffer.alloc(9);
  b.write(mode, 0, 'latin1');
  b.writeBigUInt64BE(BigInt(n), 1);
  return mode === 'R' || mode === 'I' ? b.subarray(0, 1) : b;
}

/**
 * Checks a byte stream against the endless PATTERN, byte for byte (memcmp: far cheaper than a hash, so the check
 * does not cap the baseline it is compared with).
 */
export class PatternCheck {
  offset = 0;
  ok = true;
  update(chunk: Buffer): void {
    let pos = 0;
    while (pos < chunk.length) {
      const start = this.offset % PATTERN.length;
      const len = Math.min(chunk.length - pos, PATTERN.length - start);
      if (this.ok && PATTERN.compare(chunk, pos, pos + len, start, start + len) !== 0) this.ok = false;
      pos += len;
      this.offset += len;
    }
  }
}

/** Attach `handlers` to `sock`; returns the function that detaches them all. */
function listen(sock: Duplex, handlers: Record<string, (...args: any[]) => void>): () => void {
  for (const [event, h] of Object.entries(handlers)) sock.on(event, h);
  return () => {
    for (const [event, h] of Object.entries(handlers)) sock.off(event, h);
  };
}

/** Resolve on 'drain', reject if the socket closes first. */
function drained(sock: Duplex): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const closed = () => (cleanup(), reject(new Error('connection closed while writing')));
    const cleanup = listen(sock, { drain: () => (cleanup(), resolve()), close: closed, error: closed });
  });
}

/** Write `n` pattern bytes in WRITE_SIZE writes, with backpressure. `onChunk` sees each write's length. */
export async function writePattern(sock: Duplex, n: number, signal?: AbortSignal, onChunk?: (len: number) => void): Promise<void> {
  let off = 0;
  while (off < n) {
    if (signal?.aborted || sock.destroyed) return;
    const chunk = patternChunk(off, Math.min(WRITE_SIZE, n - off));
    off += chunk.length;
    onChunk?.(chunk.length);
    if (!sock.write(chunk)) await drained(sock);
  }
}

/** Read exactly `n` bytes (feeding `check` when given, keeping nothing) and then the `tail` bytes, which are returned. */
export function readBytes(sock: Duplex, n: number, tail: number, check?: PatternCheck): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let got = 0;
    const tailBufs: Buffer[] = [];
    let tailGot = 0;
    const onData = (chunk: Buffer) => {
      let body = chunk;
      if (got < n) {
        const take = Math.min(n - got, chunk.length);
        check?.update(take === chunk.length ? chunk : chunk.subarray(0, take));
        got += take;
        body = chunk.subarray(take);
      }
      if (body.length) {
        tailBufs.push(body);
        tailGot += body.length;
      }
      if (got === n && tailGot >= tail) {
        cleanup();
        resolve(Buffer.concat(tailBufs).subarray(0, tail));
      }
    };
    const ended = () => (cleanup(), reject(new Error(`connection ended after ${got}/${n} bytes`)));
    const cleanup = listen(sock, { data: onData, end: ended, close: ended, error: (err: Error) => (cleanup(), reject(err)) });
    sock.resume();
  });
}

function close(sock: Duplex): void {
  sock.on('error', () => {});
  sock.destroy();
}

export interface BulkResult {
  bytes: number;
  seconds: number;
  /** Bytes per second over all connections. */
  rate: number;
  verified: boolean;
}

/** Move `totalBytes` split over `conns` connections, up or down, and verify every SHA-1. */
export async function bulk(dial: Dial, dir: 'up' | 'down', conns: number, totalBytes: number): Promise<BulkResult> {
  const per = Math.max(WRITE_SIZE, Math.floor(totalBytes / conns / WRITE_SIZE) * WRITE_SIZE);
  const socks = await Promise.all(Array.from({ length: conns }, () => dial()));
  const t0 = process.hrtime.bigint();
  const results = await Promise.all(
    socks.map(async (sock) => {
      try {
        if (dir === 'up') {
          sock.write(header('U', per));
          const verdict = readBytes(sock, 0, 1);
          await writePattern(sock, per);
          return (await verdict)[0] === 1;
        }
        sock.write(header('D', per));
        const check = new PatternCheck();
        await readBytes(sock, per, 0, check);
        return check.ok;
      } finally {
        close(sock);
      }
    }),
  );
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const bytes = per * conns;
  return { bytes, seconds, rate: bytes / seconds, verified: results.every(Boolean) };
}

export interface DialRateResult {
  dials: number;
  seconds: number;
  rate: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
}

/** `dialers` loops of dial + 64-byte request/response + close, for `durationMs`. */
export async function dialRate(dial: Dial, dialers: number, durationMs: number): Promise<DialRateResult> {
  const req = Buffer.alloc(64, 0x61);
  req[0] = 'R'.charCodeAt(0); // the mode byte doubles as the first request byte; the target echoes the 63 after it plus one
  const latencies: number[] = [];
  let errors = 0;
  const t0 = performance.now();
  const end = t0 + durationMs;
  await Promise.all(
    Array.from({ length: dialers }, async () => {
      while (performance.now() < end) {
        const s = performance.now();
        try {
          const sock = await dial();
          const reply = readBytes(sock, 0, 64);
          sock.write(req);
          await reply;
          close(sock);
          latencies.push(performance.now() - s);
        } catch {
          errors++;
          if (errors > 1000) return;
        }
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  latencies.sort((a, b) => a - b);
  return {
    dials: latencies.length,
    seconds,
    rate: latencies.length / seconds,
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    errors,
  };
}

const idle: Duplex[] = [];

/**
 * Open `n` idle connections (each confirmed end to end) and keep them until `closeIdle`. Stops at the first
 * failure (say, the open-files limit) or a dial that takes longer than `dialTimeoutMs`, and reports it.
 */
export async function openIdle(
  dial: Dial,
  n: number,
  concurrency = 64,
  dialTimeoutMs = 15_000,
): Promise<{ opened: number; seconds: number; error?: string }> {
  const t0 = performance.now();
  let next = 0;
  let error: string | undefined;
  let confirmed = 0;
  const one = async () => {
    const sock = await dial();
    sock.on('error', () => {});
    idle.push(sock);
    const ack = readBytes(sock, 0, 1);
    sock.write(header('I'));
    await ack;
    sock.pause();
    confirmed++;
  };
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < n && error === undefined) {
        next++;
        let timer: NodeJS.Timeout | undefined;
        const timeout = new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no answer in ${dialTimeoutMs} ms`)), dialTimeoutMs);
        });
        try {
          await Promise.race([one(), timeout]);
        } catch (err) {
          error ??= `after ${confirmed} connections: ${(err as Error).message}`;
        } finally {
          clearTimeout(timer);
        }
      }
    }),
  );
  return { opened: confirmed, seconds: (performance.now() - t0) / 1000, ...(error ? { error } : {}) };
}

export function closeIdle(): number {
  const n = idle.length;
  for (const s of idle.splice(0)) close(s);
  return n;
}

let stalled: Duplex | undefined;

/** Open the stalled connection: the target pushes up to `n` bytes that this side never reads. */
export async function openStalled(dial: Dial, n: number): Promise<void> {
  const sock = await dial();
  sock.on('error', () => {});
  sock.pause();
  sock.write(header('S', n));
  stalled = sock;
}

export function closeStalled(): void {
  if (stalled) close(stalled);
  stalled = undefined;
}

/** The RPC commands of a process that runs workloads (the client role, or the server role for ProxyServer.dial). */
export function workloadHandlers(dial: Dial): Record<string, (a: any) => unknown> {
  return {
    bulk: (a: { dir: 'up' | 'down'; conns: number; bytes: number }) => bulk(dial, a.dir, a.conns, a.bytes),
    dialRate: (a: { dialers: number; durationMs: number }) => dialRate(dial, a.dialers, a.durationMs),
    openIdle: (a: { n: number }) => openIdle(dial, a.n),
    closeIdle: () => closeIdle(),
    openStalled: (a: { bytes: number }) => openStalled(dial, a.bytes),
    closeStalled: () => closeStalled(),
  };
}
