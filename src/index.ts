// lorakit's public API. Everything a user imports comes from here.
export * from './tensor/index.js';
export { getBackend, setBackend, nativeBackend, nativeError, refBackend } from './backend/index.js';
export type { Backend, GemmArgs, AttentionArgs, AdamWArgs, GeluApprox, HalfDType } from './backend/index.js';
export * from './nn/index.js';
export * from './io/index.js';
export * from './models/index.js';
export * from './lora/index.js';
export * from './train/index.js';
export * from './generate/index.js';
export * from './data/index.js';
export * from './tasks/classify.js';
export * from './serve/index.js';

// Names two layers both define, resolved explicitly:
// - the default rope frequencies (nn) and those of a parsed rope_scaling spec (models)
export { ropeInvFreq } from './nn/index.js';
export { ropeInvFreq as ropeInvFreqForSpec } from './models/index.js';
// - chat messages as templates take them (io) and as JSONL records hold them (data)
export type { ChatMessage } from './io/index.js';
export type { ChatMessage as ChatRecordMessage } from './data/index.js';
// - the label that the loss ignores (-100 in both)
export { IGNORE_INDEX } from './data/index.js';
