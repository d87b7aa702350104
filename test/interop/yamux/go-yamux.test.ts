/**
 * Interop with the reference yamux (hashicorp/yamux, Debian's golang-github-hashicorp-yamux-dev): a small Go
 * peer (./peer) is built at test time in GOPATH mode and run against our session both ways over loopback TCP:
 * many streams, large transfers checksummed, half-close, window exhaustion behind a stalled reader, ping, Go Away.
 *
 * Skipped, saying why, when Go or the package is missing, unless KONNECTIVITY_REQUIRE_INTEROP=1 (then it fails).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { once } from 'node:events';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  YAMUX_INITIAL_WINDOW_BYTES as INITIAL_WINDOW_BYTES,
  YamuxSession,
  type YamuxSessionOptions,
} from '../../../src/transport/yamux/index.js';
import { expectNoLeaks, snapshotResources } from '../../helpers/leaks.js';
import { readAll, sha } from '../../unit/transport/yamux/bytes.js';

const GOPATH = '/usr/share/gocode';
/** What tunnel sessions run with: a 1 MiB opening window that grows (round trip from pings the Go peer answers). */
const GROWING: YamuxSessionOptions = { maxStreamWindowBytes: 1024 * 1024, streamWindowCeilingBytes: 16 * 1024 * 1024 };
const YAMUX_SRC = path.join(GOPATH, 'src/github.com/hashicorp/yamux');
const PEER_DIR = fileURLToPath(new URL('./peer/', import.meta.url));
const required = process.env.KONNECTIVITY_REQUIRE_INTEROP === '1';

function findGo(): string | undefined {
  const r = spawnSync('go', ['version'], { encoding: 'utf8' });
  return r.status === 0 ? 'go' : undefined;
}

const go = findGo();
const missing = !go ? 'the go command is not installed (apt-get install golang-go)' :
  !existsSync(YAMUX_SRC) ? `${YAMUX_SRC} is missing (apt-get install golang-github-hashicorp-yamux-dev)` : undefined;
if (missing) {
  if (required) throw new Error(`Go yamux interop required (KONNECTIVITY_REQUIRE_INTEROP=1) but ${missing}`);
  console.warn(`SKIPPING Go yamux interop tests: ${missing}`);
}

let tmp: string;
let peerBin: string;

