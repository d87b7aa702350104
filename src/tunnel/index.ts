export { Tunnel, TunnelConnection, type ConnectionHandlers, type TunnelOptions, type PacketCounter } from './tunnel.js';
export { tallyPacket } from './packet-counts.js';
export { TunnelSocket, CLOSE_TIMEOUT_MS, HALF_CLOSE_TIMEOUT_MS, type TunnelSocketInfo } from './tunnel-socket.js';
export { HALF_CLOSE_METADATA_KEY, HALF_CLOSE_METADATA, offersHalfClose, type HalfCloseMode } from './half-close.js';
export { bindEndpoint, type EndpointBinding } from './endpoint.js';
export {
  WINDOW_METADATA_KEY,
  CHUNK_METADATA_KEY,
  DEFAULT_CONNECTION_BUFFER_BYTES,
  MAX_DATA_CHUNK_BYTES,
  acceptCreditOffer,
  agreedCreditTerms,
  creditOffer,
  offeredWindow,
  validBufferBytes,
  type CreditTerms,
} from './flow.js';
