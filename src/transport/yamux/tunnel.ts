/**
 * Opening a tunnel over yamux: the control-stream handshake, the server's accept side and the agent's connector.
 *
 * Handshake (our own design; yamux has no metadata of its own). On the control stream, the first stream the agent
 * opens (ID 1), each side's first message is one varint-delimited UTF-8 JSON object:
 *   agent -> server  {"konnectivity":1,"metadata":{"agentid":["a1"],"agentidentifiers":[""],"authorization":["Bearer t"]}}
 *   server -> agent  {"konnectivity":1,"metadata":{"serverid":["s1"],"servercount":["1"]}}
 *             or     {"konnectivity":1,"error":{"code":"ERR_UNAUTHENTICATED","message":"..."}} and the session closes.
 * Metadata is what gRPC would carry as request metadata and response headers (lower-case keys, lists of
 * strings). After the handshake both directions carry Packets, varint-delimited. The agent may write Packets right
 * after its handshake; the server reads none before it accepted.
 *
 * Features: a side may add `"features":[...]`, names of encodings it speaks; the agent offers, the server answers
 * with those it takes, and a peer that knows none (an older one) sends no list and ignores the key. One so far:
 * `raw-data`: substreams carry records (records.ts), DATA payloads outside Packets. The control stream stays
 * delimited either way.
 */
import type { Duplex } from 'node:stream';
import { TLSSocket } from 'node:tls';
import { joinHostPort } from '../../protocol/address.js';
import { abortError } from '../../protocol/abort.js';
import { ErrorCode, KonnectivityError, isKonnectivityError } from '../../protocol/errors.js';
import type { IncomingPacketStream, Metadata, PacketStream, TunnelConnector } from '../packet-stream.js';
import { DEFAULT_YAMUX_TUNNEL_STREAM_WINDOW_BYTES, DEFAULT_YAMUX_TUNNEL_STREAM_WINDOW_CEILING_BYTES } from '../windows.js';
import { peerCertificateNames } from '../tls-peer.js';
import { DelimitedMessageDecoder, delimitedPrefix } from './delimited.js';
import { resolveYamuxOptions, type YamuxSessionOptions } from './config.js';
import { DEFAULT_MAX_PACKET_BYTES, YamuxPacketStream } from './packet-stream.js';
import { YamuxSession } from './session.js';
import type { YamuxStream } from './stream.js';

/** Version of the control-stream handshake. */
export const HANDSHAKE_VERSION = 1;
/** Largest handshake message accepted, in bytes. */
const MAX_HANDSHAKE_BYTES = 64 * 1024;
/** The handshake feature for the record encoding of substreams (records.ts). */
export const RAW_DATA_FEATURE = 'raw-data';

/** Options of a yamux tunnel (both ends): the session's options and the handshake's timeout. */
export interface YamuxTunnelOptions {
  /** Options of the yamux session. */
  yamux?: YamuxSessionOptions;
  /** How long the handshake may take, in ms, from the carrier being connected (default 10000). */
  handshakeTimeoutMs?: number;
  /** Largest Packet accepted, in bytes (default 4 MiB). */
  maxPacketBytes?: number;
  /** The peer's address for logs; default: from the carrier (`host:port`), else `yamux`. */
  remoteAddress?: string;
  /**
   * Offer (agent) or take (server) the `raw-data` substream encoding: DATA payloads outside Packets, never copied
   * (default true). Used only when both sides speak it; false keeps delimited Packets, as older peers do.
   */
  rawData?: boolean;
}

const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000;
/** Tunnel sessions open streams with a larger receive window than hashicorp's and let it grow (why: ../windows.ts). */
const TUNNEL_YAMUX_DEFAULTS: YamuxSessionOptions = {
  maxStreamWindowBytes: DEFAULT_YAMUX_TUNNEL_STREAM_WINDOW_BYTES,
  streamWindowCeilingBytes: DEFAULT_YAMUX_TUNNEL_STREAM_WINDOW_CEILING_BYTES,
};

