/** The JSON document: every number carries a unit, figures converted to the documented units. */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { numbersWithoutUnit, toJson, unitOf, UNIT_SUFFIXES } from '../../../bench/lib/json.js';
import { checkTargets } from '../../../bench/lib/targets.js';
import { sampleRun } from './fixtures.js';

type Doc = {
  units: Record<string, string>;
  paths: Array<{ name: string; bulk?: Array<{ MBps: number; vsRawRatio?: number }>; idle?: { rssKiBPerConn: { server: number } } }>;
  reference: { bulk: Array<{ path: string; stack: string; dir: string; MBps: number; vsGoRatio?: number; cpuSecPerGiB?: { total: number } }> };
  targets: Array<{ verdict: string; shortByRatio?: number }>;
};

describe('bench JSON', () => {
  it('reads units from key suffixes, the longest first', () => {
    expect(unitOf('dialsPerSec')).toMatch(/per second/);
    expect(unitOf('durationSec')).toBe('seconds');
    expect(unitOf('cpuSecPerGiB')).toMatch(/CPU seconds/);
    expect(unitOf('p99Ms')).toBe('milliseconds');
    expect(unitOf('rssKiBPerConn')).toMatch(/per connection/);
    expect(unitOf('label')).toBeUndefined();
  });

  it('finds a number without a unit', () => {
    expect(numbersWithoutUnit({ a: { rateMBps: 1, n: 2 }, conns: 3, list: [{ x: 4 }], cpuSecPerGiB: { server: 5 } })).toEqual(['a.n', 'list[0].x']);
  });

  it('gives every number of a run a unit and converts to the documented ones', () => {
    const run = sampleRun();
    const doc = toJson(run, { bulkBytes: 1 << 20, repeats: 3, quick: false }, checkTargets(run)) as Doc;
    expect(numbersWithoutUnit(doc)).toEqual([]);
    expect(Object.keys(doc.units)).toEqual(UNIT_SUFFIXES.map(([s]) => s));
    const yamux = doc.paths.find((p) => p.name === 'yamux')!;
    expect(yamux.bulk![0]!.MBps).toBe(300);
    expect(yamux.bulk![0]!.vsRawRatio).toBe(0.5);
    expect(yamux.idle!.rssKiBPerConn.server).toBe(11);
    const ts = doc.reference.bulk.find((r) => r.path === 'connect' && r.stack === 'ts' && r.dir === 'up')!;
    expect(ts).toMatchObject({ MBps: 600, vsGoRatio: 3, cpuSecPerGiB: { total: 1 } });
    expect(doc.targets.some((t) => t.verdict === 'missed by 4.00x' && t.shortByRatio === 4)).toBe(true);
  });

  it('is documented: bench/README.md lists every unit suffix', () => {
    const readme = readFileSync(fileURLToPath(new URL('../../../bench/README.md', import.meta.url)), 'utf8');
    for (const [suffix] of UNIT_SUFFIXES) expect(readme.includes(`\`${suffix}\``), `README documents ${suffix}`).toBe(true);
  });
});
