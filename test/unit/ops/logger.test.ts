import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createLogger, formatDuration, silentLogger } from '../../../src/ops/logger.js';
import { createKlogOutput, parseSeverityThreshold } from '../../../src/ops/log-output.js';

function capture(): { lines: string[]; sink: { write(s: string): void } } {
  const lines: string[] = [];
  return { lines, sink: { write: (s: string) => void lines.push(...s.split('\n').filter(Boolean)) } };
}

/** 2026-11-25 17:03:04.056789 local time, with the microseconds a Date cannot hold. */
const at = new Date(2026, 10, 25, 17, 3, 4, 56).getTime() + 0.789;
const now = (): number => at;

describe('logger', () => {
  it('writes klog lines: real microseconds, pid, the caller file:line, quoted strings, bare numbers and bigints', () => {
    const { lines, sink } = capture();
    const log = createLogger({ sink, name: 'server', now, verbosity: 4 });
    const line = new Error().stack!.split('\n')[1]!.match(/:(\d+):\d+\)?$/)![1]!;
    log.v(4).info('dial succeeded', { dialID: 9223372036854775807n, agentID: 'node-1', n: 3, ok: true, none: undefined });
    expect(lines).toHaveLength(1);
    const pid = String(process.pid).padStart(7);
    expect(lines[0]).toBe(`I1125 17:03:04.056789 ${pid} logger.test.ts:${Number(line) + 1}] "dial succeeded" dialID=9223372036854775807 agentID="node-1" n=3 ok=true`);
    // The same header klog writes, so log parsers keep working.
    expect(lines[0]).toMatch(/^[IWEF]\d{4} \d\d:\d\d:\d\d\.\d{6} +\d+ [^ :]+:\d+\] /);
  });

  it('writes unstructured lines unquoted, errors first, and the name instead of a position on request', () => {
    const { lines, sink } = capture();
    const log = createLogger({ sink, name: 'server', now, position: false });
    log.infoText('Starting agent server for tunnel connections.');
    log.warnText('change detected in proxy server count (was: 0, now: 1, source: "KNP server response headers")');
    log.error('DIAL_RSP contains failure', new Error('dial tcp 127.0.0.1:1: connect: connection refused'), { dialID: 5n, agentID: 'a' });
    expect(lines[0]).toMatch(/ server\] Starting agent server for tunnel connections\.$/);
    expect(lines[1]).toMatch(/^W.* server\] change detected in proxy server count \(was: 0, now: 1, source: "KNP server response headers"\)$/);
    expect(lines[2]).toMatch(/^E.* server\] "DIAL_RSP contains failure" err="dial tcp 127\.0\.0\.1:1: connect: connection refused" dialID=5 agentID="a"$/);
  });

  it('prints durations as Go does', () => {
    expect(formatDuration(7.587817)).toBe('7.587817ms');
    expect(formatDuration(0.419464)).toBe('419.464µs');
    expect(formatDuration(0.000123)).toBe('123ns');
    expect(formatDuration(1500)).toBe('1.5s');
    expect(formatDuration(123_500)).toBe('2m3.5s');
    expect(formatDuration(3_600_000)).toBe('1h0m0s');
    expect(formatDuration(0)).toBe('0s');
    expect(formatDuration(1)).toBe('1ms');
  });

  it('filters info lines above -v, always writes warnings and errors', () => {
    const { lines, sink } = capture();
    const log = createLogger({ sink, verbosity: 2, now });
    expect(log.enabled(2)).toBe(true);
    expect(log.enabled(3)).toBe(false);
    expect(log.v(3).enabled).toBe(false);
    log.v(3).info('hidden');
    log.v(5).info('hidden too');
    log.v(2).info('shown');
    log.warn('careful');
    log.error('broke', new Error('boom'), { serverID: 's1' });
    expect(lines.map((l) => l[0])).toEqual(['I', 'W', 'E']);
    expect(lines[2]).toContain('"broke" err="boom" serverID="s1"');
  });

  it('writes JSON records with bigints as strings and the level', () => {
    const { lines, sink } = capture();
    const log = createLogger({ sink, format: 'json', name: 'agent', now, verbosity: 5 }).child({ agentID: 'a1' });
    log.v(5).info('packet', { connectionID: 12n, type: 'DATA' });
    log.error('dial failed', new Error('dial tcp 127.0.0.1:1: connect: connection refused'));
    const first = JSON.parse(lines[0]!) as Record<string, unknown>;
    expect(first).toEqual({ ts: at, caller: expect.stringMatching(/^logger\.test\.ts:\d+$/), level: 'info', v: 5, logger: 'agent', msg: 'packet', agentID: 'a1', connectionID: '12', type: 'DATA' });
    const second = JSON.parse(lines[1]!) as Record<string, unknown>;
    expect(second['level']).toBe('error');
    expect(second['err']).toBe('dial tcp 127.0.0.1:1: connect: connection refused');
    expect(second).not.toHaveProperty('v');
  });

  it('child loggers add fields without changing the parent', () => {
    const { lines, sink } = capture();
    const log = createLogger({ sink, now });
    const child = log.child({ serverID: 'x' });
    child.info('one');
    log.info('two');
    expect(lines[0]).toContain('serverID="x"');
    expect(lines[1]).not.toContain('serverID');
  });

  it('rejects bad options', () => {
    expect(() => createLogger({ verbosity: -1 })).toThrow(TypeError);
    expect(() => createLogger({ format: 'xml' as never })).toThrow(/text or json/);
  });

  it('silentLogger writes nothing and does not throw', () => {
    silentLogger.info('x');
    silentLogger.error('y', new Error('z'));
    expect(silentLogger.enabled(1)).toBe(false);
  });
});