/** A tunnel session's options: the tunnel defaults under the caller's, the ceiling never below the opening window. */
function tunnelSessionOptions(user: YamuxSessionOptions | undefined): YamuxSessionOptions {
  const o = { ...TUNNEL_YAMUX_DEFAULTS, ...user };
  if (user?.streamWindowCeilingBytes === undefined && o.maxStreamWindowBytes! > o.streamWindowCeilingBytes!) {
    o.streamWindowCeilingBytes = o.maxStreamWindowBytes;
  }
  return o;
}

interface HandshakeMessage {
  konnectivity: number;
  metadata?: Record<string, string[]>;
  error?: { code: string; message: string };
  features?: string[];
}

function protocolError(message: string): KonnectivityError {
  return new KonnectivityError(ErrorCode.PROTOCOL, `yamux handshake: ${message}`);
}

function encodeHandshake(m: HandshakeMessage): Buffer {
  const body = Buffer.from(JSON.stringify(m), 'utf8');
  return Buffer.concat([delimitedPrefix(body.length), body]);
}

function parseMetadata(v: unknown): Metadata {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw protocolError('metadata is not an object');
  const out: Record<string, string[]> = {};
  for (const [k, values] of Object.entries(v)) {
    if (!Array.isArray(values) || !values.every((x) => typeof x === 'string')) {
      throw protocolError(`metadata ${JSON.stringify(k)} is not a list of strings`);
    }
    out[k.toLowerCase()] = [...(out[k.toLowerCase()] ?? []), ...(values as string[])];
  }
  return out;
}

function parseHandshake(bytes: Buffer): HandshakeMessage {
  let m: unknown;
  try {
    m = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw protocolError('not JSON');
  }
  if (typeof m !== 'object' || m === null) throw protocolError('not an object');
  const o = m as Record<string, unknown>;
  if (o.konnectivity !== HANDSHAKE_VERSION) throw protocolError(`unsupported version ${JSON.stringify(o.konnectivity)}`);
  if (o.error !== undefined) {
    const e = o.error as Record<string, unknown>;
    if (typeof e !== 'object' || e === null || typeof e.code !== 'string' || typeof e.message !== 'string') {
      throw protocolError('bad error');
    }
    return { konnectivity: HANDSHAKE_VERSION, error: { code: e.code, message: e.message } };
  }
  const features = o.features ?? [];
  if (!Array.isArray(features) || !features.every((f) => typeof f === 'string')) throw protocolError('features is not a list of strings');
  return { konnectivity: HANDSHAKE_VERSION, metadata: parseMetadata(o.metadata) as Record<string, string[]>, features };
}

/** Read the first message of a stream; resolves with it, the decoder, and any messages after it. */
function readFirstMessage(
  stream: YamuxStream,
  maxPacketBytes: number,
  signal: AbortSignal,
): Promise<{ message: Buffer; decoder: DelimitedMessageDecoder; leftover: Buffer[] }> {
  return new Promise((resolve, reject) => {
    // The handshake is small; packets after it may be up to maxPacketBytes, and the decoder serves both.
    const decoder = new DelimitedMessageDecoder({ maxMessageBytes: Math.max(maxPacketBytes, MAX_HANDSHAKE_BYTES) });
    const cleanup = (): void => {
      stream.off('data', onData);
      stream.off('end', onEnd);
      stream.off('error', onError);
      signal.removeEventListener('abort', onAbort);
    };
    const fail = (err: Error): void => {
      cleanup();
      reject(err);
    };
    const onData = (chunk: Buffer): void => {
      let messages: Buffer[];
      try {
        messages = decoder.push(chunk);
      } catch (err) {
        fail(err as Error);
        return;
      }
      if (messages.length === 0) return;
      stream.pause();
      cleanup();
      const [message, ...leftover] = messages;
      if (message!.length > MAX_HANDSHAKE_BYTES) {
        reject(protocolError(`message of ${message!.length} bytes is larger than ${MAX_HANDSHAKE_BYTES}`));
        return;
      }
      resolve({ message: message!, decoder, leftover });
    };
    const onEnd = (): void => fail(new KonnectivityError(ErrorCode.TUNNEL_CLOSED, 'yamux handshake: the peer closed the control stream'));
    const onError = (err: Error): void => fail(err);
    const onAbort = (): void => fail(signal.reason as Error);
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    stream.on('data', onData);
    stream.on('end', onEnd);
    stream.on('error', onError);
  });
}

