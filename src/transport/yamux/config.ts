/**
 * One options object for a yamux session, with defaults matching hashicorp/yamux's `DefaultConfig`, validated at
 * construction. The window and high-water-mark defaults, and why, are in ../windows.ts.
 */
import { ErrorCode, KonnectivityError } from '../../protocol/errors.js';
import { checkNumber } from '../../protocol/options.js';
import {
  DEFAULT_YAMUX_MAX_DATA_FRAME_BYTES,
  DEFAULT_YAMUX_WINDOW_GROWTH_BUDGET_BYTES,
  DEFAULT_YAMUX_STREAM_HIGH_WATER_MARK_BYTES,
  DEFAULT_YAMUX_WRITE_HIGH_WATER_MARK_BYTES,
  YAMUX_INITIAL_WINDOW_BYTES,
} from '../windows.js';

/**
 * Options of a yamux session: windows and high-water marks (bytes), keepalive and timeouts (ms); defaults in {@link
 * YAMUX_DEFAULTS}.
 */
export interface YamuxSessionOptions {
  /** Streams the peer opened that we have not accepted yet; more are refused with RST (default 256). */
  acceptBacklog?: number;
  /** Open streams at once, both directions; more are refused (default 65536). */
  maxStreams?: number;
  /** Send a ping this often, in ms; 0 turns keepalive off (default 30000). */
  keepAliveIntervalMs?: number;
  /** Fail the session when a ping is not answered within this many ms (default 10000, like ConnectionWriteTimeout). */
  pingTimeoutMs?: number;
  /**
   * Receive window each stream opens with, in bytes (default and minimum 256 KiB, as hashicorp's
   * MaxStreamWindowSize). A larger window is announced in the Window Update that carries SYN or ACK.
   */
  maxStreamWindowBytes?: number;
  /**
   * Largest a stream's receive window grows to, in bytes, when the round trip (measured with pings) shows the window
   * limits the sender (window-growth.ts). Default: `maxStreamWindowBytes`, no growth. It is what a stalled reader
   * may hold at most.
   */
  streamWindowCeilingBytes?: number;
  /** What all streams of the session together may grow beyond `maxStreamWindowBytes`, in bytes (default 64 MiB). */
  windowGrowthBudgetBytes?: number;
  /** Largest Data frame we send, in bytes (default 64 KiB): a bound on how long one stream holds the socket. */
  maxDataFrameBytes?: number;
  /** Stop sending Data frames while the carrier holds more than this many bytes unsent (default 512 KiB). */
  writeHighWaterMarkBytes?: number;
  /** Readable high-water mark of each stream, in bytes (default 64 KiB; at most half the window). */
  streamReadableHighWaterMarkBytes?: number;
  /** Writable high-water mark of each stream, in bytes: `write()` returns false above it (default 64 KiB). */
  streamWritableHighWaterMarkBytes?: number;
  /** Reset a stream we opened when the peer has not acknowledged it within this many ms; 0 waits forever (default 75000, like upstream's StreamOpenTimeout). */
  streamOpenTimeoutMs?: number;
  /** After close() has sent Go Away and every stream is done, wait this long for the peer to close the carrier before destroying it (default 5000). */
  closeTimeoutMs?: number;
  /**
   * After a stream sent its FIN, how long the peer may take to send its own before the stream is reset, in ms; each
   * Data frame received starts the wait again, so a long answer is not cut. Also the default grace period of the
   * session's close(). 0 waits forever (default 300000, as hashicorp's StreamCloseTimeout).
   */
  streamCloseTimeoutMs?: number;
}

export type ResolvedYamuxOptions = Required<YamuxSessionOptions>;

/** The defaults of every yamux session option (hashicorp/yamux's, with our windows). */
export const YAMUX_DEFAULTS: ResolvedYamuxOptions = {
  acceptBacklog: 256,
  maxStreams: 65536,
  keepAliveIntervalMs: 30_000,
  pingTimeoutMs: 10_000,
  maxStreamWindowBytes: YAMUX_INITIAL_WINDOW_BYTES,
  // 0: the same as maxStreamWindowBytes (resolveYamuxOptions fills it in).
  streamWindowCeilingBytes: 0,
  windowGrowthBudgetBytes: DEFAULT_YAMUX_WINDOW_GROWTH_BUDGET_BYTES,
  maxDataFrameBytes: DEFAULT_YAMUX_MAX_DATA_FRAME_BYTES,
  writeHighWaterMarkBytes: DEFAULT_YAMUX_WRITE_HIGH_WATER_MARK_BYTES,
  streamReadableHighWaterMarkBytes: DEFAULT_YAMUX_STREAM_HIGH_WATER_MARK_BYTES,
  streamWritableHighWaterMarkBytes: DEFAULT_YAMUX_STREAM_HIGH_WATER_MARK_BYTES,
  streamOpenTimeoutMs: 75_000,
  closeTimeoutMs: 5_000,
  streamCloseTimeoutMs: 300_000,
};

function invalid(message: string): never {
  throw new KonnectivityError(ErrorCode.INVALID_OPTION, message);
}

function int(name: string, v: number, min: number, max: number): number {
  return checkNumber(name, v, { integer: true, min, max });
}

/** Fill in defaults and check every option; throws ERR_INVALID_OPTION. */
export function resolveYamuxOptions(options: YamuxSessionOptions = {}): ResolvedYamuxOptions {
  const o = { ...YAMUX_DEFAULTS };
  for (const [k, v] of Object.entries(options)) {
    if (v === undefined) continue;
    if (!(k in YAMUX_DEFAULTS)) invalid(`unknown yamux option ${k}`);
    (o as Record<string, unknown>)[k] = v;
  }
  int('acceptBacklog', o.acceptBacklog, 0, 2 ** 31);
  int('maxStreams', o.maxStreams, 1, 2 ** 31);
  int('keepAliveIntervalMs', o.keepAliveIntervalMs, 0, 2 ** 31 - 1);
  int('pingTimeoutMs', o.pingTimeoutMs, 1, 2 ** 31 - 1);
  int('maxStreamWindowBytes', o.maxStreamWindowBytes, YAMUX_INITIAL_WINDOW_BYTES, 2 ** 31);
  if (o.streamWindowCeilingBytes === 0) o.streamWindowCeilingBytes = o.maxStreamWindowBytes;
  int('streamWindowCeilingBytes', o.streamWindowCeilingBytes, o.maxStreamWindowBytes, 2 ** 31);
  int('windowGrowthBudgetBytes', o.windowGrowthBudgetBytes, 0, 2 ** 40);
  int('maxDataFrameBytes', o.maxDataFrameBytes, 1, 16 * 1024 * 1024);
  int('writeHighWaterMarkBytes', o.writeHighWaterMarkBytes, 1, 2 ** 31);
  int('streamReadableHighWaterMarkBytes', o.streamReadableHighWaterMarkBytes, 1, o.maxStreamWindowBytes / 2);
  int('streamWritableHighWaterMarkBytes', o.streamWritableHighWaterMarkBytes, 1, 2 ** 31);
  int('streamOpenTimeoutMs', o.streamOpenTimeoutMs, 0, 2 ** 31 - 1);
  int('closeTimeoutMs', o.closeTimeoutMs, 1, 2 ** 31 - 1);
  int('streamCloseTimeoutMs', o.streamCloseTimeoutMs, 0, 2 ** 31 - 1);
  return o;
}
