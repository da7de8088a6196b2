// The memory of the host-memory backends (ref, native): a handle is the typed array itself,
// so a view is the handle, a write is a set and a readback resolves at once
// (docs/ARCHITECTURE.md §Backend memory).
import type { Accumulator, BackendMemory, F32Buf, HalfBuf, HalfDType } from './types.js';

let byteAlignment: ((a: Float32Array) => number) | undefined;

/** Where the platform says memory lies (installed with the entry point's backend defaults). */
export function setByteAlignment(f: ((a: Float32Array) => number) | undefined): void {
  byteAlignment = f;
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
  const align = n >= ALIGN_MIN ? byteAlignment : undefined;
  if (!align) return new Float32Array(n);
  const buf = new Float32Array(n + 15);
  const skew = align(buf); // a multiple of 4: float data is aligned
  const off = ((64 - skew) % 64) / 4;
  return buf.subarray(off, off + n);
}

export const hostMemory: BackendMemory = {
  hostVisible: true,
  alloc: (n: number): F32Buf => alignedFloat32Array(n),
  allocHalf: (n: number, _dtype: HalfDType): HalfBuf => new Uint16Array(n),
  view: (h: F32Buf): Float32Array => h,
  write(h: F32Buf, src: ArrayLike<number>, offset = 0): void {
    h.set(src, offset);
  },
  read: (h: F32Buf): Promise<Float32Array> => Promise.resolve(h.slice()),
  free(): void {
    // the garbage collector frees host arrays
  },
  allocAccumulator: (slots: number): Accumulator => new Float64Array(slots),
  clearAccumulator(acc: Accumulator): void {
    acc.fill(0);
  },
  readAccumulator: (acc: Accumulator): Promise<Float64Array> => Promise.resolve(acc.slice()),
};
