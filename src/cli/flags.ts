/**
 * A small command-line parser that accepts what Go's `flag`/`spf13/pflag` accept, so a manifest written for the Go
 * binaries works unchanged: `--name=value`, `--name value`, `-v=5`, `-v 5`, single-dash long names (`-name=value`,
 * as Go's `flag` allows), booleans (`--name`, `--name=false`), Go durations (`1m30s`), and `_` read as `-`
 * (klog's normalisation). Errors exit with code 2, as Go does.
 */
import { MAX_CONNECTION_WINDOW_BYTES, MAX_DATA_CHUNK_BYTES, MIN_CONNECTION_WINDOW_BYTES } from '../transport/windows.js';

/** The value kinds a flag can have: `float` is Go's float32/64, `strings` pflag's StringSlice (comma-separated, repeatable). */
export type FlagType = 'string' | 'int' | 'float' | 'bool' | 'duration' | 'strings';

/** A flag's parsed value: durations in milliseconds, `strings` as an array. */
export type FlagValue = string | number | boolean | string[];

/** One flag. `default` is already in the parsed form (durations in milliseconds). */
export interface FlagSpec {
  name: string;
  type: FlagType;
  default: FlagValue;
  usage: string;
  /** Accepted for compatibility with the reference and otherwise ignored (a warning is printed when set). */
  ignored?: boolean;
  /** Not listed by --help (deprecated aliases). */
  hidden?: boolean;
  /** Extra check, returns an error message or undefined. */
  validate?: (value: FlagValue) => string | undefined;
}

/** A `validate` that runs `parse` on the value: its error's message is the flag's problem. */
export function validateWith(parse: (value: FlagValue) => unknown): (value: FlagValue) => string | undefined {
  return (value) => {
    try {
      parse(value);
      return undefined;
    } catch (err) {
      return (err as Error).message;
    }
  };
}

/** The parsed flags: every flag's value (the default when not given), which were set, warnings to print. */
export interface ParsedFlags {
  values: Record<string, FlagValue>;
  /** Names of flags given on the command line. */
  set: Set<string>;
  warnings: string[];
  /** True when --help / -h was given. */
  help: boolean;
}

/**
 * `--xfr-channel-size`: the reference's per-stream queue length, in packets. Our buffers are per connection and
 * bounded in bytes, so N packets become N × 32 KiB (the largest DATA we send), kept within 64 KiB and 64 MiB.
 */
export function xfrChannelSizeFlag(def: number): FlagSpec {
  return {
    name: 'xfr-channel-size',
    type: 'int',
    default: def,
    usage: 'per-connection buffer and credit window, in 32 KiB packets (unset: 1 MiB)',
    validate: (v) => ((v as number) < 1 ? 'must be >= 1' : undefined),
  };
}

/** The connection buffer `--xfr-channel-size` asks for, or undefined when the flag was not given. */
export function connectionBufferFromFlags(parsed: ParsedFlags): number | undefined {
  if (!parsed.set.has('xfr-channel-size')) return undefined;
  const bytes = (parsed.values['xfr-channel-size'] as number) * MAX_DATA_CHUNK_BYTES;
  return Math.min(MAX_CONNECTION_WINDOW_BYTES, Math.max(MIN_CONNECTION_WINDOW_BYTES, bytes));
}

/** A bad command line; `exitCode` is 2 like Go's flag package. */
export class FlagError extends Error {
  override readonly name = 'FlagError';
  readonly exitCode = 2;
}

const UNIT_MS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  'µs': 1e-3,
  'μs': 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/**
 * Parse a Go duration (`300ms`, `1.5h`, `1m30s`, `-2s`, `0`) into milliseconds. Throws on anything Go's
 * `time.ParseDuration` rejects (a bare number other than 0, an unknown unit, an empty string).
 */
export function parseGoDuration(text: string): number {
  let s = text;
  let sign = 1;
  if (s.startsWith('-') || s.startsWith('+')) {
    if (s[0] === '-') sign = -1;
    s = s.slice(1);
  }
  if (s === '0') return 0;
  if (s === '') throw new Error(`time: invalid duration "${text}"`);
  let total = 0;
  const re = /^(\d*)(?:\.(\d*))?([a-zµμ]+)/;
  while (s.length > 0) {
    const m = re.exec(s);
    if (!m || (m[1] === '' && (m[2] === undefined || m[2] === ''))) throw new Error(`time: invalid duration "${text}"`);
    const unit = UNIT_MS[m[3]!];
    if (unit === undefined) throw new Error(`time: unknown unit "${m[3]}" in duration "${text}"`);
    const n = Number(`${m[1] || '0'}.${m[2] || '0'}`);
    total += n * unit;
    s = s.slice(m[0].length);
  }
  return sign * total;
}

/** Format milliseconds the way Go prints a Duration (`1h0m0s`, `1s`, `500ms`, `0s`), for --help defaults. */
export function formatGoDuration(ms: number): string {
  if (ms === 0) return '0s';
  const sign = ms < 0 ? '-' : '';
  let rest = Math.abs(ms);
  if (rest < 1000) return `${sign}${rest}ms`;
  const h = Math.floor(rest / 3_600_000);
  rest -= h * 3_600_000;
  const m = Math.floor(rest / 60_000);
  rest -= m * 60_000;
  const s = `${rest / 1000}s`;
  if (h > 0) return `${sign}${h}h${m}m${s}`;
  if (m > 0) return `${sign}${m}m${s}`;
  return `${sign}${s}`;
}

