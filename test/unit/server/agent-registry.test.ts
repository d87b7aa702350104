import { describe, expect, it } from 'vitest';
import { AgentRegistry, hostOf, parseStrategies, type RegisteredBackend } from '../../../src/server/agent-registry.js';
import { isKonnectivityError } from '../../../src/index.js';

const backend = (agentID: string, identifiers: RegisteredBackend['identifiers'] = {}, draining = false) => ({ agentID, identifiers, draining });

describe('parseStrategies', () => {
  it('keeps the order and rejects empty or unknown names', () => {
    expect(parseStrategies('destHost,default')).toEqual(['destHost', 'default']);
    for (const bad of ['', 'default,', 'nearest', 'default,,destHost']) {
      expect(() => parseStrategies(bad)).toThrow();
      try {
        parseStrategies(bad);
      } catch (e) {
        expect(isKonnectivityError(e, 'ERR_INVALID_OPTION')).toBe(true);
      }
    }
  });
});

describe('hostOf', () => {
  it('strips ports and IPv6 brackets', () => {
    expect(hostOf('10.0.0.1:443')).toBe('10.0.0.1');
    expect(hostOf('[fd00::1]:443')).toBe('fd00::1');
    expect(hostOf('node-a:10250')).toBe('node-a');
    expect(hostOf('fd00::1')).toBe('fd00::1');
    expect(hostOf('node-a')).toBe('node-a');
  });
});

describe('AgentRegistry.pick', () => {
  it('default: any non-draining agent; draining only when nothing else', () => {
    const r = new AgentRegistry();
    const a = backend('a', {}, true);
    const b = backend('b');
    r.add(a);
    r.add(b);
    for (let i = 0; i < 20; i++) expect(r.pick('x:1', ['default'])).toBe(b);
    r.remove(b);
    expect(r.pick('x:1', ['default'])).toBe(a);
    r.remove(a);
    expect(r.pick('x:1', ['default'])).toBeUndefined();
  });

  it('destHost: exact match on ipv4, ipv6 and host identifiers; then the next strategy', () => {
    const r = new AgentRegistry();
    const v4 = backend('v4', { ipv4: ['10.0.0.5'] });
    const v6 = backend('v6', { ipv6: ['fd00::5'] });
    const named = backend('named', { host: ['node-a'] });
    const plain = backend('plain');
    for (const b of [v4, v6, named, plain]) r.add(b);
    expect(r.pick('10.0.0.5:22', ['destHost'])).toBe(v4);
    expect(r.pick('[fd00::5]:22', ['destHost'])).toBe(v6);
    expect(r.pick('node-a:10250', ['destHost'])).toBe(named);
    expect(r.pick('10.0.0.6:22', ['destHost'])).toBeUndefined();
    expect(r.pick('10.0.0.6:22', ['destHost', 'default'])).toBeDefined();
  });

  it('defaultRoute: only agents that advertise it', () => {
    const r = new AgentRegistry();
    const router = backend('router', { defaultRoute: true });
    r.add(backend('plain'));
    r.add(router);
    for (let i = 0; i < 20; i++) expect(r.pick('1.2.3.4:5', ['defaultRoute'])).toBe(router);
  });

  it('a non-draining agent from a later strategy beats a draining one from an earlier', () => {
    const r = new AgentRegistry();
    const drainingMatch = backend('d', { ipv4: ['10.0.0.5'] }, true);
    const other = backend('o');
    r.add(drainingMatch);
    r.add(other);
    expect(r.pick('10.0.0.5:1', ['destHost', 'default'])).toBe(other);
  });

  it('several streams of one agentID: the first non-draining one; counts agents, not streams', () => {
    const r = new AgentRegistry();
    const s1 = backend('a', {}, true);
    const s2 = backend('a');
    r.add(s1);
    r.add(s2);
    expect(r.size).toBe(1);
    expect(r.pick('x:1', ['default'])).toBe(s2);
    expect(r.remove(s2)).toBe(false);
    expect(r.remove(s1)).toBe(true);
    expect(r.size).toBe(0);
  });
});
