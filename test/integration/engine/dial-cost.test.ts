/**
 * What one dial allocates on the agent: with the default dialer, the agent dials in its callback form, so no
 * AbortController (an EventTarget with its listener table) and no Promise per dial; a dialer of the caller's own
 * still gets its AbortSignal.
 */
import { once } from 'node:events';
import type { Duplex } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { Engine, echoServer } from '../../helpers/engine.js';

const Original = globalThis.AbortController;
let made = 0;
class CountingAbortController extends Original {
  constructor() {
    super();
    made++;
  }
}

afterEach(() => {
  globalThis.AbortController = Original;
});

async function dialTen(engine: Engine, port: number): Promise<void> {
  for (let i = 0; i < 10; i++) {
    const socket = await engine.server.dial(`127.0.0.1:${port}`);
    socket.write('x');
    await once(socket, 'data');
    socket.destroy();
  }
}

describe('agent dial cost', () => {
  it('the default dialer: no AbortController per dial', async () => {
    const engine = new Engine();
    const target = await echoServer();
    engine.defer(() => target.close());
    await engine.agent();
    globalThis.AbortController = CountingAbortController;
    made = 0;
    await dialTen(engine, target.port);
    expect(made).toBe(0);
    await engine.close();
  });

  it("a dialer of the caller's own gets an AbortSignal per dial", async () => {
    const engine = new Engine();
    const target = await echoServer();
    engine.defer(() => target.close());
    const { tcpDialer } = await import('../../../src/agent/dialer.js');
    const signals: AbortSignal[] = [];
    const dialer = (req: { address: string; protocol: string; signal: AbortSignal }): Promise<Duplex> => {
      signals.push(req.signal);
      return tcpDialer()(req);
    };
    await engine.agent({ dialer });
    await dialTen(engine, target.port);
    expect(signals).toHaveLength(10);
    expect(new Set(signals).size).toBe(10);
    await engine.close();
  });
});
