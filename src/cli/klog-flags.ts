import type { FlagSpec, ParsedFlags } from './flags.js';
import { parseSeverityThreshold } from '../ops/log-output.js';

/** The klog flags' values that decide the logger and where its lines go. */
export interface KlogOptions {
  logtostderr: boolean;
  alsologtostderr: boolean;
  logFile: string;
  logDir: string;
  logFileMaxSizeMB: number;
  stderrThreshold: number;
  oneOutput: boolean;
  skipHeaders: boolean;
  skipLogHeaders: boolean;
  addDirHeader: boolean;
}

/**
 * The klog flags the Go binaries register, with klog's defaults. `-v` and the output flags are honoured (see
 * ops/log-output.ts); `--vmodule` and `--log-backtrace-at` are accepted and ignored with a warning.
 */
export function klogFlags(): FlagSpec[] {
  const bool = (name: string, usage: string, def = false): FlagSpec => ({ name, type: 'bool', default: def, usage });
  return [
    {
      name: 'v',
      type: 'int',
      default: 4,
      usage: 'log verbosity: 0 errors and lifecycle, 2 agents and tunnels, 3 dials, 4 connections, 5 per-packet tracing',
      validate: (v) => ((v as number) < 0 ? 'must be >= 0' : undefined),
    },
    {
      name: 'log-format',
      type: 'string',
      default: 'text',
      usage: 'log line format: text (klog) or json [konnectivity-ts]',
      validate: (v) => (v === 'text' || v === 'json' ? undefined : 'must be text or json'),
    },
    bool('logtostderr', 'log to standard error instead of files', true),
    bool('alsologtostderr', 'log to standard error as well as files (no effect when -logtostderr=true)'),
    { name: 'log-dir', type: 'string', default: '', usage: 'if non-empty, write the log file <program>.log in this directory (no effect when -logtostderr=true)' },
    { name: 'log-file', type: 'string', default: '', usage: 'if non-empty, use this log file (no effect when -logtostderr=true)' },
    {
      name: 'log-file-max-size',
      type: 'int',
      default: 1800,
      usage: 'maximum size of the log file in MB, then it starts again; 0 is unlimited (no effect when -logtostderr=true)',
      validate: (v) => ((v as number) < 0 ? 'must be >= 0' : undefined),
    },
    {
      name: 'stderrthreshold',
      type: 'string',
      default: '2',
      usage: 'logs at or above this severity (INFO, WARNING, ERROR, FATAL or 0-3) also go to stderr when writing to a file',
      validate: (v) => (parseSeverityThreshold(String(v)) === undefined ? `unknown severity "${v}"` : undefined),
    },
    bool('one-output', 'only write logs to their native severity level (with one log file, each line is written once either way)'),
    bool('add-dir-header', 'add the file directory to the header of the log messages'),
    bool('skip-headers', 'avoid header prefixes in the log messages'),
    bool('skip-log-headers', 'avoid headers when opening log files (no effect when -logtostderr=true)'),
    { name: 'vmodule', type: 'string', default: '', usage: 'comma-separated list of pattern=N settings for file-filtered logging', ignored: true },
    { name: 'log-backtrace-at', type: 'string', default: ':0', usage: 'when logging hits line file:N, emit a stack trace', ignored: true },
  ];
}

/** The klog values of a parsed command line. */
export function klogOptions(parsed: ParsedFlags): KlogOptions {
  const v = parsed.values;
  return {
    logtostderr: v['logtostderr'] as boolean,
    alsologtostderr: v['alsologtostderr'] as boolean,
    logFile: v['log-file'] as string,
    logDir: v['log-dir'] as string,
    logFileMaxSizeMB: v['log-file-max-size'] as number,
    stderrThreshold: parseSeverityThreshold(String(v['stderrthreshold'])) ?? 2,
    oneOutput: v['one-output'] as boolean,
    skipHeaders: v['skip-headers'] as boolean,
    skipLogHeaders: v['skip-log-headers'] as boolean,
    addDirHeader: v['add-dir-header'] as boolean,
  };
}
