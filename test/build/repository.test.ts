import { execFileSync } from 'node:child_process';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

// The Go kit is unpacked per checkout (`../shared/peer/install.sh .peer`); committing it once put 105 MB of
// binaries and test keys into history. Nothing tracked may be a binary blob of that kind again.
const root = join(import.meta.dirname, '..', '..');
const tracked = execFileSync('git', ['ls-files', '-z'], { cwd: root, encoding: 'utf8' }).split('\0').filter(Boolean);

describe('the repository', () => {
  it('tracks nothing under .peer/ (the Go kit is unpacked, never committed)', () => {
    expect(tracked.filter((f) => f.startsWith('.peer/'))).toEqual([]);
  });

  it('tracks no file over 1 MiB', () => {
    const big = tracked.filter((f) => {
      try {
        return statSync(join(root, f)).size > 1024 * 1024;
      } catch {
        return false; // deleted in the working tree
      }
    });
    expect(big).toEqual([]);
  });
});
