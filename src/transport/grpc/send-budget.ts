/**
 * A bound on what a node:http2 client has written that its node:http2 peer may not have read yet, so that its
 * receive window can grow past the socket buffers without the two of them stalling.
 *
 * node:http2 reads nothing while one of its socket writes is pending (windows.ts, DEFAULT_GRPC_MAX_WINDOW_BYTES),
 * so two node peers that both have more in flight than the socket buffers between them hold stop reading at once
 * and wait for each other for ever. One end that never has more unread by its peer than those buffers hold always
 * finishes its writes, keeps reading, and so lets the other end drain; that end may then grant any window. The
 * client keeps to DEFAULT_GRPC_NODE_PEER_MAX_WINDOW_BYTES this way instead of holding its receive window there
 * (which held a tunnel's uploads to 4 MiB per round trip on a long link).
 *
 * What the peer has read is learnt from HTTP/2 PINGs: a PING's answer comes once the peer has read every byte
 * before it. A stream's write completes only once node's socket write that carries it has (node_http2.cc clears
 * its outgoing buffers after the socket write), so at the moment a PING is sent, every byte written and no longer
 * counted in a stream's `writableLength` is on the wire ahead of it; its answer confirms those bytes.
 *
 * The budget binds only while the window we grant is above that bound (`bound()` / `unbound()`, driven by
 * window-tuner.ts): a tunnel that downloads gives its receive window back to the bound and sends freely, one that
 * uploads grows its window and keeps its sends within the budget. Sans-I/O apart from the `ping` it is given and one
 * retry timer: the session wiring is in client.ts, window-tuner.ts and stream.ts.
 */

/** A stream whose writes count against a budget. */
export interface BudgetedStream {
  /** Bytes written to the stream that its socket has not taken yet. */
  readonly writableLength: number;
  /** The budget has room again after `wrote()` returned false. */
  budgetOpened(): void;
}

/** Sends a PING; calls `answered` with whether the peer acknowledged it. Returns false when it could not be sent. */
export type SendPing = (answered: (acknowledged: boolean) => void) => boolean;

/** PINGs of a budget at once (node allows 10 outstanding per session; keepalive and the window tuner use others). */
const MAX_OUTSTANDING_PINGS = 3;
/** A PING goes out each time this share of the budget was written since the last one. */
const PING_SHARE = 1 / 4;
/** When a PING could not be sent while streams wait, try again this much later, in ms. */
const RETRY_MS = 5;

export class SendBudget {
  /** Bytes written to the session's streams, in all. */
  private written = 0;
  /** Of those, how many the peer is known to have read. */
  private confirmed = 0;
  private writtenAtLastPing = 0;
  private outstanding = 0;
  private waiting = false;
  /** The budget applies (our receive window is, or is about to be, above the bound). */
  private bounding: boolean;
  /** The peer reads while it writes: the budget never applies again. */
  private disabled = false;
  private whenOpen: (() => void) | undefined;
  private retry: NodeJS.Timeout | undefined;
  private readonly streams = new Set<BudgetedStream>();
  /** Called when the budget starts holding writes back (the tuner may then give the window back). */
  onHeld: (() => void) | undefined;

  constructor(
    private readonly ping: SendPing,
    /** The most written and not known to be read while the budget applies, in bytes. */
    readonly limitBytes: number,
    /** Whether it applies from the start (a receive window configured above the bound). */
    bounding: boolean,
  ) {
    this.bounding = bounding;
  }

  /** True when streams may write (the budget has room, or does not apply). */
  get open(): boolean {
    return !this.bounding || this.written - this.confirmed <= this.limitBytes;
  }

  /** True while the budget applies. */
  get applies(): boolean {
    return this.bounding;
  }

  /** False once the peer showed that it reads while it writes. */
  get active(): boolean {
    return !this.disabled;
  }

  /**
   * `stream` writes on the session from now on (until `forget`): a PING confirms only what no such stream still
   * holds, so every writer is known, whether the budget applies yet or not.
   */
  track(stream: BudgetedStream): void {
    this.streams.add(stream);
  }

  /** A tracked stream wrote `n` bytes. Returns false when the budget is spent: `budgetOpened()` follows. */
  wrote(n: number): boolean {
    if (this.disabled) return true;
    this.written += n;
    if (!this.bounding) return true;
    if (this.written - this.writtenAtLastPing >= this.limitBytes * PING_SHARE) this.sendPing();
    if (this.open) return true;
    this.hold(true);
    return false;
  }

  /** `stream` closed: its unsent bytes are not waited for. */
  forget(stream: BudgetedStream): void {
    this.streams.delete(stream);
  }

  /**
   * Start applying the budget (the window is to grow past the bound); `ready` runs once what we wrote is within it,
   * now or after the PINGs that confirm it.
   */
  bound(ready: () => void): void {
    if (this.disabled) {
      ready();
      return;
    }
    this.bounding = true;
    if (this.written - this.confirmed <= this.limitBytes) {
      ready();
      return;
    }
    this.whenOpen = ready;
    this.hold(false);
  }

  /** Stop applying the budget: the peer acknowledged a receive window within the bound. */
  unbound(): void {
    if (!this.bounding || this.disabled) return;
    this.bounding = false;
    this.whenOpen = undefined;
    this.stop();
    this.wake();
  }

  /** The peer reads while it writes (not node:http2): nothing needs bounding any more. */
  disable(): void {
    if (this.disabled) return;
    this.disabled = true;
    this.bounding = false;
    const ready = this.whenOpen;
    this.whenOpen = undefined;
    this.stop();
    this.wake();
    ready?.();
  }

  /** The session closed: no more PINGs. */
  stop(): void {
    clearTimeout(this.retry);
    this.retry = undefined;
  }

  private hold(byWrite: boolean): void {
    const first = !this.waiting;
    this.waiting = true;
    if (this.outstanding === 0) this.sendPing();
    if (first && byWrite) this.onHeld?.();
  }

  private sendPing(): void {
    if (this.outstanding >= MAX_OUTSTANDING_PINGS) return;
    let unsent = 0;
    for (const s of this.streams) unsent += s.writableLength;
    const position = this.written - unsent;
    this.writtenAtLastPing = this.written;
    let sent = false;
    try {
      sent = this.ping((acknowledged) => this.answered(position, acknowledged));
    } catch {
      // Too many PINGs outstanding, or the session is closing.
    }
    if (sent) this.outstanding++;
    else if (this.waiting && this.outstanding === 0 && this.retry === undefined) {
      this.retry = setTimeout(() => {
        this.retry = undefined;
        if (this.waiting && this.outstanding === 0) this.sendPing();
      }, RETRY_MS);
      this.retry.unref();
    }
  }

  private answered(position: number, acknowledged: boolean): void {
    this.outstanding--;
    if (acknowledged && position > this.confirmed) this.confirmed = position;
    if (!this.waiting || !this.bounding) return;
    if (this.open) this.wake();
    else if (this.outstanding === 0 && acknowledged) this.sendPing();
  }

  private wake(): void {
    if (!this.waiting) return;
    this.waiting = false;
    const ready = this.whenOpen;
    this.whenOpen = undefined;
    ready?.();
    for (const s of this.streams) s.budgetOpened();
  }
}
