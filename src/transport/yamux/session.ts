/**
 * A yamux session over any Duplex carrier (TCP, TLS, a WebSocket stream): frames in, frames out, streams.
 *
 * Writing: control frames (window updates, pings, go away) go out at once; Data frames are taken round-robin from
 * the streams that have data and window, one frame of at most `maxDataFrameBytes` per turn, and only while the
 * carrier accepts more (`write()` true, or less than `writeHighWaterMarkBytes` buffered), so one busy stream
 * cannot starve the others and the carrier never buffers without bound. Everything written in one tick reaches the
 * carrier as one write (corked until process.nextTick); payloads go as views of what the streams were given.
 * Reading: the carrier is never paused; each stream's window bounds what the peer may send, and a peer that
 * exceeds it breaks the protocol (Go Away, then the session fails), as in the reference.
 *
 * Kept whole: one state machine. Opening and accepting streams, the Data scheduler, frame dispatch, keepalive and
 * shutdown all read and change the same session state (the stream table, the ready set, the cork, the Go Away
 * flags, the waiters); split apart, each part would need that state handed to it and the invariants between them
 * would no longer be visible in one place.
 */
import type { Duplex } from 'node:stream';
import { EventEmitter } from 'node:events';
import { abortError } from '../../protocol/abort.js';
import { ErrorCode, KonnectivityError } from '../../protocol/errors.js';
import { rejectBadGrace, startGrace, type CloseOptions, type GracePeriod } from '../grace.js';
import { resolveYamuxOptions, type ResolvedYamuxOptions, type YamuxSessionOptions } from './config.js';
import { Flag, FrameDecoder, FrameType, GoAwayCode, encodeHeader, type Frame } from './frame.js';
import { YamuxStream } from './stream.js';
import { WindowGrowth } from './window-growth.js';

/** What a yamux session is made with: its options, and which end it is. */
export interface YamuxSessionInit extends YamuxSessionOptions {
  /** The client side opens odd-numbered streams, the server side even-numbered ones. */
  client: boolean;
}

/** Events of a yamux session. */
export interface YamuxSessionEventMap {
  /** The peer sent Go Away (normal): it accepts no new streams. */
  goAway: [];
  /** The session failed. Emitted only when someone listens; 'close' always carries the error. */
  error: [err: Error];
  /** The session is over; `err` is why, if it failed. */
  close: [err: Error | undefined];
}

const GO_AWAY_TEXT: Record<number, string> = {
  [GoAwayCode.PROTOCOL_ERROR]: 'protocol error',
  [GoAwayCode.INTERNAL_ERROR]: 'internal error',
};

/** Pings sent back to back when the session starts, to learn the round trip for window growth. */
const RTT_PROBES = 3;

/** Unsent bytes, in multiples of writeHighWaterMarkBytes, past which the peer is taken for not reading. */
const CONTROL_BACKLOG_FACTOR = 16;

function protocolError(message: string): KonnectivityError {
  return new KonnectivityError(ErrorCode.PROTOCOL, `yamux: ${message}`);
}

