// The WebGPU GEMM (docs/ARCHITECTURE.md §WebGPU): C[M,N] (+)= alpha · op(A)[M,K] · op(B)[K,N],
// A stored [M,K] or (transA) [K,M], B [K,N] or (transB) [N,K], row strides lda/ldb/ldc, each
// operand f32 or 16-bit (f16/bf16 widened as the tile is loaded). One workgroup of 16×16
// invocations computes a 64×64 tile of C: per K step of 16 it stages a 64×16 slice of A and a
// 16×64 slice of B in workgroup memory, and each invocation keeps a 4×4 block of C in
// registers (rows ty + 16i, columns tx + 16j). One pipeline per (transA, transB, dtypes).
import type { Backend } from '../types.js';
import type { GpuContext } from './device.js';
import { Kernels, type OpKind } from './wgsl.js';

const TM = 64;
const TN = 64;

export function gemmKernel(ctx: GpuContext): Backend['gemm'] {
  const K = new Kernels(ctx);
  const kernel = (transA: boolean, transB: boolean, aK: OpKind, bK: OpKind) =>
    K.get('gemm', `${+transA}${+transB}${aK}${bK}`, () => ({
      ops: [['c', 'f32'], ['a', aK], ['b', bK]],
      params: ['M', 'N', 'K', 'lda', 'ldb', 'ldc', 'acc', 'alpha:f', 'tilesN'],
      decls: /* wgsl */ `
var<workgroup> As: array<f32, ${16 * TM}>;
var<workgroup> Bs: array<f32, ${16 * TN}>;
fn ldA(m: u32, k: u32, M: u32, K: u32, lda: u32) -> f32 {
  if (m >= M || k >= K) { return 0.0; }
  return a_(${transA ? 'k * lda + m' : 'm * lda + k'});
}
fn ldB(k: u32, n: u32, N: u32, K: u32, ldb: u32) -> f32 {
  if (n >= N || k >= K) { return 0.0; }
  return b_(${transB ? 'n * ldb + k' : 'k * ldb + n'});
}`,
      body: /* wgsl */ `
  let m0 = (wg / tilesN) * ${TM}u;
  let n0 = (wg % tilesN) * ${TN}u;
  let tx = lid % 16u;
  let ty = lid / 16u;
  var r: array<f32, 16>;
  for (var i = 0u; i < 16u; i++) { r[i] = 0.0; }
  for (var k0 = 0u; k0 < K; k0 += 16u) {
    // 1024 elements of each tile, 4 per invocation: A as [kk][m], B as [kk][n]
    for (var e = 0u; e < 4u; e++) {
      let idx = lid + e * 256u;
      ${transA ? 'let am = idx % 64u; let ak = idx / 64u;' : 'let ak = idx % 16u; let am = idx / 16u;'}
      As[ak * ${TM}u + am] = ldA(m0 + am, k0 + ak, M, K, lda);
      ${transB ? 'let bk = idx % 16u; let bn = idx / 16u;' : 'let bn = idx % 64u; let bk = idx / 64u;'}
      Bs[bk * ${TN}u + bn] = ldB(k0 + bk, n0 + bn, N, K, ldb);
    }
    workgroupBarrier();
    for (var kk = 0u; kk < 16u; kk++) {
      var av: array<f32, 4>;
      var bv: array<f32, 4>;
      for (var i = 0u; i < 4u; i++) { av[i] = As[kk * ${TM}u + ty + 16u * i]; bv[i] = Bs[kk * ${TN}u + tx + 16u * i]; }
      for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 4u; j++) { r[i * 4u + j] = r[i * 4u + j] + av[i] * bv[j]; }
      }
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < 4u; i++) {
    let m = m0 + ty + 16u * i;
    if (m >= M) { continue; }
    for (var j = 0u; j < 4u; j++) {
      let n = n0 + tx + 16u * j;
      if (n >= N) { continue; }
      let at = m * ldc + n;
      var v = alpha * r[i * 4u + j];
      if (acc == 1u) { v = c_(at) + v; }
      c_w(at, v);
    }
  }`,
    }));

  return (c, a, b, g) => {
    const { M, N, K: Kd } = g;
    const transA = g.transA ?? false;
    const transB = g.transB ?? false;
    const aK: OpKind = a instanceof Uint16Array ? (g.aDtype === 'f16' ? 'f16' : 'bf16') : 'f32';
    const bK: OpKind = b instanceof Uint16Array ? (g.bDtype === 'f16' ? 'f16' : 'bf16') : 'f32';
    const lda = g.lda ?? (transA ? M : Kd);
    const ldb = g.ldb ?? (transB ? Kd : N);
    const ldc = g.ldc ?? N;
    const tilesN = Math.ceil(N / TN);
    const tiles = Math.ceil(M / TM) * tilesN;
    if (M === 0 || N === 0) return;
    kernel(transA, transB, aK, bK).run([c, a, b], [M, N, Kd, lda, ldb, ldc, g.accumulate ? 1 : 0, g.alpha ?? 1, tilesN], tiles);
  };
}
