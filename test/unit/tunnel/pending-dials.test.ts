/** The pending-dial machine and the packet switch every role uses, without sockets. */
import { describe, expect, it } from 'vitest';
import { ErrorCode, PacketType, closeDial, dataPacket, dialRequest, drainPacket, type Packet } from '../../../src/index.js';
import { packetSwitch } from '../../../src/tunnel/packet-switch.js';
import { DialFailure, PendingDials } from '../../../src/tunnel/pending-dials.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('PendingDials', () => {
  it('settles a dial once, whoever comes first, and forgets it', () => {
    const dials = new PendingDials<string>();
    const d = dials.add(7n, 'seven', undefined, () => {});
    expect(dials.get(7n)).toBe(d);
    expect(d.settle()).toBe(true);
    expect(d.settle()).toBe(false);
    expect(d.pending).toBe(false);
    expect(dials.has(7n)).toBe(false);
    expect(dials.size).toBe(0);
  });

  it('runs the timeout only for a dial still pending', async () => {
    const dials = new PendingDials<undefined>();
    const fired: bigint[] = [];
    dials.add(1n, undefined, 5, (d) => fired.push(d.random));
    dials.add(2n, undefined, 5, (d) => fired.push(d.random)).settle();
    await sleep(30);
    expect(fired).toEqual([1n]);
    // The timeout decides what it means: here it did not settle the dial.
    expect(dials.has(1n)).toBe(true);
  });

  it('a replaced dial settling later leaves its successor in the table', () => {
    const dials = new PendingDials<string>();
    const first = dials.add(9n, 'first', undefined, () => {});
    const second = dials.add(9n, 'second', undefined, () => {});
    expect(first.settle()).toBe(true);
    expect(dials.get(9n)).toBe(second);
  });

  it('settles the dials of a lost tunnel and returns them', () => {
    const dials = new PendingDials<{ via: string }>();
    dials.add(1n, { via: 'a' }, undefined, () => {});
    dials.add(2n, { via: 'b' }, undefined, () => {});
    dials.add(3n, { via: 'a' }, undefined, () => {});
    const lost = dials.settleWhere((v) => v.via === 'a');
    expect(lost.map((d) => d.random)).toEqual([1n, 3n]);
    expect(lost.every((d) => !d.pending)).toBe(true);
    expect([...dials.values()].map((d) => d.random)).toEqual([2n]);
    const id = dials.newDialID();
    expect(id > 0n && !dials.has(id)).toBe(true);
  });

  it('names each failure with one code and client reason', () => {
    expect(DialFailure.refused('dial tcp: refused')).toMatchObject({ code: ErrorCode.DIAL_FAILED, reason: 'endpoint', message: 'dial tcp: refused' });
    expect(DialFailure.closed()).toMatchObject({ code: ErrorCode.DIAL_CLOSED, reason: 'dialclosed' });
    expect(DialFailure.timedOut('late')).toMatchObject({ code: ErrorCode.DIAL_TIMEOUT, reason: 'timeout' });
    const cause = new Error('reset');
    expect(DialFailure.tunnelClosed('tunnel closed', cause)).toMatchObject({
      code: ErrorCode.TUNNEL_CLOSED,
      reason: 'tunnelclosed',
      message: 'tunnel closed: reset',
      cause,
    });
  });
});

describe('packetSwitch', () => {
  it('calls the handler of the packet type and ignores the others and unknown types', () => {
    const seen: string[] = [];
    const dispatch = packetSwitch<string[], string>({
      [PacketType.DIAL_REQ]: (role, p, via) => role.push(`${via}:dial ${p.dialRequest?.address}`),
      [PacketType.DIAL_CLS]: (role, p, via) => role.push(`${via}:cls ${p.closeDial?.random}`),
    });
    const packets: Packet[] = [dialRequest('a:1', 1n), dataPacket(1n, Buffer.from('x')), closeDial(5n), drainPacket(), { type: 99, unknown: true }];
    for (const p of packets) dispatch(seen, p, 'via');
    expect(seen).toEqual(['via:dial a:1', 'via:cls 5']);
  });
});
