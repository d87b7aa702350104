/** Parsing /proc and konnbench output (pure; one real read of this process's own /proc entries). */
import { describe, expect, it } from 'vitest';
import { konnbenchArgv, parseKonnbenchOutput } from '../../../bench/lib/konnbench.js';
import { cpuSecondsOf, nofileOf, parseNofile, parseProcStat, parseVmRss, rssOf } from '../../../bench/lib/procfs.js';

describe('bench /proc parsing', () => {
  it('reads utime and stime after a command name with spaces and parentheses', () => {
    const line = '4242 (node (worker) 1) S 1 4242 4242 0 -1 4194560 5000 0 0 0 1234 567 0 0 20 0 11 0 100 1000000 5000 18446744073709551615';
    expect(parseProcStat(line)).toEqual({ utimeTicks: 1234, stimeTicks: 567 });
    expect(() => parseProcStat('garbage')).toThrow();
  });

  it('reads VmRSS and the open-files limit', () => {
    expect(parseVmRss('Name:\tnode\nVmRSS:\t   38440 kB\nVmData:\t1 kB\n')).toBe(38440 * 1024);
    const limits = 'Limit                     Soft Limit           Hard Limit           Units\nMax open files            1024                 20000                files\n';
    expect(parseNofile(limits)).toEqual({ soft: 1024, hard: 20000 });
    expect(parseNofile('Max open files            unlimited            unlimited            files')?.hard).toBe(Number.MAX_SAFE_INTEGER);
  });

  it.runIf(process.platform === 'linux')('reads this process', () => {
    expect(cpuSecondsOf(process.pid)).toBeGreaterThan(0);
    expect(rssOf(process.pid)).toBeGreaterThan(1 << 20);
    expect(nofileOf('self')!.hard).toBeGreaterThanOrEqual(nofileOf('self')!.soft);
  });
});

describe('bench konnbench output', () => {
  it('parses its JSON line and turns anything else into a failed result', () => {
    const ok = parseKonnbenchOutput('{"ok":true,"test":"bulk","mode":"grpc","bytes":1024,"secs":0.5,"MBps":0.002,"dials_per_s":0,"p50_ms":0,"p99_ms":0,"errors":0,"error":""}\n');
    expect(ok).toMatchObject({ ok: true, bytes: 1024, secs: 0.5, errors: 0 });
    const failed = parseKonnbenchOutput('{"ok":false,"test":"rr","errors":1,"error":"close: tunnel closed"}');
    expect(failed).toMatchObject({ ok: false, errors: 1, error: 'close: tunnel closed' });
    expect(parseKonnbenchOutput('', 'panic: boom\n')).toMatchObject({ ok: false, error: 'no result line from konnbench: panic: boom' });
    expect(parseKonnbenchOutput('{not json').ok).toBe(false);
  });

  it('builds its command line', () => {
    expect(konnbenchArgv({ mode: 'http-connect', uds: '/tmp/s', target: '127.0.0.1:1', test: 'rr', n: 10, c: 8, timeoutSec: 30 })).toEqual([
      '-mode', 'http-connect', '-target', '127.0.0.1:1', '-test', 'rr', '-uds', '/tmp/s', '-n', '10', '-c', '8', '-timeout', '30s',
    ]);
  });
});
