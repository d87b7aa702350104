/**
 * Where log lines go, as klog's output flags decide (read off the reference binaries):
 * - `--logtostderr` (default true): every line to stderr; the file flags have no effect.
 * - `--logtostderr=false`: every line to one file, `--log-file`, or `<--log-dir>/<program>.log` (klog writes one
 *   file per severity there; we write one), or `<tmpdir>/<program>.log`. Lines at or above `--stderrthreshold`
 *   (default ERROR) go to stderr too, and every line does with `--alsologtostderr`.
 * - The file starts with klog's header (`Log file created at: ...`, unless `--skip-log-headers`) and is appended
 *   to; once it would grow past `--log-file-max-size` MB (0: no limit) it is truncated and started again with a
 *   new header, as klog does with a single `--log-file`.
 * - `--one-output` only changes klog's per-severity files; with one file, as here, every line is written once
 *   either way (klog writes a single `--log-file` once per line too).
 *
 * Writes are synchronous, so nothing is lost when the process exits right after a line.
 */
import { closeSync, fstatSync, mkdirSync, openSync, writeSync, ftruncateSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { LogSeverity, LogSink } from './logger.js';

const RANK: Record<LogSeverity, number> = { info: 0, warning: 1, error: 2 };

/** klog's `--stderrthreshold` values: INFO, WARNING, ERROR, FATAL (any case) or 0-3. Undefined when invalid. */
export function parseSeverityThreshold(text: string): number | undefined {
  const t = text.trim().toUpperCase();
  const names = ['INFO', 'WARNING', 'ERROR', 'FATAL'];
  if (names.includes(t)) return names.indexOf(t);
  if (/^[0-3]$/.test(t)) return Number(t);
  return undefined;
}

/** The klog output flags. */
export interface KlogOutputOptions {
  /** The program name, for the default file name. */
  program: string;
  /** Write to stderr only (klog's default true); false writes to the log file. */
  logtostderr?: boolean;
  /** With a log file, also write every line to stderr. */
  alsologtostderr?: boolean;
  /** The log file (`--log-file`); it wins over `logDir`. */
  logFile?: string;
  /** The directory of `<program>.log` when no `logFile` is given. */
  logDir?: string;
  /** In MB (1024 * 1024 bytes); 0 means no limit. Default 1800. */
  logFileMaxSizeMB?: number;
  /** 0 INFO, 1 WARNING, 2 ERROR (default), 3 FATAL. */
  stderrThreshold?: number;
  /** No header line at the top of the log file. */
  skipLogHeaders?: boolean;
  /** Where stderr lines go (default process.stderr). */
  stderr?: { write(s: string): unknown };
}

/** A LogSink that routes lines as klog does; `close()` closes the file. */
export interface KlogOutput extends LogSink {
  /** Write one line of a severity: to the file, and to stderr when at or above the threshold. */
  writeAt(chunk: string, severity: LogSeverity): void;
  /** The file written to, or undefined when logging to stderr. */
  readonly path: string | undefined;
  /** Close the file (stderr stays open). */
  close(): void;
}

/** Build the router for the klog output flags (see the module comment). Throws when the file cannot be opened. */
export function createKlogOutput(options: KlogOutputOptions): KlogOutput {
  const stderr = options.stderr ?? process.stderr;
  if (options.logtostderr ?? true) {
    return { path: undefined, write: (chunk) => stderr.write(chunk), writeAt: (chunk) => void stderr.write(chunk), close: () => undefined };
  }
  const path = options.logFile || join(options.logDir || tmpdir(), `${options.program}.log`);
  const maxBytes = (options.logFileMaxSizeMB ?? 1800) * 1024 * 1024;
  const threshold = options.stderrThreshold ?? 2;
  const also = options.alsologtostderr ?? false;
  mkdirSync(dirname(path), { recursive: true });
  let fd = openSync(path, 'a');
  let size = fstatSync(fd).size;
  const header = (): void => {
    if (options.skipLogHeaders) return;
    const d = new Date();
    const p2 = (n: number): string => String(n).padStart(2, '0');
    const text =
      `Log file created at: ${d.getFullYear()}/${p2(d.getMonth() + 1)}/${p2(d.getDate())} ${p2(d.getHours())}:${p2(d.getMinutes())}:${p2(d.getSeconds())}\n` +
      `Running on machine: ${hostname()}\n` +
      `Binary: Built with node ${process.version} for ${process.platform}/${process.arch}\n` +
      'Log line format: [IWEF]mmdd hh:mm:ss.uuuuuu threadid file:line] msg\n';
    size += writeSync(fd, text);
  };
  header();
  let closed = false;
  const writeAt = (chunk: string, severity: LogSeverity): void => {
    if (also || RANK[severity] >= threshold) stderr.write(chunk);
    if (closed) return;
    const bytes = Buffer.byteLength(chunk);
    if (maxBytes > 0 && size + bytes >= maxBytes) {
      // klog starts the single log file again rather than growing it without bound.
      ftruncateSync(fd, 0);
      closeSync(fd);
      fd = openSync(path, 'w');
      size = 0;
      header();
    }
    size += writeSync(fd, chunk);
  };
  return {
    path,
    write: (chunk) => writeAt(chunk, 'info'),
    writeAt,
    close() {
      if (closed) return;
      closed = true;
      closeSync(fd);
    },
  };
}
