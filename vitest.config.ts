import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'examples/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 30_000,
    // The machine has 2 cores; integration tests move tens of MiB over loopback.
    pool: 'forks',
    maxWorkers: 2,
  },
});
