/** Runs the yamux example as a reader would (through tsx) and checks what it prints and that it exits by itself. */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';

const root = fileURLToPath(new URL('../..', import.meta.url));

it('examples/yamux runs, answers through the tunnel beside a stalled connection, and exits', async () => {
  const child = spawn(process.execPath, ['--import', 'tsx', 'examples/yamux/index.ts'], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: 45_000,
  });
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (s: string) => (out += s));
  child.stderr.setEncoding('utf8').on('data', (s: string) => (err += s));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  expect(err).toBe('');
  expect(code).toBe(0);
  expect(out).toMatch(/agent connected to server yamux-example over yamux on ws:\/\/127\.0\.0\.1:\d+\/tunnel/);
  expect(out).toMatch(/target replied: HELLO OVER YAMUX/);
});
