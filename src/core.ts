// lorakit's platform-neutral core (`lorakit/core`): tensors, backends, layers, models, LoRA,
// data, the training loop and generation, with no Node built-in anywhere below it, so a
// bundler builds it for a browser without polyfills. Files, the native addon and the HTTP
// server are in the Node entry (src/index.ts). See docs/ARCHITECTURE.md §Platforms and entry points.
export * from './tensor/index.js';
export { getBackend, setBackend, setBackendDefaults, refBackend, alignedFloat32Array } from './backend/index.js';
export type { Backend, BackendDefaults, GemmArgs, AttentionArgs, AdamWArgs, GeluApprox, HalfDType, PatchArgs } from './backend/index.js';
export * from './nn/index.js';
export * from './io/index.js';
export * from './models/index.js';
export * from './lora/index.js';
export * from './train/index.js';
export * from './generate/index.js';
export * from './data/index.js';

// Names two layers both define, resolved explicitly:
// - the default rope frequencies (nn) and those of a parsed rope_scaling spec (models)
export { ropeInvFreq } from './nn/index.js';
export { ropeInvFreq as ropeInvFreqForSpec } from './models/index.js';
// - chat messages as templates take them (io) and as JSONL records hold them (data)
export type { ChatMessage } from './io/index.js';
export type { ChatMessage as ChatRecordMessage } from './data/index.js';
