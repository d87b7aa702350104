/**
 * Defaults shared by the gRPC server and client, and their validation. The window and high-water-mark defaults,
 * and why they are what they are, live in ../windows.ts.
 */
import { ErrorCode, KonnectivityError } from '../../protocol/errors.js';
import { checkNumber } from '../../protocol/options.js';
import { DEFAULT_MAX_MESSAGE_BYTES } from '../framing.js';
import {
  DEFAULT_GRPC_HIGH_WATER_MARK_BYTES,
  DEFAULT_GRPC_MAX_WINDOW_BYTES,
  DEFAULT_GRPC_UDS_WINDOW_BYTES,
  DEFAULT_GRPC_WINDOW_BYTES,
  HTTP2_MAX_FRAME_BYTES,
} from '../windows.js';

/** How long a keepalive ping may stay unanswered before the connection is dropped. */
export const DEFAULT_KEEPALIVE_TIMEOUT_MS = 20_000;
/**
 * The reference agent's default keepalive time (1 h). A Go server answers pings more often than every 30 s on the
 * agent leg, or every 5 min on the frontend leg, with GOAWAY `too_many_pings`: never configure less there.
 */
export const DEFAULT_AGENT_KEEPALIVE_MS = 60 * 60_000;

/** Flow-control and size settings common to both ends. */
export interface GrpcStreamOptions {
  /** Largest gRPC message received or sent, in bytes (default 4 MiB, gRPC's default). */
  maxMessageBytes?: number;
  /** HTTP/2 stream and connection receive windows to start with, in bytes (default 2 MiB over TCP, 128 KiB over a Unix socket). */
  windowBytes?: number;
  /**
   * The receive windows grow with bandwidth x delay up to this, in bytes (default 16 MiB over TCP; over a Unix
   * socket they stay at `windowBytes`). At most `windowBytes` turns growth off.
   */
  maxWindowBytes?: number;
  /** Bytes queued per stream before `write()` returns false (default 256 KiB). */
  highWaterMarkBytes?: number;
}

/** The resolved form of {@link GrpcStreamOptions}. */
export interface ResolvedStreamOptions {
  maxMessageBytes: number;
  windowBytes: number;
  maxWindowBytes: number;
  highWaterMarkBytes: number;
}

export function invalidOption(message: string): KonnectivityError {
  return new KonnectivityError(ErrorCode.INVALID_OPTION, message);
}

/** Check that `value` is an integer within [min, max]; returns it or the default. */
export function intOption(name: string, value: number | undefined, dflt: number, min: number, max: number): number {
  return checkNumber(name, value ?? dflt, { integer: true, min, max });
}

export function resolveStreamOptions(o: GrpcStreamOptions | undefined, unixSocket = false): ResolvedStreamOptions {
  const defaultWindow = unixSocket ? DEFAULT_GRPC_UDS_WINDOW_BYTES : DEFAULT_GRPC_WINDOW_BYTES;
  // HTTP/2 caps a window at 2^31-1.
  const windowBytes = intOption('windowBytes', o?.windowBytes, defaultWindow, 65535, 0x7fffffff);
  const defaultMax = unixSocket ? windowBytes : Math.max(windowBytes, DEFAULT_GRPC_MAX_WINDOW_BYTES);
  return {
    maxMessageBytes: intOption('maxMessageBytes', o?.maxMessageBytes, DEFAULT_MAX_MESSAGE_BYTES, 16, 0x7fffffff),
    windowBytes,
    maxWindowBytes: Math.max(windowBytes, intOption('maxWindowBytes', o?.maxWindowBytes, defaultMax, 65535, 0x7fffffff)),
    highWaterMarkBytes: intOption('highWaterMarkBytes', o?.highWaterMarkBytes, DEFAULT_GRPC_HIGH_WATER_MARK_BYTES, 1, 2 ** 30),
  };
}

/** HTTP/2 session settings: the stream windows start at the starting window (window-tuner.ts grows them). */
export function http2Settings(o: ResolvedStreamOptions): { initialWindowSize: number; maxFrameSize: number; enablePush: boolean } {
  return { initialWindowSize: o.windowBytes, maxFrameSize: HTTP2_MAX_FRAME_BYTES, enablePush: false };
}

/**
 * node:http2 refuses new streams once a session holds more than `maxSessionMemory` MiB (default 10). A session may
 * legitimately hold a window's worth per direction, so size it from the largest window it may grow to.
 */
export function maxSessionMemoryMiB(windowBytes: number): number {
  return Math.max(64, Math.ceil((windowBytes * 4) / (1024 * 1024)));
}
