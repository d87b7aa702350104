#!/usr/bin/env node
/** Entry point of the `konnectivity-agent` binary. */
import { keepHeapLimitFloor } from './heap.js';
import { main } from './agent.js';

keepHeapLimitFloor();

main().catch((err: unknown) => {
  process.stderr.write(`konnectivity-agent: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
