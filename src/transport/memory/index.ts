export { createMemoryPair, MemoryPacketStream, type MemoryPairOptions } from './memory-stream.js';
export { memoryConnector } from './connector.js';
