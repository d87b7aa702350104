/**
 * Child processes that are not bench roles (the Go programs, konnbench): unlike a role, which exits when the
 * bench's IPC channel goes, they would outlive an interrupted run, so the bench kills them when it exits.
 */
import type { ChildProcess } from 'node:child_process';

const live = new Set<ChildProcess>();

/** Kill `child` when the bench exits, if it is still running then. */
export function track<T extends ChildProcess>(child: T): T {
  live.add(child);
  child.once('exit', () => live.delete(child));
  return child;
}

process.once('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});