describe('klog output flags', () => {
  function withDir(run: (dir: string) => void): void {
    const dir = mkdtempSync(join(tmpdir(), 'klog-'));
    try {
      run(dir);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  const stderrCapture = () => {
    const lines: string[] = [];
    return { lines, stderr: { write: (s: string) => void lines.push(s) } };
  };

  it('--logtostderr (default) writes everything to stderr and no file', () => {
    const { lines, stderr } = stderrCapture();
    const out = createKlogOutput({ program: 'konnectivity-server', logFile: '/nonexistent/dir/x.log', stderr });
    out.writeAt('I line\n', 'info');
    expect(out.path).toBeUndefined();
    expect(lines).toEqual(['I line\n']);
  });

  it('--log-file --logtostderr=false: a klog header, every line once, errors also on stderr (--stderrthreshold)', () => {
    withDir((dir) => {
      const { lines, stderr } = stderrCapture();
      const out = createKlogOutput({ program: 'p', logFile: join(dir, 'server.log'), logtostderr: false, stderr });
      out.writeAt('I info\n', 'info');
      out.writeAt('W warn\n', 'warning');
      out.writeAt('E err\n', 'error');
      out.close();
      const text = readFileSync(join(dir, 'server.log'), 'utf8');
      expect(text).toMatch(/^Log file created at: \d{4}\/\d\d\/\d\d \d\d:\d\d:\d\d\nRunning on machine: .+\nBinary: Built with node v\d+.*\nLog line format: \[IWEF\]mmdd hh:mm:ss\.uuuuuu threadid file:line\] msg\n/);
      expect(text.endsWith('I info\nW warn\nE err\n')).toBe(true);
      expect(lines).toEqual(['E err\n']);
    });
  });

  it('--alsologtostderr, --stderrthreshold=WARNING, --skip-log-headers, --log-dir and appending', () => {
    withDir((dir) => {
      const a = stderrCapture();
      const also = createKlogOutput({ program: 'p', logDir: dir, logtostderr: false, alsologtostderr: true, skipLogHeaders: true, stderr: a.stderr });
      also.writeAt('I one\n', 'info');
      also.close();
      expect(also.path).toBe(join(dir, 'p.log'));
      expect(a.lines).toEqual(['I one\n']);
      const w = stderrCapture();
      const warn = createKlogOutput({ program: 'p', logDir: dir, logtostderr: false, stderrThreshold: parseSeverityThreshold('WARNING')!, skipLogHeaders: true, stderr: w.stderr });
      warn.writeAt('I two\n', 'info');
      warn.writeAt('W three\n', 'warning');
      warn.close();
      expect(w.lines).toEqual(['W three\n']);
      expect(readFileSync(join(dir, 'p.log'), 'utf8')).toBe('I one\nI two\nW three\n');
    });
    expect(parseSeverityThreshold('error')).toBe(2);
    expect(parseSeverityThreshold('3')).toBe(3);
    expect(parseSeverityThreshold('LOUD')).toBeUndefined();
  });

  it('--log-file-max-size: past the limit the file starts again with a new header, as klog does', () => {
    withDir((dir) => {
      const path = join(dir, 'big.log');
      writeFileSync(path, 'x'.repeat(1024 * 1024 - 100));
      const out = createKlogOutput({ program: 'p', logFile: path, logtostderr: false, logFileMaxSizeMB: 1, stderr: { write: () => 0 } });
      out.writeAt(`I ${'y'.repeat(200)}\n`, 'info');
      out.writeAt('I after\n', 'info');
      out.close();
      const text = readFileSync(path, 'utf8');
      expect(statSync(path).size).toBeLessThan(1024);
      expect(text).toMatch(/^Log file created at: /);
      expect(text.endsWith('I after\n')).toBe(true);
      expect(text).not.toContain('xxx');
    });
  });
});
