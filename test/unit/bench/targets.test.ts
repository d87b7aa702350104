/** The target checks of issues 15 and 16: pure, on a synthetic run (no timing). */
import { describe, expect, it } from 'vitest';
import { emptyReference } from '../../../bench/lib/results.js';
import { atLeast, atMost, checkTargets, summarise, verdictText, type TargetCheck } from '../../../bench/lib/targets.js';
import { formatTargets } from '../../../bench/lib/report.js';
import { sampleRun } from './fixtures.js';

const find = (checks: TargetCheck[], target: RegExp, kase: string) => {
  const c = checks.find((k) => target.test(k.target) && k.case === kase);
  if (!c) throw new Error(`no check ${target} / ${kase}: ${checks.map((k) => `${k.target} / ${k.case}`).join('\n')}`);
  return c;
};

describe('bench target checks', () => {
  it('at least / at most: met at the goal, missed by the factor to the goal', () => {
    expect(atLeast(3, 3)).toEqual({ status: 'met' });
    expect(atLeast(1.5, 3)).toEqual({ status: 'missed', shortBy: 2 });
    expect(atLeast(0, 3)).toEqual({ status: 'missed', shortBy: Infinity });
    expect(atLeast(undefined, 3).status).toBe('n/a');
    expect(atMost(0.33, 1 / 3).status).toBe('met');
    expect(atMost(1, 0.5)).toEqual({ status: 'missed', shortBy: 2 });
    expect(verdictText({ status: 'missed', shortBy: 2.345 })).toBe('missed by 2.35x');
    expect(verdictText({ status: 'missed', shortBy: Infinity })).toBe('missed (nothing measured)');
    expect(verdictText({ status: 'n/a', note: 'why' })).toBe('n/a (why)');
    expect(verdictText({ status: 'met' })).toBe('met');
  });

  it('checks bulk against 3x Go and CPU per GiB against a third of Go', () => {
    const checks = checkTargets(sampleRun());
    expect(find(checks, /3x Go/, 'HTTP-CONNECT, up').status).toBe('met'); // 600 vs 200 MB/s
    const down = find(checks, /3x Go/, 'HTTP-CONNECT, down'); // 150 vs 200: 0.75x, needs 3x
    expect(down.status).toBe('missed');
    expect(down.shortBy).toBeCloseTo(4);
    expect(find(checks, /CPU per GiB/, 'HTTP-CONNECT, up').status).toBe('met'); // 1 vs 3 s/GiB
    const cpu = find(checks, /CPU per GiB/, 'HTTP-CONNECT, down'); // 6 vs 4: 1.5x, goal 1/3
    expect(cpu.status).toBe('missed');
    expect(cpu.shortBy).toBeCloseTo(4.5);
    expect(find(checks, /3x Go/, 'gRPC frontend, down').status).toBe('n/a');
  });

  it('checks the long link against Go, raw TCP through the relay and the mixed pairs', () => {
    const checks = checkTargets(sampleRun());
    expect(find(checks, /long link: at least Go$/, 'HTTP-CONNECT, down x1').shortBy).toBeCloseTo(136 / 40);
    expect(find(checks, /0\.5x raw/, 'HTTP-CONNECT, down x1').shortBy).toBeCloseTo(0.5 / (40 / 500));
    expect(find(checks, /Go peer on the other end/, 'Go server + our agent, down x1').status).toBe('met');
    expect(find(checks, /0\.5x raw/, 'dial(), yamux leg (Node client), down x1').status).toBe('met'); // 120 / 200
  });

  it('checks dials, p99 and idle memory, and notes a count below 10,000', () => {
    const checks = checkTargets(sampleRun());
    expect(find(checks, /at least 2x Go/, 'HTTP-CONNECT, 1 dialer').status).toBe('met'); // 2500 vs 1000
    expect(find(checks, /2,000\/s/, 'HTTP-CONNECT, 1 dialer').status).toBe('met');
    expect(find(checks, /p99/, 'HTTP-CONNECT, 1 dialer').status).toBe('met'); // 2 vs 4 ms
    expect(find(checks, /agent at most 4 KiB/, 'HTTP-CONNECT (konnbench section)').shortBy).toBeCloseTo(5 / 4);
    expect(find(checks, /server at most 6 KiB/, 'HTTP-CONNECT (konnbench section)').status).toBe('met');
    const small = find(checks, /agent at most 4 KiB/, 'dial(), yamux leg');
    expect(small.status).toBe('met');
    expect(small.note).toMatch(/at 300 connections, not 10000/);
    expect(find(checks, /yamux leg between/, 'dial(), yamux leg, up x1').shortBy).toBeCloseTo(0.6 / 0.5);
    expect(find(checks, /stalled reader costs/, 'dial(), yamux leg').shortBy).toBeCloseTo(1.5);
  });

  it('says why a comparison is n/a when the konnbench section did not run', () => {
    const run = sampleRun();
    run.reference = emptyReference('skipped', 'the Go peer kit is not installed');
    const checks = checkTargets(run);
    const c = find(checks, /3x Go/, 'HTTP-CONNECT, up');
    expect(c.status).toBe('n/a');
    expect(verdictText(c)).toBe('n/a (konnbench section not run: the Go peer kit is not installed)');
    // The Node-client figures are still checked.
    expect(find(checks, /yamux leg between/, 'dial(), yamux leg, up x1').status).toBe('missed');
  });

  it('prints one table per issue with counts, each target named once', () => {
    const checks = checkTargets(sampleRun());
    const counts = summarise(checks);
    expect(counts.map((k) => k.issue)).toEqual([16, 15]);
    for (const k of counts) expect(k.met + k.missed + k.na).toBe(checks.filter((c) => c.issue === k.issue).length);
    const text = formatTargets(checks);
    expect(text).toContain(`targets of issue 16, throughput: ${counts[0]!.met} met, ${counts[0]!.missed} missed`);
    expect(text.split('\n').filter((l) => l.startsWith('loopback bulk, 1 connection: at least 3x Go'))).toHaveLength(1);
    expect(text).toMatch(/missed by 4\.00x/);
  });
});
