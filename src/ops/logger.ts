/**
 * Structured logs with the reference's keys (`dialID`, `connectionID`, `agentID`, `serverID`, `dialAddress`) and
 * klog's verbosity model: a line at level N is written when `-v` >= N. Errors and warnings are always written.
 *
 * Two formats, one line per record, on stderr by default:
 * - `text` (klog-like): `I1125 17:33:45.123456   4242 server] "dial succeeded" dialID=123 agentID="node-1"`;
 *   the first letter is the severity (I, W, E), then month-day, time in UTC with microseconds, pid, the component,
 *   the quoted message and `key=value` pairs (strings quoted, numbers, booleans and bigints bare).
 * - `json` (the shape of Kubernetes' JSON logs): `{"ts":1764092025123.456,"level":"info","v":4,"logger":"server",
 *   "msg":"dial succeeded","dialID":"123","agentID":"node-1"}`; `ts` is Unix milliseconds, bigints are strings
 *   (int64 IDs do not fit a JSON number), an error goes in `err`.
 */

/** The line format. */
export type LogFormat = 'text' | 'json';

/** Key/value pairs of one record. `undefined` values are left out. */
export type LogFields = Readonly<Record<string, unknown>>;

/** Where lines go: anything with `write(string)` (process.stderr, a test buffer). */
export interface LogSink {
  /** Write one chunk of text. */
  write(chunk: string): unknown;
}

/** Options of {@link createLogger}. */
export interface LoggerOptions {
  /** The `-v` level: info lines at or below it are written (default 0). */
  verbosity?: number;
  /** Line format (default `text`). */
  format?: LogFormat;
  /** Where to write (default process.stderr). */
  sink?: LogSink;
  /** Component name printed in each line (e.g. `server`, `agent`). */
  name?: string;
  /** Fields added to every record. */
  fields?: LogFields;
  /** Clock, for tests (default `() => new Date()`). */
  now?: () => Date;
}

/** Info lines at one verbosity level; a disabled level is a no-op, so callers need no `if`. */
export interface LevelLogger {
  /** True when this level's lines are written. */
  readonly enabled: boolean;
  /** Write an info line at this level (nothing when disabled). */
  info(msg: string, fields?: LogFields): void;
}

/** A structured logger. */
export interface Logger {
  /** The `-v` level: info lines at or below it are written. */
  readonly verbosity: number;
  /** True when lines at `level` are written. */
  enabled(level: number): boolean;
  /** Info lines at verbosity `level` (klog's `V(level).InfoS`). */
  v(level: number): LevelLogger;
  /** An info line at level 0 (always written). */
  info(msg: string, fields?: LogFields): void;
  /** A warning line (always written). */
  warn(msg: string, fields?: LogFields): void;
  /** An error line; `err` may be undefined when the message says it all. */
  error(msg: string, err?: unknown, fields?: LogFields): void;
  /** A logger that adds `fields` to every record. */
  child(fields: LogFields): Logger;
}

type Severity = 'info' | 'warning' | 'error';

const SEVERITY_LETTER: Record<Severity, string> = { info: 'I', warning: 'W', error: 'E' };

interface Resolved {
  verbosity: number;
  format: LogFormat;
  sink: LogSink;
  name: string;
  now: () => Date;
}

/** Create a logger. Bad options (negative verbosity, unknown format) throw a TypeError. */
export function createLogger(options: LoggerOptions = {}): Logger {
  const verbosity = options.verbosity ?? 0;
  if (!Number.isInteger(verbosity) || verbosity < 0) throw new TypeError(`verbosity must be a non-negative integer, got ${String(verbosity)}`);
  const format = options.format ?? 'text';
  if (format !== 'text' && format !== 'json') throw new TypeError(`log format must be text or json, got ${String(format)}`);
  const resolved: Resolved = {
    verbosity,
    format,
    sink: options.sink ?? process.stderr,
    name: options.name ?? '',
    now: options.now ?? (() => new Date()),
  };
  return new StructuredLogger(resolved, options.fields ?? {});
}

const DISABLED: LevelLogger = { enabled: false, info: () => undefined };

class StructuredLogger implements Logger {
  constructor(
    private readonly r: Resolved,
    private readonly fields: LogFields,
  ) {}

  get verbosity(): number {
    return this.r.verbosity;
  }

  enabled(level: number): boolean {
    return level <= this.r.verbosity;
  }

  v(level: number): LevelLogger {
    if (!this.enabled(level)) return DISABLED;
    return { enabled: true, info: (msg, fields) => this.write('info', level, msg, undefined, fields) };
  }

  info(msg: string, fields?: LogFields): void {
    this.write('info', 0, msg, undefined, fields);
  }

  warn(msg: string, fields?: LogFields): void {
    this.write('warning', 0, msg, undefined, fields);
  }

  error(msg: string, err?: unknown, fields?: LogFields): void {
    this.write('error', 0, msg, err, fields);
  }

  child(fields: LogFields): Logger {
    return new StructuredLogger(this.r, { ...this.fields, ...fields });
  }

  private write(severity: Severity, level: number, msg: string, err: unknown, fields: LogFields | undefined): void {
    const all: Record<string, unknown> = { ...this.fields, ...fields };
    if (err !== undefined) all['err'] = err instanceof Error ? err.message : err;
    const line = this.r.format === 'json' ? this.json(severity, level, msg, all) : this.text(severity, msg, all);
    this.r.sink.write(line + '\n');
  }

  private text(severity: Severity, msg: string, fields: Record<string, unknown>): string {
    const d = this.r.now();
    const p2 = (n: number): string => String(n).padStart(2, '0');
    const stamp =
      `${p2(d.getUTCMonth() + 1)}${p2(d.getUTCDate())} ` +
      `${p2(d.getUTCHours())}:${p2(d.getUTCMinutes())}:${p2(d.getUTCSeconds())}.${String(d.getUTCMilliseconds() * 1000).padStart(6, '0')}`;
    let out = `${SEVERITY_LETTER[severity]}${stamp} ${String(process.pid).padStart(7)} ${this.r.name}] ${JSON.stringify(msg)}`;
    for (const [key, value] of Object.entries(fields)) {
      if (value === undefined) continue;
      out += ` ${key}=${textValue(value)}`;
    }
    return out;
  }

  private json(severity: Severity, level: number, msg: string, fields: Record<string, unknown>): string {
    const record: Record<string, unknown> = { ts: this.r.now().getTime(), level: severity };
    if (severity === 'info') record['v'] = level;
    if (this.r.name) record['logger'] = this.r.name;
    record['msg'] = msg;
    for (const [key, value] of Object.entries(fields)) if (value !== undefined && !(key in record)) record[key] = value;
    return JSON.stringify(record, jsonReplacer);
  }
}

/** A logger that writes nothing (library default when the caller gives none). */
export const silentLogger: Logger = createLogger({ sink: { write: () => undefined }, verbosity: 0 });

function jsonReplacer(_key: string, value: unknown): unknown {
  if (typeof value === 'bigint') return value.toString();
  if (value instanceof Error) return value.message;
  return value;
}

function textValue(value: unknown): string {
  switch (typeof value) {
    case 'number':
    case 'boolean':
    case 'bigint':
      return String(value);
    case 'string':
      return JSON.stringify(value);
    default:
      if (value instanceof Error) return JSON.stringify(value.message);
      return JSON.stringify(value, jsonReplacer) ?? String(value);
  }
}
