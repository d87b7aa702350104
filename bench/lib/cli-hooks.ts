/**
 * Loaded with `--import` into the konnectivity-ts programs (src/cli) when the konnbench section starts them, so
 * the bench can force a GC before reading their RSS and run the CPU profiler per scenario, as in its own role
 * processes (and, with --cpu-prof, count how received bytes are framed). The program itself is untouched: it
 * parses its flags and runs as a user starts it.
 */
import { loadLib } from './engine.js';
import { serveRole } from './ipc.js';
import { installRxTrace, RX_TRACE_ENV } from './rx-trace.js';

if (process.env[RX_TRACE_ENV]) installRxTrace(await loadLib());
serveRole({}).ready({ pid: process.pid });
