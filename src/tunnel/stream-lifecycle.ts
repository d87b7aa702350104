/**
 * How every role holds a stream it serves (the server's agent streams and their substreams, its frontend streams,
 * the agent's tunnels and substreams, the client's dial streams): the one place for the glue each of them needs.
 *
 * - errors are reported once, through 'close' (an 'error' with no listener would crash the process);
 * - the peer's end ends our side too, unless the owner does something else with it (a half-close);
 * - the owner's clean-up runs exactly once when the stream is over, also for a stream that was over before the
 *   owner attached (a stream that failed in the same read that opened it emits 'close' before anyone listens);
 * - ending our side has a deadline: a peer that never ends its side does not hold the stream for ever.
 */
import type { Duplex } from 'node:stream';
import { ErrorCode, KonnectivityError } from '../protocol/errors.js';
import { noop } from '../protocol/noop.js';
import { graceMsOf, startGrace, type CloseOptions } from '../transport/grace.js';
import type { PacketStream } from '../transport/packet-stream.js';

/**
 * How long `closeStream()` waits, by default, for the peer to end its side after we ended ours, before destroying
 * the stream (as the reference client's CloseTimeout bounds its wait for CLOSE_RSP).
 */
export const STREAM_CLOSE_TIMEOUT_MS = 10_000;

/** What the owner of a stream does at its end. */
export interface StreamOwner {
  /** The peer ended its side. Default: end ours (`closeStream`). */
  onEnd?: () => void;
  /** The stream is over; `err` is why, if it failed. Runs once. */
  onClose: (err: Error | undefined) => void;
}

/** Take ownership of `stream`: see the module comment. */
export function attachStream(stream: PacketStream, owner: StreamOwner): void {
  stream.on('error', noop);
  const onEnd = owner.onEnd;
  stream.on('end', onEnd ? () => onEnd() : () => void closeStream(stream));
  whenClosed(stream, owner.onClose);
}

/** What an owner of many streams does at their ends: one pair of functions for all, `this` the stream they hear. */
export interface SharedStreamOwner {
  /** The peer ended `this` stream's side. Default: end ours (`closeStream`). */
  onEnd?: ((this: PacketStream) => void) | undefined;
  /** `this` stream is over; `err` is why, if it failed. Runs once per stream. */
  onClose: (this: PacketStream, err: Error | undefined) => void;
}

/** {@link attachStream} for an owner of many streams (a tunnel's substreams): the same glue, no closure per stream. */
export function attachSharedStream(stream: PacketStream, owner: SharedStreamOwner): void {
  stream.on('error', noop);
  stream.on('end', owner.onEnd ?? endOurSide);
  if (stream.closeEmitted) queueMicrotask(() => owner.onClose.call(stream, stream.errored ?? undefined));
  else stream.on('close', owner.onClose);
}

function endOurSide(this: PacketStream): void {
  void closeStream(this);
}

/**
 * End our side gracefully; the stream closes once the peer has ended too. If it has not closed `graceMs` later
 * (default {@link STREAM_CLOSE_TIMEOUT_MS}) or `signal` aborts, it is destroyed (ERR_STREAM_CLOSED). Resolves once
 * the stream has emitted 'close'; never rejects: a failure is the owner's to hear through `onClose`.
 */
export function closeStream(stream: PacketStream, options?: CloseOptions): Promise<void> {
  if (stream.closeEmitted) return Promise.resolve();
  graceMsOf(options, STREAM_CLOSE_TIMEOUT_MS);
  return new Promise((resolve) => {
    void stream.close().catch(noop);
    const grace = startGrace(options, STREAM_CLOSE_TIMEOUT_MS, () => {
      stream.destroy(new KonnectivityError(ErrorCode.STREAM_CLOSED, 'the peer did not end the stream in time'));
    });
    whenClosed(stream, () => {
      grace.cancel();
      resolve();
    });
  });
}

/**
 * End our direction only (a half-close on a transport that carries one, a yamux substream): reads go on. No
 * deadline here: the owner bounds how long it waits for the rest (a TunnelSocket's half-close timeout).
 */
export function endStream(stream: PacketStream): void {
  void stream.close().catch(noop);
}

/** Call `fn` once `stream` has emitted 'close', also when it did so already (then on a microtask). */
export function whenClosed(stream: PacketStream, fn: (err: Error | undefined) => void): void;
export function whenClosed(stream: Duplex, fn: () => void): void;
export function whenClosed(stream: PacketStream | Duplex, fn: (err: Error | undefined) => void): void {
  // A Node stream's `closed` means 'close' was emitted; a PacketStream's means close() was called.
  const over = 'closeEmitted' in stream ? stream.closeEmitted : stream.closed;
  if (over) queueMicrotask(() => fn(stream.errored ?? undefined));
  else stream.once('close', (err?: unknown) => fn(err instanceof Error ? err : undefined));
}
