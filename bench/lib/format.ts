/** Text formatting shared by the report, the target checks and the micro-benchmarks. */

/** A text table: the first row is the header (underlined), the first column left-aligned, the others right-aligned. */
export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows
    .map((r, ri) => {
      const line = r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : (c ?? '').padStart(widths[i]!))).join('  ');
      return ri === 0 ? `${line}\n${widths.map((w) => '-'.repeat(w)).join('  ')}` : line.trimEnd();
    })
    .join('\n');
}

/** A table followed by its legend: one `name: meaning` line per entry, indented. */
export function withLegend(text: string, legend: Array<[string, string]>): string {
  if (!legend.length) return text;
  return `${text}\n${legend.map(([k, v]) => `  ${k}: ${v}`).join('\n')}`;
}

/** Bytes per second as MB/s (10^6 bytes), one decimal below 10 MB/s. */
export const mb = (bps: number | undefined): string =>
  bps === undefined || !Number.isFinite(bps) ? '-' : `${(bps / 1e6).toFixed(bps < 1e7 ? 1 : 0)} MB/s`;
/** `x / base` as `1.23x`, or '' when either is missing. */
export const times = (x: number | undefined, base: number | undefined): string =>
  x === undefined || base === undefined || !base || !Number.isFinite(x) ? '' : `${(x / base).toFixed(2)}x`;
/** ` (1.23x)` after a figure, or ''. */
export const ratio = (x: number | undefined, base: number | undefined): string => {
  const t = times(x, base);
  return t ? ` (${t})` : '';
};
export const kib = (b: number | undefined): string => (b === undefined ? '-' : `${(b / 1024).toFixed(1)} KiB`);
export const mib = (b: number | undefined): string => (b === undefined ? '-' : `${(b / 1024 ** 2).toFixed(1)} MiB`);
export const sec = (s: number | undefined): string => (s === undefined || !Number.isFinite(s) ? '-' : s.toFixed(2));
export const ms = (x: number | undefined): string => (x === undefined || !Number.isFinite(x) ? '-' : `${x.toFixed(2)} ms`);
export const perSec = (x: number | undefined): string => (x === undefined || !Number.isFinite(x) ? '-' : `${x.toFixed(0)}/s`);
