import { describe, expect, it } from 'vitest';
import { joinHostPort, listenOnBindAddress } from '../../../src/cli/listen.js';

const errno = (code: string): Error => Object.assign(new Error(code), { code });

describe('listenOnBindAddress', () => {
  it('uses the given address as is', async () => {
    const hosts: string[] = [];
    await listenOnBindAddress('127.0.0.1', async (h) => void hosts.push(h));
    expect(hosts).toEqual(['127.0.0.1']);
  });
  it('tries the dual-stack wildcard first for an empty address', async () => {
    const hosts: string[] = [];
    expect(await listenOnBindAddress('', async (h) => (hosts.push(h), h))).toBe('::');
    expect(hosts).toEqual(['::']);
  });
  it('falls back to 0.0.0.0 on a host without IPv6', async () => {
    const hosts: string[] = [];
    const got = await listenOnBindAddress('', async (h) => {
      hosts.push(h);
      if (h === '::') throw errno('EAFNOSUPPORT');
      return h;
    });
    expect(got).toBe('0.0.0.0');
    expect(hosts).toEqual(['::', '0.0.0.0']);
  });
  it('passes other errors through', async () => {
    await expect(
      listenOnBindAddress('', async () => {
        throw errno('EADDRINUSE');
      }),
    ).rejects.toMatchObject({ code: 'EADDRINUSE' });
  });
});

describe('joinHostPort', () => {
  it('brackets IPv6', () => {
    expect(joinHostPort('::1', 8091)).toBe('[::1]:8091');
    expect(joinHostPort('proxy.example', 8091)).toBe('proxy.example:8091');
  });
});
