export {
  createHttpConnectFrontend,
  HttpConnectFrontend,
  type HttpConnectCloseOptions,
  type HttpConnectDialer,
  type HttpConnectDialFailedInfo,
  type HttpConnectFrontendEventMap,
  type HttpConnectFrontendOptions,
  type HttpConnectListenTarget,
  type HttpConnectTunnelClosedInfo,
  type HttpConnectTunnelInfo,
} from './frontend.js';
export { parseConnectAuthority, type ConnectAuthority } from './authority.js';
export {
  CONNECT_ESTABLISHED,
  dialErrorResponse,
  mapDialErrorToHttpStatus,
  NO_AGENT_BODY,
  type ErrorResponse,
} from './responses.js';
export type { RelayResult } from './relay.js';