/** A yamux session. See the module comment. */
export class YamuxSession extends EventEmitter<YamuxSessionEventMap> {
  /** The session's options, with the defaults. */
  readonly options: ResolvedYamuxOptions;
  /** True for the client end (odd stream IDs). */
  readonly client: boolean;
  private readonly socket: Duplex;
  private readonly decoder: FrameDecoder;
  private readonly streams = new Map<number, YamuxStream>();
  private nextID: number;
  /** Streams with data and window, in round-robin order (a Set keeps insertion order). */
  private readonly ready = new Set<YamuxStream>();
  private flushing = false;
  /** Corked for the current tick (corkForTick). */
  private corked = false;
  /** Scratch list for the views of one Data frame. */
  private readonly views: Buffer[] = [];
  /** Payload bytes per stream in the read being handled (countShares). */
  private readonly shares = new Map<number, number>();
  /** Incoming streams not accepted yet. */
  private backlog: YamuxStream[] = [];
  private acceptWaiters: Array<{ resolve: (s: YamuxStream) => void; reject: (e: Error) => void }> = [];
  private handler: ((s: YamuxStream) => void) | undefined;
  private localGoAway = false;
  private remoteGoAwayFlag = false;
  private closing = false;
  private done = false;
  private error: Error | undefined;
  private closeWaiters: Array<{ resolve: () => void; reject: (e: Error) => void }> = [];
  private keepAliveTimer: NodeJS.Timeout | undefined;
  private closeTimer: NodeJS.Timeout | undefined;
  private closeGrace: GracePeriod | undefined;
  private nextPingID = 1;
  private readonly pings = new Map<number, { start: number; timer: NodeJS.Timeout; resolve: (ms: number) => void; reject: (e: Error) => void }>();
  /** Receive-window growth, when the ceiling is above the opening window; its round trip comes from our pings. */
  readonly windowGrowth: WindowGrowth | undefined;

  constructor(socket: Duplex, init: YamuxSessionInit) {
    super();
    const { client, ...options } = init;
    this.options = resolveYamuxOptions(options);
    this.client = client;
    this.nextID = client ? 1 : 2;
    this.socket = socket;
    this.decoder = new FrameDecoder({ maxPayloadBytes: this.options.streamWindowCeilingBytes });
    if (this.options.streamWindowCeilingBytes > this.options.maxStreamWindowBytes) {
      this.windowGrowth = new WindowGrowth({
        initialBytes: this.options.maxStreamWindowBytes,
        ceilingBytes: this.options.streamWindowCeilingBytes,
        budgetBytes: this.options.windowGrowthBudgetBytes,
        now: () => performance.now(),
      });
    }
    socket.on('data', this.onSocketData);
    socket.on('drain', this.onSocketDrain);
    socket.on('end', this.onSocketEnd);
    socket.on('error', this.onSocketError);
    socket.on('close', this.onSocketClose);
    if (this.options.keepAliveIntervalMs > 0) {
      this.keepAliveTimer = setInterval(() => {
        if (this.pings.size === 0 && !this.closing) this.ping().catch(() => undefined);
      }, this.options.keepAliveIntervalMs);
      this.keepAliveTimer.unref();
    }
    if (this.windowGrowth) this.probeRtt(RTT_PROBES);
  }

  /**
   * Window growth needs the round trip from the start: a few pings back to back, the least of them kept (the first
   * may wait behind the handshake's work); keepalive pings add samples later. An unanswered probe only leaves the
   * round trip unknown (keepalive, when on, is what fails a silent peer).
   */
  private probeRtt(left: number): void {
    this.sendPing(false).then(
      () => left > 1 && !this.done && this.probeRtt(left - 1),
      () => undefined,
    );
  }

  /** Streams open now (both directions, accepted or not). */
  get streamCount(): number {
    return this.streams.size;
  }
  /** True once the session is over. */
  get closed(): boolean {
    return this.done;
  }
  /** The error the session failed with, if any. */
  get errored(): Error | undefined {
    return this.error;
  }
  /** True once the peer sent Go Away. */
  get remoteGoAway(): boolean {
    return this.remoteGoAwayFlag;
  }

  /** Open a stream. The peer learns of it at once (SYN); data may be written before it answers. */
  open(): YamuxStream {
    if (this.done || this.closing) throw new KonnectivityError(ErrorCode.SHUTTING_DOWN, 'yamux: session is closed');
    if (this.remoteGoAwayFlag) throw new KonnectivityError(ErrorCode.SHUTTING_DOWN, 'yamux: peer sent go away');
    if (this.streams.size >= this.options.maxStreams) {
      throw new KonnectivityError(ErrorCode.STREAM_CLOSED, `yamux: too many streams (${this.options.maxStreams})`);
    }
    if (this.nextID > 0xffffffff - 1) throw new KonnectivityError(ErrorCode.STREAM_CLOSED, 'yamux: stream IDs exhausted');
    const id = this.nextID;
    this.nextID += 2;
    const s = new YamuxStream(this, id, true);
    this.streams.set(id, s);
    return s;
  }

