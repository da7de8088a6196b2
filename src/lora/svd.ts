// Small dense linear algebra for adapter initialisation and combination, in f64:
// a one-sided Jacobi SVD (exact to rounding, O(M·N²) per sweep: meant for the shapes of
// one layer or smaller), a Householder-free modified Gram–Schmidt QR, a randomized
// subspace-iteration SVD for the top R triplets of a large matrix, and the SVD of a
// low-rank product B·A computed from the factors alone.
//
// Matrices are row-major Float64Arrays with their dimensions given alongside:
//   M rows, N columns, R = rank kept.

export interface SVD {
  /** U [M, K] (left singular vectors as columns) */
  U: Float64Array;
  /** S [K], descending, ≥ 0 */
  S: Float64Array;
  /** Vt [K, N] (right singular vectors as rows) */
  Vt: Float64Array;
  /** K = min(M, N) (or the requested rank) */
  K: number;
}

/** Aᵀ for A [M, N]. */
export function transpose(a: Float64Array, M: number, N: number): Float64Array {
  const t = new Float64Array(M * N);
  for (let i = 0; i < M; i++) for (let j = 0; j < N; j++) t[j * M + i] = a[i * N + j]!;
  return t;
}

/** C [M, N] = A [M, K] · B [K, N] (transB: B stored [N, K]). */
export function matmul(a: Float64Array, b: Float64Array, M: number, K: number, N: number, transB = false): Float64Array {
  const c = new Float64Array(M * N);
  for (let i = 0; i < M; i++) {
    for (let k = 0; k < K; k++) {
      const x = a[i * K + k]!;
      if (x === 0) continue;
      if (transB) for (let j = 0; j < N; j++) c[i * N + j]! += x * b[j * K + k]!;
      else for (let j = 0; j < N; j++) c[i * N + j]! += x * b[k * N + j]!;
    }
  }
  return c;
}

/**
 * Thin SVD of A [M, N] by one-sided Jacobi rotations on the columns of the taller
 * orientation. Returns K = min(M, N) triplets with S descending.
 */
export function svd(a: Float64Array, M: number, N: number): SVD {
  if (a.length !== M * N) throw new Error(`svd: matrix has ${a.length} elements, expected ${M}·${N}`);
  if (M < N) {
    // A = U S Vᵀ  ⇔  Aᵀ = V S Uᵀ
    const t = svd(transpose(a, M, N), N, M);
    return { U: transpose(t.Vt, t.K, M), S: t.S, Vt: transpose(t.U, N, t.K), K: t.K };
  }
  // M ≥ N: rotate pairs of columns of W = A·V until they are orthogonal.
  const K = N;
  const W = transpose(a, M, N); // column j of A is row j of W (contiguous)
  const V = new Float64Array(N * N); // row j of V holds column j of the accumulated rotation
  for (let j = 0; j < N; j++) V[j * N + j] = 1;
  const eps = 1e-15;
  for (let sweep = 0; sweep < 60; sweep++) {
    let rotated = false;
    for (let p = 0; p < N - 1; p++) {
      for (let q = p + 1; q < N; q++) {
        let alpha = 0;
        let beta = 0;
        let gamma = 0;
        const po = p * M;
        const qo = q * M;
        for (let i = 0; i < M; i++) {
          const x = W[po + i]!;
          const y = W[qo + i]!;
          alpha += x * x;
          beta += y * y;
          gamma += x * y;
        }
        if (gamma === 0 || Math.abs(gamma) <= eps * Math.sqrt(alpha * beta)) continue;
        rotated = true;
        const zeta = (beta - alpha) / (2 * gamma);
        const t = Math.sign(zeta || 1) / (Math.abs(zeta) + Math.sqrt(1 + zeta * zeta));
        const c = 1 / Math.sqrt(1 + t * t);
        const s = c * t;
        for (let i = 0; i < M; i++) {
          const x = W[po + i]!;
          const y = W[qo + i]!;
          W[po + i] = c * x - s * y;
          W[qo + i] = s * x + c * y;
        }
        const pv = p * N;
        const qv = q * N;
        for (let i = 0; i < N; i++) {
          const x = V[pv + i]!;
          const y = V[qv + i]!;
          V[pv + i] = c * x - s * y;
          V[qv + i] = s * x + c * y;
        }
      }
    }
    if (!rotated) break;
  }
  const norms = new Float64Array(N);
  for (let j = 0; j < N; j++) {
    let s = 0;
    for (let i = 0; i < M; i++) s += W[j * M + i]! ** 2;
    norms[j] = Math.sqrt(s);
  }
  const order = [...norms.keys()].sort((x, y) => norms[y]! - norms[x]!);
  const U = new Float64Array(M * K);
  const S = new Float64Array(K);
  const Vt = new Float64Array(K * N);
  order.forEach((j, k) => {
    const sv = norms[j]!;
    S[k] = sv;
    for (let i = 0; i < M; i++) U[i * K + k] = sv > 0 ? W[j * M + i]! / sv : 0;
    for (let i = 0; i < N; i++) Vt[k * N + i] = V[j * N + i]!;
  });
  // Columns of U for zero singular values are left at zero: callers only use U·S.
  return { U, S, Vt, K };
}

