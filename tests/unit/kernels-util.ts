// Helpers for the kernel tests: a seeded generator, random buffers, and closeness checks
// that name the kernel, the buffer and the worst element.
import assert from 'node:assert/strict';
import { f32ToBf16, f32ToF16 } from '../../src/tensor/half.js';

/** mulberry32: small, seeded, good enough for test data */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** n values uniform in [lo, hi) */
export function randn(r: () => number, n: number, lo = -1, hi = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = lo + (hi - lo) * r();
  return a;
}

export function randInts(r: () => number, n: number, max: number): Int32Array {
  const a = new Int32Array(n);
  for (let i = 0; i < n; i++) a[i] = Math.floor(r() * max);
  return a;
}

export function toHalf(a: Float32Array, dtype: 'f16' | 'bf16'): Uint16Array {
  const f = dtype === 'bf16' ? f32ToBf16 : f32ToF16;
  const h = new Uint16Array(a.length);
  for (let i = 0; i < a.length; i++) h[i] = f(a[i]!);
  return h;
}

/** A Float64Array passed where a kernel takes a Float32Array: the ref kernels only index
 * their arrays, so this runs them in f64 end to end (for finite differences). */
export function f64(n: number | ArrayLike<number>): Float32Array {
  return (typeof n === 'number' ? new Float64Array(n) : Float64Array.from(n)) as unknown as Float32Array;
}

/**
 * Asserts |got − want| ≤ atol + rtol·|want| elementwise (NaN passes only against NaN;
 * equal infinities pass) and reports the worst element.
 */
export function assertClose(got: ArrayLike<number>, want: ArrayLike<number>, what: string, rtol = 1e-5, atol = 1e-6): void {
  assert.equal(got.length, want.length, `${what}: length ${got.length} vs ${want.length}`);
  let worst = -1;
  let worstExcess = 0;
  for (let i = 0; i < want.length; i++) {
    const g = got[i]!;
    const w = want[i]!;
    if (g === w || (Number.isNaN(g) && Number.isNaN(w))) continue;
    const err = Math.abs(g - w);
    const tol = atol + rtol * Math.abs(w);
    if (!(err <= tol)) {
      const excess = Number.isNaN(err) ? Infinity : err / tol;
      if (worst < 0 || excess > worstExcess) {
        worst = i;
        worstExcess = excess;
      }
    }
  }
  if (worst >= 0) assert.fail(`${what}: element ${worst} is ${got[worst]}, expected ${want[worst]} (error ${(worstExcess).toPrecision(3)}× the tolerance ${atol} + ${rtol}·|want|)`);
}
