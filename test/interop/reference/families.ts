/** Read metric families (HELP, TYPE, label names, histogram buckets) from the Prometheus text format. */

export interface Family {
  name: string;
  help: string | undefined;
  type: string | undefined;
  /** Label names seen on the family's samples (`le` and `quantile` excluded). */
  labels: Set<string>;
  /** A histogram's bucket bounds (`le`), as written. */
  buckets: Set<string>;
  samples: number;
}

const SUFFIXES = ['_bucket', '_sum', '_count'];

/** Parse `text` into families by name; samples of a histogram (`_bucket`, `_sum`, `_count`) go to their family. */
export function parseFamilies(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  const family = (name: string): Family => {
    let f = families.get(name);
    if (!f) {
      f = { name, help: undefined, type: undefined, labels: new Set(), buckets: new Set(), samples: 0 };
      families.set(name, f);
    }
    return f;
  };
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const meta = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
    if (meta) {
      const f = family(meta[2]!);
      if (meta[1] === 'HELP') f.help = meta[3];
      else f.type = meta[3];
      continue;
    }
    if (line.startsWith('#')) continue;
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? \S+/.exec(line);
    if (!sample) throw new Error(`bad metrics line: ${line}`);
    let name = sample[1]!;
    const suffix = SUFFIXES.find((s) => name.endsWith(s) && families.get(name.slice(0, -s.length))?.type === 'histogram');
    if (suffix) name = name.slice(0, -suffix.length);
    const f = family(name);
    f.samples++;
    for (const m of (sample[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      if (m[1] === 'le') f.buckets.add(m[2]!);
      else if (m[1] !== 'quantile') f.labels.add(m[1]!);
    }
  }
  return families;
}

/** Merge scrapes of one process taken at different moments (a family seen in any of them counts). */
export function mergeFamilies(...scrapes: Array<Map<string, Family>>): Map<string, Family> {
  const out = new Map<string, Family>();
  for (const s of scrapes) {
    for (const [name, f] of s) {
      const o = out.get(name);
      if (!o) out.set(name, { ...f, labels: new Set(f.labels), buckets: new Set(f.buckets) });
      else {
        o.help ??= f.help;
        o.type ??= f.type;
        for (const l of f.labels) o.labels.add(l);
        for (const b of f.buckets) o.buckets.add(b);
        o.samples += f.samples;
      }
    }
  }
  return out;
}

/**
 * What differs between a reference family and ours: missing, HELP, TYPE, label names, buckets. Label names and
 * buckets are compared when both sides have samples.
 */
export function compareFamily(go: Family, ours: Family | undefined): string[] {
  if (!ours) return [`${go.name}: missing`];
  const problems: string[] = [];
  if (ours.help !== go.help) problems.push(`${go.name}: HELP ${JSON.stringify(ours.help)}, reference ${JSON.stringify(go.help)}`);
  if (ours.type !== go.type) problems.push(`${go.name}: TYPE ${ours.type}, reference ${go.type}`);
  if (go.samples > 0 && ours.samples > 0) {
    const a = [...go.labels].sort().join(',');
    const b = [...ours.labels].sort().join(',');
    if (a !== b) problems.push(`${go.name}: labels {${b}}, reference {${a}}`);
    const ga = [...go.buckets].map(Number).sort((x, y) => x - y).join(',');
    const gb = [...ours.buckets].map(Number).sort((x, y) => x - y).join(',');
    if (ga !== gb) problems.push(`${go.name}: buckets ${gb}, reference ${ga}`);
  } else if (go.samples > 0) problems.push(`${go.name}: no samples in ours after the same workload, so its labels cannot be compared`);
  return problems;
}
