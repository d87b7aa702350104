export { createGrpcServer, GrpcServer, AGENT_CONNECT_PATH, PROXY_PATH } from './server.js';
export type { GrpcServerOptions, GrpcServerTlsOptions, GrpcServerEvents } from './server.js';
export { GrpcConnection, grpcAgentConnector, grpcFrontendConnector, openProxyStream, parseGrpcAddress, checkGrpcClientOptions } from './client.js';
export type { GrpcClientOptions, GrpcClientTlsOptions, GrpcConnectionEvents } from './client.js';
export { GrpcClientStream } from './client-stream.js';
export { GrpcServerPacketStream } from './server-stream.js';
export type { GrpcStreamOptions } from './options.js';
export { GrpcStatus, grpcStatusName } from './status.js';
export { GrpcMessageDecoder, GRPC_PREFIX_BYTES, writeGrpcPrefix, grpcPrefix } from './framing.js';