/** Go's `strconv.ParseBool`. */
export function parseGoBool(text: string): boolean | undefined {
  if (['1', 't', 'T', 'true', 'TRUE', 'True'].includes(text)) return true;
  if (['0', 'f', 'F', 'false', 'FALSE', 'False'].includes(text)) return false;
  return undefined;
}

function convert(spec: FlagSpec, raw: string): FlagValue {
  switch (spec.type) {
    case 'string':
      return raw;
    case 'strings':
      // pflag's StringSlice reads CSV; an empty value is the empty list.
      return raw === '' ? [] : raw.split(',').map((s) => s.trim());
    case 'bool': {
      const b = parseGoBool(raw);
      if (b === undefined) throw new FlagError(`invalid argument "${raw}" for "--${spec.name}" flag: strconv.ParseBool: parsing "${raw}": invalid syntax`);
      return b;
    }
    case 'int': {
      if (!/^[+-]?\d+$/.test(raw.trim()) || raw.trim() === '') {
        throw new FlagError(`invalid argument "${raw}" for "--${spec.name}" flag: strconv.ParseInt: parsing "${raw}": invalid syntax`);
      }
      const n = Number(raw);
      if (!Number.isSafeInteger(n)) throw new FlagError(`invalid argument "${raw}" for "--${spec.name}" flag: value out of range`);
      return n;
    }
    case 'float': {
      // Go's strconv.ParseFloat for the plain decimal forms a manifest uses (`50`, `2.5`, `1e3`).
      if (!/^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/.test(raw.trim())) {
        throw new FlagError(`invalid argument "${raw}" for "--${spec.name}" flag: strconv.ParseFloat: parsing "${raw}": invalid syntax`);
      }
      return Number(raw);
    }
    case 'duration':
      try {
        return parseGoDuration(raw);
      } catch (err) {
        throw new FlagError(`invalid argument "${raw}" for "--${spec.name}" flag: ${(err as Error).message}`);
      }
  }
}

/**
 * Parse `argv` (without the node and script entries) against `specs`. Throws FlagError for an unknown flag, a
 * missing value, a bad value or a stray positional argument.
 */
export function parseFlags(specs: readonly FlagSpec[], argv: readonly string[]): ParsedFlags {
  const byName = new Map(specs.map((s) => [s.name, s]));
  const values: Record<string, FlagValue> = {};
  for (const s of specs) values[s.name] = s.default;
  const set = new Set<string>();
  const warnings: string[] = [];
  let help = false;

  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      if (i + 1 < argv.length) throw new FlagError(`unexpected argument "${argv[i + 1]}"`);
      break;
    }
    if (!arg.startsWith('-') || arg === '-') throw new FlagError(`unexpected argument "${arg}" (flags start with --)`);
    const body = arg.replace(/^--?/, '');
    const eq = body.indexOf('=');
    const name = (eq < 0 ? body : body.slice(0, eq)).replace(/_/g, '-');
    let raw: string | undefined = eq < 0 ? undefined : body.slice(eq + 1);
    if (name === 'help' || name === 'h') {
      help = true;
      continue;
    }
    const spec = byName.get(name);
    if (!spec) throw new FlagError(`unknown flag: --${name}`);
    if (raw === undefined) {
      if (spec.type === 'bool') raw = 'true';
      else {
        if (i + 1 >= argv.length) throw new FlagError(`flag needs an argument: --${name}`);
        raw = argv[++i]!;
      }
    }
    let value = convert(spec, raw);
    // A repeated StringSlice flag adds to the list (its first use replaces the default).
    if (spec.type === 'strings' && set.has(name)) value = [...(values[name] as string[]), ...(value as string[])];
    const problem = spec.validate?.(value);
    if (problem) throw new FlagError(`invalid argument "${raw}" for "--${name}" flag: ${problem}`);
    values[name] = value;
    set.add(name);
    // Setting an ignored flag to its default changes nothing, so only a different value is worth a warning.
    if (spec.ignored && String(value) !== String(spec.default)) warnings.push(`flag --${name} is accepted for compatibility and ignored`);
  }
  return { values, set, warnings, help };
}

function defaultText(spec: FlagSpec): string {
  if (spec.type === 'duration') return formatGoDuration(spec.default as number);
  if (spec.type === 'string') return spec.default === '' ? '' : `"${spec.default}"`;
  if (spec.type === 'strings') return (spec.default as string[]).length === 0 ? '' : `[${(spec.default as string[]).join(',')}]`;
  // As pflag: a zero number prints no default.
  if ((spec.type === 'float' || spec.type === 'int') && spec.default === 0) return '';
  return String(spec.default);
}

/** The --help text: every visible flag with its type, usage and default; ignored flags are marked. */
export function formatHelp(program: string, summary: string, specs: readonly FlagSpec[]): string {
  const lines = [`Usage: ${program} [flags]`, '', summary, '', 'Flags:'];
  const rows = specs
    .filter((s) => !s.hidden)
    .map((s) => {
      const typeName = s.type === 'bool' ? '' : ` ${s.type === 'float' ? 'float32' : s.type}`;
      const left = `${s.name.length === 1 ? '-' : '--'}${s.name}${typeName}`;
      const def = defaultText(s);
      const usage = `${s.ignored ? '[accepted, ignored] ' : ''}${s.usage}${def === '' || (s.type === 'bool' && s.default === false) ? '' : ` (default ${def})`}`;
      return [left, usage] as const;
    });
  const width = Math.min(44, Math.max(...rows.map(([l]) => l.length)) + 2);
  for (const [left, usage] of rows) lines.push(`  ${left.padEnd(width)}${usage}`);
  lines.push('', '  -h, --help  show this help');
  return lines.join('\n') + '\n';
}
