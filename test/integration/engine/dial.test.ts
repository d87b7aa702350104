import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { once } from 'node:events';
import { PassThrough, type Duplex } from 'node:stream';
import { Engine, echoServer, receiveAll, sendPattern, tcpServer } from '../../helpers/engine.js';
import { expectNoLeaks, snapshotResources, type ResourceSnapshot } from '../../helpers/leaks.js';
import { ErrorCode, isKonnectivityError } from '../../../src/index.js';

const MiB = 1024 * 1024;

for (const substreams of [false, true]) {
  describe(`engine dials over ${substreams ? 'substreams (yamux-like)' : 'one shared stream (gRPC-like)'}`, () => {
    let before: ResourceSnapshot;
    let engine: Engine;
    beforeEach(() => {
      before = snapshotResources();
      engine = new Engine({ substreams });
    });
    afterEach(async () => {
      await engine.close();
      await expectNoLeaks(before);
    });

    it('echoes 64 MiB checksummed through server.dial()', async () => {
      const echo = await echoServer();
      engine.defer(() => echo.close());
      await engine.agent();
      const socket = await engine.server.dial(echo.address);
      expect(socket.endpoint).toBe(echo.address);
      expect(socket.connectID).toBe(1n);
      const [sent, got] = await Promise.all([sendPattern(socket, 64 * MiB), receiveAll(socket, 64 * MiB)]);
      expect(got).toBe(sent);
      socket.end();
      await once(socket, 'close');
      expect(engine.server.stats.establishedConnections).toBe(0);
    });

    it('uploads and downloads 64 MiB each way, checksummed at the target', async () => {
      let upload: Promise<string> | undefined;
      let download: Promise<string> | undefined;
      const target = await tcpServer((s) => {
        upload = receiveAll(s, 64 * MiB);
        download = sendPattern(s, 64 * MiB);
      });
      engine.defer(() => target.close());
      await engine.agent();
      const socket = await engine.server.dial(target.address);
      const [sentUp, gotDown] = await Promise.all([sendPattern(socket, 64 * MiB), receiveAll(socket, 64 * MiB)]);
      expect(await upload!).toBe(sentUp);
      expect(gotDown).toBe(await download!);
      socket.destroy();
      await once(socket, 'close');
    });

    it('the endpoint closing ends the socket (unsolicited CLOSE_RSP)', async () => {
      const target = await tcpServer((s) => s.end('bye'));
      engine.defer(() => target.close());
      await engine.agent();
      const socket = await engine.server.dial(target.address);
      const chunks: Buffer[] = [];
      socket.on('data', (d: Buffer) => chunks.push(d));
      await once(socket, 'close');
      expect(Buffer.concat(chunks).toString()).toBe('bye');
      expect(socket.errored).toBeNull();
    });

    it(`end() half-closes (${substreams ? 'the substream\'s FIN' : 'HALF_CLOSE'}): the endpoint sees EOF and its answer still flows back`, async () => {
      // The target answers only after the client's EOF (like a request body read to the end).
      const target = await tcpServer((s) => {
        let n = 0;
        s.on('data', (d: Buffer) => (n += d.length));
        s.on('end', () => s.end(`got ${n} bytes`));
      });
      engine.defer(() => target.close());
      await engine.agent();
      const socket = await engine.server.dial(target.address);
      const chunks: Buffer[] = [];
      socket.on('data', (d: Buffer) => chunks.push(d));
      socket.end('x'.repeat(100_000));
      await once(socket, 'close');
      expect(socket.errored).toBeNull();
      expect(Buffer.concat(chunks).toString()).toBe('got 100000 bytes');
    });

    it('refused target: ERR_DIAL_FAILED with the Go error text', async () => {
      const closed = await tcpServer(() => {});
      const address = closed.address;
      await closed.close();
      await engine.agent();
      const err = await engine.server.dial(address).catch((e: unknown) => e);
      expect(isKonnectivityError(err, ErrorCode.DIAL_FAILED)).toBe(true);
      expect((err as Error).message).toBe(`dial tcp ${address}: connect: connection refused`);
    });

    it('no agent: ERR_NO_AGENT "No agent available"', async () => {
      const err = await engine.server.dial('127.0.0.1:1').catch((e: unknown) => e);
      expect(isKonnectivityError(err, ErrorCode.NO_AGENT)).toBe(true);
      expect((err as Error).message).toBe('No agent available');
    });

    it('DIAL_RSP timeout: ERR_DIAL_TIMEOUT, and the agent hears DIAL_CLS (its dial is aborted)', async () => {
      let aborted!: Promise<unknown>;
      await engine.agent({
        dialer: ({ signal }) => {
          aborted = once(signal, 'abort');
          return new Promise<Duplex>(() => {});
        },
      });
      const err = await engine.server.dial('10.0.0.1:80', { timeoutMs: 100 }).catch((e: unknown) => e);
      expect(isKonnectivityError(err, ErrorCode.DIAL_TIMEOUT)).toBe(true);
      expect((err as Error).message).toBe('timed out waiting for backend dial');
      await aborted;
    });

    it('abort signal: ABORT_ERR, and the agent hears DIAL_CLS', async () => {
      let aborted!: Promise<unknown>;
      let dialing!: () => void;
      const started = new Promise<void>((r) => (dialing = r));
      await engine.agent({
        dialer: ({ signal }) => {
          aborted = once(signal, 'abort');
          dialing();
          return new Promise<Duplex>(() => {});
        },
      });
      const ac = new AbortController();
      const p = engine.server.dial('10.0.0.1:80', { signal: ac.signal });
      await started;
      ac.abort();
      const err = await p.catch((e: unknown) => e);
      expect(isKonnectivityError(err, ErrorCode.ABORTED)).toBe(true);
      await aborted;
      expect(engine.server.stats.pendingDials).toBe(0);
    });

    it('DIAL_CLS race: a dial that completes after DIAL_CLS is closed at once', async () => {
      const endpoint = new PassThrough();
      let resolveDial!: (d: Duplex) => void;
      let dialing!: (signal: AbortSignal) => void;
      const started = new Promise<AbortSignal>((r) => (dialing = r));
      const { agent } = await engine.agent({
        // A dialer that ignores the abort and completes anyway.
        dialer: ({ signal }) => {
          dialing(signal);
          return new Promise<Duplex>((r) => (resolveDial = r));
        },
      });
      const opened: unknown[] = [];
      agent.on('connectionOpened', (e) => opened.push(e));
      const ac = new AbortController();
      const p = engine.server.dial('10.0.0.1:80', { signal: ac.signal });
      const dialSignal = await started;
      ac.abort();
      await p.catch(() => {});
      // DIAL_CLS has reached the agent once it aborted the dial; then complete the dial anyway.
      if (!dialSignal.aborted) await once(dialSignal, 'abort');
      resolveDial(endpoint);
      await once(endpoint, 'close');
      expect(opened).toEqual([]);
    });

    it('1,000 sequential dials', async () => {
      const echo = await echoServer();
      engine.defer(() => echo.close());
      await engine.agent();
      for (let i = 0; i < 1000; i++) {
        const s = await engine.server.dial(echo.address);
        s.end('x');
        s.resume();
        await once(s, 'close');
      }
      expect(engine.server.stats).toMatchObject({ pendingDials: 0, establishedConnections: 0 });
    });

    it('200 concurrent dials, each echoing its own bytes', async () => {
      const echo = await echoServer();
      engine.defer(() => echo.close());
      await engine.agent();
      const sockets = await Promise.all(Array.from({ length: 200 }, () => engine.server.dial(echo.address)));
      expect(new Set(sockets.map((s) => s.connectID)).size).toBe(200);
      await Promise.all(
        sockets.map(async (s, i) => {
          const msg = `connection ${i} `.repeat(100);
          const got = receiveAll(s, msg.length);
          s.write(msg);
          await got;
          s.end();
          await once(s, 'close');
        }),
      );
    });
  });
}
