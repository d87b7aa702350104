/** The stream lifecycle every role uses: one close, errors through it, the peer's end, a stream already over. */
import { Duplex, PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createMemoryPair, drainPacket } from '../../../src/index.js';
import { attachStream, closeStream, endStream, whenClosed } from '../../../src/tunnel/stream-lifecycle.js';

const turn = () => new Promise((r) => setImmediate(r));

/** A memory pair whose ends never raise an unhandled 'error' (destroying one end resets the other). */
function pair() {
  const ends = createMemoryPair();
  for (const s of ends) s.on('error', () => {});
  return ends;
}

describe('attachStream', () => {
  it('runs onClose once, with the error, for a stream whose close was emitted before it was attached', async () => {
    const [a, b] = pair();
    const failure = new Error('refused in the same read');
    a.destroy(failure);
    await turn();
    expect(a.closeEmitted).toBe(true);
    const seen: Array<Error | undefined> = [];
    attachStream(a, { onClose: (err) => seen.push(err) });
    await turn();
    expect(seen).toEqual([failure]);
    b.destroy();
  });

  it('runs onClose once for a stream that is closing but has not emitted close yet', async () => {
    const [a, b] = pair();
    void a.close();
    expect(a.closed).toBe(true);
    expect(a.closeEmitted).toBe(false);
    const seen: Array<Error | undefined> = [];
    attachStream(a, { onClose: (err) => seen.push(err) });
    b.destroy();
    await turn();
    await turn();
    expect(seen).toHaveLength(1);
  });

  it('takes the error (no unhandled error event) and reports it through onClose', async () => {
    const [a, b] = createMemoryPair();
    b.on('error', () => {});
    const seen: Array<Error | undefined> = [];
    attachStream(a, { onClose: (err) => seen.push(err) });
    const failure = new Error('reset');
    a.destroy(failure);
    await turn();
    expect(seen).toEqual([failure]);
    b.destroy();
  });

  it("ends our side on the peer's end by default, or leaves it to onEnd", async () => {
    const [a, b] = pair();
    let closed = 0;
    attachStream(a, { onClose: () => closed++ });
    void b.close();
    await turn();
    await turn();
    expect(a.closed).toBe(true);
    expect(closed).toBe(1);

    const [c, d] = pair();
    let ended = 0;
    attachStream(c, { onEnd: () => ended++, onClose: () => {} });
    void d.close();
    await turn();
    await turn();
    expect(ended).toBe(1);
    expect(c.closed).toBe(false);
    c.destroy();
  });
});

describe('closeStream', () => {
  it('resolves once the peer has ended too, without destroying', async () => {
    const [a, b] = pair();
    attachStream(b, { onClose: () => {} });
    await closeStream(a, { graceMs: 60_000 });
    expect(a.closeEmitted).toBe(true);
    expect(a.errored).toBeUndefined();
  });

  it('destroys a stream whose peer never ends its side at the deadline, or when the signal aborts', async () => {
    const [a, b] = pair();
    await closeStream(a, { graceMs: 20 });
    expect(a.errored).toMatchObject({ code: 'ERR_STREAM_CLOSED' });
    b.destroy();

    const [c, d] = pair();
    const ac = new AbortController();
    const closing = closeStream(c, { graceMs: 60_000, signal: ac.signal });
    ac.abort();
    await closing;
    expect(c.errored).toMatchObject({ code: 'ERR_STREAM_CLOSED' });
    d.destroy();
  });

  it('endStream ends our side only, with no deadline: reads go on', async () => {
    const [a, b] = pair();
    const got: unknown[] = [];
    a.on('packet', (p) => got.push(p));
    endStream(a);
    b.write(drainPacket());
    await turn();
    await turn();
    expect(got).toHaveLength(1);
    expect(a.closeEmitted).toBe(false);
    a.destroy();
    b.destroy();
  });
});

describe('whenClosed', () => {
  it('calls back for a Node stream that has already closed, and for one that closes later', async () => {
    const done: string[] = [];
    const early: Duplex = new PassThrough();
    early.destroy();
    await turn();
    whenClosed(early, () => done.push('early'));
    const late: Duplex = new PassThrough();
    whenClosed(late, () => done.push('late'));
    await turn();
    expect(done).toEqual(['early']);
    late.destroy();
    await turn();
    expect(done).toEqual(['early', 'late']);
  });
});
