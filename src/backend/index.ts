// Backend selection: the native addon when it loads, else the reference backend with a
// single clear warning. LORAKIT_BACKEND=ref forces the reference backend.
import { createNativeBackend, type NativeBackend } from './native/backend.js';
import { loadAddon } from './native/index.js';
import { refBackend } from './ref/index.js';
import type { Backend } from './types.js';

export type { Backend, GemmArgs, AttentionArgs, AdamWArgs, GeluApprox, HalfDType, PatchArgs } from './types.js';
export { refBackend };

let native: NativeBackend | null | undefined;
let current: Backend | null = null;
let warned = false;

/** The native backend, or null (with the reason from nativeError()) when the addon is unavailable. */
export function nativeBackend(): NativeBackend | null {
  if (native === undefined) {
    const { addon } = loadAddon();
    native = addon ? createNativeBackend(addon, refBackend) : null;
  }
  return native;
}

export function nativeError(): string | null {
  return loadAddon().error;
}

export function getBackend(): Backend {
  if (current) return current;
  if (process.env.LORAKIT_BACKEND === 'ref') {
    current = refBackend;
    return current;
  }
  const n = nativeBackend();
  if (n) {
    current = n;
  } else {
    current = refBackend;
    if (!warned) {
      warned = true;
      process.emitWarning(`lorakit is running on the slow TypeScript backend: ${nativeError()}`, { code: 'LORAKIT_NO_NATIVE' });
    }
  }
  return current;
}

// Arrays this large (floats) are placed on a cache line; smaller ones are not worth the slack.
const ALIGN_MIN = 4096;

/**
 * A zero-filled Float32Array of n floats whose first element starts a 64-byte cache line,
 * when the native addon can say where memory lies (else a plain one). Large arrays come
 * from glibc's mmap'd blocks, which start 16 bytes into a line: every row of an activation
 * then straddles one more line than it needs, and one 8-float load or store in two
 * crosses a line (the GEMM's C tiles, its packing reads, the element-wise kernels). The
 * array is a view 0–60 bytes into a slightly larger buffer.
 */
export function alignedFloat32Array(n: number): Float32Array {
  const addon = n >= ALIGN_MIN ? loadAddon().addon : null;
  if (!addon || typeof addon['byteAlignment'] !== 'function') return new Float32Array(n);
  const buf = new Float32Array(n + 15);
  const skew = addon['byteAlignment'](buf) as number; // a multiple of 4: float data is aligned
  const off = ((64 - skew) % 64) / 4;
  return buf.subarray(off, off + n);
}

/** Chooses the backend: 'native', 'ref', or a Backend object. */
export function setBackend(b: 'native' | 'ref' | Backend): Backend {
  if (b === 'ref') current = refBackend;
  else if (b === 'native') {
    const n = nativeBackend();
    if (!n) throw new Error(`the native backend is not available: ${nativeError()}`);
    current = n;
  } else current = b;
  return current;
}