/** `host:port` of a socket-like carrier, or `fallback`. */
export function carrierAddress(carrier: Duplex, fallback = 'yamux'): string {
  const s = carrier as Partial<{ remoteAddress: string; remotePort: number }>;
  if (!s.remoteAddress) return fallback;
  return joinHostPort(s.remoteAddress, s.remotePort);
}

function peerCommonName(carrier: Duplex): string | undefined {
  if (!(carrier instanceof TLSSocket) || !carrier.authorized) return undefined;
  const cn = carrier.getPeerCertificate()?.subject?.CN;
  return Array.isArray(cn) ? cn[0] : cn;
}

/** An AbortSignal for the handshake deadline, also following `outer`; `done()` releases the timer. */
function deadline(ms: number, what: string, outer?: AbortSignal): { signal: AbortSignal; done: () => void } {
  const ctl = new AbortController();
  const timer = setTimeout(
    () => ctl.abort(new KonnectivityError(ErrorCode.TUNNEL_CLOSED, `yamux handshake: ${what} timed out after ${ms} ms`)),
    ms,
  );
  timer.unref();
  const onOuter = (): void => ctl.abort(abortError('yamux handshake aborted', outer));
  if (outer?.aborted) onOuter();
  outer?.addEventListener('abort', onOuter, { once: true });
  return {
    signal: ctl.signal,
    done: () => {
      clearTimeout(timer);
      outer?.removeEventListener('abort', onOuter);
    },
  };
}

function quietSession(session: YamuxSession): void {
  session.on('error', () => undefined);
}

/** Close gracefully (the peer reads our last words), but cut a peer that does not hang up in time. */
function closeSoon(session: YamuxSession): void {
  session.close().catch(() => undefined);
  const timer = setTimeout(() => session.destroy(), session.options.closeTimeoutMs);
  timer.unref();
  session.once('close', () => clearTimeout(timer));
}

/**
 * Server side: run a yamux session on an accepted carrier and wait for the agent's control stream and handshake.
 * Resolves with the tunnel as an IncomingPacketStream (give it to `ProxyServer.acceptAgent`); rejects, and
 * destroys the carrier, when the handshake fails or times out.
 */
export async function acceptYamuxTunnel(carrier: Duplex, options: YamuxTunnelOptions = {}): Promise<IncomingPacketStream> {
  const maxPacketBytes = options.maxPacketBytes ?? DEFAULT_MAX_PACKET_BYTES;
  const remoteAddress = options.remoteAddress ?? carrierAddress(carrier);
  let session: YamuxSession;
  try {
    session = new YamuxSession(carrier, { ...tunnelSessionOptions(options.yamux), client: false });
  } catch (err) {
    carrier.destroy();
    throw err;
  }
  quietSession(session);
  const { signal, done } = deadline(options.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS, 'waiting for the agent');
  let control: YamuxStream | undefined;
  let hello: Awaited<ReturnType<typeof readFirstMessage>>;
  let metadata: Metadata;
  let rawData = false;
  try {
    control = await session.accept({ signal });
    control.on('error', () => undefined);
    hello = await readFirstMessage(control, maxPacketBytes, signal);
    const m = parseHandshake(hello.message);
    if (!m.metadata) throw protocolError('the agent sent no metadata');
    metadata = m.metadata;
    rawData = (options.rawData ?? true) && (m.features ?? []).includes(RAW_DATA_FEATURE);
  } catch (err) {
    const e = signal.aborted ? (signal.reason as Error) : (err as Error);
    if (isKonnectivityError(e, ErrorCode.PROTOCOL) && control) {
      // Tell the peer why, then go.
      control.end(encodeHandshake({ konnectivity: HANDSHAKE_VERSION, error: { code: e.code, message: e.message } }));
      control.resume();
      closeSoon(session);
    } else session.destroy(e);
    throw e;
  } finally {
    done();
  }
  const ctl = control;
  let answered = false;
  return {
    metadata,
    remoteAddress,
    peerCommonName: peerCommonName(carrier),
    peerCertificateNames: peerCertificateNames(carrier instanceof TLSSocket ? carrier : undefined),
    accept(responseMetadata: Metadata): PacketStream {
      if (answered) throw new KonnectivityError(ErrorCode.PROTOCOL, 'yamux tunnel already answered');
      answered = true;
      ctl.write(
        encodeHandshake({
          konnectivity: HANDSHAKE_VERSION,
          metadata: { ...responseMetadata } as Record<string, string[]>,
          ...(rawData ? { features: [RAW_DATA_FEATURE] } : {}),
        }),
      );
      return new YamuxPacketStream(ctl, {
        remoteMetadata: metadata,
        remoteAddress,
        decoder: hello.decoder,
        leftover: hello.leftover,
        session,
        maxPacketBytes,
        substreamRecords: rawData,
      });
    },
    reject(err: KonnectivityError): void {
      if (answered) return;
      answered = true;
      ctl.end(encodeHandshake({ konnectivity: HANDSHAKE_VERSION, error: { code: err.code, message: err.message } }));
      ctl.resume();
      closeSoon(session);
    },
  };
}

