/**
 * Smoke test of the benchmark suite (no figures are asserted): the runner starts its role processes, moves a
 * little data over raw TCP with every byte checked, writes its JSON (every number with a unit) and its SVG chart
 * and exits; without the Go peer kit the konnbench section is skipped with one line; the pattern check catches a
 * bad byte.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { numbersWithoutUnit } from '../../../bench/lib/json.js';
import { PATTERN, PatternCheck, patternChunk } from '../../../bench/lib/workloads.js';

const ROOT = resolve(fileURLToPath(new URL('../../..', import.meta.url)));
const dir = mkdtempSync(join(tmpdir(), 'kbench-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('bench PatternCheck', () => {
  it('accepts the pattern split anywhere and across its wrap-around', () => {
    const check = new PatternCheck();
    const total = PATTERN.length + 100_000;
    let off = 0;
    for (const len of [1, 7, 65_536, PATTERN.length - 65_544, 50_000, 50_000]) {
      check.update(patternChunk(off, len));
      off += len;
    }
    expect(off).toBe(total);
    expect(check.ok).toBe(true);
  });

  it('notices one wrong byte', () => {
    const check = new PatternCheck();
    const chunk = Buffer.from(patternChunk(0, 4096));
    chunk[1234] = chunk[1234]! ^ 1;
    check.update(chunk);
    expect(check.ok).toBe(false);
  });
});

interface PathJson {
  name: string;
  status: string;
  note?: string;
  bulk?: Array<{ verified: boolean; MBps: number }>;
  dial?: Array<{ dialsPerSec: number; errors: number }>;
  slow?: { otherVerified: boolean };
}
interface Doc {
  paths: PathJson[];
  reference: { status: string; note?: string };
}

/** Run the runner with `extra` options; resolves with its stdout and stderr, the JSON it wrote and its chart. */
async function runBench(name: string, extra: string[], env: NodeJS.ProcessEnv = {}): Promise<{ out: string; err: string; doc: Doc; paths: PathJson[]; svg: string }> {
  const json = join(dir, `${name}.json`);
  const args = ['--import', 'tsx', 'bench/run.ts', '--repeats=1', '--dial-ms=50', `--json=${json}`, ...extra];
  const [out, err] = await new Promise<[string, string]>((res, rej) =>
    execFile(process.execPath, args, { cwd: ROOT, timeout: 60_000, env: { ...process.env, ...env } }, (e, stdout, stderr) =>
      e ? rej(new Error(`${e.message}\n${stderr}`)) : res([stdout, stderr]),
    ),
  );
  const doc = JSON.parse(readFileSync(json, 'utf8')) as Doc;
  const svgFile = join(dir, `${name}.svg`);
  return { out, err, doc, paths: doc.paths, svg: existsSync(svgFile) ? readFileSync(svgFile, 'utf8') : '' };
}

describe('bench runner', () => {
  it('runs the raw TCP baseline end to end and writes JSON', async () => {
    const { out, err, doc, paths, svg } = await runBench('raw', ['--path=raw', '--scenario=bulk,dial', '--bytes=256K', '--conns=1,2']);
    expect(out).toContain('raw TCP (baseline)');
    const raw = paths.find((p) => p.name === 'raw')!;
    expect(raw.status).toBe('ok');
    expect(raw.bulk).toHaveLength(4);
    for (const c of raw.bulk!) expect(c.verified).toBe(true);
    expect(raw.dial).toHaveLength(2);
    // A progress line as each case finishes, a legend under the table, units on every number, the chart beside.
    expect(err).toMatch(/\[bench +\d+:\d\d\] raw TCP \(baseline\): bulk up x1 /);
    expect(out).toMatch(/\n  up xN, down xN: /);
    expect(numbersWithoutUnit(doc)).toEqual([]);
    expect(doc.reference.status).toBe('skipped');
    expect(svg).toMatch(/^<svg [^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  });

  it('skips the Go rows with one clear line when the peer kit is absent', async () => {
    const { out, err, doc } = await runBench('nokit', ['--path=kb-connect', '--scenario=bulk'], { KONNECTIVITY_PEER_DIR: join(dir, 'no-such-kit') });
    expect(doc.reference.status).toBe('skipped');
    expect(doc.reference.note).toMatch(/peer kit is not installed/);
    expect(err.split('\n').filter((l) => l.includes('konnbench section skipped'))).toHaveLength(1);
    expect(out).toMatch(/konnbench section .*skipped, the Go peer kit is not installed .*install\.sh/);
    expect(out).toMatch(/  n\/a: loopback bulk, 1 connection: at least 3x Go: 4 cases \(konnbench section not run: /);
  });

  it('drives the real engine over the in-memory leg (server and agent in one process)', async () => {
    const { paths } = await runBench('memory', [
      '--path=memory', '--scenario=bulk,dial,slow', '--bytes=256K', '--conns=1,2', '--slow-bytes=2M',
    ]);
    const mem = paths.find((p) => p.name === 'memory')!;
    expect(mem.status, mem.note).toBe('ok');
    for (const c of mem.bulk!) expect(c.verified).toBe(true);
    for (const d of mem.dial!) expect(d.errors).toBe(0);
    expect(mem.slow!.otherVerified).toBe(true);
  });
});
