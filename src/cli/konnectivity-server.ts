#!/usr/bin/env node
/** Entry point of the `konnectivity-server` binary. */
import { keepHeapLimitFloor } from './heap.js';
import { main } from './server.js';

keepHeapLimitFloor();

main().catch((err: unknown) => {
  process.stderr.write(`konnectivity-server: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
