// Naive GEMM, the oracle for the native kernel: C[M,N] (+)= alpha · op(A)[M,K] · op(B)[K,N].
// Each C row is summed in f64 over k in order. Half operands are widened once per call
// (read.ts widen), a transposed B is copied to rows, and the inner loop reads a plain array
// along a row (the browser's fallback backend trains through this loop; a per-element reader
// and strided reads made it several times slower). The sums, and so the results, are unchanged.
// Few rows against a transposed B (a weight stored [N, K]: decoding, docs/ARCHITECTURE.md
// §Decoding) take gemvRows instead: each weight row is read once, in place (a half row is
// widened into one reused row), with the same f64 sums in the same order.
import { bf16ToF32, f16ToF32 } from '../../tensor/half.js';
import type { Storage } from '../../tensor/tensor.js';
import type { GemmArgs } from '../types.js';
import { widen } from './read.js';

/** rows of A up to which a transposed B is read in place (gemvRows) rather than copied to rows */
const GEMV_MAX_ROWS = 16;

export function gemm(c: Float32Array, a: Storage, b: Storage, args: GemmArgs): void {
  const { M, N, K } = args;
  const ta = args.transA ?? false;
  const tb = args.transB ?? false;
  const alpha = args.alpha ?? 1;
  const lda = args.lda ?? (ta ? M : K);
  const ldb = args.ldb ?? (tb ? K : N);
  const ldc = args.ldc ?? N;
  const A = widen(a, args.aDtype);
  const bDtype = args.bDtype ?? 'f32';
  if (tb && !ta && M <= GEMV_MAX_ROWS && (bDtype === 'f32' || bDtype === 'f16' || bDtype === 'bf16')) {
    gemvRows(c, A, b, bDtype, M, N, K, lda, ldb, ldc, alpha, args.accumulate ?? false);
    return;
  }
  // op(B) as contiguous [K, N] rows (a transposed copy when transB): the inner loop runs along a row
  let B = widen(b, args.bDtype);
  let rowStride = ldb;
  if (tb) {
    const t = new Float32Array(K * N);
    for (let j = 0; j < N; j++) for (let k = 0; k < K; k++) t[k * N + j] = B[j * ldb + k]!;
    B = t;
    rowStride = N;
  }
  const row = new Float64Array(N);
  for (let i = 0; i < M; i++) {
    row.fill(0);
    const x = (k: number): number => A[ta ? k * lda + i : i * lda + k]!;
    let k = 0;
    // four k at a time: the same additions in the same order (left to right), a quarter of the row traffic
    for (; k + 4 <= K; k += 4) {
      const [x0, x1, x2, x3] = [x(k), x(k + 1), x(k + 2), x(k + 3)];
      const o0 = k * rowStride;
      const o1 = o0 + rowStride;
      const o2 = o1 + rowStride;
      const o3 = o2 + rowStride;
      for (let j = 0; j < N; j++) row[j] = row[j]! + x0 * B[o0 + j]! + x1 * B[o1 + j]! + x2 * B[o2 + j]! + x3 * B[o3 + j]!;
    }
    for (; k < K; k++) {
      const x0 = x(k);
      const off = k * rowStride;
      for (let j = 0; j < N; j++) row[j]! += x0 * B[off + j]!;
    }
    const base = i * ldc;
    for (let j = 0; j < N; j++) c[base + j] = args.accumulate ? c[base + j]! + alpha * row[j]! : alpha * row[j]!;
  }
}

/** C[i, j] (+)= alpha · Σ_k A[i, k]·B[j, k] for B stored [N, K] (row j at j·ldb), summed in f64 over k in order. */
function gemvRows(c: Float32Array, A: Float32Array, b: Storage, bDtype: 'f32' | 'f16' | 'bf16', M: number, N: number, K: number, lda: number, ldb: number, ldc: number, alpha: number, accumulate: boolean): void {
  const half = bDtype === 'f32' ? null : bDtype === 'bf16' ? bf16ToF32 : f16ToF32;
  if ((half !== null) !== (b instanceof Uint16Array)) throw new TypeError(`gemm: B given as ${b.constructor.name} with dtype ${bDtype}`);
  const w = half ? new Float32Array(K) : null;
  for (let j = 0; j < N; j++) {
    let row: Float32Array | Uint16Array = b;
    let off = j * ldb;
    if (half) {
      for (let k = 0; k < K; k++) w![k] = half(b[off + k]!);
      row = w!;
      off = 0;
    }
    for (let i = 0; i < M; i++) {
      const a0 = i * lda;
      let s = 0;
      for (let k = 0; k < K; k++) s += A[a0 + k]! * row[off + k]!;
      const at = i * ldc + j;
      c[at] = accumulate ? c[at]! + alpha * s : alpha * s;
    }
  }
}
