export { dialOverStream, DEFAULT_CLIENT_DIAL_TIMEOUT_MS, type DialOverStreamOptions } from './dial-over-stream.js';
