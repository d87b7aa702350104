/**
 * Every flow-control window and high-water mark, in one place, all in bytes. Three layers each bound what is in
 * flight, and they are different knobs:
 *
 * - the **connection** window: per proxied connection, end to end through the tunnel engine, over every transport
 *   (our credit regime, WINDOW_UPDATE packets). What one slow reader may hold; what one connection can move per
 *   round trip.
 * - the **transport** windows: HTTP/2's (per gRPC stream and per HTTP/2 connection) and yamux's (per yamux stream).
 *   Over gRPC every connection of a tunnel shares one stream, so its window bounds the whole tunnel per round trip;
 *   over yamux each connection has a stream of its own, so the yamux stream window bounds one connection.
 * - the **high-water marks**: how much a writer queues locally before `write()` returns false (backpressure); they
 *   bound memory, not the rate.
 *
 * Defaults only: each is an option of its component (named in its doc), validated where the component is built.
 * A window caps throughput at window / round trip: 1 MiB at a 20 ms round trip is about 50 MB/s.
 */

// ---- the connection (tunnel engine) ----------------------------------------------------------------------------

/**
 * Per-connection buffer and credit window (`connectionBufferBytes` of the server and the agent; on the command line
 * `--xfr-channel-size`, in 32 KiB packets). In the credit regime a sender never has more than this unacknowledged
 * on one connection; in the legacy regime (Go peer) a connection that holds more than this pauses the stream, as
 * the reference does.
 */
export const DEFAULT_CONNECTION_BUFFER_BYTES = 1024 * 1024;
/** Smallest per-connection window configured or accepted from a peer's offer: below it, credit round trips dominate. */
export const MIN_CONNECTION_WINDOW_BYTES = 64 * 1024;
/** Largest per-connection window configured or accepted from a peer's offer: what one stalled reader may hold. */
export const MAX_CONNECTION_WINDOW_BYTES = 64 * 1024 * 1024;
/**
 * Opening windows a receiver must have consumed before any window of it grows, the per-connection credit window and
 * a yamux stream's alike: a reader that never reads still takes in, at the tunnel's speed, what the socket buffers
 * in front of it hold (about 4 MiB on loopback, the stalled-reader bench's raw row), and that burst would look like
 * a reader that keeps up (the stalled-reader bench grew such windows to 2-8 MiB).
 */
export const WINDOWS_BEFORE_GROWTH = 8;
/**
 * How far a connection's credit window grows when its reader keeps up and the transport's round trip shows the
 * window is what holds the sender (tunnel/tunnel.ts; transports that measure the round trip: gRPC). A stalled reader
 * then costs at most this; one that never proved the need costs its configured window.
 */
export const DEFAULT_CONNECTION_WINDOW_MAX_BYTES = 8 * 1024 * 1024;
/**
 * Largest DATA payload sent to a konnectivity-ts peer that agreed to it (`konnectivity-ts-chunk` metadata, with the
 * credit regime): a socket read of up to 64 KiB goes out as one packet, half the per-packet work of 32 KiB. A Go
 * peer gets MAX_DATA_CHUNK_BYTES.
 */
export const DEFAULT_TS_DATA_CHUNK_BYTES = 128 * 1024;
/** Largest DATA payload we send to a Go peer: far below gRPC's 4 MiB message limit, small enough to interleave connections fairly. */
export const MAX_DATA_CHUNK_BYTES = 32 * 1024;

// ---- gRPC (HTTP/2) ---------------------------------------------------------------------------------------------

/**
 * HTTP/2 flow-control window (each stream and the whole connection) a gRPC connection over TCP starts with
 * (`windowBytes` of the gRPC server and client). HTTP/2's default of 64 KiB caps a connection at 64 KiB per round
 * trip (about 3 MB/s at 20 ms); 2 MiB allows about 100 MB/s there, and the windows grow from it with bandwidth x
 * delay (grpc/bdp.ts) up to DEFAULT_GRPC_MAX_WINDOW_BYTES.
 */
