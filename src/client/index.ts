export { dialOverStream, DEFAULT_CLIENT_DIAL_TIMEOUT_MS, type DialOverStreamOptions } from './dial-over-stream.js';
export * from './grpc-client.js';
export * from './http-connect.js';
export * from './http-agent.js';
export * from './dispatcher.js';
