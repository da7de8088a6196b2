// Adapter initialisations, as PEFT's LoraLayer.reset_lora_parameters and pissa_init do them.
//   true        A ~ U(−b, b) with torch's kaiming_uniform_(a = √5) bound, B = 0
//   'gaussian'  A ~ N(0, (1/r)²), B = 0
//   false       A and B both nn.Linear's default init (Kaiming-uniform a = √5 over their
//               own fan-in): the adapter is not a no-op (for tests)
//   'pissa'     A, B from the top-r singular triplets of W; W is replaced by the residual
//               W − s·B·A so the layer's output is unchanged
import { getBackend } from '../backend/index.js';
import type { Rng } from '../tensor/rng.js';
import { svd, svdLowRank, type SVD } from './svd.js';

/** torch.nn.init.kaiming_uniform_(w, a) bound for fan_in (leaky_relu gain √(2/(1+a²)), bound = √3·gain/√fan_in). */
export function kaimingUniformBound(fanIn: number, a = Math.sqrt(5)): number {
  const gain = Math.sqrt(2 / (1 + a * a));
  const std = gain / Math.sqrt(fanIn);
  return Math.sqrt(3) * std;
}

/**
 * Fills w [rows, fanIn] from U(−bound, bound), bound as kaiming_uniform_(a = √5). The values
 * are drawn on the host and written through the backend's memory (w is a handle, which may
 * live on a device: docs/ARCHITECTURE.md §Backend memory).
 */
export function kaimingUniform(w: Float32Array, fanIn: number, rng: Rng): void {
  const b = kaimingUniformBound(fanIn);
  const v = new Float32Array(w.length);
  for (let i = 0; i < v.length; i++) v[i] = rng.uniform(-b, b);
  getBackend().memory.write(w, v);
}

export interface PissaFactors {
  /** A [r, in] */
  A: Float32Array;
  /** B [out, r] */
  B: Float32Array;
  /** the residual W − s·B·A, [out, in] */
  residual: Float64Array;
}

/**
 * PiSSA: W [out, in] = V·S·Uh; A = diag(√(S_r/s))·Uh_r, B = V_r·diag(√(S_r/s)), so that
 * s·B·A is W's best rank-r part. niter = null: exact SVD (one-sided Jacobi, fine up to a
 * few hundred columns); niter = n: randomized subspace iteration with n power steps.
 */
export function pissaFactors(W: Float64Array, out: number, inF: number, r: number, scaling: number, niter: number | null, rng: Rng): PissaFactors {
  if (r > Math.min(out, inF)) throw new Error(`pissa: rank ${r} exceeds min(out, in) = ${Math.min(out, inF)}`);
  const d: SVD = niter === null ? svd(W, out, inF) : svdLowRank(W, out, inF, r, niter, () => rng.normal());
  const K = d.K;
  const A = new Float32Array(r * inF);
  const B = new Float32Array(out * r);
  const A64 = new Float64Array(r * inF);
  const B64 = new Float64Array(out * r);
  for (let k = 0; k < r; k++) {
    const sq = Math.sqrt(d.S[k]! / scaling);
    for (let i = 0; i < inF; i++) A64[k * inF + i] = sq * d.Vt[k * inF + i]!;
    for (let o = 0; o < out; o++) B64[o * r + k] = d.U[o * K + k]! * sq;
  }
  A.set(A64);
  B.set(B64);
  // The residual uses the f32-rounded factors, so W_res + s·B·A reproduces W as closely as f32 allows.
  const residual = new Float64Array(W);
  for (let o = 0; o < out; o++) {
    for (let k = 0; k < r; k++) {
      const b = scaling * B[o * r + k]!;
      if (b === 0) continue;
      for (let i = 0; i < inF; i++) residual[o * inF + i]! -= b * A[k * inF + i]!;
    }
  }
  return { A, B, residual };
}