/** Start the Go echo server; resolves with its address and the process. */
async function startGoServer(): Promise<{ proc: ChildProcess; port: number }> {
  const proc = spawn(peerBin, ['server'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = createInterface({ input: proc.stdout! });
  const [line] = (await once(lines, 'line')) as [string];
  lines.close();
  const m = /^LISTEN 127\.0\.0\.1:(\d+)$/.exec(line);
  if (!m) throw new Error(`unexpected Go peer output: ${line}`);
  return { proc, port: Number(m[1]) };
}

async function stop(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = once(proc, 'exit');
  proc.kill();
  await exited;
}

async function connectTo(port: number): Promise<net.Socket> {
  const socket = net.connect({ host: '127.0.0.1', port });
  await once(socket, 'connect');
  return socket;
}

describe.skipIf(missing !== undefined)('yamux interop with hashicorp/yamux (Go)', () => {
  beforeAll(() => {
    tmp = mkdtempSync(path.join(os.tmpdir(), 'yamux-interop-'));
    peerBin = path.join(tmp, 'bin', 'peer');
    const r = spawnSync(go!, ['build', '-o', peerBin, '.'], {
      cwd: PEER_DIR,
      encoding: 'utf8',
      env: {
        ...process.env,
        GOPATH,
        GO111MODULE: 'off',
        GOFLAGS: '',
        // A cache kept between runs makes the build take seconds instead of a minute.
        GOCACHE: path.join(os.tmpdir(), 'konnectivity-ts-gocache'),
      },
    });
    if (r.status !== 0) throw new Error(`go build failed: ${r.stderr}`);
  }, 180_000);

  afterAll(() => {
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  describe('our client, their server', () => {
    let proc: ChildProcess;
    let port: number;
    beforeAll(async () => ({ proc, port } = await startGoServer()));
    afterAll(async () => stop(proc));

    it('echoes 64 concurrent streams of 1 MiB and one of 16 MiB, checksummed, with half-close', async () => {
      const before = snapshotResources();
      const session = new YamuxSession(await connectTo(port), { client: true });
      expect(await session.ping()).toBeGreaterThanOrEqual(0);
      const sizes = [...Array.from({ length: 64 }, () => 1024 * 1024), 16 * 1024 * 1024];
      await Promise.all(
        sizes.map(async (size) => {
          const data = randomBytes(size);
          const st = session.open();
          // end() sends FIN after the data; Go's io.Copy sees EOF and closes, so our 'end' comes after the echo.
          st.end(data);
          const echoed = await readAll(st);
          expect(echoed.length).toBe(size);
          expect(sha(echoed)).toBe(sha(data));
        }),
      );
      expect(session.streamCount).toBe(0);
      await session.close();
      await expectNoLeaks(before);
    });

    it('with a growing window (as tunnel sessions run): 8 streams of 8 MiB echoed, checksummed', async () => {
      const before = snapshotResources();
      const session = new YamuxSession(await connectTo(port), { client: true, ...GROWING });
      const data = Array.from({ length: 8 }, () => randomBytes(8 * 1024 * 1024));
      await Promise.all(
        data.map(async (d) => {
          const st = session.open();
          st.end(d);
          expect(sha(await readAll(st))).toBe(sha(d));
        }),
      );
      await session.close();
      await expectNoLeaks(before);
    });

    it('a stalled reader holds exactly one window; reading resumes the transfer', async () => {
      const before = snapshotResources();
      const session = new YamuxSession(await connectTo(port), { client: true });
      const data = randomBytes(4 * 1024 * 1024);
      const st = session.open();
      st.end(data);
      // Go echoes until our window is used up, then blocks: we hold one window, no more.
      while (st.readableLength < INITIAL_WINDOW_BYTES) await once(st, 'readable').then(() => new Promise((r) => setImmediate(r)));
      // A ping round trip after the window filled: anything Go sent beyond the window would have arrived by now.
      await session.ping();
      expect(st.readableLength).toBe(INITIAL_WINDOW_BYTES);
      // A second stream on the same session is not held up by the stalled one.
      const other = session.open();
      other.end('still moving');
      expect((await readAll(other)).toString()).toBe('still moving');
      expect(sha(await readAll(st))).toBe(sha(data));
      await session.close();
      await expectNoLeaks(before);
    });

    it('close() sends Go Away and ends the session cleanly', async () => {
      const session = new YamuxSession(await connectTo(port), { client: true });
      const st = session.open();
      st.end('last');
      const closed = session.close();
      expect(() => session.open()).toThrow(expect.objectContaining({ code: 'ERR_SHUTTING_DOWN' }));
      expect((await readAll(st)).toString()).toBe('last');
      await closed;
      expect(session.errored).toBeUndefined();
    });
  });

  describe('their client, our server', () => {
    async function runGoClient(streams: number, bytes: number, options: YamuxSessionOptions = {}): Promise<void> {
      const before = snapshotResources();
      const sessions: YamuxSession[] = [];
      const server = net.createServer((socket) => {
        const session = new YamuxSession(socket, { client: false, ...options });
        sessions.push(session);
        // Echo every stream; pipe() ends ours (FIN) when theirs ends. The Go client closes its session as soon as
        // it has its echo, so our last FINs may meet a closed socket: that is not a failure here.
        session.onStream((st) => {
          st.on('error', () => undefined);
          st.pipe(st);
        });
      });
      server.listen(0, '127.0.0.1');
      await once(server, 'listening');
      const { port } = server.address() as net.AddressInfo;
      const proc = spawn(peerBin, ['client', `127.0.0.1:${port}`, String(streams), String(bytes)], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      let err = '';
      proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      proc.stderr!.on('data', (d: Buffer) => (err += d.toString()));
      const [code] = (await once(proc, 'exit')) as [number];
      expect(err).toBe('');
      expect(code).toBe(0);
      expect(out.trim()).toBe('OK');
      for (const s of sessions) if (!s.closed) await new Promise((r) => s.once('close', r));
      await new Promise<void>((r) => server.close(() => r()));
      await expectNoLeaks(before);
    }

    it('echoes 32 concurrent streams of 4 MiB for the Go client', async () => {
      await runGoClient(32, 4 * 1024 * 1024);
    });

    it('echoes 8 concurrent streams of 8 MiB for the Go client, our windows growing', async () => {
      await runGoClient(8, 8 * 1024 * 1024, GROWING);
    });

    it('echoes 1,000 concurrent streams for the Go client', async () => {
      await runGoClient(1000, 16 * 1024);
    });
  });
});
