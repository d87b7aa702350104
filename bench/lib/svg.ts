/**
 * The run as a picture: horizontal grouped bars of throughput as a ratio to raw TCP, one panel per scenario, ours
 * against the Go reference where it ran. Hand-written SVG (no dependency); `renderChart` is pure, `chartOf` turns a
 * run's results into the chart.
 */
import { findRate, REF_PATH_LABELS, REF_STACK_LABELS, type RefStack, type RunResults } from './results.js';

/** One bar series (a colour and its legend entry). */
export interface ChartSeries {
  name: string;
  color: string;
}

/** One row: a label and one value per series of its section (undefined: no bar). */
export interface ChartRow {
  label: string;
  values: Array<number | undefined>;
}

export interface ChartSection {
  title: string;
  series: ChartSeries[];
  rows: ChartRow[];
  /** A dashed vertical line, e.g. at 1.0 (= raw TCP) or at a target. */
  marks?: Array<{ value: number; label: string }>;
}

export interface ChartSpec {
  title: string;
  subtitle: string;
  sections: ChartSection[];
}

const WIDTH = 960;
const LABEL_W = 300;
const PLOT_W = 560;
const BAR_H = 11;
const ROW_GAP = 7;
const FONT = 'font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif"';

/** Escape text for SVG content and attribute values. */
export function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;');
}

/** A round axis maximum at or above `v`, and its grid step. */
export function niceScale(v: number): { max: number; step: number } {
  const top = v > 0 && Number.isFinite(v) ? v : 1;
  const pow = 10 ** Math.floor(Math.log10(top));
  for (const m of [1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) {
    if (m * pow >= top) {
      const max = m * pow;
      const step = [0.2, 0.25, 0.5, 1, 2].map((k) => k * pow).find((s) => max / s <= 6) ?? max;
      return { max, step };
    }
  }
  return { max: 10 * pow, step: 2 * pow };
}

const fmt = (n: number) => (Math.abs(n) >= 10 ? n.toFixed(0) : n >= 1 ? n.toFixed(2).replace(/0$/, '') : n.toFixed(2));

export function renderChart(spec: ChartSpec): string {
  const parts: string[] = [];
  let y = 20;
  parts.push(`<text x="16" y="${y + 6}" font-size="18" font-weight="600">${escapeXml(spec.title)}</text>`);
  y += 26;
  parts.push(`<text x="16" y="${y}" font-size="12" fill="#555">${escapeXml(spec.subtitle)}</text>`);
  y += 18;
  for (const section of spec.sections) {
    if (!section.rows.length) continue;
    y += 16;
    parts.push(`<text x="16" y="${y}" font-size="14" font-weight="600">${escapeXml(section.title)}</text>`);
    y += 8;
    // Legend.
    let lx = 16;
    y += 14;
    for (const s of section.series) {
      parts.push(`<rect x="${lx}" y="${y - 9}" width="10" height="10" fill="${escapeXml(s.color)}"/>`);
      parts.push(`<text x="${lx + 14}" y="${y}" font-size="11">${escapeXml(s.name)}</text>`);
      lx += 24 + s.name.length * 6.2;
    }
    y += section.marks?.length ? 22 : 10;
    const values = section.rows.flatMap((r) => r.values).filter((v): v is number => v !== undefined && Number.isFinite(v));
    const marks = section.marks ?? [];
    const { max, step } = niceScale(Math.max(0, ...values, ...marks.map((m) => m.value)) * 1.08);
    const xOf = (v: number) => LABEL_W + (Math.max(0, Math.min(v, max)) / max) * PLOT_W;
    const rowH = section.series.length * BAR_H + ROW_GAP;
    const top = y;
    const height = section.rows.length * rowH;
    // Grid and axis labels.
    for (let g = 0; g <= max + 1e-9; g += step) {
      const gx = xOf(g).toFixed(1);
      parts.push(`<line x1="${gx}" y1="${top}" x2="${gx}" y2="${top + height}" stroke="#e4e4e4"/>`);
      parts.push(`<text x="${gx}" y="${top + height + 12}" font-size="10" fill="#777" text-anchor="middle">${fmt(g)}x</text>`);
    }
    section.rows.forEach((row, i) => {
      const ry = top + i * rowH;
      parts.push(`<text x="${LABEL_W - 8}" y="${ry + rowH / 2 + 1}" font-size="11" text-anchor="end" dominant-baseline="middle">${escapeXml(row.label)}</text>`);
      row.values.forEach((v, k) => {
        if (v === undefined || !Number.isFinite(v)) return;
        const by = ry + k * BAR_H + ROW_GAP / 2;
        const w = Math.max(1, xOf(v) - LABEL_W);
        const s = section.series[k]!;
        parts.push(`<rect x="${LABEL_W}" y="${by.toFixed(1)}" width="${w.toFixed(1)}" height="${BAR_H - 2}" fill="${escapeXml(s.color)}"><title>${escapeXml(`${row.label}, ${s.name}: ${v.toFixed(3)}x`)}</title></rect>`);
        parts.push(`<text x="${(LABEL_W + w + 4).toFixed(1)}" y="${(by + BAR_H - 3).toFixed(1)}" font-size="9" fill="#333">${fmt(v)}x</text>`);
      });
    });
    for (const m of marks) {
      const mx = xOf(m.value).toFixed(1);
      parts.push(`<line x1="${mx}" y1="${top - 4}" x2="${mx}" y2="${top + height}" stroke="#c0392b" stroke-dasharray="4 3"/>`);
      parts.push(`<text x="${mx}" y="${top - 6}" font-size="9" fill="#c0392b" text-anchor="middle">${escapeXml(m.label)}</text>`);
    }
    y = top + height + 22;
  }
  y += 8;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${y}" viewBox="0 0 ${WIDTH} ${y}" ${FONT}>`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    ...parts,
    '</svg>',
    '',
  ].join('\n');
}

