/**
 * The default connection limit of every listener follows the open-files limit (src/transport/limits.ts), so a
 * server holds as many idle connections as its descriptors allow with nothing to tune, never fewer than 16384.
 */
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  DEFAULT_MAX_CONNECTIONS_PER_LISTENER,
  DESCRIPTORS_KEPT_BACK,
  connectionsAllowedBy,
  defaultMaxConnectionsPerListener,
} from '../../../src/transport/limits.js';

const limits = (soft: string, hard: string): string =>
  [
    'Limit                     Soft Limit           Hard Limit           Units     ',
    'Max cpu time              unlimited            unlimited            seconds   ',
    `Max open files            ${soft.padEnd(21)}${hard.padEnd(21)}files     `,
    'Max locked memory         8388608              8388608              bytes     ',
    '',
  ].join('\n');

describe('the default connection limit', () => {
  it('is the soft open-files limit less what the process keeps back', () => {
    expect(connectionsAllowedBy(limits('20000', '20000'))).toBe(20000 - DESCRIPTORS_KEPT_BACK);
    expect(connectionsAllowedBy(limits('1048576', '1048576'))).toBe(1048576 - DESCRIPTORS_KEPT_BACK);
    expect(connectionsAllowedBy(limits('30000', '65536'))).toBe(30000 - DESCRIPTORS_KEPT_BACK);
  });

  it('never goes below 16384, and falls back to it when the limit cannot be read', () => {
    expect(connectionsAllowedBy(limits('1024', '4096'))).toBe(DEFAULT_MAX_CONNECTIONS_PER_LISTENER);
    expect(connectionsAllowedBy(limits('unlimited', 'unlimited'))).toBe(DEFAULT_MAX_CONNECTIONS_PER_LISTENER);
    expect(connectionsAllowedBy('')).toBe(DEFAULT_MAX_CONNECTIONS_PER_LISTENER);
  });

  it('is read from this process', () => {
    const own = fs.existsSync('/proc/self/limits') ? fs.readFileSync('/proc/self/limits', 'utf8') : '';
    expect(defaultMaxConnectionsPerListener()).toBe(connectionsAllowedBy(own));
  });
});
