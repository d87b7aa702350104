/**
 * One yamux stream as a Node Duplex, with the stream's own flow control:
 * - sending: written chunks are handed to the session only as far as the peer's window allows, as views (chunks
 *   written together, `_writev`, share frames); the write callback runs once they are all on the carrier, so a
 *   zero window fills the writable buffer and `write()` returns false;
 * - receiving: the peer may send at most our window; we grow it (Window Update) as the application *consumes*
 *   bytes (Node calls `_read` when the readable buffer runs low), never when they merely arrive, so a stalled
 *   reader holds at most one window. Bytes read but still held further on (`hold`/`release`: a tunnel
 *   connection's payload its owner has not passed on) count as not consumed, so the window bounds those too. The
 *   window grows, up to a ceiling, when the round trip shows the sender is held back by it (window-growth.ts);
 *   only a reader that keeps up makes it grow.
 * Half-close: `end()` sends FIN after the queued data; the peer's FIN ends the readable side. `destroy()` before
 * both FINs sends RST.
 */
import { Duplex } from 'node:stream';
import { ErrorCode, KonnectivityError } from '../../protocol/errors.js';
import type { ResolvedYamuxOptions } from './config.js';
import { YAMUX_INITIAL_WINDOW_BYTES as INITIAL_WINDOW_BYTES } from '../windows.js';
import { Flag, FrameType } from './frame.js';
import type { WindowGrowth } from './window-growth.js';

/** What a stream needs from its session (kept as an interface so the two files do not import each other). */
export interface StreamOwner {
  readonly options: ResolvedYamuxOptions;
  /** How receive windows grow, if they do. */
  readonly windowGrowth: WindowGrowth | undefined;
  /** The stream has data to send and window for it. */
  markReady(stream: YamuxStream): void;
  /** Send a frame without payload (Window Update) for this stream. */
  sendControl(type: number, flags: number, streamID: number, length: number): void;
  /** The stream is done (both FINs, RST, or destroyed): forget it. */
  streamClosed(stream: YamuxStream): void;
}

/** What one `_write` or `_writev` handed us: sent frame by frame as the window allows, then acknowledged. */
interface PendingWrite {
  bufs: Buffer[];
  /** The first chunk not wholly taken, and how much of it is. */
  index: number;
  offset: number;
  callback: (err?: Error | null) => void;
}

/** A yamux stream: a Duplex whose ends are the two directions of one multiplexed stream. */
export class YamuxStream extends Duplex {
  /** The stream ID (odd when the client side opened it, even when the server side did). */
  readonly id: number;
  private readonly owner: StreamOwner;
  /** Our receive window: what we let the peer have in flight (it grows with window growth). */
  private window: number;
  /** When we last sent a Window Update, or first got data (window growth only). */
  private lastUpdateMs: number | undefined;
  /** Bytes the peer still lets us send. */
  private sendWindow = INITIAL_WINDOW_BYTES;
  /** Bytes the peer may still send us. */
  private recvWindow = INITIAL_WINDOW_BYTES;
  /** Bytes read from us but still held by the reader's reader (`hold`): not consumed yet. */
  private held = 0;
  /** Bytes consumed in all, as of the last Window Update (window growth only). */
  private consumedTotal = 0;
  private pending: PendingWrite | undefined;
  private finSent = false;
  private finReceived = false;
  private resetSeen = false;
  private forgotten = false;
  private acked: boolean;
  private openTimer: NodeJS.Timeout | undefined;
  /** After our FIN: the wait for the peer's (streamCloseTimeoutMs). */
  private closeTimer: NodeJS.Timeout | undefined;
  /** @internal Who reads this stream through shared event handlers (`this` is the stream): yamux/packet-stream.ts. */
  reader: unknown = undefined;

  /** Streams are made by YamuxSession.open() and accept(), not by hand. */
  constructor(owner: StreamOwner, id: number, outgoing: boolean) {
    super({
      allowHalfOpen: true,
      readableHighWaterMark: owner.options.streamReadableHighWaterMarkBytes,
      writableHighWaterMark: owner.options.streamWritableHighWaterMarkBytes,
    });
    this.owner = owner;
    this.id = id;
    this.window = owner.options.maxStreamWindowBytes;
    this.acked = !outgoing;
    if (outgoing) {
      // Open: SYN on a Window Update, announcing a larger window at once when configured.
      this.recvWindow = this.window;
      owner.sendControl(FrameType.WINDOW_UPDATE, Flag.SYN, id, this.window - INITIAL_WINDOW_BYTES);
      const ms = owner.options.streamOpenTimeoutMs;
      if (ms > 0) {
        this.openTimer = setTimeout(() => {
          if (!this.acked) this.destroy(new KonnectivityError(ErrorCode.STREAM_CLOSED, 'yamux: stream open timed out'));
        }, ms);
        this.openTimer.unref();
      }
    }
  }

