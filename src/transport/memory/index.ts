export { createMemoryPair, MemoryPacketStream, type MemoryPairOptions } from './memory-stream.js';
