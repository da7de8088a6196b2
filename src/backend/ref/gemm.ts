// Naive GEMM, the oracle for the native kernel: C[M,N] (+)= alpha · op(A)[M,K] · op(B)[K,N].
import type { Storage } from '../../tensor/tensor.js';
import type { GemmArgs } from '../types.js';
import { reader } from './read.js';

export function gemm(c: Float32Array, a: Storage, b: Storage, args: GemmArgs): void {
  const { M, N, K } = args;
  const ta = args.transA ?? false;
  const tb = args.transB ?? false;
  const alpha = args.alpha ?? 1;
  const lda = args.lda ?? (ta ? M : K);
  const ldb = args.ldb ?? (tb ? K : N);
  const ldc = args.ldc ?? N;
  const A = reader(a, args.aDtype);
  const B = reader(b, args.bDtype);
  const row = new Float64Array(N);
  for (let i = 0; i < M; i++) {
    row.fill(0);
    for (let k = 0; k < K; k++) {
      const x = A(ta ? k * lda + i : i * lda + k);
      for (let j = 0; j < N; j++) row[j]! += x * B(tb ? j * ldb + k : k * ldb + j);
    }
    const base = i * ldc;
    for (let j = 0; j < N; j++) c[base + j] = args.accumulate ? c[base + j]! + alpha * row[j]! : alpha * row[j]!;
  }
}
