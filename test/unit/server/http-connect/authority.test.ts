import { describe, expect, it } from 'vitest';
import { parseConnectAuthority } from '../../../../src/server/frontends/http-connect/authority.js';

describe('parseConnectAuthority', () => {
  it.each([
    ['127.0.0.1:443', { host: '127.0.0.1', port: 443, address: '127.0.0.1:443' }],
    ['kubernetes.default.svc:443', { host: 'kubernetes.default.svc', port: 443, address: 'kubernetes.default.svc:443' }],
    ['_etcd-server._tcp.example:2380', { host: '_etcd-server._tcp.example', port: 2380, address: '_etcd-server._tcp.example:2380' }],
    ['[::1]:10250', { host: '::1', port: 10250, address: '[::1]:10250' }],
    ['[fe80::1%eth0]:22', { host: 'fe80::1%eth0', port: 22, address: '[fe80::1%eth0]:22' }],
    ['node-1:1', { host: 'node-1', port: 1, address: 'node-1:1' }],
    ['node-1:65535', { host: 'node-1', port: 65535, address: 'node-1:65535' }],
  ])('accepts %j', (text, expected) => {
    expect(parseConnectAuthority(text)).toEqual(expected);
  });

  it.each([
    undefined,
    '',
    'example.com',
    ':443',
    'example.com:',
    'example.com:0',
    'example.com:65536',
    'example.com:123456',
    'example.com:+80',
    'example.com:8a',
    '::1:80',
    '[::1]',
    '[::1]80',
    '[not-ip]:80',
    '[::1%]:80',
    'http://example.com:80',
    'example.com:80/path',
    'user@example.com:80',
    'a b:80',
    'host\r\nX: y:80',
    `${'a'.repeat(300)}:80`,
    '.bad:80',
    '-bad:80',
  ])('refuses %j', (text) => {
    expect(parseConnectAuthority(text)).toBeUndefined();
  });
});
