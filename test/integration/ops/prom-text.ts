/** Parse the Prometheus text format into `series -> value` (tests only). Throws on a line it cannot read. */
export function parsePrometheusText(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^(\S+?(?:\{[^}]*\})?) (\S+)$/.exec(line);
    if (!m) throw new Error(`bad metrics line: ${line}`);
    out.set(m[1]!, Number(m[2]));
  }
  return out;
}

/**
 * The value of series `name` with exactly `labels`, whatever order the exposition wrote them in (the Go reference
 * sorts labels, prom-client keeps their declaration order); undefined when there is no such series.
 */
export function sample(series: ReadonlyMap<string, number>, name: string, labels: Readonly<Record<string, string>> = {}): number | undefined {
  const want = Object.entries(labels).sort(([a], [b]) => a.localeCompare(b));
  for (const [key, value] of series) {
    const m = /^([^{]+)(?:\{(.*)\})?$/.exec(key);
    if (!m || m[1] !== name) continue;
    const got = [...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((l) => [l[1]!, l[2]!] as const).sort(([a], [b]) => a.localeCompare(b));
    if (got.length === want.length && got.every(([k, v], i) => k === want[i]![0] && v === want[i]![1])) return value;
  }
  return undefined;
}
