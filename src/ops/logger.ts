/**
 * Structured logs with the reference's keys (`dialID`, `connectionID`, `agentID`, `serverID`, `dialAddress`) and
 * klog's verbosity model: a line at level N is written when `-v` >= N. Errors and warnings are always written.
 *
 * Two formats, one line per record:
 * - `text`, klog's: `I1125 17:33:45.123456    4242 server.ts:120] "Agent connected" agentID="node-1"`: the
 *   severity (I, W, E), month-day, local time with real microseconds, the pid, the `file:line` of the call, then
 *   the quoted message and `key=value` pairs (strings quoted, numbers, booleans and bigints bare, an error first as
 *   `err="..."`), as klog's `InfoS`/`ErrorS` print them; `infoText` and friends write an unquoted line, as klog's
 *   `Infof`. The position is read from the call's stack only for lines that are written, so a disabled level
 *   costs nothing.
 * - `json` (the shape of Kubernetes' JSON logs): `{"ts":1764092025123.456,"caller":"server.ts:120","level":"info",
 *   "v":4,"logger":"server","msg":"Agent connected","agentID":"node-1"}`; `ts` is Unix milliseconds, bigints are
 *   strings (int64 IDs do not fit a JSON number), an error goes in `err`.
 *
 * Where lines go is the sink's business (see log-output.ts for klog's `--log-file` and friends).
 */

/** The line format. */
export type LogFormat = 'text' | 'json';

/** Key/value pairs of one record. `undefined` values are left out. */
export type LogFields = Readonly<Record<string, unknown>>;

/** The severity of a line. */
export type LogSeverity = 'info' | 'warning' | 'error';

/** Where lines go: anything with `write(string)` (process.stderr, a test buffer, a klog output router). */
export interface LogSink {
  /** One line, newline included. */
  write(chunk: string): unknown;
  /** Used instead of `write` when present: a router that sends some severities elsewhere too (klog's stderr threshold). */
  writeAt?(chunk: string, severity: LogSeverity): unknown;
}

/** Options of {@link createLogger}. */
export interface LoggerOptions {
  /** The `-v` level: info lines at or below it are written (default 0). */
  verbosity?: number;
  /** Line format (default `text`). */
  format?: LogFormat;
  /** Where to write (default process.stderr). */
  sink?: LogSink;
  /** Component name (`server`, `agent`): the `logger` of JSON records. */
  name?: string;
  /** Fields added to every record. */
  fields?: LogFields;
  /** Print the caller's `file:line` (default true); false prints the component name instead. */
  position?: boolean;
  /** klog's `--add-dir-header`: the position includes the file's directory (`cli/server.ts:12`). */
  addDirHeader?: boolean;
  /** klog's `--skip-headers`: text lines without the `I1125 17:03:04.056789 pid file:line] ` header. */
  skipHeaders?: boolean;
  /** Clock, for tests: a Date, or epoch milliseconds with a fraction (default: now, to the microsecond). */
  now?: () => Date | number;
}

/** Info lines at one verbosity level; a disabled level is a no-op, so callers need no `if`. */
export interface LevelLogger {
  /** True when this level's lines are written. */
  readonly enabled: boolean;
  /** Write an info line at this level (nothing when disabled). */
  info(msg: string, fields?: LogFields): void;
  /** An unstructured line, written as it is (klog's `Infof`). */
  infoText(text: string): void;
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
  /** Unstructured lines, written as they are (klog's `Infof`, `Warningf`, `Errorf`). */
  infoText(text: string): void;
  /** A warning line, written as it is (klog's `Warningf`). */
  warnText(text: string): void;
  /** An error line, written as it is (klog's `Errorf`). */
  errorText(text: string): void;
  /** A logger that adds `fields` to every record. */
  child(fields: LogFields): Logger;
}

const SEVERITY_LETTER: Record<LogSeverity, string> = { info: 'I', warning: 'W', error: 'E' };

interface Resolved {
  verbosity: number;
  format: LogFormat;
  sink: LogSink;
  name: string;
  position: boolean;
  addDirHeader: boolean;
  skipHeaders: boolean;
  now: () => Date | number;
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
    position: options.position ?? true,
    addDirHeader: options.addDirHeader ?? false,
    skipHeaders: options.skipHeaders ?? false,
    now: options.now ?? (() => performance.timeOrigin + performance.now()),
  };
  return new StructuredLogger(resolved, options.fields ?? {});
}

const DISABLED: LevelLogger = { enabled: false, info: () => undefined, infoText: () => undefined };

