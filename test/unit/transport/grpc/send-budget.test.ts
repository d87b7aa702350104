/**
 * The send budget of a node:http2 client (src/transport/grpc/send-budget.ts) with a fake PING: while it applies, at
 * most its limit is written and not confirmed; a PING confirms only what no tracked stream still holds; the held streams
 * are told when it opens; it stops applying on `unbound()` and for good on `disable()`.
 */
import { describe, expect, it } from 'vitest';
import { SendBudget, type BudgetedStream } from '../../../../src/transport/grpc/send-budget.js';

const MiB = 1024 * 1024;

class FakeStream implements BudgetedStream {
  writableLength = 0;
  opened = 0;
  budgetOpened(): void {
    this.opened++;
  }
}

/** A budget whose PINGs wait in `pings` until a test answers them. */
function budget(bounding: boolean): { b: SendBudget; pings: Array<(ok: boolean) => void> } {
  const pings: Array<(ok: boolean) => void> = [];
  const b = new SendBudget((answered) => {
    pings.push(answered);
    return true;
  }, 4 * MiB, bounding);
  return { b, pings };
}

describe('SendBudget', () => {
  it('holds writes past its limit until a PING confirms what was on the wire before it', () => {
    const { b, pings } = budget(true);
    const s = new FakeStream();
    b.track(s);
    // 1 MiB writes: a PING goes out after each quarter of the limit.
    for (let i = 0; i < 4; i++) expect(b.wrote(MiB)).toBe(true);
    expect(pings.length).toBe(3); // at most three at once
    expect(b.wrote(MiB)).toBe(false);
    expect(b.open).toBe(false);
    // The first PING went out after 1 MiB: its answer confirms 1 MiB, which brings 5 MiB written back to the limit.
    pings.shift()!(true);
    expect(b.open).toBe(true);
    expect(s.opened).toBe(1);
  });

  it('does not confirm bytes a stream still held when the PING went out', () => {
    const { b, pings } = budget(true);
    const s = new FakeStream();
    b.track(s);
    s.writableLength = MiB; // the socket has not taken the last MiB yet
    expect(b.wrote(MiB)).toBe(true); // PING 1: confirms 0
    s.writableLength = 0;
    for (let i = 0; i < 3; i++) b.wrote(MiB); // PINGs 2 and 3 at 2 and 3 MiB
    expect(b.wrote(MiB)).toBe(false); // 5 MiB written
    pings.shift()!(true);
    expect(b.open).toBe(false);
    pings.shift()!(true); // 2 MiB confirmed
    expect(b.open).toBe(true);
  });

  it('sends another PING when the ones out did not open it, and none when a PING failed', () => {
    const { b, pings } = budget(true);
    const s = new FakeStream();
    b.track(s);
    s.writableLength = 8 * MiB; // nothing reached the socket
    b.wrote(8 * MiB);
    expect(b.open).toBe(false);
    expect(pings.length).toBe(1);
    s.writableLength = 0;
    pings.shift()!(true); // confirmed 0 of 8 MiB: ask again, now that the socket took it
    expect(pings.length).toBe(1);
    pings.shift()!(true);
    expect(b.open).toBe(true);
    expect(s.opened).toBe(1);
    b.wrote(8 * MiB);
    pings.shift()!(false); // the session is going away
    expect(pings.length).toBe(0);
  });

  it('counts writes while it does not apply, and bound() waits until they are confirmed', () => {
    const { b, pings } = budget(false);
    const s = new FakeStream();
    b.track(s);
    expect(b.wrote(16 * MiB)).toBe(true);
    expect(pings.length).toBe(0);
    let ready = 0;
    b.bound(() => ready++);
    expect(ready).toBe(0);
    expect(b.wrote(1)).toBe(false);
    pings.shift()!(true);
    expect(ready).toBe(1);
    expect(b.open).toBe(true);
    // Within the limit, bound() is ready at once.
    b.unbound();
    b.wrote(MiB);
    b.bound(() => ready++);
    expect(ready).toBe(2);
  });

  it('tells the held streams when it stops applying, and never applies again once disabled', () => {
    const { b } = budget(true);
    const s = new FakeStream();
    b.track(s);
    let held = 0;
    b.onHeld = () => held++;
    expect(b.wrote(5 * MiB)).toBe(false);
    expect(held).toBe(1);
    b.unbound();
    expect(s.opened).toBe(1);
    expect(b.open).toBe(true);
    b.disable();
    let ready = 0;
    b.bound(() => ready++);
    expect(ready).toBe(1);
    expect(b.wrote(64 * MiB)).toBe(true);
    expect(b.active).toBe(false);
  });
});
