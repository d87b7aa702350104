/**
 * Leak checks for tests: snapshot the process's resources before a test, and after it assert that no new handle
 * (TCPSocketWrap, TCPServerWrap, PipeWrap, Immediate, ...) and no new timer is still alive.
 *
 * Timers are tracked with an async hook from the snapshot on, so unref'd ones count too (every library timer is
 * unref'd, and Node's active-resource list leaves those out): a close timer or a dial timeout that outlives its
 * connection is a leak, even though it would not hold the process open. The runner's own timers (test and hook
 * timeouts) are told apart by where they were created.
 *
 * Sockets and servers close asynchronously, so the check retries for a short while before failing. Handles are
 * compared per type, which tolerates whatever the runner itself holds open, as long as it held it before the
 * snapshot too.
 *
 * Usage:
 *   const before = snapshotResources();
 *   ... the test ...
 *   await expectNoLeaks(before);
 */
import { createHook } from 'node:async_hooks';
import { setTimeout as sleep } from 'node:timers/promises';

/** Resource type name -> how many are active. */
export type ResourceSnapshot = ReadonlyMap<string, number>;

/** Types that come and go with the runner's own I/O (file reads, the terminal), never the code under test. */
const DEFAULT_IGNORE: readonly string[] = ['FSReqCallback', 'FSReqPromise', 'FileHandleCloseReq', 'TTYWrap', 'StatWatcher'];

/** Where the runner's own timers (test and hook timeouts) are made. */
const RUNNER_FRAME = /node_modules[\\/](?:vitest|@vitest|tinypool)[\\/]/;
/** This file's frames (the hook itself). */
const OWN_FRAME = /test[\\/]helpers[\\/]leaks\.ts/;

export interface LeakCheckOptions {
  /** How long to wait for asynchronous closes to finish before failing (default 2000 ms). */
  timeoutMs?: number;
  /** Resource types not to check, in addition to the file-system and terminal ones ('Timeout' skips timers). */
  ignore?: readonly string[];
}

interface TrackedTimer {
  resource: { _destroyed?: boolean; _onTimeout?: unknown };
  /** Holds the stack where the timer was made; formatted only when it is reported. */
  site: { stack?: string };
}

/** Timers made since the last snapshot and not yet fired or cleared. */
const timers = new Map<number, TrackedTimer>();

const timerHook = createHook({
  init(asyncId, type, _triggerId, resource) {
    if (type !== 'Timeout') return;
    const site: { stack?: string } = {};
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 16;
    Error.captureStackTrace(site);
    Error.stackTraceLimit = limit;
    timers.set(asyncId, { resource: resource as TrackedTimer['resource'], site });
  },
  destroy(asyncId) {
    timers.delete(asyncId);
  },
});

/** Count the active resources by type, and start tracking timers (ref'd or not) made from now on. */
export function snapshotResources(): ResourceSnapshot {
  timers.clear();
  timerHook.enable();
  const counts = new Map<string, number>();
  for (const name of process.getActiveResourcesInfo()) counts.set(name, (counts.get(name) ?? 0) + 1);
  return counts;
}

/** The first frame of a stack that is not Node's or this file's: where the timer was made. */
function madeAt(stack: string | undefined): string {
  const frames = (stack ?? '').split('\n').slice(1).map((l) => l.trim());
  return frames.find((f) => !f.includes('node:') && !OWN_FRAME.test(f)) ?? frames[0] ?? 'unknown';
}

/** Timers made since the snapshot that are still pending, by where they were made (the runner's left out). */
function liveTimers(): Map<string, number> {
  const sites = new Map<string, number>();
  for (const t of timers.values()) {
    if (t.resource._destroyed) continue;
    const at = madeAt(t.site.stack);
    if (RUNNER_FRAME.test(at)) continue;
    sites.set(at, (sites.get(at) ?? 0) + 1);
  }
  return sites;
}

/** What is active now beyond `before`: type -> extra count. Empty when nothing leaked. */
export function newResources(before: ResourceSnapshot, ignore: readonly string[] = []): Map<string, number> {
  const skip = new Set([...DEFAULT_IGNORE, ...ignore]);
  const extra = new Map<string, number>();
  const counts = new Map<string, number>();
  for (const name of process.getActiveResourcesInfo()) counts.set(name, (counts.get(name) ?? 0) + 1);
  for (const [name, count] of counts) {
    // Timers are counted from the hook below, unref'd ones included.
    if (skip.has(name) || name === 'Timeout') continue;
    const diff = count - (before.get(name) ?? 0);
    if (diff > 0) extra.set(name, diff);
  }
  if (!skip.has('Timeout')) {
    for (const [at, n] of liveTimers()) extra.set(`Timeout (made ${at})`, n);
  }
  return extra;
}

/**
 * Wait (polling) until no resource beyond `before` is active; throw an Error naming the leftovers after
 * `timeoutMs`. The polling sleep is itself a timer, but it has fired by the time each check runs.
 */
export async function expectNoLeaks(before: ResourceSnapshot, options: LeakCheckOptions = {}): Promise<void> {
  const deadline = Date.now() + (options.timeoutMs ?? 2000);
  let delay = 5;
  try {
    for (;;) {
      // Let pending closes and immediates run before looking.
      await new Promise<void>((resolve) => setImmediate(resolve));
      const extra = newResources(before, options.ignore);
      if (extra.size === 0) return;
      if (Date.now() >= deadline) {
        const list = [...extra].map(([name, n]) => `${name} x${n}`).join(', ');
        throw new Error(`leaked resources after the test: ${list}`);
      }
      await sleep(delay);
      delay = Math.min(delay * 2, 100);
    }
  } finally {
    timerHook.disable();
    timers.clear();
  }
}
