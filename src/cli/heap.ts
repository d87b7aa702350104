/**
 * The programs' garbage-collector setting. A forwarding process keeps a small live heap (about 10 MB) while
 * megabytes of socket and HTTP/2 buffers pass through it every millisecond; V8 counts the buffers that outlive two
 * young-generation collections towards the old generation, whose limit it sets at about 1.4x the live heap, so it
 * ran a full mark-compact every 12-30 MB of traffic: 25-38 of them per process for 512 MiB moved, a quarter of
 * the CPU the programs spent. Keeping the limit at no less than {@link HEAP_LIMIT_FLOOR_BYTES} makes them rare (0-2
 * per 512 MiB; the peak resident size under that load stayed within 5 %); above the floor V8 decides as it always
 * does.
 *
 * V8's initial-old-space-size does the same but only on the command line, which a `#!/usr/bin/env node` program
 * cannot pass everywhere (BusyBox env, on Alpine, has no -S); its heap growing factor is read at every full
 * collection, so it is set at run time from the live heap each one leaves.
 */
import { PerformanceObserver, constants } from 'node:perf_hooks';
import v8 from 'node:v8';

/** The old-generation limit the programs keep at least (when the live heap is below it). */
export const HEAP_LIMIT_FLOOR_BYTES = 64 * 1024 * 1024;
/** Growth beyond this factor is never asked for, whatever the live heap. */
const MAX_GROWING_PERCENT = 1000;

/**
 * The heap growing percent that puts the next old-generation limit at `floorBytes` for a live heap of `liveBytes`;
 * 0 (V8's own choice) once the live heap has reached the floor.
 */
export function growingPercentFor(liveBytes: number, floorBytes: number = HEAP_LIMIT_FLOOR_BYTES): number {
  if (liveBytes >= floorBytes) return 0;
  const live = Math.max(liveBytes, 1);
  return Math.min(MAX_GROWING_PERCENT, Math.ceil((floorBytes / live - 1) * 100));
}

/**
 * Keep the old-generation limit of this process at least `floorBytes` from now on, re-judged after every full
 * collection. For programs only (it changes a V8 setting of the whole process). Returns a function that stops it.
 */
export function keepHeapLimitFloor(floorBytes: number = HEAP_LIMIT_FLOOR_BYTES): () => void {
  let percent = -1;
  const apply = (): void => {
    const next = growingPercentFor(v8.getHeapStatistics().used_heap_size, floorBytes);
    if (next === percent) return;
    percent = next;
    v8.setFlagsFromString(`--heap-growing-percent=${next}`);
  };
  apply();
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      if ((entry as { detail?: { kind?: number } }).detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR) {
        apply();
        return;
      }
    }
  });
  observer.observe({ entryTypes: ['gc'] });
  return () => observer.disconnect();
}
