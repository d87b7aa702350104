/**
 * How received bytes are framed, counted in a running process (`--cpu-prof` runs only): the chunk sizes the
 * transport delivers to the gRPC and delimited (yamux) framers, and how many messages come out as views of one
 * chunk (no copy), how many as the views of the several chunks they arrived in (no copy either: a framer that
 * gathers, gRPC's), and how many had to be assembled from several chunks (one copy of the whole message). It wraps
 * the framers' public `push()`; the library is not changed.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Lib } from './engine.js';

interface Tally {
  chunks: number;
  chunkBytes: number;
  /** Chunk sizes seen, by size (the most common ones are reported). */
  sizes: Map<number, number>;
  messages: number;
  /** Messages returned as a view of the chunk they arrived in. */
  views: number;
  /** Messages returned as views of several chunks (a list of pieces). */
  pieces: number;
  /** Messages assembled into a buffer of their own (copied). */
  assembled: number;
  assembledBytes: number;
}

const tallies = new Map<string, Tally>();

const fresh = (): Tally => ({ chunks: 0, chunkBytes: 0, sizes: new Map(), messages: 0, views: 0, pieces: 0, assembled: 0, assembledBytes: 0 });

/** Wrap `push()` of the framers this checkout has. Idempotent. */
export function installRxTrace(lib: Lib): void {
  for (const [name, cls] of [['grpc', lib.GrpcMessageDecoder], ['delimited', lib.DelimitedMessageDecoder]] as const) {
    const proto = cls?.prototype;
    if (!proto || proto.__rxTraced) continue;
    const push = proto.push as (chunk: Uint8Array) => Array<Buffer | Buffer[]>;
    proto.push = function traced(this: unknown, chunk: Uint8Array): Array<Buffer | Buffer[]> {
      const out = push.call(this, chunk);
      let t = tallies.get(name);
      if (!t) tallies.set(name, (t = fresh()));
      t.chunks++;
      t.chunkBytes += chunk.byteLength;
      t.sizes.set(chunk.byteLength, (t.sizes.get(chunk.byteLength) ?? 0) + 1);
      for (const m of out) {
        t.messages++;
        if (Array.isArray(m)) t.pieces++;
        else if (m.buffer === chunk.buffer) t.views++;
        else {
          t.assembled++;
          t.assembledBytes += m.length;
        }
      }
      return out;
    };
    proto.__rxTraced = true;
  }
}

/** The counts since the last call, per framer, and reset. */
export function takeRxTrace(): Record<string, Omit<Tally, 'sizes'> & { commonChunkSizes: Array<[number, number]> }> {
  const out: ReturnType<typeof takeRxTrace> = {};
  for (const [name, t] of tallies) {
    const { sizes, ...rest } = t;
    out[name] = { ...rest, commonChunkSizes: [...sizes].sort((a, b) => b[1] - a[1]).slice(0, 5) };
  }
  tallies.clear();
  return out;
}

/** The env variable that turns the trace on in the bench's child processes. */
export const RX_TRACE_ENV = 'KONNBENCH_RX_TRACE';

/** One line per framer: chunk sizes and how many messages were copied to be assembled. */
export function formatRxTrace(t: ReturnType<typeof takeRxTrace>): string {
  return Object.entries(t)
    .map(([name, x]) => {
      const sizes = x.commonChunkSizes.map(([size, n]) => `${n} x ${size} B`).join(', ');
      const pct = x.messages ? ((100 * x.assembled) / x.messages).toFixed(1) : '0';
      return `${name} framer: ${x.chunks} chunks (${sizes}), ${x.messages} messages, ${x.assembled} assembled by a copy (${pct} %, ${(x.assembledBytes / 2 ** 20).toFixed(1)} MiB), ${x.views} views, ${x.pieces} in pieces`;
    })
    .join('; ');
}

/**
 * Fetch and reset the counts of each role (processes started with the trace on), write them to `file` as JSON and
 * report one line per role that received anything.
 */
export async function collectRxTrace(
  what: string,
  roles: ReadonlyArray<readonly [string, { call<T>(cmd: string): Promise<T> }]>,
  file: string,
  progress: (line: string) => void,
): Promise<void> {
  const all: Record<string, ReturnType<typeof takeRxTrace>> = {};
  for (const [role, p] of roles) {
    const t = await p.call<ReturnType<typeof takeRxTrace>>('rxTrace');
    all[role] = t;
    if (Object.keys(t).length) progress(`${what}, ${role} receive: ${formatRxTrace(t)}`);
  }
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, `${JSON.stringify(all, null, 2)}\n`);
}
