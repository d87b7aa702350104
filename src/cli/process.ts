/**
 * Process plumbing shared by both programs: command-line errors and --help, shutdown signals, bearer tokens.
 */
import { readFile } from 'node:fs/promises';
import { FlagError, formatHelp, type FlagSpec, type ParsedFlags } from './flags.js';
import { createLogger, type LogFormat, type Logger } from '../ops/logger.js';
import { createKlogOutput, type KlogOutput } from '../ops/log-output.js';
import type { KlogOptions } from './klog-flags.js';
import { ErrorCode, KonnectivityError } from '../protocol/errors.js';
import type { Metadata } from '../transport/packet-stream.js';
import { bearerToken } from '../server/auth/token-review.js';

/** Where a program writes and how it exits; replaced in tests. */
export interface ProgramIO {
  stdout: { write(s: string): unknown };
  stderr: { write(s: string): unknown };
  exit(code: number): void;
}

/** The real process. */
export const processIO: ProgramIO = {
  stdout: process.stdout,
  stderr: process.stderr,
  exit: (code) => process.exit(code),
};

/**
 * Parse the command line with `parse`. On --help print the flag list and exit 0; on a bad command line print the
 * error and a hint and exit 2 (Go's flag package does the same). Returns undefined when the program must stop.
 */
export function parseCommandLine<T>(
  program: string,
  summary: string,
  specs: () => FlagSpec[],
  parse: (argv: readonly string[]) => { options: T; parsed: ParsedFlags },
  argv: readonly string[],
  io: ProgramIO,
): { options: T; parsed: ParsedFlags } | undefined {
  try {
    const result = parse(argv);
    if (result.parsed.help) {
      io.stdout.write(formatHelp(program, summary, specs()));
      io.exit(0);
      return undefined;
    }
    return result;
  } catch (err) {
    if (!(err instanceof FlagError)) throw err;
    io.stderr.write(`${program}: ${err.message}\nRun '${program} --help' for the list of flags.\n`);
    io.exit(err.exitCode);
    return undefined;
  }
}

/** The options every program has: `-v`, `--log-format` and the klog output flags. */
export interface LoggingOptions {
  verbosity: number;
  logFormat: LogFormat;
  log: KlogOptions;
}

/** What differs between the two programs; {@link runProgram} does the rest. */
export interface ProgramSpec<O extends LoggingOptions, R> {
  program: string;
  summary: string;
  specs: () => FlagSpec[];
  parse: (argv: readonly string[]) => { options: O; parsed: ParsedFlags };
  /** Logger name (`server`, `agent`), the `logger` of JSON records. */
  name: string;
  /** The reference's `X set to Y.` lines, logged at -v=1 before anything else. */
  optionLines?: (options: O, parsed: ParsedFlags) => string[];
  /** Warnings about the command line beyond the ignored-flag ones (e.g. a security feature we do not implement). */
  checkFlags?: (parsed: ParsedFlags) => string[];
  /** Start everything; a throw is logged and the process exits 1. */
  start: (options: O, log: Logger) => Promise<R>;
  /** The first SIGTERM/SIGINT; call `exit` when done. */
  onFirstSignal: (running: R, signal: NodeJS.Signals, log: Logger, exit: (code: number) => void) => void;
  /** Every later signal. */
  onSecondSignal: (running: R, signal: NodeJS.Signals, log: Logger, exit: (code: number) => void) => void;
}

/** The logger of a program: `-v`, `--log-format`, and klog's output flags (`--log-file`, `--logtostderr`, ...). */
export function programLogger(program: string, name: string, o: LoggingOptions, stderr: ProgramIO['stderr']): { log: Logger; output: KlogOutput } {
  const output = createKlogOutput({ program, ...o.log, stderr });
  const log = createLogger({
    verbosity: o.verbosity,
    format: o.logFormat,
    sink: output,
    name,
    addDirHeader: o.log.addDirHeader,
    skipHeaders: o.log.skipHeaders,
  });
  return { log, output };
}

