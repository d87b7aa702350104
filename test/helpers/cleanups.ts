/**
 * The per-test frame of the integration tests that build their own servers: what a test registers is undone after
 * it, last first, and then no handle may be left (`expectNoLeaks`).
 */
import { afterEach, beforeEach } from 'vitest';
import { expectNoLeaks, snapshotResources, type ResourceSnapshot } from './leaks.js';

/** Register the hooks in the calling test file; push undo steps onto the returned list. */
export function leakCheckedCleanups(): Array<() => unknown> {
  const cleanups: Array<() => unknown> = [];
  let before: ResourceSnapshot;
  beforeEach(() => {
    before = snapshotResources();
  });
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
    await expectNoLeaks(before);
  });
  return cleanups;
}
