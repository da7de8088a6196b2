// lorakit's public API. Everything a user imports comes from here.
export * from './tensor/index.js';
export { getBackend, setBackend, nativeBackend, nativeError, refBackend } from './backend/index.js';
export type { Backend, GemmArgs, AttentionArgs, AdamWArgs, GeluApprox, HalfDType } from './backend/index.js';