  /** True once the peer acknowledged the stream (always true for streams the peer opened). */
  get established(): boolean {
    return this.acked;
  }

  /** Our receive window in bytes: the most the peer may have sent us and we not yet consumed. */
  get receiveWindowBytes(): number {
    return this.window;
  }

  // ---- called by the session --------------------------------------------------------------------------------

  /** @internal Accept an incoming stream: ACK, announcing a larger window when configured. */
  sendAck(): void {
    this.recvWindow = this.window;
    this.owner.sendControl(FrameType.WINDOW_UPDATE, Flag.ACK, this.id, this.window - INITIAL_WINDOW_BYTES);
  }

  /** @internal A frame for this stream carried ACK. */
  onAck(): void {
    this.acked = true;
    this.clearOpenTimer();
  }

  /** @internal The peer grew our send window. */
  onWindowUpdate(delta: number): void {
    this.sendWindow += delta;
    if (this.hasSendable()) this.owner.markReady(this);
  }

  /**
   * @internal Data arrived, a view of the carrier's read; `keepView` says whether this stream got enough of that read
   * to hold views of it (else the bytes are copied out, so a slow reader never pins a read it has little of).
   * Returns false when it exceeds the window (a protocol error for the session).
   */
  onData(payload: Buffer, keepView: boolean): boolean {
    if (payload.length > this.recvWindow) return false;
    this.recvWindow -= payload.length;
    if (this.lastUpdateMs === undefined && this.owner.windowGrowth) this.lastUpdateMs = this.owner.windowGrowth.now();
    if (payload.length === 0 || this.finReceived || this.destroyed) return true;
    // After our FIN, an answer that keeps coming keeps the stream (unlike upstream, which cuts it regardless).
    this.closeTimer?.refresh();
    this.push(keepView ? payload : Buffer.from(payload));
    return true;
  }

  /** @internal The peer sent FIN. */
  onFin(): void {
    if (this.finReceived) return;
    this.finReceived = true;
    this.push(null);
    this.maybeForget();
  }

  /** @internal The peer sent RST (or refused the stream). */
  onReset(): void {
    this.resetSeen = true;
    this.destroy(new KonnectivityError(ErrorCode.STREAM_CLOSED, 'yamux: stream reset by peer'));
  }

  /** @internal True when data is queued and the window allows some of it. */
  hasSendable(): boolean {
    return this.pending !== undefined && this.sendWindow > 0 && !this.resetSeen;
  }

  /**
   * @internal Take up to `max` bytes of queued data that the window allows, consuming window: views of the written
   * chunks (no copy), appended to `out`. Returns how many bytes were taken.
   */
  takeData(max: number, out: Buffer[]): number {
    const p = this.pending;
    if (!p) return 0;
    let room = Math.min(max, this.sendWindow);
    let taken = 0;
    while (room > 0 && p.index < p.bufs.length) {
      const buf = p.bufs[p.index]!;
      const n = Math.min(room, buf.length - p.offset);
      out.push(p.offset === 0 && n === buf.length ? buf : buf.subarray(p.offset, p.offset + n));
      taken += n;
      room -= n;
      p.offset += n;
      if (p.offset === buf.length) {
        p.index++;
        p.offset = 0;
      }
    }
    this.sendWindow -= taken;
    return taken;
  }

  /** @internal Called after the bytes from takeData() were written to the carrier. */
  dataSent(): void {
    const p = this.pending;
    if (p && p.index === p.bufs.length) {
      this.pending = undefined;
      p.callback();
    }
  }

  /**
   * @internal `n` bytes read from this stream are still held by whoever they were passed to: they keep counting
   * against our window until `release(n)`.
   */
  hold(n: number): void {
    this.held += n;
  }

  /** @internal `n` held bytes were passed on: grow the peer's window as if they had just been read. */
  release(n: number): void {
    this.held = Math.max(0, this.held - n);
    this.growWindow();
  }

  /** @internal The session is going away: drop the stream without sending anything. */
  abort(err: Error | undefined): void {
    this.resetSeen = true;
    this.destroy(err);
  }

  // ---- Duplex implementation ----------------------------------------------------------------------------------

