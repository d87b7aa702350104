/**
 * Where `../shared` is: beside this checkout, beside the checkout it was cloned from (CI clones into a temporary
 * folder and keeps the origin's path as `remote.origin.url`), or beside the main checkout of a linked worktree.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The project root (this file lives in test/helpers). */
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/**
 * The first of `override` and `<dir>/../shared/<relative>` for the places above that exists, else undefined.
 * `relative` is a path inside shared/ (`vectors/packets.json`, `peer`).
 */
export function findShared(relative: string, override?: string): string | undefined {
  return sharedCandidates(relative, override).find((c) => existsSync(c));
}

/** The places {@link findShared} looks, in order. */
export function sharedCandidates(relative: string, override?: string): string[] {
  const candidates = override ? [override] : [];
  candidates.push(resolve(ROOT, '../shared', relative));
  const git = (args: string[]): string | undefined => {
    try {
      return execFileSync('git', args, { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    } catch {
      return undefined; // not a git checkout, or no such setting
    }
  };
  const origin = git(['config', '--get', 'remote.origin.url']);
  if (origin?.startsWith('/')) candidates.push(resolve(origin, '../shared', relative));
  // A linked worktree (git worktree add) lives elsewhere; shared/ is beside its main checkout.
  const common = git(['rev-parse', '--git-common-dir']);
  if (common) candidates.push(resolve(ROOT, common, '../../shared', relative));
  return [...new Set(candidates)];
}
