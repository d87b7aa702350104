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
