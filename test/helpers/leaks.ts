/**
 * Leak checks for tests: snapshot `process.getActiveResourcesInfo()` before a test, and after it assert that no new
 * handle (TCPSocketWrap, TCPServerWrap, PipeWrap, Timeout, Immediate, ...) is still alive.
 *
 * Sockets and servers close asynchronously, so the check retries for a short while before failing. Unref'd timers
 * are not reported by Node, so they never count as leaks. Counts are compared per resource type, which tolerates
 * whatever the test runner itself holds open, as long as it held it before the snapshot too.
 *
 * Usage:
 *   const before = snapshotResources();
 *   ... the test ...
 *   await expectNoLeaks(before);
 */
import { setTimeout as sleep } from 'node:timers/promises';

/** Resource type name -> how many are active. */
export type ResourceSnapshot = ReadonlyMap<string, number>;

/** Types that come and go with the runner's own I/O (file reads, the terminal), never the code under test. */
const DEFAULT_IGNORE: readonly string[] = ['FSReqCallback', 'FSReqPromise', 'FileHandleCloseReq', 'TTYWrap', 'StatWatcher'];

export interface LeakCheckOptions {
  /** How long to wait for asynchronous closes to finish before failing (default 2000 ms). */
  timeoutMs?: number;
  /** Resource types not to check, in addition to the file-system and terminal ones. */
  ignore?: readonly string[];
}

/** Count the active resources by type. */
export function snapshotResources(): ResourceSnapshot {
  const counts = new Map<string, number>();
  for (const name of process.getActiveResourcesInfo()) counts.set(name, (counts.get(name) ?? 0) + 1);
  return counts;
}

/** What is active now beyond `before`: type -> extra count. Empty when nothing leaked. */
export function newResources(before: ResourceSnapshot, ignore: readonly string[] = []): Map<string, number> {
  const skip = new Set([...DEFAULT_IGNORE, ...ignore]);
  const extra = new Map<string, number>();
  for (const [name, count] of snapshotResources()) {
    if (skip.has(name)) continue;
    const diff = count - (before.get(name) ?? 0);
    if (diff > 0) extra.set(name, diff);
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
}
