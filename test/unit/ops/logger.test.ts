import { describe, expect, it } from 'vitest';
import { createLogger, silentLogger } from '../../../src/ops/logger.js';

function capture(): { lines: string[]; sink: { write(s: string): void } } {
  const lines: string[] = [];
  return { lines, sink: { write: (s: string) => void lines.push(...s.split('\n').filter(Boolean)) } };
}

const now = (): Date => new Date(Date.UTC(2026, 10, 25, 17, 3, 4, 56));

describe('logger', () => {
  it('writes klog-like text lines with quoted strings and bare numbers and bigints', () => {
    const { lines, sink } = capture();
    const log = createLogger({ sink, name: 'server', now, verbosity: 4 });
    log.v(4).info('dial succeeded', { dialID: 9223372036854775807n, agentID: 'node-1', durationMs: 3, ok: true, none: undefined });
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^I1125 17:03:04\.056000 +\d+ server\] "dial succeeded" dialID=9223372036854775807 agentID="node-1" durationMs=3 ok=true$/);
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
    expect(lines[2]).toContain('"broke" serverID="s1" err="boom"');
  });

  it('writes JSON records with bigints as strings and the level', () => {
    const { lines, sink } = capture();
    const log = createLogger({ sink, format: 'json', name: 'agent', now, verbosity: 5 }).child({ agentID: 'a1' });
    log.v(5).info('packet', { connectionID: 12n, type: 'DATA' });
    log.error('dial failed', new Error('dial tcp 127.0.0.1:1: connect: connection refused'));
    const first = JSON.parse(lines[0]!) as Record<string, unknown>;
    expect(first).toEqual({ ts: now().getTime(), level: 'info', v: 5, logger: 'agent', msg: 'packet', agentID: 'a1', connectionID: '12', type: 'DATA' });
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
