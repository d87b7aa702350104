/** The yamux transport: our own yamux (hashicorp/yamux wire format) and the tunnel over it. */
export { YamuxSession } from './session.js';
export type { YamuxSessionInit, YamuxSessionEventMap } from './session.js';
export { YamuxStream } from './stream.js';
export { YAMUX_DEFAULTS, resolveYamuxOptions } from './config.js';
export { YAMUX_INITIAL_WINDOW_BYTES } from '../windows.js';
export type { YamuxSessionOptions } from './config.js';
export { YamuxPacketStream } from './packet-stream.js';
export { DelimitedMessageDecoder, delimitedPrefix } from './delimited.js';
export { acceptYamuxTunnel, yamuxAgentConnector, HANDSHAKE_VERSION as YAMUX_HANDSHAKE_VERSION } from './tunnel.js';
export type { YamuxTunnelOptions, YamuxAgentConnectorOptions } from './tunnel.js';
export { tcpCarrier, tlsCarrier, webSocketCarrier, webSocketDuplex } from './carriers.js';
export type { CarrierConnect, WebSocketCarrierOptions, WsWebSocket } from './carriers.js';
export { YamuxServer, createYamuxServer, serveYamuxCarrier } from './server.js';
export type { YamuxServerOptions } from './server.js';