const COLORS = { ts: '#2b6cb0', tsYamux: '#63b3ed', go: '#dd8833', mixedA: '#38a169', mixedB: '#9f7aea' };

/** The chart of a run: konnbench section first (ours against Go), then the Node-client paths. */
export function chartOf(res: RunResults): ChartSpec {
  const ref = res.reference;
  const sections: ChartSection[] = [];
  const refRaw = (dir: 'up' | 'down', conns: number, list = ref.bulk) => findRate(list, 'raw', 'raw', dir, conns)?.rate;
  const rel = (v: number | undefined, base: number | undefined) => (v && base ? v / base : undefined);
  const dirs = ['up', 'down'] as const;

  if (ref.bulk.length) {
    const rows = (['grpcfe', 'connect', 'connect-yamux'] as const).flatMap((path) =>
      dirs.map((dir) => ({
        label: `${REF_PATH_LABELS[path]}, ${dir}`,
        values: [rel(findRate(ref.bulk, path, 'ts', dir)?.rate, refRaw(dir, 1)), rel(findRate(ref.bulk, path, 'go', dir)?.rate, refRaw(dir, 1))],
      })),
    ).filter((r) => r.values.some((v) => v !== undefined));
    sections.push({
      title: 'Go client (konnbench), loopback, 1 connection: ratio to raw TCP (konnbench straight to the target)',
      series: [{ name: REF_STACK_LABELS.ts, color: COLORS.ts }, { name: REF_STACK_LABELS.go, color: COLORS.go }],
      rows,
    });
  }
  if (ref.longLink.length) {
    const stacks: Array<[RefStack, 'connect' | 'connect-yamux', string, string]> = [
      ['ts', 'connect', `${REF_STACK_LABELS.ts}, gRPC leg`, COLORS.ts],
      ['ts', 'connect-yamux', `${REF_STACK_LABELS.ts}, yamux leg`, COLORS.tsYamux],
      ['go', 'connect', REF_STACK_LABELS.go, COLORS.go],
      ['go-server+ts-agent', 'connect', REF_STACK_LABELS['go-server+ts-agent'], COLORS.mixedA],
      ['ts-server+go-agent', 'connect', REF_STACK_LABELS['ts-server+go-agent'], COLORS.mixedB],
    ];
    const present = stacks.filter(([stack, path]) => ref.longLink.some((r) => r.stack === stack && r.path === path));
    const rows = dirs.flatMap((dir) =>
      [1, 8].map((conns) => ({
        label: `${dir} x${conns}`,
        values: present.map(([stack, path]) => rel(findRate(ref.longLink, path, stack, dir, conns)?.rate, refRaw(dir, conns, ref.longLink))),
      })),
    );
    sections.push({
      title: 'Go client, long link (relay on the agent leg), HTTP-CONNECT: ratio to raw TCP through the relay',
      series: present.map(([, , name, color]) => ({ name, color })),
      rows,
      marks: [{ value: 0.5, label: 'target 0.5x' }],
    });
  }
  const raw = res.paths.find((p) => p.name === 'raw' && p.status === 'ok');
  const withBulk = res.paths.filter((p) => p.status === 'ok' && p.bulk && p.name !== 'raw');
  if (raw?.bulk && withBulk.length) {
    const cases = raw.bulk.map((c) => ({ dir: c.dir, conns: c.conns }));
    const shades = ['#1a365d', '#2b6cb0', '#63b3ed', '#744210', '#dd8833', '#f6c177'];
    sections.push({
      title: 'Node client (bench roles), loopback: ratio to raw TCP (Node to Node)',
      series: cases.map((c, i) => ({ name: `${c.dir} x${c.conns}`, color: shades[i % shades.length]! })),
      rows: withBulk.map((p) => ({
        label: p.label,
        values: cases.map((c) => rel(p.bulk!.find((b) => b.dir === c.dir && b.conns === c.conns)?.rate, raw.bulk!.find((b) => b.dir === c.dir && b.conns === c.conns)?.rate)),
      })),
      marks: [{ value: 1, label: 'raw TCP' }],
    });
  }
  const rawLong = res.latency.find((p) => p.name === 'raw' && p.status === 'ok');
  const long = res.latency.filter((p) => p.status === 'ok' && p.latency && p.name !== 'raw');
  if (rawLong?.latency && long.length) {
    sections.push({
      title: 'Node client, long link, download: ratio to raw TCP through the relay',
      series: rawLong.latency.map((c, i) => ({ name: `${c.conns} conn${c.conns > 1 ? 's' : ''}`, color: i ? '#63b3ed' : '#2b6cb0' })),
      rows: long.map((p) => ({ label: p.label, values: rawLong.latency!.map((c) => rel(p.latency!.find((l) => l.conns === c.conns)?.rate, c.rate)) })),
      marks: [{ value: 0.5, label: 'target 0.5x' }],
    });
  }
  const m = res.meta;
  return {
    title: 'konnectivity-ts throughput, as a ratio to raw TCP in the same run',
    subtitle: `${m.date}, Node ${m.node}, ${m.cpus}, load ${m.loadavgStart.map((l) => l.toFixed(1)).join(' ')} at the start, ${m.loadavg.map((l) => l.toFixed(1)).join(' ')} at the end; longer is better`,
    sections,
  };
}