/**
 * A program's life: parse the command line (--help, exit 2 on bad flags), set up the logger from `-v`,
 * `--log-format` and the klog output flags, start, then hand the signals to the spec. Resolves once the program
 * has called `exit`.
 */
export async function runProgram<O extends LoggingOptions, R>(spec: ProgramSpec<O, R>, argv: readonly string[], io: ProgramIO): Promise<void> {
  const cli = parseCommandLine(spec.program, spec.summary, spec.specs, spec.parse, argv, io);
  if (!cli) return;
  const o = cli.options;
  let logging: { log: Logger; output: KlogOutput };
  try {
    logging = programLogger(spec.program, spec.name, o, io.stderr);
  } catch (err) {
    io.stderr.write(`${spec.program}: cannot open the log file: ${(err as Error).message}\n`);
    io.exit(1);
    return;
  }
  const { log, output } = logging;
  for (const line of spec.optionLines?.(o, cli.parsed) ?? []) log.v(1).infoText(line);
  for (const w of [...cli.parsed.warnings, ...(spec.checkFlags?.(cli.parsed) ?? [])]) log.warn(w);
  let running: R;
  try {
    running = await spec.start(o, log);
  } catch (err) {
    log.error(`failed to start the ${spec.name}`, err);
    output.close();
    io.exit(1);
    return;
  }
  await new Promise<void>((resolve) => {
    let exited = false;
    const exit = (code: number): void => {
      if (exited) return;
      exited = true;
      dispose();
      output.close();
      io.exit(code);
      resolve();
    };
    const dispose = onShutdownSignals(
      (signal) => spec.onFirstSignal(running, signal, log, exit),
      (signal) => spec.onSecondSignal(running, signal, log, exit),
    );
  });
}

/** Signals that start a shutdown, as the reference's handler registers them. */
export const SHUTDOWN_SIGNALS: readonly NodeJS.Signals[] = ['SIGTERM', 'SIGINT'];

/**
 * Call `first` on the first SIGTERM/SIGINT and `second` on the next one. Returns a function that removes the
 * handlers. While installed, the signals no longer kill the process by default: the program decides.
 */
export function onShutdownSignals(first: (signal: NodeJS.Signals) => void, second: (signal: NodeJS.Signals) => void): () => void {
  let count = 0;
  const handler = (signal: NodeJS.Signals): void => {
    count += 1;
    if (count === 1) first(signal);
    else second(signal);
  };
  for (const s of SHUTDOWN_SIGNALS) process.on(s, handler);
  return () => {
    for (const s of SHUTDOWN_SIGNALS) process.off(s, handler);
  };
}

/**
 * The agent's bearer token: the file is re-read on every connect and used verbatim (no trimming), as the
 * reference agent does, so a rotated projected service-account token is picked up.
 */
export function tokenFileReader(path: string): () => Promise<string> {
  return async () => {
    try {
      return await readFile(path, 'utf8');
    } catch (err) {
      throw new KonnectivityError(ErrorCode.UNAUTHENTICATED, `failed to read token from ${path}: ${(err as Error).message}`, { cause: err });
    }
  };
}

/**
 * A verifier for `--agent-token-file` (our extension): the file lists accepted tokens, one per line (blank lines
 * and `#` comments ignored), re-read on every agent connect so tokens can rotate without a restart. An agent
 * whose `authorization` metadata is not `Bearer <one of them>` is refused with ERR_UNAUTHENTICATED.
 */
export function tokenFileVerifier(path: string): (ctx: { metadata: Metadata; agentID: string }) => Promise<void> {
  return async ({ metadata, agentID }) => {
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (err) {
      throw new KonnectivityError(ErrorCode.UNAUTHENTICATED, `cannot check agent token: ${(err as Error).message}`, { cause: err });
    }
    const accepted = new Set(
      text
        .split(/\r?\n/)
        .map((l) => l.trim())
        .filter((l) => l !== '' && !l.startsWith('#')),
    );
    const token = bearerToken(metadata);
    if (token === undefined || !accepted.has(token)) {
      throw new KonnectivityError(ErrorCode.UNAUTHENTICATED, `agent ${agentID}: missing or invalid bearer token`);
    }
  };
}
