// The current backend. The entry point chooses it (docs/ARCHITECTURE.md §Platforms and entry
// points): lorakit's Node entry installs defaults that prefer the native addon (see
// backend/native/select.ts); the core entry leaves the reference backend.
import { refBackend } from './ref/index.js';
import type { Backend } from './types.js';

export type { Backend, GemmArgs, AttentionArgs, AdamWArgs, GeluApprox, HalfDType, PatchArgs } from './types.js';
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
}

export function getBackend(): Backend {
  return (current ??= defaults.choose());
}

/** Chooses the backend: 'ref' or a Backend object ('native' too, from lorakit's Node entry). */
export function setBackend(b: 'ref' | Backend): Backend {
  current = b === 'ref' ? refBackend : b;
  return current;
}

// Arrays this large (floats) are placed on a cache line; smaller ones are not worth the slack.
const ALIGN_MIN = 4096;

/**
 * A zero-filled Float32Array of n floats whose first element starts a 64-byte cache line,
 * when the platform can say where memory lies (else a plain one). Large arrays come
 * from glibc's mmap'd blocks, which start 16 bytes into a line: every row of an activation
 * then straddles one more line than it needs, and one 8-float load or store in two
 * crosses a line (the GEMM's C tiles, its packing reads, the element-wise kernels). The
 * array is a view 0–60 bytes into a slightly larger buffer.
 */
export function alignedFloat32Array(n: number): Float32Array {
  const byteAlignment = n >= ALIGN_MIN ? defaults.byteAlignment : undefined;
  if (!byteAlignment) return new Float32Array(n);
  const buf = new Float32Array(n + 15);
  const skew = byteAlignment(buf); // a multiple of 4: float data is aligned
  const off = ((64 - skew) % 64) / 4;
  return buf.subarray(off, off + n);
}
