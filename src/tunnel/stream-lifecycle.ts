/**
 * How every role holds a stream it serves (the server's agent streams and their substreams, its frontend streams,
 * the agent's tunnels and substreams, the client's dial streams): the one place for the glue each of them needs.
 *
 * - errors are reported once, through 'close' (an 'error' with no listener would crash the process);
 * - the peer's end ends our side too, unless the owner does something else with it (a half-close);
 * - the owner's clean-up runs exactly once when the stream is over, also for a stream that was over before the
 *   owner attached (a stream that failed in the same read that opened it emits 'close' before anyone listens).
 */
import type { Duplex } from 'node:stream';
import { noop } from '../protocol/noop.js';
import type { PacketStream } from '../transport/packet-stream.js';

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
  stream.on('end', onEnd ? () => onEnd() : () => closeStream(stream));
  whenClosed(stream, owner.onClose);
}

/**
 * End our side gracefully; the stream closes once the peer has ended too. A failure is the owner's to hear through
 * `onClose`, so the promise's rejection is dropped here.
 */
export function closeStream(stream: PacketStream): void {
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