export const DEFAULT_GRPC_WINDOW_BYTES = 2 * 1024 * 1024;
/**
 * Largest HTTP/2 window a gRPC connection over TCP grows to (`maxWindowBytes`; grpc-go's BDP limit too), about
 * 800 MB/s at a 20 ms round trip. node:http2 has a ceiling here that is not ours: an Http2Session reads nothing
 * while one of its socket writes is pending (`MaybeStopReading` in node's C++), so two node peers that both have
 * more in flight than the socket buffers between them hold stop reading at once and wait for each other for ever.
 * On loopback, with both ends pushing bulk data, that happened with 6-16 MiB windows on both ends, never with
 * 2-4 MiB, and never when one end kept 4 MiB or less however large the other's was (64 MiB tried). So between two
 * node peers the client keeps what it has sent and the server has not read within
 * DEFAULT_GRPC_NODE_PEER_MAX_WINDOW_BYTES whenever its own window is above that (grpc/send-budget.ts); a Go peer
 * reads while it writes, so against one our end grows to this either way.
 */
export const DEFAULT_GRPC_MAX_WINDOW_BYTES = 16 * 1024 * 1024;
/**
 * What one direction between two node:http2 peers keeps in flight at most (see DEFAULT_GRPC_MAX_WINDOW_BYTES): a
 * client's window above it is guarded by a send budget of this size (grpc/send-budget.ts). 4 MiB in one direction
 * stayed stall-free in every run with both ends pushing bulk on loopback, over TCP and TLS, with the other
 * direction's window at 16 and 64 MiB; 6 MiB both ways stalled. It is also Linux's default largest socket send
 * buffer (tcp_wmem).
 */
export const DEFAULT_GRPC_NODE_PEER_MAX_WINDOW_BYTES = 4 * 1024 * 1024;
/**
 * The HTTP/2 window over a Unix socket, whose buffers are small (about 208 KiB) and whose round trip is near zero;
 * it does not grow there.
 */
export const DEFAULT_GRPC_UDS_WINDOW_BYTES = 128 * 1024;
/** Bytes queued in one gRPC stream before `write()` returns false (`highWaterMarkBytes`). */
export const DEFAULT_GRPC_HIGH_WATER_MARK_BYTES = 256 * 1024;
/** Largest HTTP/2 frame we accept (we advertise it; peers choose what they send). */
export const HTTP2_MAX_FRAME_BYTES = 64 * 1024;

// ---- yamux -----------------------------------------------------------------------------------------------------

/** The window every yamux stream starts with, in each direction (fixed by the spec; a larger one is announced). */
export const YAMUX_INITIAL_WINDOW_BYTES = 256 * 1024;
/**
 * The receive window each stream of a yamux tunnel session opens with (its `maxStreamWindowBytes`): the
 * per-connection buffer, since each connection has its own stream. hashicorp's 256 KiB would cap a connection near
 * 6 MB/s at 20 ms; 1 MiB caps it near 50 MB/s, so it grows (next two).
 */
export const DEFAULT_YAMUX_TUNNEL_STREAM_WINDOW_BYTES = DEFAULT_CONNECTION_BUFFER_BYTES;
/**
 * The largest a tunnel stream's receive window grows to when the measured round trip shows the window limits it
 * (`streamWindowCeilingBytes`, yamux/window-growth.ts): about 800 MB/s at 20 ms. Also the most one stalled reader
 * holds, and only one that was fast before it stalled (a window grows only while its reader keeps up).
 */
export const DEFAULT_YAMUX_TUNNEL_STREAM_WINDOW_CEILING_BYTES = 16 * 1024 * 1024;
/**
 * What all streams of one yamux session together may grow beyond their opening window (`windowGrowthBudgetBytes`):
 * bounds what a tunnel holds when many fast connections stall at once.
 */
export const DEFAULT_YAMUX_WINDOW_GROWTH_BUDGET_BYTES = 64 * 1024 * 1024;
/** Largest yamux Data frame we send (`maxDataFrameBytes`): a bound on how long one stream holds the carrier. */
export const DEFAULT_YAMUX_MAX_DATA_FRAME_BYTES = 64 * 1024;
/** Unsent carrier bytes above which a yamux session stops sending Data frames (`writeHighWaterMarkBytes`). */
export const DEFAULT_YAMUX_WRITE_HIGH_WATER_MARK_BYTES = 512 * 1024;
/**
 * Readable and writable high-water mark of each yamux stream (`streamReadableHighWaterMarkBytes`,
 * `streamWritableHighWaterMarkBytes`); the readable one is at most half the stream window.
 */
export const DEFAULT_YAMUX_STREAM_HIGH_WATER_MARK_BYTES = 64 * 1024;

// ---- in-memory pair --------------------------------------------------------------------------------------------

/** Bytes one side of a memory pair may hold undelivered before the other side's write returns false. */
export const DEFAULT_MEMORY_HIGH_WATER_MARK_BYTES = 1024 * 1024;