  override read(size?: number): any {
    const chunk: unknown = super.read(size);
    // Node calls _read() before it takes the chunk out of the buffer, so look again once it is out.
    this.growWindow();
    return chunk;
  }

  override _read(): void {
    this.growWindow();
  }

  /**
   * Grow the peer's window by what the application consumed, in whole half-windows, once that is at least half a
   * window (as the reference does), so updates stay few. Whole halves, not all that was consumed: a sender with
   * its whole window in flight gets it back in two updates each round trip. Had the first update carried the few
   * bytes past the half too, the rest of that window would fall short of a half, and the sender would get only
   * half its window per round trip (what held the long link). With window growth the window itself may grow here
   * (window-growth.ts).
   */
  private growWindow(): void {
    if (this.forgotten || this.finReceived) return;
    const consumed = this.window - this.readableLength - this.held - this.recvWindow;
    const half = Math.floor(this.window / 2);
    if (consumed <= 0 || consumed < half) return;
    const granted = consumed - (consumed % half);
    const before = this.window;
    const growth = this.owner.windowGrowth;
    if (growth) {
      const now = growth.now();
      this.consumedTotal += granted;
      this.window = growth.grow(this.window, this.lastUpdateMs, now, this.consumedTotal);
      this.lastUpdateMs = now;
    }
    // Not negative but for a byte of rounding: a window shrinks by at most half, and at least half was consumed.
    const delta = granted + this.window - before;
    if (delta <= 0) return;
    this.recvWindow += delta;
    this.owner.sendControl(FrameType.WINDOW_UPDATE, 0, this.id, delta);
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (err?: Error | null) => void): void {
    if (this.forgotten) {
      callback(new KonnectivityError(ErrorCode.STREAM_CLOSED, 'yamux: stream closed'));
      return;
    }
    if (chunk.length === 0) {
      callback();
      return;
    }
    this.queueSend([chunk], callback);
  }

  /** Everything written while a write was pending (or while corked) arrives here at once: it shares frames. */
  override _writev(chunks: Array<{ chunk: Buffer }>, callback: (err?: Error | null) => void): void {
    if (this.forgotten) {
      callback(new KonnectivityError(ErrorCode.STREAM_CLOSED, 'yamux: stream closed'));
      return;
    }
    const bufs: Buffer[] = [];
    for (const c of chunks) if (c.chunk.length > 0) bufs.push(c.chunk);
    if (bufs.length === 0) {
      callback();
      return;
    }
    this.queueSend(bufs, callback);
  }

  override _final(callback: (err?: Error | null) => void): void {
    if (this.forgotten) {
      callback(new KonnectivityError(ErrorCode.STREAM_CLOSED, 'yamux: stream closed'));
      return;
    }
    this.finSent = true;
    this.owner.sendControl(FrameType.WINDOW_UPDATE, Flag.FIN, this.id, 0);
    this.maybeForget();
    const ms = this.owner.options.streamCloseTimeoutMs;
    if (!this.forgotten && ms > 0) {
      // A peer that never sends its FIN must not hold the stream (and a session's graceful close) for ever.
      this.closeTimer = setTimeout(() => {
        this.destroy(new KonnectivityError(ErrorCode.STREAM_CLOSED, `yamux: the peer did not close the stream within ${ms} ms`));
      }, ms).unref();
    }
    callback();
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    this.clearOpenTimer();
    clearTimeout(this.closeTimer);
    if (!this.forgotten && !this.resetSeen && !(this.finSent && this.finReceived)) {
      this.owner.sendControl(FrameType.WINDOW_UPDATE, Flag.RST, this.id, 0);
    }
    this.forget();
    const p = this.pending;
    this.pending = undefined;
    p?.callback(err ?? new KonnectivityError(ErrorCode.STREAM_CLOSED, 'yamux: stream destroyed'));
    callback(err);
  }

  // ---- internals ----------------------------------------------------------------------------------------------

  private queueSend(bufs: Buffer[], callback: (err?: Error | null) => void): void {
    this.pending = { bufs, index: 0, offset: 0, callback };
    if (this.hasSendable()) this.owner.markReady(this);
  }

  private maybeForget(): void {
    if (this.finSent && this.finReceived) this.forget();
  }

  private forget(): void {
    if (this.forgotten) return;
    this.forgotten = true;
    this.clearOpenTimer();
    this.owner.windowGrowth?.release(this.window);
    clearTimeout(this.closeTimer);
    this.owner.streamClosed(this);
  }

  private clearOpenTimer(): void {
    if (this.openTimer) clearTimeout(this.openTimer);
    this.openTimer = undefined;
  }
}
