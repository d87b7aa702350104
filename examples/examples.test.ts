/**
 * Runs every example as a child process (as a reader would, through tsx) and checks that it prints what its README
 * promises and exits by itself with status 0: an example left hanging by an open handle fails here.
 */
import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function runExample(name: string, env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', `examples/${name}/index.ts`], {
      cwd: root,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
      // An example that never exits is a failure, not a hung test run.
      timeout: 45_000,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

const cases: Array<[name: string, expected: RegExp[], env?: Record<string, string>]> = [
  [
    'quickstart',
    [/agent connected to server quickstart-server/, /CONNECT 127\.0\.0\.1:\d+: 200/, /target replied: hello from the target, you asked for \/quickstart/],
  ],
  ['grpc-client', [/dialed 127\.0\.0\.1:\d+ through the tunnel \(connectID \d+\)/, /sent hello, got HELLO/, /sent konnectivity, got KONNECTIVITY/]],
  ['custom-dialer', [/clock\.internal:13 answered: \[\d\d:\d\d:\d\d\] you said: what time is it\?/, /nowhere\.internal:13 failed as expected: dial tcp nowhere\.internal:13: no such service/]],
  ['embed-server', [/forwarding 127\.0\.0\.1:\d+ -> 127\.0\.0\.1:\d+/, /request 1 through the forwarder: served from behind the tunnel/, /request 2 through the forwarder: served from behind the tunnel/]],
  [
    'ha',
    [/tunnel up to server-a/, /tunnel up to server-b/, /server-a: hello through the tunnel/, /tunnel to server-b lost/, /agent ready: true, tunnels: server-a/, /server-b again: hello through the tunnel/, /agent draining: server-a was told/],
  ],
  [
    'http-connect',
    [
      /HTTP-CONNECT frontend on 127\.0\.0\.1:\d+/,
      /raw tunnel: HTTP\/1\.1 200 OK \.\.\. hello from behind the tunnel, you asked for \/raw/,
      /http\.get: 200 hello from behind the tunnel, you asked for \/agent/,
      /dial (127\.0\.0\.1:\d+) -> 502 ERR_DIAL_FAILED: dial tcp \1: connect: connection refused/,
    ],
  ],
  ['yamux', [/agent connected to server yamux-example over yamux on ws:/, /target replied: HELLO OVER YAMUX/]],
  [
    'demo',
    [
      /HTTP-CONNECT frontend\s+GET \/hello -> 200 "hello from the target: GET \/hello/,
      /gRPC frontend\s+GET \/hello -> 200/,
      /server\.dial\(\)\s+GET \/hello -> 200/,
      /unreachable target\s+dial (127\.0\.0\.1:\d+) -> ERR_DIAL_FAILED: dial tcp \1: connect: connection refused/,
      /download\s+4 MiB in [\d.]+ s = [\d.]+ MiB\/s/,
      /upload\s+4 MiB in [\d.]+ s = [\d.]+ MiB\/s/,
    ],
    { DEMO_MIB: '4' },
  ],
];

/** Every folder with an index.ts; those without expectations above must at least exit cleanly. */
const others = readdirSync(new URL('.', import.meta.url), { withFileTypes: true })
  .filter((d) => d.isDirectory() && existsSync(new URL(`${d.name}/index.ts`, import.meta.url)))
  .map((d) => d.name)
  .filter((name) => !cases.some(([known]) => known === name));

describe('examples', () => {
  it.each(cases)('%s runs, prints what it promises and exits cleanly', async (name, expected, env) => {
    const run = await runExample(name, env);
    expect({ code: run.code, signal: run.signal, stderr: run.stderr }).toEqual({ code: 0, signal: null, stderr: '' });
    for (const pattern of expected) expect(run.stdout).toMatch(pattern);
    expect(run.stdout).toMatch(/done( in [\d.]+ s)?\n$/);
  });

  it.runIf(others.length > 0).each(others)('%s runs and exits cleanly', async (name) => {
    const run = await runExample(name);
    expect({ code: run.code, signal: run.signal }, run.stderr).toEqual({ code: 0, signal: null });
  });
});