  /** Wait for the next stream the peer opens, and accept it (ACK). */
  accept(options: { signal?: AbortSignal } = {}): Promise<YamuxStream> {
    const s = this.backlog.shift();
    if (s) {
      s.sendAck();
      return Promise.resolve(s);
    }
    if (this.done || this.closing) {
      return Promise.reject(this.error ?? new KonnectivityError(ErrorCode.SHUTTING_DOWN, 'yamux: session is closed'));
    }
    return new Promise<YamuxStream>((resolve, reject) => {
      const { signal } = options;
      const onAbort = (): void => {
        this.acceptWaiters = this.acceptWaiters.filter((w) => w !== waiter);
        reject(abortError('yamux: accept aborted', signal));
      };
      const waiter = {
        resolve: (st: YamuxStream) => {
          signal?.removeEventListener('abort', onAbort);
          resolve(st);
        },
        reject: (e: Error) => {
          signal?.removeEventListener('abort', onAbort);
          reject(e);
        },
      };
      if (signal?.aborted) return onAbort();
      signal?.addEventListener('abort', onAbort, { once: true });
      this.acceptWaiters.push(waiter);
    });
  }

  /** Accept every stream the peer opens, now and later, with `handler` (instead of calling accept()). */
  onStream(handler: (stream: YamuxStream) => void): void {
    this.handler = handler;
    const backlog = this.backlog;
    this.backlog = [];
    for (const s of backlog) this.deliverStream(s);
  }

  /** Send a ping and resolve with the round-trip time in ms; fails the session after `pingTimeoutMs`. */
  ping(): Promise<number> {
    return this.sendPing(true);
  }

