// The current backend. The entry point chooses it (docs/ARCHITECTURE.md §Platforms and entry
// points): lorakit's Node entry installs defaults that prefer the native addon (see
// backend/native/select.ts); the core entry leaves the reference backend.
import { setByteAlignment } from './host-memory.js';
import { refBackend } from './ref/index.js';
import { setStorageAllocator } from '../tensor/tensor.js';
import type { Backend } from './types.js';

export type { Accumulator, Backend, BackendMemory, Copy2dArgs, F32Buf, GemmArgs, AttentionArgs, AdamWArgs, GeluApprox, HalfBuf, HalfDType, PatchArgs, SgdArgs } from './types.js';
export { ACC_GRAD_SQ, ACC_LOSS, ACC_SLOTS } from './types.js';
export { alignedFloat32Array, hostMemory } from './host-memory.js';
export { refBackend };

/** What an entry point supplies: the backend to use until one is set, and where memory lies. */
export interface BackendDefaults {
  /** called once, by the first getBackend() that finds no backend set */
  choose(): Backend;
  /** the byte offset of an array's data within its 64-byte cache line, when the platform can say */
  byteAlignment?: (a: Float32Array) => number;
}

let defaults: BackendDefaults = { choose: () => refBackend };
let current: Backend | null = null;

/** Installs an entry point's defaults; a backend already set stays set. */
export function setBackendDefaults(d: BackendDefaults): void {
  defaults = d;
  setByteAlignment(d.byteAlignment);
}

export function getBackend(): Backend {
  return current ?? use(defaults.choose());
}

/** Chooses the backend: 'ref' or a Backend object ('native' too, from lorakit's Node entry). */
export function setBackend(b: 'ref' | Backend): Backend {
  return use(b === 'ref' ? refBackend : b);
}

/** Makes b current; new tensors' storage comes from its memory (docs/ARCHITECTURE.md §Backend memory). */
function use(b: Backend): Backend {
  current = b;
  const mem = b.memory;
  setStorageAllocator({ f32: (n) => mem.alloc(n), half: (n, dtype) => mem.allocHalf(n, dtype) });
  return b;
}

/**
 * fn() with the backend's inference products on (Backend.setInferenceProducts): generation's
 * and the server's forwards. LORAKIT_AMX=0 keeps them exact (the native addon reads it).
 */
export function withInferenceProducts<T>(fn: () => T): T {
  const be = getBackend();
  if (!be.setInferenceProducts) return fn();
  const prev = be.setInferenceProducts(true);
  try {
    return fn();
  } finally {
    be.setInferenceProducts(prev);
  }
}
