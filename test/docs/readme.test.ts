/**
 * The README's first snippet, run verbatim from the checkout (the package name resolves to src/ through tsconfig's
 * paths, as for the examples): it prints the target's reply and exits by itself. test/build/package.test.ts runs the
 * same block against the installed tarball.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { README_SNIPPET_OUTPUT, readmeFirstSnippet } from './readme-snippet.js';

const run = promisify(execFile);
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const DIR = join(ROOT, '.tmp', `readme-${process.pid}`);

afterAll(() => rmSync(DIR, { recursive: true, force: true }));

describe('README', () => {
  it('the first snippet (Agent, ProxyServer, memoryConnector) prints the reply and exits', async () => {
    mkdirSync(DIR, { recursive: true });
    const file = join(DIR, 'snippet.mts');
    writeFileSync(file, readmeFirstSnippet(ROOT));
    const { stdout, stderr } = await run(process.execPath, ['--import', 'tsx', file], { cwd: ROOT, timeout: 60_000 });
    expect(stderr).toBe('');
    expect(stdout).toMatch(README_SNIPPET_OUTPUT);
  });
});
