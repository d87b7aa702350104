import type { FlagSpec } from './flags.js';

/**
 * The klog flags the Go binaries register. `-v` is honoured (see the logger); the others are accepted so an
 * existing manifest keeps working, and ignored with a warning (we always log to stderr).
 */
export function klogFlags(): FlagSpec[] {
  const ignoredString = (name: string, usage: string, def = ''): FlagSpec => ({ name, type: 'string', default: def, usage, ignored: true });
  const ignoredBool = (name: string, usage: string, def = false): FlagSpec => ({ name, type: 'bool', default: def, usage, ignored: true });
  return [
    {
      name: 'v',
      type: 'int',
      default: 4,
      usage: 'log verbosity: 0 errors and lifecycle, 2 tunnels, 4 dials and closes, 5 per-packet tracing',
      validate: (v) => ((v as number) < 0 ? 'must be >= 0' : undefined),
    },
    {
      name: 'log-format',
      type: 'string',
      default: 'text',
      usage: 'log line format: text (klog-like key=value) or json [konnectivity-ts]',
      validate: (v) => (v === 'text' || v === 'json' ? undefined : 'must be text or json'),
    },
    ignoredBool('logtostderr', 'log to standard error instead of files', true),
    ignoredBool('alsologtostderr', 'log to standard error as well as files'),
    ignoredString('log-dir', 'if non-empty, write log files in this directory'),
    ignoredString('log-file', 'if non-empty, use this log file'),
    { name: 'log-file-max-size', type: 'int', default: 1800, usage: 'maximum size a log file can grow to (MB)', ignored: true },
    ignoredString('vmodule', 'comma-separated list of pattern=N settings for file-filtered logging'),
    ignoredString('log-backtrace-at', 'when logging hits line file:N, emit a stack trace', ':0'),
    { name: 'stderrthreshold', type: 'string', default: '2', usage: 'logs at or above this threshold go to stderr', ignored: true },
    ignoredBool('add-dir-header', 'add the file directory to the header of the log messages'),
    ignoredBool('skip-headers', 'avoid header prefixes in the log messages'),
    ignoredBool('skip-log-headers', 'avoid headers when opening log files'),
    ignoredBool('one-output', 'only write logs to their native severity level'),
  ];
}
