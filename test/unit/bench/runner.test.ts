/**
 * Smoke test of the benchmark suite (no figures are asserted): the runner starts its role processes, moves a
 * little data over raw TCP with every byte checked, writes its JSON and exits; the pattern check catches a bad byte.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
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
  bulk?: Array<{ verified: boolean; rate: number }>;
  dial?: Array<{ rate: number; errors: number }>;
  slow?: { otherVerified: boolean };
}

/** Run the runner with `extra` options; resolves with its stdout and the JSON it wrote. */
async function runBench(name: string, extra: string[]): Promise<{ out: string; paths: PathJson[] }> {
  const json = join(dir, `${name}.json`);
  const args = ['--import', 'tsx', 'bench/run.ts', '--repeats=1', '--dial-ms=50', `--json=${json}`, ...extra];
  const out = await new Promise<string>((res, rej) =>
    execFile(process.execPath, args, { cwd: ROOT, timeout: 60_000 }, (err, stdout, stderr) =>
      err ? rej(new Error(`${err.message}\n${stderr}`)) : res(stdout),
    ),
  );
  return { out, paths: (JSON.parse(readFileSync(json, 'utf8')) as { paths: PathJson[] }).paths };
}

describe('bench runner', () => {
  it('runs the raw TCP baseline end to end and writes JSON', async () => {
    const { out, paths } = await runBench('raw', ['--path=raw', '--scenario=bulk,dial', '--bytes=256K', '--conns=1,2']);
    expect(out).toContain('raw TCP (baseline)');
    const raw = paths.find((p) => p.name === 'raw')!;
    expect(raw.status).toBe('ok');
    expect(raw.bulk).toHaveLength(4);
    for (const c of raw.bulk!) expect(c.verified).toBe(true);
    expect(raw.dial).toHaveLength(2);
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