/** Orthonormal basis Q [M, N] of the columns of A [M, N] (modified Gram–Schmidt, twice). */
export function orthonormalize(a: Float64Array, M: number, N: number): Float64Array {
  const Q = transpose(a, M, N); // columns as rows
  for (let pass = 0; pass < 2; pass++) {
    for (let j = 0; j < N; j++) {
      const qj = j * M;
      for (let k = 0; k < j; k++) {
        const qk = k * M;
        let d = 0;
        for (let i = 0; i < M; i++) d += Q[qk + i]! * Q[qj + i]!;
        for (let i = 0; i < M; i++) Q[qj + i]! -= d * Q[qk + i]!;
      }
      let n = 0;
      for (let i = 0; i < M; i++) n += Q[qj + i]! ** 2;
      n = Math.sqrt(n);
      for (let i = 0; i < M; i++) Q[qj + i] = n > 1e-300 ? Q[qj + i]! / n : 0;
    }
  }
  return transpose(Q, N, M);
}

/**
 * Top-R SVD of A [M, N] by randomized subspace iteration (Halko et al.; torch's
 * svd_lowrank with q = R): Q = orth(A·Ω), niter times Q = orth(A·orth(Aᵀ·Q)), then the
 * exact SVD of the small Qᵀ·A. `gaussian` supplies the entries of Ω [N, R].
 */
export function svdLowRank(a: Float64Array, M: number, N: number, R: number, niter: number, gaussian: () => number): SVD {
  const q = Math.min(R, M, N);
  const omega = new Float64Array(N * q);
  for (let i = 0; i < omega.length; i++) omega[i] = gaussian();
  let Q = orthonormalize(matmul(a, omega, M, N, q), M, q);
  const at = transpose(a, M, N);
  for (let it = 0; it < niter; it++) {
    const Z = orthonormalize(matmul(at, Q, N, M, q), N, q);
    Q = orthonormalize(matmul(a, Z, M, N, q), M, q);
  }
  const small = matmul(transpose(Q, M, q), a, q, M, N); // [q, N]
  const s = svd(small, q, N);
  return { U: matmul(Q, s.U, M, q, s.K), S: s.S, Vt: s.Vt, K: s.K };
}

/**
 * SVD of the product P = B [M, R] · A [R, N] without forming P: B = Qb·Rb, Aᵀ = Qa·Ra,
 * P = Qb·(Rb·Raᵀ)·Qaᵀ, and the R×R core is decomposed exactly. Returns K = R triplets.
 */
export function svdOfProduct(B: Float64Array, A: Float64Array, M: number, R: number, N: number): SVD {
  const Qb = orthonormalize(B, M, R);
  const Rb = matmul(transpose(Qb, M, R), B, R, M, R); // [R, R]
  const At = transpose(A, R, N); // [N, R]
  const Qa = orthonormalize(At, N, R);
  const Ra = matmul(transpose(Qa, N, R), At, R, N, R); // [R, R]
  const core = matmul(Rb, Ra, R, R, R, true); // Rb·Raᵀ
  const s = svd(core, R, R);
  return {
    U: matmul(Qb, s.U, M, R, s.K),
    S: s.S,
    Vt: matmul(s.Vt, Qa, s.K, R, N, true), // Vtcore · Qaᵀ
    K: s.K,
  };
}