  private sendPing(fatal: boolean): Promise<number> {
    if (this.done || this.socket.writableEnded) {
      return Promise.reject(this.error ?? new KonnectivityError(ErrorCode.SHUTTING_DOWN, 'yamux: session is closed'));
    }
    const id = this.nextPingID;
    this.nextPingID = (this.nextPingID + 1) >>> 0;
    return new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pings.delete(id);
        const err = new KonnectivityError(ErrorCode.TUNNEL_CLOSED, 'yamux: keepalive timeout');
        reject(err);
        if (fatal) this.destroy(err);
      }, this.options.pingTimeoutMs);
      timer.unref();
      this.pings.set(id, { start: performance.now(), timer, resolve, reject });
      this.writeFrame(FrameType.PING, Flag.SYN, 0, id);
    });
  }

  /**
   * Graceful close: send Go Away (no new streams either way), let open streams finish for `graceMs` (default
   * `streamCloseTimeoutMs`; with that 0 and no `graceMs`, for as long as they take) or until `signal` aborts, then
   * end the carrier; streams still open at the deadline are destroyed with the session. Resolves when the session
   * is over; rejects with its error if it failed meanwhile. Idempotent.
   */
  close(options: CloseOptions = {}): Promise<void> {
    if (this.done) return this.error ? Promise.reject(this.error) : Promise.resolve();
    const bad = this.closing ? undefined : rejectBadGrace(options, this.options.streamCloseTimeoutMs);
    if (bad) return bad;
    const p = new Promise<void>((resolve, reject) => this.closeWaiters.push({ resolve, reject }));
    p.catch(() => undefined);
    if (!this.closing) {
      this.closing = true;
      this.sendGoAway(GoAwayCode.NORMAL);
      for (const s of this.backlog) s.destroy();
      this.backlog = [];
      this.failAcceptWaiters(new KonnectivityError(ErrorCode.SHUTTING_DOWN, 'yamux: session is closing'));
      this.maybeFinishClose();
      // The streams' grace period; without one (streamCloseTimeoutMs 0, no graceMs) they take as long as they take.
      const forever = options.graceMs === undefined && this.options.streamCloseTimeoutMs === 0;
      if (!this.done && !(forever && !options.signal)) {
        const graceMs = options.graceMs ?? (forever ? 2 ** 31 - 1 : this.options.streamCloseTimeoutMs);
        this.closeGrace = startGrace({ ...options, graceMs }, graceMs, () => this.destroy());
      }
    }
    return p;
  }

  /** Tear down at once: every stream fails with `err` (or ERR_TUNNEL_CLOSED), the carrier is destroyed. Idempotent. */
  destroy(err?: Error): void {
    if (this.done) return;
    this.done = true;
    this.error = err;
    if (this.keepAliveTimer) clearInterval(this.keepAliveTimer);
    if (this.closeTimer) clearTimeout(this.closeTimer);
    this.closeGrace?.cancel();
    this.uncork();
    const streamErr = err ?? new KonnectivityError(ErrorCode.TUNNEL_CLOSED, 'yamux: session closed');
    // Streams nobody accepted have no listeners yet: end them quietly.
    for (const s of this.backlog) s.abort(undefined);
    this.backlog = [];
    for (const s of this.streams.values()) s.abort(streamErr);
    this.streams.clear();
    this.ready.clear();
    this.failAcceptWaiters(streamErr);
    for (const p of this.pings.values()) {
      clearTimeout(p.timer);
      p.reject(streamErr);
    }
    this.pings.clear();
    this.socket.off('data', this.onSocketData);
    this.socket.off('drain', this.onSocketDrain);
    this.socket.off('end', this.onSocketEnd);
    this.socket.off('close', this.onSocketClose);
    // Keep a listener: a late carrier error must not become an uncaught exception.
    this.socket.destroy();
    const waiters = this.closeWaiters;
    this.closeWaiters = [];
    for (const w of waiters) (err ? w.reject(err) : w.resolve());
    process.nextTick(() => {
      if (err && this.listenerCount('error') > 0) this.emit('error', err);
      this.emit('close', err);
    });
  }

  // ---- StreamOwner: what its streams call. @internal, so no `implements` (the published class lacks them) ----

  /** @internal */
  markReady(stream: YamuxStream): void {
    if (this.done) return;
    this.ready.add(stream);
    this.flush();
  }

  /** @internal */
  sendControl(type: number, flags: number, streamID: number, length: number): void {
    this.writeFrame(type, flags, streamID, length);
  }

  /** @internal */
  streamClosed(stream: YamuxStream): void {
    if (this.streams.get(stream.id) === stream) this.streams.delete(stream.id);
    this.ready.delete(stream);
    if (this.closing) this.maybeFinishClose();
  }

  // ---- writing --------------------------------------------------------------------------------------------------

  private writeFrame(type: number, flags: number, streamID: number, length: number): void {
    // After a graceful close ended the carrier, nothing more may go out (a late ping answer, say).
    if (this.done || this.socket.writableEnded) return;
    // Data stops at the high-water mark, control frames do not; a peer that sends pings but never reads would
    // grow this buffer without end.
    if (this.socket.writableLength > CONTROL_BACKLOG_FACTOR * this.options.writeHighWaterMarkBytes) {
      this.destroy(new KonnectivityError(ErrorCode.TUNNEL_CLOSED, 'yamux: the peer does not read what we send'));
      return;
    }
    this.corkForTick();
    this.socket.write(encodeHeader({ type, flags, streamID, length }));
  }

  private canWriteData(): boolean {
    return !this.socket.writableNeedDrain || this.socket.writableLength < this.options.writeHighWaterMarkBytes;
  }

  private flush(): void {
    if (this.flushing) return;
    this.flushing = true;
    const views = this.views;
    try {
      while (!this.done && this.ready.size > 0 && this.canWriteData()) {
        const s = this.ready.values().next().value as YamuxStream;
        this.ready.delete(s);
        const n = s.takeData(this.options.maxDataFrameBytes, views);
        if (n > 0) {
          this.corkForTick();
          this.socket.write(encodeHeader({ type: FrameType.DATA, flags: 0, streamID: s.id, length: n }));
          for (const v of views) this.socket.write(v);
          views.length = 0;
          s.dataSent();
        }
        // Back of the queue: the next stream gets the next frame.
        if (s.hasSendable()) this.ready.add(s);
      }
    } finally {
      views.length = 0;
      this.flushing = false;
    }
  }

  /**
   * Gather every frame written in this tick into one carrier write (one writev, one TLS record run): cork now,
   * uncork once the current tick's work is done. process.nextTick runs before any I/O, so a lone frame waits for
   * nothing but the code already running.
   */
  private corkForTick(): void {
    if (this.corked) return;
    this.corked = true;
    this.socket.cork();
    process.nextTick(this.uncork);
  }

  private readonly uncork = (): void => {
    if (!this.corked) return;
    this.corked = false;
    this.socket.uncork();
  };

  private readonly onSocketDrain = (): void => {
    this.flush();
  };

  // ---- reading --------------------------------------------------------------------------------------------------

  private readonly onSocketData = (chunk: Buffer): void => {
    let frames: Frame[];
    try {
      frames = this.decoder.push(chunk);
    } catch (err) {
      this.protocolFailure(err as KonnectivityError);
      return;
    }
    this.countShares(frames);
    for (const f of frames) {
      if (this.done) return;
      this.onFrame(f);
    }
    this.shares.clear();
  };

  /**
   * How many payload bytes of this read each stream gets. A stream that gets at least half of the read may keep
   * views of it (what it pins is at most twice what it holds); one that gets less copies its bytes out, so a slow
   * reader never pins reads made mostly of other streams' data. A bulk stream whose frame boundary falls inside a
   * read gets the whole read in two pieces and copies neither.
   */
  private countShares(frames: Frame[]): void {
    for (const f of frames) {
      if (f.type !== FrameType.DATA || f.length === 0) continue;
      this.shares.set(f.streamID, (this.shares.get(f.streamID) ?? 0) + f.length);
    }
  }

  private onFrame(f: Frame): void {
    switch (f.type) {
      case FrameType.DATA:
      case FrameType.WINDOW_UPDATE:
        this.onStreamFrame(f);
        return;
      case FrameType.PING:
        if (f.flags & Flag.SYN) this.writeFrame(FrameType.PING, Flag.ACK, 0, f.length);
        else if (f.flags & Flag.ACK) {
          const p = this.pings.get(f.length);
          if (p) {
            this.pings.delete(f.length);
            clearTimeout(p.timer);
            const rtt = performance.now() - p.start;
            // The least sample: a ping behind queued data measures the queue too, and a window grown on that
            // would grow the queue (the session is one connection on one path, so its least round trip holds).
            const g = this.windowGrowth;
            if (g) g.rttMs = g.rttMs === undefined ? rtt : Math.min(g.rttMs, rtt);
            p.resolve(rtt);
          }
        }
        return;
      case FrameType.GO_AWAY:
        if (f.length === GoAwayCode.NORMAL) {
          if (!this.remoteGoAwayFlag) {
            this.remoteGoAwayFlag = true;
            this.emit('goAway');
          }
          return;
        }
        this.destroy(
          new KonnectivityError(ErrorCode.REMOTE, `yamux: peer sent go away (${GO_AWAY_TEXT[f.length] ?? `code ${f.length}`})`),
        );
        return;
    }
  }

  private onStreamFrame(f: Frame): void {
    const id = f.streamID;
    if (f.flags & Flag.SYN) {
      if (!this.incoming(id)) return;
    }
    const s = this.streams.get(id);
    // A frame for a stream we reset or forgot: drop it, as the reference does.
    if (!s) return;
    if (f.flags & Flag.ACK) s.onAck();
    if (f.type === FrameType.WINDOW_UPDATE) {
      if (f.length > 0) s.onWindowUpdate(f.length);
    } else if (!s.onData(f.payload!, 2 * (this.shares.get(id) ?? 0) >= f.payload!.buffer.byteLength)) {
      this.protocolFailure(protocolError(`stream ${id} exceeded its receive window`));
      return;
    }
    if (f.flags & Flag.RST) {
      const i = this.backlog.indexOf(s);
      if (i < 0) s.onReset();
      else {
        // Nobody holds a stream that was never accepted: drop it quietly.
        this.backlog.splice(i, 1);
        s.abort(undefined);
      }
    } else if (f.flags & Flag.FIN) s.onFin();
  }

  /** A SYN arrived: register the stream, or refuse it. Returns false when the session failed. */
  private incoming(id: number): boolean {
    const peerParity = this.client ? 0 : 1;
    if (id === 0 || id % 2 !== peerParity) {
      this.protocolFailure(protocolError(`peer opened stream ${id} with the wrong parity`));
      return false;
    }
    if (this.streams.has(id)) {
      this.protocolFailure(protocolError(`duplicate stream ${id}`));
      return false;
    }
    if (this.localGoAway || this.closing || this.streams.size >= this.options.maxStreams ||
        (!this.handler && this.acceptWaiters.length === 0 && this.backlog.length >= this.options.acceptBacklog)) {
      this.writeFrame(FrameType.WINDOW_UPDATE, Flag.RST, id, 0);
      return true;
    }
    const s = new YamuxStream(this, id, false);
    this.streams.set(id, s);
    this.deliverStream(s);
    return true;
  }

  private deliverStream(s: YamuxStream): void {
    if (this.handler) {
      s.sendAck();
      this.handler(s);
      return;
    }
    const w = this.acceptWaiters.shift();
    if (w) {
      s.sendAck();
      w.resolve(s);
      return;
    }
    this.backlog.push(s);
  }

  private protocolFailure(err: KonnectivityError): void {
    this.sendGoAway(err.code === ErrorCode.PROTOCOL ? GoAwayCode.PROTOCOL_ERROR : GoAwayCode.INTERNAL_ERROR);
    this.destroy(err);
  }

  private sendGoAway(code: number): void {
    this.localGoAway = true;
    this.writeFrame(FrameType.GO_AWAY, 0, 0, code);
  }

  private failAcceptWaiters(err: Error): void {
    const waiters = this.acceptWaiters;
    this.acceptWaiters = [];
    for (const w of waiters) w.reject(err);
  }

  private maybeFinishClose(): void {
    if (this.done || this.streams.size > 0 || this.closeTimer) return;
    // Everything is done: end our side, and give the peer a while to close the carrier.
    this.uncork();
    this.socket.end();
    this.closeTimer = setTimeout(() => this.destroy(), this.options.closeTimeoutMs);
    this.closeTimer.unref();
  }

  private readonly onSocketEnd = (): void => {
    if (this.closing && this.streams.size === 0) {
      this.destroy();
      return;
    }
    if (this.streams.size === 0 && this.backlog.length === 0) {
      // The peer closed an idle session: a clean end.
      this.destroy();
      return;
    }
    this.destroy(new KonnectivityError(ErrorCode.TUNNEL_CLOSED, 'yamux: connection closed by peer'));
  };

  private readonly onSocketError = (err: Error): void => {
    if (this.done) return;
    this.destroy(new KonnectivityError(ErrorCode.TUNNEL_CLOSED, `yamux: connection failed: ${err.message}`, { cause: err }));
  };

  private readonly onSocketClose = (): void => {
    if (this.done) return;
    if (this.closing && this.streams.size === 0) this.destroy();
    else this.destroy(new KonnectivityError(ErrorCode.TUNNEL_CLOSED, 'yamux: connection closed'));
  };
}
