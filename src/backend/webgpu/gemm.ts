// The WebGPU GEMM (docs/ARCHITECTURE.md §WebGPU): C[M,N] (+)= alpha · op(A)[M,K] · op(B)[K,N],
// A stored [M,K] or (transA) [K,M], B [K,N] or (transB) [N,K], row strides lda/ldb/ldc, each
// operand f32 or 16-bit (f16/bf16 widened as the tile is loaded). One workgroup of TD×TD
// invocations computes a 4TD×4TD tile of C: per K step of 16 it stages a 4TD×16 slice of A
// and a 16×4TD slice of B in workgroup memory, and each invocation keeps a 4×4 block of C in
// registers (rows ty + TD·i, columns tx + TD·j). TD is 16 (64×64 tiles) on a GPU and 8 on a
// fallback adapter (SwiftShader runs a workgroup's invocations as fibers: fewer is faster).
// One pipeline for every variant: transposes and dtypes are uniform parameters.
import type { Backend } from '../types.js';
import type { GpuContext } from './device.js';
import { dtypeCode, Kernels } from './wgsl.js';

export function gemmKernel(ctx: GpuContext, small: boolean): Backend['gemm'] {
  const TD = small ? 8 : 16;
  const TM = 4 * TD;
  const TN = 4 * TD;
  const LOADS = (16 * TM) / (TD * TD); // tile elements each invocation stages, per operand
  const K = new Kernels(ctx);
  // one pipeline: the transposes and dtypes are uniform parameters (branches every invocation takes alike)
  const kernel = K.get('gemm', `${TD}`, () => ({
      ops: [['c', 'f32'], ['a', 'any'], ['b', 'any']],
      wg: TD * TD,
      params: ['M', 'N', 'K', 'lda', 'ldb', 'ldc', 'acc', 'alpha:f', 'tilesN', 'transA', 'transB', 'aDt', 'bDt'],
      decls: /* wgsl */ `
var<workgroup> As: array<f32, ${16 * TM}>;
var<workgroup> Bs: array<f32, ${16 * TN}>;
fn ldA(m: u32, k: u32, M: u32, K: u32, lda: u32, tr: u32) -> f32 {
  if (m >= M || k >= K) { return 0.0; }
  return a_(select(m * lda + k, k * lda + m, tr == 1u));
}
fn ldB(k: u32, n: u32, N: u32, K: u32, ldb: u32, tr: u32) -> f32 {
  if (n >= N || k >= K) { return 0.0; }
  return b_(select(k * ldb + n, n * ldb + k, tr == 1u));
}`,
      body: /* wgsl */ `
  let m0 = (wg / tilesN) * ${TM}u;
  let n0 = (wg % tilesN) * ${TN}u;
  let tx = lid % ${TD}u;
  let ty = lid / ${TD}u;
  // the 4×4 block in registers: row i of the block is r[i] (columns tx + TD·j in its lanes)
  var r: array<vec4<f32>, 4>;
  for (var k0 = 0u; k0 < K; k0 += 16u) {
    // the 16·TM elements of each tile, LOADS per invocation: A as [kk][m], B as [kk][n]
    for (var e = 0u; e < ${LOADS}u; e++) {
      let idx = lid + e * ${TD * TD}u;
      // consecutive invocations read consecutive addresses of the operand as stored
      let am = select(idx / 16u, idx % ${TM}u, transA == 1u);
      let ak = select(idx % 16u, idx / ${TM}u, transA == 1u);
      As[ak * ${TM}u + am] = ldA(m0 + am, k0 + ak, M, K, lda, transA);
      let bk = select(idx / ${TN}u, idx % 16u, transB == 1u);
      let bn = select(idx % ${TN}u, idx / 16u, transB == 1u);
      Bs[bk * ${TN}u + bn] = ldB(k0 + bk, n0 + bn, N, K, ldb, transB);
    }
    workgroupBarrier();
    for (var kk = 0u; kk < 16u; kk++) {
      let ar = kk * ${TM}u + ty;
      let br = kk * ${TN}u + tx;
      let av = vec4<f32>(As[ar], As[ar + ${TD}u], As[ar + ${2 * TD}u], As[ar + ${3 * TD}u]);
      let bv = vec4<f32>(Bs[br], Bs[br + ${TD}u], Bs[br + ${2 * TD}u], Bs[br + ${3 * TD}u]);
      r[0] = r[0] + av.x * bv;
      r[1] = r[1] + av.y * bv;
      r[2] = r[2] + av.z * bv;
      r[3] = r[3] + av.w * bv;
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < 4u; i++) {
    let m = m0 + ty + ${TD}u * i;
    if (m >= M) { continue; }
    for (var j = 0u; j < 4u; j++) {
      let n = n0 + tx + ${TD}u * j;
      if (n >= N) { continue; }
      let at = m * ldc + n;
      var v = alpha * r[i][j];
      if (acc == 1u) { v = c_(at) + v; }
      c_w(at, v);
    }
  }`,
    }));

  return (c, a, b, g) => {
    const { M, N, K: Kd } = g;
    const transA = g.transA ?? false;
    const transB = g.transB ?? false;
    const lda = g.lda ?? (transA ? M : Kd);
    const ldb = g.ldb ?? (transB ? Kd : N);
    const ldc = g.ldc ?? N;
    const tilesN = Math.ceil(N / TN);
    const tiles = Math.ceil(M / TM) * tilesN;
    if (M === 0 || N === 0) return;
    if (a instanceof Uint8Array || b instanceof Uint8Array) throw new Error('webgpu gemm: quantized operands are not read by this backend (it lists no quantTypes: models dequantize on load)');
    kernel.run([c, a, b], [M, N, Kd, lda, ldb, ldc, g.accumulate ? 1 : 0, g.alpha ?? 1, tilesN, +transA, +transB, dtypeCode(g.aDtype, a instanceof Uint16Array), dtypeCode(g.bDtype, b instanceof Uint16Array)], tiles);
  };
}