/** Options of {@link yamuxAgentConnector}: how to reach the server (a carrier), and the tunnel's options. */
export interface YamuxAgentConnectorOptions extends YamuxTunnelOptions {
  /** Open a new carrier to the server (a connected socket, TLS socket or WebSocket stream). */
  connect: (options: { signal: AbortSignal }) => Duplex | Promise<Duplex>;
}

/**
 * Agent side: a TunnelConnector (for `Agent.connect`) that opens a carrier, runs a yamux session as the client,
 * opens the control stream, sends the agent's metadata and waits for the server's answer. A refusal rejects with
 * the server's error code (e.g. ERR_UNAUTHENTICATED).
 */
export function yamuxAgentConnector(options: YamuxAgentConnectorOptions): TunnelConnector {
  // Bad options fail here, not on every connect.
  resolveYamuxOptions(options.yamux);
  const maxPacketBytes = options.maxPacketBytes ?? DEFAULT_MAX_PACKET_BYTES;
  return async (metadata, { signal: outer } = {}) => {
    const { signal, done } = deadline(options.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS, 'connecting to the server', outer);
    let session: YamuxSession | undefined;
    try {
      const carrier = await options.connect({ signal });
      if (signal.aborted) {
        carrier.destroy();
        throw signal.reason;
      }
      const remoteAddress = options.remoteAddress ?? carrierAddress(carrier);
      session = new YamuxSession(carrier, { ...tunnelSessionOptions(options.yamux), client: true });
      quietSession(session);
      const control = session.open();
      control.on('error', () => undefined);
      const offerRawData = options.rawData ?? true;
      control.write(
        encodeHandshake({
          konnectivity: HANDSHAKE_VERSION,
          metadata: { ...metadata } as Record<string, string[]>,
          ...(offerRawData ? { features: [RAW_DATA_FEATURE] } : {}),
        }),
      );
      const hello = await readFirstMessage(control, maxPacketBytes, signal);
      const m = parseHandshake(hello.message);
      if (m.error) {
        const codes = Object.values(ErrorCode) as string[];
        const code = (codes.includes(m.error.code) ? m.error.code : ErrorCode.REMOTE) as ErrorCode;
        throw new KonnectivityError(code, m.error.message);
      }
      return new YamuxPacketStream(control, {
        remoteMetadata: m.metadata ?? {},
        remoteAddress,
        decoder: hello.decoder,
        leftover: hello.leftover,
        session,
        maxPacketBytes,
        // Only what we offered: a server that answers with more is not believed.
        substreamRecords: offerRawData && (m.features ?? []).includes(RAW_DATA_FEATURE),
      });
    } catch (err) {
      const e = signal.aborted ? (signal.reason as Error) : (err as Error);
      session?.destroy();
      throw e;
    } finally {
      done();
    }
  };
}