/** What a record carries besides the message. */
interface Record_ {
  severity: LogSeverity;
  level: number;
  msg: string;
  quoted: boolean;
  err: unknown;
  fields: LogFields | undefined;
}

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
    const info = (msg: string, fields?: LogFields): void =>
      this.write({ severity: 'info', level, msg, quoted: true, err: undefined, fields }, info);
    const infoText = (text: string): void => this.write({ severity: 'info', level, msg: text, quoted: false, err: undefined, fields: undefined }, infoText);
    return { enabled: true, info, infoText };
  }

  info(msg: string, fields?: LogFields): void {
    this.write({ severity: 'info', level: 0, msg, quoted: true, err: undefined, fields }, this.info);
  }

  warn(msg: string, fields?: LogFields): void {
    this.write({ severity: 'warning', level: 0, msg, quoted: true, err: undefined, fields }, this.warn);
  }

  error(msg: string, err?: unknown, fields?: LogFields): void {
    this.write({ severity: 'error', level: 0, msg, quoted: true, err, fields }, this.error);
  }

  infoText(text: string): void {
    this.write({ severity: 'info', level: 0, msg: text, quoted: false, err: undefined, fields: undefined }, this.infoText);
  }

  warnText(text: string): void {
    this.write({ severity: 'warning', level: 0, msg: text, quoted: false, err: undefined, fields: undefined }, this.warnText);
  }

  errorText(text: string): void {
    this.write({ severity: 'error', level: 0, msg: text, quoted: false, err: undefined, fields: undefined }, this.errorText);
  }

  child(fields: LogFields): Logger {
    return new StructuredLogger(this.r, { ...this.fields, ...fields });
  }

  /** `entry` is the public method called, so the position is its caller's. */
  // eslint-disable-next-line @typescript-eslint/ban-types
  private write(rec: Record_, entry: Function): void {
    const where = this.r.position && !(this.r.skipHeaders && this.r.format === 'text') ? callerPosition(entry, this.r.addDirHeader) : this.r.name;
    const all: Record<string, unknown> = {};
    // klog's ErrorS puts the error first.
    if (rec.err !== undefined) all['err'] = rec.err instanceof Error ? rec.err.message : rec.err;
    Object.assign(all, this.fields, rec.fields);
    const line = this.r.format === 'json' ? this.json(rec, where, all) : this.text(rec, where, all);
    const sink = this.r.sink;
    if (sink.writeAt) sink.writeAt(line + '\n', rec.severity);
    else sink.write(line + '\n');
  }

  private text(rec: Record_, where: string, fields: Record<string, unknown>): string {
    const head = this.r.skipHeaders ? '' : klogHeader(rec.severity, this.r.now(), where);
    let out = `${head}${rec.quoted ? JSON.stringify(rec.msg) : rec.msg}`;
    for (const [key, value] of Object.entries(fields)) {
      if (value === undefined) continue;
      out += ` ${key}=${textValue(value)}`;
    }
    return out;
  }

  private json(rec: Record_, where: string, fields: Record<string, unknown>): string {
    const t = this.r.now();
    const record: Record<string, unknown> = { ts: typeof t === 'number' ? t : t.getTime() };
    if (this.r.position) record['caller'] = where;
    record['level'] = rec.severity;
    if (rec.severity === 'info') record['v'] = rec.level;
    if (this.r.name) record['logger'] = this.r.name;
    record['msg'] = rec.msg;
    for (const [key, value] of Object.entries(fields)) if (value !== undefined && !(key in record)) record[key] = value;
    return JSON.stringify(record, jsonReplacer);
  }
}

const p2 = (n: number): string => (n < 10 ? `0${n}` : String(n));
const PID = String(process.pid).padStart(7);

/** klog's line header: `I1125 17:03:04.056123    4242 file.ts:12] ` (local time, as klog prints it). */
export function klogHeader(severity: LogSeverity, time: Date | number, where: string): string {
  const ms = typeof time === 'number' ? time : time.getTime();
  const d = new Date(Math.floor(ms));
  const micros = typeof time === 'number' ? Math.floor((ms - Math.floor(ms / 1000) * 1000) * 1000) : d.getMilliseconds() * 1000;
  return (
    `${SEVERITY_LETTER[severity]}${p2(d.getMonth() + 1)}${p2(d.getDate())} ` +
    `${p2(d.getHours())}:${p2(d.getMinutes())}:${p2(d.getSeconds())}.${String(micros).padStart(6, '0')} ${PID} ${where}] `
  );
}

/** Frames look like `    at fn (/path/to/file.ts:11:13)` or `    at file:///path/file.js:11:13`. */
const FRAME = /(?:([^/\\\s():]+)[/\\])?([^/\\\s():]+):(\d+):\d+\)?\s*$/;

/**
 * The `file:line` of the code that called `entry`: one frame, read from the V8 stack (source-mapped when the
 * process has source maps, as under tsx), only for lines that are written.
 */
// eslint-disable-next-line @typescript-eslint/ban-types
function callerPosition(entry: Function, withDir: boolean): string {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 1;
  const holder: { stack?: string } = {};
  Error.captureStackTrace(holder, entry);
  Error.stackTraceLimit = limit;
  const frame = holder.stack?.split('\n')[1] ?? '';
  const m = FRAME.exec(frame);
  if (!m) return '???:1';
  return withDir && m[1] ? `${m[1]}/${m[2]}:${m[3]}` : `${m[2]}:${m[3]}`;
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

/**
 * A duration as Go's `time.Duration.String()` prints it: `7.587817ms`, `1.306274ms`, `419.464µs`, `1.5s`,
 * `2m3.5s`, `0s`, to the nanosecond.
 */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) return String(ms);
  const sign = ms < 0 ? '-' : '';
  const ns = Math.round(Math.abs(ms) * 1e6);
  if (ns === 0) return '0s';
  const trim = (n: number, decimals: number): string => n.toFixed(decimals).replace(/\.?0+$/, '');
  if (ns < 1000) return `${sign}${ns}ns`;
  if (ns < 1e6) return `${sign}${trim(ns / 1e3, 3)}µs`;
  if (ns < 1e9) return `${sign}${trim(ns / 1e6, 6)}ms`;
  const totalSeconds = ns / 1e9;
  const h = Math.floor(totalSeconds / 3600);
  const m = Math.floor((totalSeconds - h * 3600) / 60);
  const s = trim((ns - (h * 3600 + m * 60) * 1e9) / 1e9, 9);
  if (h > 0) return `${sign}${h}h${m}m${s}s`;
  if (m > 0) return `${sign}${m}m${s}s`;
  return `${sign}${s}s`;
}
