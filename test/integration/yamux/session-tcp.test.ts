/** The yamux session over real loopback TCP: many streams, memory bound behind a stalled reader, keepalive, limits. */
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import net from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { YAMUX_INITIAL_WINDOW_BYTES, YamuxSession, type YamuxSessionOptions, type YamuxStream } from '../../../src/transport/yamux/index.js';
import { until } from '../../compliance/helpers.js';
import { expectNoLeaks, snapshotResources, type ResourceSnapshot } from '../../helpers/leaks.js';
import { readAll, sha } from '../../unit/transport/yamux/bytes.js';

function closeOf(s: YamuxSession): Promise<Error | undefined> {
  return s.closed ? Promise.resolve(s.errored) : new Promise((r) => s.once('close', r));
}

describe('yamux session over TCP', () => {
  let before: ResourceSnapshot;
  let server: net.Server;
  let sessions: YamuxSession[];

  /** A client session and the server session it reaches. */
  async function connect(options: YamuxSessionOptions = {}, serverOptions: YamuxSessionOptions = {}): Promise<[YamuxSession, YamuxSession]> {
    const accepted = once(server, 'connection') as Promise<[net.Socket]>;
    const socket = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
    await once(socket, 'connect');
    const [peer] = await accepted;
    const c = new YamuxSession(socket, { client: true, ...options });
    const s = new YamuxSession(peer, { client: false, ...serverOptions });
    sessions.push(c, s);
    return [c, s];
  }

  beforeEach(async () => {
    before = snapshotResources();
    sessions = [];
    server = net.createServer();
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
  });

  afterEach(async () => {
    for (const s of sessions) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
    await expectNoLeaks(before);
  });

  it('1,000 concurrent streams echo their data, checksummed', async () => {
    const [c, s] = await connect();
    s.onStream((st) => st.pipe(st));
    const results = await Promise.all(
      Array.from({ length: 1000 }, async () => {
        const data = randomBytes(20_000);
        const st = c.open();
        st.end(data);
        return sha(await readAll(st)) === sha(data);
      }),
    );
    expect(results.every(Boolean)).toBe(true);
    expect(c.streamCount).toBe(0);
    await Promise.all([c.close(), s.close()]);
  });

  it('a stalled reader holds at most one window while 32 MiB flow on another stream', async () => {
    const [c, s] = await connect();
    const accepted: YamuxStream[] = [];
    s.onStream((st) => accepted.push(st));
    const stalled = c.open();
    // The writer keeps offering data; only the window may cross.
    let offered = 0;
    const chunk = Buffer.alloc(64 * 1024, 7);
    const pump = (): void => {
      while (offered < 64 * 1024 * 1024 && !stalled.destroyed) {
        offered += chunk.length;
        if (!stalled.write(chunk)) return void stalled.once('drain', pump);
      }
    };
    pump();
    await until(() => accepted.length === 1 && accepted[0]!.readableLength >= YAMUX_INITIAL_WINDOW_BYTES, 'the window to fill');
    const sink = accepted[0]!;

    const bulk = c.open();
    // readAll() destroys the far end once it has read it (for await does), which resets this one.
    bulk.on('error', () => undefined);
    const data = randomBytes(32 * 1024 * 1024);
    bulk.end(data);
    await until(() => accepted.length === 2, 'the second stream');
    expect(sha(await readAll(accepted[1]!))).toBe(sha(data));
    // After all that traffic the stalled stream still holds exactly one window.
    expect(sink.readableLength).toBe(YAMUX_INITIAL_WINDOW_BYTES);
    stalled.on('error', () => undefined);
    sink.on('error', () => undefined);
    stalled.destroy();
    await Promise.all([c.close(), s.close()]);
  });

  it('keepalive pings flow at the interval, and the timer never holds the process', async () => {
    const [c, s] = await connect({ keepAliveIntervalMs: 10 });
    let pings = 0;
    const ping = c.ping.bind(c);
    c.ping = () => {
      pings++;
      return ping();
    };
    await until(() => pings >= 3, 'three keepalive pings');
    expect(c.closed || s.closed).toBe(false);
    await Promise.all([c.close(), s.close()]);
  });

  it('a stream the peer never accepts is reset after streamOpenTimeoutMs', async () => {
    const [c] = await connect({ streamOpenTimeoutMs: 30 });
    const st = c.open();
    const [err] = (await once(st, 'error')) as [Error];
    expect(err).toMatchObject({ code: 'ERR_STREAM_CLOSED', message: expect.stringMatching(/open timed out/) });
  });

  it('streams beyond maxStreams are refused on both sides', async () => {
    const [c, s] = await connect({ maxStreams: 2 }, { maxStreams: 2 });
    const accepted: YamuxStream[] = [];
    s.onStream((st) => accepted.push(st));
    const a = c.open();
    const b = c.open();
    expect(() => c.open()).toThrow(expect.objectContaining({ code: 'ERR_STREAM_CLOSED' }));
    await until(() => accepted.length === 2, 'two accepted streams');
    for (const st of [a, b, ...accepted]) st.on('error', () => undefined);
  });

  it('the peer going away fails open streams with ERR_TUNNEL_CLOSED', async () => {
    const [c, s] = await connect();
    const st = c.open();
    st.write('x');
    await until(() => s.streamCount === 1, 'the stream to arrive');
    const failed = once(st, 'error');
    const closed = closeOf(c);
    s.destroy();
    expect((await failed)[0]).toMatchObject({ code: 'ERR_TUNNEL_CLOSED' });
    expect(await closed).toMatchObject({ code: 'ERR_TUNNEL_CLOSED' });
  });

  describe('deadlines (hashicorp/yamux StreamCloseTimeout)', () => {
    it('a stream whose peer never sends its FIN is reset streamCloseTimeoutMs after ours', async () => {
      const [c, s] = await connect({ streamCloseTimeoutMs: 50 });
      const accepted = s.accept();
      const st = c.open();
      st.write('hello');
      const peer = await accepted;
      peer.resume(); // reads, never ends
      const peerClosed = new Promise<Error | undefined>((r) => {
        let e: Error | undefined;
        peer.on('error', (err) => (e = err));
        peer.once('close', () => r(e));
      });
      const mine = new Promise<Error | undefined>((r) => {
        let e: Error | undefined;
        st.on('error', (err) => (e = err));
        st.once('close', () => r(e));
      });
      st.resume();
      st.end();
      expect((await mine)?.message).toMatch(/did not close the stream within 50 ms/);
      // The peer hears RST.
      expect((await peerClosed)?.message).toMatch(/reset by peer/);
      expect(c.streamCount).toBe(0);
      expect(s.streamCount).toBe(0);
    });

    it('a stream whose peer keeps answering after our FIN is not reset, however long that takes in all', async () => {
      const [c, s] = await connect({ streamCloseTimeoutMs: 1500 });
      s.onStream((st) => {
        st.resume();
        st.on('end', () => {
          let n = 0;
          const timer = setInterval(() => {
            st.write('x');
            if (++n === 50) {
              clearInterval(timer);
              st.end();
            }
          }, 60);
        });
      });
      const st = c.open();
      st.end('request');
      expect((await readAll(st)).toString()).toBe('x'.repeat(50));
    });

    it('close({ graceMs }) with a stream that stays open resolves at the deadline, taking the stream down', async () => {
      const [c, s] = await connect();
      const accepted = s.accept();
      const st = c.open();
      st.write('x');
      const peer = await accepted;
      peer.on('error', () => undefined);
      st.on('error', () => undefined);
      peer.resume();
      await c.close({ graceMs: 50 });
      expect(c.closed).toBe(true);
      expect(st.destroyed).toBe(true);
      await closeOf(s);
    });

    it('close({ signal }) ends the wait when the signal aborts, and close({ graceMs: 0 }) at once', async () => {
      const [c, s] = await connect();
      const accepted = s.accept();
      const st = c.open();
      st.write('x');
      st.on('error', () => undefined);
      (await accepted).on('error', () => undefined);
      const ac = new AbortController();
      const closing = c.close({ graceMs: 600_000, signal: ac.signal });
      ac.abort();
      await closing;
      expect(st.destroyed).toBe(true);
      await closeOf(s);

      const [c2, s2] = await connect();
      const st2 = c2.open();
      st2.on('error', () => undefined);
      st2.write('y');
      await c2.close({ graceMs: 0 });
      expect(st2.destroyed).toBe(true);
      await closeOf(s2);
      await expect(c2.close({ graceMs: -1 })).resolves.toBeUndefined();
    });

    it('close() still waits for a stream that finishes in time, and resolves cleanly', async () => {
      const [c, s] = await connect();
      s.onStream((st) => st.pipe(st));
      const st = c.open();
      st.end('finish me');
      const closing = c.close({ graceMs: 600_000 });
      expect((await readAll(st)).toString()).toBe('finish me');
      await closing;
      expect(c.errored).toBeUndefined();
      await closeOf(s);
    });
  });
});
