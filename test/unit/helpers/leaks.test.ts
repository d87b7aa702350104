/** The leak check itself: it must be able to fail, also for what Node's active-resource list leaves out. */
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { expectNoLeaks, snapshotResources } from '../../helpers/leaks.js';

describe('expectNoLeaks', () => {
  it('reports an unref\'d timer made during the test, with where it was made', async () => {
    const before = snapshotResources();
    const timer = setTimeout(() => {}, 60_000).unref();
    const err = await expectNoLeaks(before, { timeoutMs: 50 }).catch((e: unknown) => e as Error);
    clearTimeout(timer);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(/Timeout \(made .*leaks\.test\.ts.*\) x1/);
  });

  it('reports an interval and a ref\'d timer too, and passes once they are cleared', async () => {
    const before = snapshotResources();
    const interval = setInterval(() => {}, 60_000).unref();
    const timer = setTimeout(() => {}, 60_000);
    const err = (await expectNoLeaks(before, { timeoutMs: 50 }).catch((e: unknown) => e)) as Error;
    expect(err.message.match(/Timeout \(made [^)]*leaks\.test\.ts[^)]*\) x1/g)).toHaveLength(2);
    const again = snapshotResources();
    const later = setTimeout(() => {}, 60_000).unref();
    clearInterval(interval);
    clearTimeout(timer);
    clearTimeout(later);
    await expectNoLeaks(again, { timeoutMs: 50 });
  });

  it('ignores timers that fired, and reports a listening server', async () => {
    const before = snapshotResources();
    await new Promise((r) => setTimeout(r, 1).unref());
    const server = net.createServer().listen(0, '127.0.0.1');
    await expect(expectNoLeaks(before, { timeoutMs: 50 })).rejects.toThrow(/TCPServerWrap x1/);
    const again = snapshotResources();
    await new Promise<void>((r) => server.close(() => r()));
    await expectNoLeaks(again, { timeoutMs: 200 });
  });
});
