/** Runs the gRPC example as a reader would (through tsx) and checks what it prints and that it exits by itself. */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';

const root = fileURLToPath(new URL('../..', import.meta.url));

it('examples/grpc runs over mTLS and a Unix socket, and exits', async () => {
  const child = spawn(process.execPath, ['--import', 'tsx', 'examples/grpc/index.ts'], {
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
  expect(out).toMatch(/agent node-1 presented certificate CN=agent-1/);
  expect(out).toMatch(/agent connected to server grpc-example \(servercount 1\) over mTLS/);
  expect(out).toMatch(/target replied: hello from the target, you asked for \/over-grpc/);
  expect(out).toMatch(/a refused dial fails with ERR_DIAL_FAILED: dial tcp 127\.0\.0\.1:\d+: connect: connection refused/);
});
