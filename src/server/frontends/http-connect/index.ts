export { createHttpConnectFrontend, HttpConnectFrontend } from './frontend.js';
export type {
  HttpConnectCloseOptions,
  HttpConnectDialer,
  HttpConnectDialFailedInfo,
  HttpConnectFrontendEventMap,
  HttpConnectFrontendOptions,
  HttpConnectListenTarget,
  HttpConnectTunnelClosedInfo,
  HttpConnectTunnelInfo,
} from './options.js';
export { parseConnectAuthority, type ConnectAuthority } from './authority.js';
export {
  CONNECT_ESTABLISHED,
  dialErrorResponse,
  mapDialErrorToHttpStatus,
  NO_AGENT_BODY,
  type ErrorResponse,
} from './responses.js';
export type { RelayResult } from './relay.js';
