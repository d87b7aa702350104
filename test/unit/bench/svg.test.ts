/** The SVG chart writer: well-formed, escaped, bars in proportion, built from a run's results. */
import { describe, expect, it } from 'vitest';
import { emptyReference } from '../../../bench/lib/results.js';
import { chartOf, escapeXml, niceScale, renderChart, type ChartSpec } from '../../../bench/lib/svg.js';
import { sampleRun } from './fixtures.js';

/** Element names in document order, checking that every tag is closed in order (a tiny XML well-formedness check). */
function checkWellFormed(svg: string): string[] {
  const stack: string[] = [];
  const names: string[] = [];
  for (const m of svg.matchAll(/<(\/?)([a-zA-Z]+)([^>]*?)(\/?)>/g)) {
    const [, close, name, attrs, selfClose] = m;
    expect(attrs!.split('"').length % 2, `unbalanced quotes in <${name}${attrs}>`).toBe(1);
    if (close) expect(stack.pop(), `</${name}> closes the wrong element`).toBe(name);
    else {
      names.push(name!);
      if (!selfClose) stack.push(name!);
    }
  }
  expect(stack).toEqual([]);
  // Text between tags holds no raw '<' or '&' that is not an entity.
  for (const t of svg.split(/<[^>]*>/)) expect(t).not.toMatch(/&(?!amp;|lt;|gt;|quot;|apos;)|</);
  return names;
}

const widths = (svg: string, color: string) =>
  [...svg.matchAll(new RegExp(`<rect x="[\\d.]+" y="[\\d.]+" width="([\\d.]+)" height="\\d+" fill="${color}"><title>`, 'g'))].map((m) => Number(m[1]));

describe('bench SVG chart', () => {
  const spec: ChartSpec = {
    title: 'A & B <test>',
    subtitle: 'subtitle "quoted"',
    sections: [
      {
        title: 'section',
        series: [{ name: 'ours', color: '#111111' }, { name: 'Go', color: '#222222' }],
        rows: [{ label: 'row <1>', values: [1, 0.5] }, { label: 'row 2', values: [0.25, undefined] }],
        marks: [{ value: 0.5, label: 'target' }],
      },
      { title: 'empty section', series: [{ name: 'x', color: '#333333' }], rows: [] },
    ],
  };

  it('writes a well-formed SVG with every text escaped', () => {
    const svg = renderChart(spec);
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    const names = checkWellFormed(svg);
    expect(names[0]).toBe('svg');
    expect(svg).toContain('A &amp; B &lt;test&gt;');
    expect(svg).toContain('row &lt;1&gt;');
    expect(svg).not.toContain('empty section');
    expect(escapeXml(`<a href="x">&'`)).toBe('&lt;a href=&quot;x&quot;&gt;&amp;&apos;');
  });

  it('draws bars in proportion to their values and none for a missing value', () => {
    const svg = renderChart(spec);
    const ours = widths(svg, '#111111');
    const go = widths(svg, '#222222');
    expect(ours).toHaveLength(2);
    expect(go).toHaveLength(1);
    expect(ours[0]! / go[0]!).toBeCloseTo(2, 1);
    expect(ours[0]! / ours[1]!).toBeCloseTo(4, 1);
  });

  it('picks a round axis maximum at or above the largest value', () => {
    expect(niceScale(0.87)).toEqual({ max: 1, step: 0.2 });
    expect(niceScale(1.3).max).toBe(1.5);
    expect(niceScale(0.034).max).toBeCloseTo(0.04);
    expect(niceScale(0).max).toBe(1);
    for (const v of [0.01, 0.2, 3.7, 42]) {
      const { max, step } = niceScale(v);
      expect(max).toBeGreaterThanOrEqual(v);
      expect(max / step).toBeLessThanOrEqual(6);
    }
  });

  it('charts a run: ours against Go as ratios to raw TCP, then the Node-client paths', () => {
    const c = chartOf(sampleRun());
    const loop = c.sections[0]!;
    expect(loop.series.map((s) => s.name)).toEqual(['konnectivity-ts', 'Go v0.31.4']);
    const up = loop.rows.find((r) => r.label === 'HTTP-CONNECT, up')!;
    expect(up.values[0]).toBeCloseTo(600 / 2000);
    expect(up.values[1]).toBeCloseTo(200 / 2000);
    const long = c.sections[1]!;
    expect(long.series.map((s) => s.name)).toEqual(['konnectivity-ts, gRPC leg', 'Go v0.31.4', 'Go server + our agent']);
    expect(long.rows.find((r) => r.label === 'down x1')!.values).toEqual([40 / 500, 136 / 500, 150 / 500]);
    expect(c.sections.some((s) => s.title.startsWith('Node client') && s.rows.some((r) => r.label === 'dial(), yamux leg'))).toBe(true);
    checkWellFormed(renderChart(c));
  });

  it('charts the Node-client paths alone when the Go rows did not run', () => {
    const run = sampleRun();
    run.reference = emptyReference('skipped', 'no kit');
    const c = chartOf(run);
    expect(c.sections.every((s) => s.title.startsWith('Node client'))).toBe(true);
    expect(c.sections).toHaveLength(2);
  });
});
