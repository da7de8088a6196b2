// Every kernel of a backend against the reference kernels, on odd shapes, half parameters,
// aliasing and accumulation. Registered by kernels.test.ts for the native backend as built
// (AVX2 path on this machine) and by kernels-portable.ts for the portable path.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { refBackend as ref } from '../../src/backend/ref/index.js';
import type { AttentionArgs } from '../../src/backend/types.js';
import { blockSpec, quantize } from '../../src/io/gguf-blocks.js';
import type { KernelsUnderTest } from '../helpers/device-as-host.js';
import { bf16ToF32, f16ToF32 } from '../../src/tensor/half.js';
import { QUANT_BLOCK, dequantizeAll, type QuantDType } from '../../src/tensor/quant.js';
import { registerRowComparisons } from './kernels-rows-compare.js';
import { assertClose, randInts, randn, rng, toHalf } from './kernels-util.js';

const SIZES = [1, 3, 17, 65, 127, 40_001];
const HALF = ['f16', 'bf16'] as const;
const DTYPES = ['f32', 'f16', 'bf16'] as const;

/** The GGML block type of each quantized dtype (for quantize, which takes a GGML spec). */
const GGML_OF: Record<QuantDType, Parameters<typeof blockSpec>[0]> = { q8_0: 'Q8_0', q4_0: 'Q4_0', q4_k: 'Q4_K', q6_k: 'Q6_K' };

/** a parameter in the given dtype (as stored) */
function param(values: Float32Array, dtype: 'f32' | 'f16' | 'bf16'): Float32Array | Uint16Array {
  return dtype === 'f32' ? values : toHalf(values, dtype);
}

/** copies of x for the two backends */
function two(x: Float32Array): [Float32Array, Float32Array] {
  return [x.slice(), x.slice()];
}

export function registerComparisons(nat: KernelsUnderTest, label: string): void {
  registerRowComparisons(nat, label);
  describe(`${label} kernels match ref`, () => {
    it('gemm: odd shapes, both transposes, f16/bf16 operands, strides, alpha, accumulate', async () => {
      const r = rng(5);
      const shapes: [number, number, number][] = [[1, 1, 1], [3, 5, 7], [17, 33, 9], [64, 8, 96], [70, 130, 257], [5, 300, 40]];
      let i = 0;
      for (const [M, N, K] of shapes)
        for (const transA of [false, true])
          for (const transB of [false, true]) {
            const aDtype = DTYPES[i % 3]!;
            const bDtype = DTYPES[(i + 1) % 3]!;
            const accumulate = i % 2 === 1;
            const alpha = i % 3 === 2 ? -0.5 : 1;
            i++;
            const lda = (transA ? M : K) + (i % 2), ldb = (transB ? K : N) + 3, ldc = N + 1;
            const a = param(randn(r, (transA ? K : M) * lda), aDtype);
            const b = param(randn(r, (transB ? N : K) * ldb), bDtype);
            const [c1, c2] = two(randn(r, M * ldc));
            const g = { M, N, K, transA, transB, accumulate, alpha, aDtype, bDtype, lda, ldb, ldc };
            await nat.gemm(c1, a, b, g);
            ref.gemm(c2, a, b, g);
            assertClose(c1, c2, `gemm ${M}x${N}x${K} ${JSON.stringify({ transA, transB, aDtype, bDtype, accumulate, alpha })}`, 2e-6 * K + 1e-5, 2e-6 * K + 1e-5);
          }
    });
    it('gemm, few rows against a [N, K] weight (the decode path: each weight row read once for all rows)', async () => {
      const r = rng(23);
      // M up to kGemvMaxRows (16) and one past it; K with and without a vector tail; N large
      // enough (130 × 770) to split the weight rows among the threads
      const shapes: [number, number, number][] = [[1, 1, 1], [1, 5, 7], [1, 130, 770], [2, 67, 33], [3, 130, 770], [4, 9, 16], [7, 64, 100], [16, 130, 770], [17, 20, 24]];
      let i = 0;
      for (const [M, N, K] of shapes)
        for (const bDtype of DTYPES) {
          const accumulate = i % 2 === 1;
          const alpha = i % 3 === 2 ? -0.5 : 1;
          const strided = i % 4 === 3;
          i++;
          const lda = K + (strided ? 3 : 0), ldb = K + (strided ? 5 : 0), ldc = N + (strided ? 2 : 0);
          const a = randn(r, M * lda);
          const b = param(randn(r, N * ldb), bDtype);
          const [c1, c2] = two(randn(r, M * ldc));
          const g = { M, N, K, transB: true, accumulate, alpha, bDtype, lda, ldb, ldc };
          await nat.gemm(c1, a, b, g);
          ref.gemm(c2, a, b, g);
          assertClose(c1, c2, `gemm ${M}x${N}x${K} ${JSON.stringify({ bDtype, accumulate, alpha, strided })}`, 2e-6 * K + 1e-5, 2e-6 * K + 1e-5);
        }
    });
    // quantized B (docs/ARCHITECTURE.md §Quantized weights): the forward x·Wᵀ (transB, W [N, K])
    // and the input gradient dy·W (W [K, N]), on the direct path (small), the packed path with
    // K split into blocks that cut GGML blocks (K 768 → 2 × 384 against 256-value blocks), and
    // column groups that start inside a block; against the reference and, tightly (the same
    // values packed; only the path the driver picks for an f32 B can order the sums otherwise),
    // against this backend's own product on the dequantized f32 matrix
    it('gemm: quantized B (q8_0, q4_0, q4_k, q6_k), both layouts, strides, accumulate', { skip: nat.quantTypes?.length ? false : `${label} reads no quantized weights (models dequantize on load)` }, async () => {
      const r = rng(23);
      for (const dtype of nat.quantTypes ?? []) {
        const qk = QUANT_BLOCK[dtype].values;
        // [M, N, K]: the stored rows (K when transB, N otherwise) are whole blocks
        // (few rows: the packed path splits the columns into groups, which start inside blocks;
        // transB with M ≤ 16: the few-row path, weight rows dequantized into a scratch, threaded
        // from 64 KiB of blocks)
        const cases: [number, number, number, boolean][] = [[3, 5, qk, true], [7, 130, 3 * 256, true], [1, 301, 2 * 256, true], [16, 37, 256, true], [4, 2 * qk, 7, false], [7, 2 * 256 + qk, 600, false], [9, 768, 40, false]];
        let i = 0;
        for (const [M, N, K, transB] of cases) {
          const extra = i % 2 ? qk : 0;
          const ldb = (transB ? K : N) + extra;
          const rows = transB ? N : K;
          const blocks = quantize(blockSpec(GGML_OF[dtype]), randn(r, rows * ldb));
          const deq = dequantizeAll(dtype, blocks);
          const accumulate = i % 2 === 1;
          const [c1, c2] = two(randn(r, M * N));
          const c3 = c1.slice();
          const a = randn(r, M * K);
          const g = { M, N, K, transB, accumulate, ldb };
          await nat.gemm(c1, a, blocks, { ...g, bDtype: dtype });
          ref.gemm(c2, a, blocks, { ...g, bDtype: dtype });
          await nat.gemm(c3, a, deq, g);
          const what = `gemm ${dtype} ${M}x${N}x${K} ${JSON.stringify({ transB, accumulate, ldb })}`;
          assertClose(c1, c2, what, 2e-6 * K + 1e-5, 2e-6 * K + 1e-5);
          assertClose(c1, c3, `${what}: the product on the dequantized matrix`, 1e-6, 2e-7 * K);
          i++;
        }
      }
    });
    it('embeddingForward: quantized tables', { skip: nat.quantTypes?.length ? false : `${label} reads no quantized weights` }, async () => {
      const r = rng(29);
      for (const dtype of nat.quantTypes ?? []) {
        const V = 37, C = 2 * QUANT_BLOCK[dtype].values, N = 19;
        const table = quantize(blockSpec(GGML_OF[dtype]), randn(r, V * C));
        const ids = randInts(r, N, V);
        const [o1, o2] = two(new Float32Array(N * C));
        await nat.embeddingForward(o1, ids, table, N, C, dtype);
        ref.embeddingForward(o2, ids, table, N, C, dtype);
        assert.deepEqual(o1, o2, `embeddingForward ${dtype}`);
      }
    });
    it('add (also aliased), axpy, scale, sumSquares', async () => {
      const r = rng(11);
      for (const n of SIZES) {
        const a = randn(r, n);
        const b = randn(r, n);
        const [o1, o2] = two(new Float32Array(n));
        await nat.add(o1, a, b);
        ref.add(o2, a, b);
        assertClose(o1, o2, `add n=${n}`, 0, 0);
        const [x1, x2] = two(a);
        await nat.add(x1, x1, b);
        ref.add(x2, x2, b);
        assertClose(x1, x2, `add aliased n=${n}`, 0, 0);
        const [y1, y2] = two(b);
        await nat.axpy(y1, a, -0.75);
        ref.axpy(y2, a, -0.75);
        assertClose(y1, y2, `axpy n=${n}`, 1e-6, 1e-7);
        await nat.scale(x1, x1, 1.5);
        ref.scale(x2, x2, 1.5);
        assertClose(x1, x2, `scale aliased n=${n}`, 0, 0);
        const ss = await nat.sumSquares(a);
        const want = ref.sumSquares(a);
        assert.ok(Math.abs(ss - want) <= 1e-12 * want + 1e-300, `sumSquares n=${n}: ${ss} vs ${want}`);
      }
    });

    it('widen and narrow: every half bit pattern, and f32 values with ties, subnormals, overflow', async () => {
      const all = new Uint16Array(65536);
      for (let i = 0; i < all.length; i++) all[i] = i;
      for (const dt of HALF) {
        const w1 = new Float32Array(all.length);
        await nat.widen(w1, all, dt);
        const w2 = new Float32Array(all.length);
        ref.widen(w2, all, dt);
        assertClose(w1, w2, `widen ${dt}`, 0, 0);
        for (let i = 0; i < all.length; i++) {
          const want = dt === 'bf16' ? bf16ToF32(i) : f16ToF32(i);
          if (Number.isNaN(want)) assert.ok(Number.isNaN(w1[i]!), `widen ${dt} 0x${i.toString(16)}`);
        }
      }
      const r = rng(12);
      const vals: number[] = [0, -0, 1, -1, 65504, 65520, 70000, -1e30, 2 ** -24, 2 ** -25, 3 * 2 ** -26, 1e-40, 1 + 2 ** -11, 1 + 3 * 2 ** -11, 1 + 2 ** -8, 1 + 3 * 2 ** -8, Infinity, -Infinity, NaN, 3.4e38];
      for (let i = 0; i < 4000; i++) vals.push((r() - 0.5) * 10 ** (r() * 12 - 8));
      for (let i = 0; i < 61; i++) vals.push(NaN, 1 + i * 2 ** -12); // NaN inside vector blocks too
      const src = Float32Array.from(vals);
      for (const dt of HALF) {
        const h1 = new Uint16Array(src.length);
        const h2 = new Uint16Array(src.length);
        await nat.narrow(h1, src, dt);
        ref.narrow(h2, src, dt);
        for (let i = 0; i < src.length; i++) assert.equal(h1[i], h2[i], `narrow ${dt} of ${src[i]}: 0x${h1[i]!.toString(16)} vs 0x${h2[i]!.toString(16)}`);
      }
    });

    it('biasAdd (f32, f16, bf16 bias) and biasBackward (adds into a filled buffer)', async () => {
      const r = rng(13);
      for (const [M, N] of [[1, 1], [3, 17], [65, 127], [300, 65]] as const) {
        for (const dt of DTYPES) {
          const bias = param(randn(r, N), dt);
          const [o1, o2] = two(randn(r, M * N));
          await nat.biasAdd(o1, bias, M, N, dt);
          ref.biasAdd(o2, bias, M, N, dt);
          assertClose(o1, o2, `biasAdd ${dt} ${M}x${N}`, 0, 0);
        }
        const dout = randn(r, M * N);
        const [d1, d2] = two(randn(r, N));
        await nat.biasBackward(d1, dout, M, N);
        ref.biasBackward(d2, dout, M, N);
        assertClose(d1, d2, `biasBackward ${M}x${N}`, 1e-5, 1e-5);
      }
    });

    it('rmsnorm forward and backward (f32, f16, bf16 weight; null grads; accumulation)', async () => {
      const r = rng(14);
      for (const [N, C] of [[1, 1], [3, 17], [65, 127], [5, 1000], [200, 64]] as const) {
        for (const dt of DTYPES) {
          const x = randn(r, N * C, -3, 3);
          const w = param(randn(r, C, 0.5, 1.5), dt);
          const [o1, o2] = two(new Float32Array(N * C));
          const [s1, s2] = two(new Float32Array(N));
          await nat.rmsnormForward(o1, s1, x, w, N, C, 1e-6, dt);
          ref.rmsnormForward(o2, s2, x, w, N, C, 1e-6, dt);
          assertClose(o1, o2, `rmsnorm out ${dt} ${N}x${C}`);
          assertClose(s1, s2, `rmsnorm rstd ${dt} ${N}x${C}`);
          const dout = randn(r, N * C);
          const [dx1, dx2] = two(randn(r, N * C));
          const [dw1, dw2] = two(randn(r, C));
          await nat.rmsnormBackward(dx1, dw1, dout, x, w, s2, N, C, dt);
          ref.rmsnormBackward(dx2, dw2, dout, x, w, s2, N, C, dt);
          assertClose(dx1, dx2, `rmsnorm dinp ${dt} ${N}x${C}`, 1e-5, 1e-5);
          assertClose(dw1, dw2, `rmsnorm dweight ${dt} ${N}x${C}`, 1e-5, 1e-5);
          const [dy1, dy2] = two(dx1);
          await nat.rmsnormBackward(dy1, null, dout, x, w, s2, N, C, dt);
          ref.rmsnormBackward(dy2, null, dout, x, w, s2, N, C, dt);
          assertClose(dy1, dy2, `rmsnorm dinp only ${dt}`, 1e-5, 1e-5);
          const [dz1, dz2] = two(dw1);
          await nat.rmsnormBackward(null, dz1, dout, x, w, s2, N, C, dt);
          ref.rmsnormBackward(null, dz2, dout, x, w, s2, N, C, dt);
          assertClose(dz1, dz2, `rmsnorm dweight only ${dt}`, 1e-5, 1e-5);
        }
      }
    });

    it('layernorm forward and backward (f32, f16, bf16 params; no bias; null grads; accumulation)', async () => {
      const r = rng(15);
      for (const [N, C] of [[1, 1], [3, 17], [65, 127], [5, 1000], [200, 64]] as const) {
        for (const dt of DTYPES) {
          // an offset mean tests the two-pass variance
          const x = randn(r, N * C, 2, 6);
          const w = param(randn(r, C, 0.5, 1.5), dt);
          const b = param(randn(r, C), dt);
          for (const bias of [b, null]) {
            const [o1, o2] = two(new Float32Array(N * C));
            const [m1, m2] = two(new Float32Array(N));
            const [s1, s2] = two(new Float32Array(N));
            await nat.layernormForward(o1, m1, s1, x, w, bias, N, C, 1e-5, dt);
            ref.layernormForward(o2, m2, s2, x, w, bias, N, C, 1e-5, dt);
            assertClose(o1, o2, `layernorm out ${dt} ${N}x${C} bias=${bias !== null}`, 1e-5, 1e-5);
            assertClose(m1, m2, `layernorm mean ${dt} ${N}x${C}`);
            assertClose(s1, s2, `layernorm rstd ${dt} ${N}x${C}`, 1e-5, 1e-6);
          }
          const m = new Float32Array(N);
          const s = new Float32Array(N);
          ref.layernormForward(new Float32Array(N * C), m, s, x, w, b, N, C, 1e-5, dt);
          const dout = randn(r, N * C);
          const [dx1, dx2] = two(randn(r, N * C));
          const [dw1, dw2] = two(randn(r, C));
          const [db1, db2] = two(randn(r, C));
          await nat.layernormBackward(dx1, dw1, db1, dout, x, w, m, s, N, C, dt);
          ref.layernormBackward(dx2, dw2, db2, dout, x, w, m, s, N, C, dt);
          assertClose(dx1, dx2, `layernorm dinp ${dt} ${N}x${C}`, 1e-4, 1e-5);
          assertClose(dw1, dw2, `layernorm dweight ${dt} ${N}x${C}`, 1e-5, 1e-5);
          assertClose(db1, db2, `layernorm dbias ${dt} ${N}x${C}`, 1e-5, 1e-5);
          const [dy1, dy2] = two(dx1);
          await nat.layernormBackward(dy1, null, null, dout, x, w, m, s, N, C, dt);
          ref.layernormBackward(dy2, null, null, dout, x, w, m, s, N, C, dt);
          assertClose(dy1, dy2, `layernorm dinp only ${dt}`, 1e-4, 1e-5);
          const [dv1, dv2] = two(dw1);
          await nat.layernormBackward(null, dv1, null, dout, x, w, m, s, N, C, dt);
          ref.layernormBackward(null, dv2, null, dout, x, w, m, s, N, C, dt);
          assertClose(dv1, dv2, `layernorm dweight only ${dt}`, 1e-5, 1e-5);
        }
      }
    });

    it('softmax (rows with -Infinity, a fully hidden row, aliased)', async () => {
      const r = rng(16);
      for (const [N, C] of [[1, 1], [3, 17], [65, 127], [4, 5000]] as const) {
        const x = randn(r, N * C, -20, 20);
        x[0] = -Infinity;
        if (N > 1) x.fill(-Infinity, C, 2 * C);
        const [o1, o2] = two(new Float32Array(N * C));
        await nat.softmax(o1, x, N, C);
        ref.softmax(o2, x, N, C);
        assertClose(o1, o2, `softmax ${N}x${C}`, 1e-5, 1e-7);
        const [a1, a2] = two(x);
        await nat.softmax(a1, a1, N, C);
        ref.softmax(a2, a2, N, C);
        assertClose(a1, a2, `softmax aliased ${N}x${C}`, 1e-5, 1e-7);
      }
    });

    it('gelu (exact, tanh), silu, swiglu: forward and accumulating backward', async () => {
      const r = rng(17);
      for (const n of SIZES) {
        const x = randn(r, n, -12, 12);
        if (n > 10) x.set([0, -0, 1e-8, -1e-8, 30, -30, 100, -100, 5.5, -5.5]);
        const up = randn(r, n, -2, 2);
        const dout = randn(r, n);
        // backward kernels add into buffers of O(1) values: rounding those sums alone is ~1e-7
        for (const approx of ['none', 'tanh'] as const) {
          const [o1, o2] = two(new Float32Array(n));
          await nat.geluForward(o1, x, approx);
          ref.geluForward(o2, x, approx);
          assertClose(o1, o2, `gelu ${approx} n=${n}`, 2e-6, 1e-7);
          const [d1, d2] = two(randn(r, n));
          await nat.geluBackward(d1, x, dout, approx);
          ref.geluBackward(d2, x, dout, approx);
          assertClose(d1, d2, `gelu backward ${approx} n=${n}`, 2e-6, 1e-6);
          const [a1, a2] = two(x);
          await nat.geluForward(a1, a1, approx);
          ref.geluForward(a2, a2, approx);
          assertClose(a1, a2, `gelu aliased ${approx} n=${n}`, 2e-6, 1e-7);
        }
        const [s1, s2] = two(new Float32Array(n));
        await nat.siluForward(s1, x);
        ref.siluForward(s2, x);
        assertClose(s1, s2, `silu n=${n}`, 2e-6, 1e-7);
        const [ds1, ds2] = two(randn(r, n));
        await nat.siluBackward(ds1, x, dout);
        ref.siluBackward(ds2, x, dout);
        assertClose(ds1, ds2, `silu backward n=${n}`, 2e-6, 1e-6);
        const [w1, w2] = two(new Float32Array(n));
        await nat.swigluForward(w1, x, up);
        ref.swigluForward(w2, x, up);
        assertClose(w1, w2, `swiglu n=${n}`, 2e-6, 1e-7);
        const [g1, g2] = two(randn(r, n));
        const [u1, u2] = two(randn(r, n));
        await nat.swigluBackward(g1, u1, dout, x, up);
        ref.swigluBackward(g2, u2, dout, x, up);
        assertClose(g1, g2, `swiglu dgate n=${n}`, 2e-6, 1e-6);
        assertClose(u1, u2, `swiglu dup n=${n}`, 2e-6, 1e-6);
        // accumulate = false: written over whatever was there (NaN here), equal to adding into
        // zeros (exactly: only the sign of a zero may differ, −0 written where 0 + −0 gave +0)
        const [z1, z2] = two(new Float32Array(n));
        const [zu1, zu2] = two(new Float32Array(n));
        await nat.swigluBackward(z1, zu1, dout, x, up);
        ref.swigluBackward(z2, zu2, dout, x, up);
        for (const [be, want, wantU] of [[nat, z1, zu1], [ref, z2, zu2]] as const) {
          const dg = new Float32Array(n).fill(Number.NaN);
          const du = new Float32Array(n).fill(Number.NaN);
          await be.swigluBackward(dg, du, dout, x, up, false);
          assertClose(dg, want, `${be.name} swiglu dgate written, n=${n}`, 0, 0);
          assertClose(du, wantU, `${be.name} swiglu dup written, n=${n}`, 0, 0);
        }
      }
    });

    it('embedding forward (f32, f16, bf16 table) and backward (repeated ids accumulate)', async () => {
      const r = rng(18);
      for (const [V, C, N] of [[1, 1, 1], [5, 3, 17], [127, 65, 300], [50, 1000, 9]] as const) {
        const ids = randInts(r, N, V);
        for (const dt of DTYPES) {
          const table = param(randn(r, V * C), dt);
          const [o1, o2] = two(new Float32Array(N * C));
          await nat.embeddingForward(o1, ids, table, N, C, dt);
          ref.embeddingForward(o2, ids, table, N, C, dt);
          assertClose(o1, o2, `embedding ${dt} V=${V} C=${C} N=${N}`, 0, 0);
        }
        const dout = randn(r, N * C);
        const [d1, d2] = two(randn(r, V * C));
        await nat.embeddingBackward(d1, dout, ids, N, C);
        ref.embeddingBackward(d2, dout, ids, N, C);
        assertClose(d1, d2, `embedding backward V=${V} C=${C} N=${N}`, 1e-6, 1e-6);
      }
    });

    it('rope: both layouts, forward and inverse; inverse(rope(x)) == x', async () => {
      const r = rng(19);
      for (const [B, T, H, D] of [[1, 1, 1, 2], [2, 3, 3, 6], [2, 17, 6, 64], [1, 5, 2, 34]] as const) {
        const P = 40;
        const half = D / 2;
        const cos = new Float32Array(P * half);
        const sin = new Float32Array(P * half);
        for (let p = 0; p < P; p++) {
          for (let i = 0; i < half; i++) {
            const ang = p * 10000 ** (-(2 * i) / D);
            cos[p * half + i] = Math.cos(ang);
            sin[p * half + i] = Math.sin(ang);
          }
        }
        const pos = randInts(r, B * T, P);
        const x = randn(r, B * T * H * D);
        for (const interleaved of [false, true]) {
          for (const inverse of [false, true]) {
            const [a1, a2] = two(x);
            await nat.rope(a1, cos, sin, pos, B, T, H, D, interleaved, inverse);
            ref.rope(a2, cos, sin, pos, B, T, H, D, interleaved, inverse);
            assertClose(a1, a2, `rope ${interleaved ? 'interleaved' : 'half-split'} inverse=${inverse} ${B}x${T}x${H}x${D}`, 1e-6, 1e-6);
            // from a source array: the same values, the source untouched
            for (const be of [nat, ref]) {
              const src = x.slice();
              const out = new Float32Array(x.length).fill(Number.NaN);
              await be.rope(out, cos, sin, pos, B, T, H, D, interleaved, inverse, src);
              assert.deepEqual(src, x, `${be.name} rope left src as it was`);
              assert.deepEqual(out, be === nat ? a1 : a2, `${be.name} rope from src equals rope in place`);
            }
          }
          const y = x.slice();
          await nat.rope(y, cos, sin, pos, B, T, H, D, interleaved, false);
          assert.ok(y.some((v, i) => Math.abs(v - x[i]!) > 1e-3) || D === 2, 'rope changed something');
          await nat.rope(y, cos, sin, pos, B, T, H, D, interleaved, true);
          assertClose(y, x, `inverse(rope(x)) ${interleaved ? 'interleaved' : 'half-split'}`, 1e-5, 1e-6);
        }
      }
    });

    type Case = { name: string; a: Omit<AttentionArgs, 'mask' | 'scale'>; mask: 'none' | 'keys' | 'full' };
    const cases: Case[] = [
      { name: 'GQA 6/2, causal, S > T, full mask with a fully hidden row', a: { B: 2, T: 5, S: 9, Hq: 6, Hkv: 2, D: 17, causal: true }, mask: 'full' },
      { name: 'GQA 6/2, not causal, key-padding mask with a fully hidden batch row', a: { B: 2, T: 3, S: 7, Hq: 6, Hkv: 2, D: 5, causal: false }, mask: 'keys' },
      { name: 'MHA, causal, T = S = 65 (crosses a key tile)', a: { B: 1, T: 65, S: 65, Hq: 3, Hkv: 3, D: 64, causal: true }, mask: 'none' },
      { name: 'GQA 6/2, causal, S = 150 > T = 19, key mask, D = 24', a: { B: 2, T: 19, S: 150, Hq: 6, Hkv: 2, D: 24, causal: true }, mask: 'keys' },
      // D a multiple of 16: backward's dk, dv take the GEMM micro-kernel; B·Hkv = 8 tasks share
      // out evenly, so one task owns a kv head (the fused backward); T not a multiple of 16
      { name: 'GQA 8/4, causal, T = S = 83, D = 32, full mask with a fully hidden row', a: { B: 2, T: 83, S: 83, Hq: 8, Hkv: 4, D: 32, causal: true }, mask: 'full' },
      { name: 'MHA, not causal, S = 70 > T = 37, key mask, D = 48', a: { B: 2, T: 37, S: 70, Hq: 4, Hkv: 4, D: 48, causal: false }, mask: 'keys' },
      { name: 'decode step T = 1, S = 127, MQA', a: { B: 3, T: 1, S: 127, Hq: 4, Hkv: 1, D: 8, causal: true }, mask: 'none' },
      { name: 'not causal, no mask, D = 1', a: { B: 1, T: 3, S: 130, Hq: 2, Hkv: 1, D: 1, causal: false }, mask: 'none' },
      // many query blocks add into each key tile's dk, dv (summed in the task's scratch, then written)
      { name: 'MHA, causal, T = S = 300, key mask, D = 16 (fused backward)', a: { B: 1, T: 300, S: 300, Hq: 2, Hkv: 2, D: 16, causal: true }, mask: 'keys' },
      { name: 'GQA 3/1, causal, S = 260 > T = 200, full mask, D = 32 (split backward: 3 kv groups on 2 threads)', a: { B: 3, T: 200, S: 260, Hq: 3, Hkv: 1, D: 32, causal: true }, mask: 'full' },
      // sliding windows: the kernel hides keys window or more slots before the query
      { name: 'window 7, GQA 8/4, causal, T = S = 83, D = 32, key mask (fused backward)', a: { B: 2, T: 83, S: 83, Hq: 8, Hkv: 4, D: 32, causal: true, window: 7 }, mask: 'keys' },
      { name: 'window 20, GQA 6/2, causal, S = 150 > T = 19 (a cache), D = 24', a: { B: 2, T: 19, S: 150, Hq: 6, Hkv: 2, D: 24, causal: true, window: 20 }, mask: 'none' },
      { name: 'window 40, GQA 3/1, causal, T = S = 200, D = 32 (split backward)', a: { B: 3, T: 200, S: 200, Hq: 3, Hkv: 1, D: 32, causal: true, window: 40 }, mask: 'none' },
      { name: 'window 100, MHA, causal, T = S = 300, full mask, D = 16 (tiles cut by the window)', a: { B: 2, T: 300, S: 300, Hq: 2, Hkv: 2, D: 16, causal: true, window: 100 }, mask: 'full' },
      { name: 'window 1 (each query sees itself), T = S = 70, D = 17', a: { B: 2, T: 70, S: 70, Hq: 2, Hkv: 1, D: 17, causal: true, window: 1 }, mask: 'none' },
      { name: 'window 32, decode step T = 1, S = 127, MQA', a: { B: 3, T: 1, S: 127, Hq: 4, Hkv: 1, D: 8, causal: true, window: 32 }, mask: 'none' },
    ];
    for (const c of cases) {
      it(`attention: ${c.name}`, async () => {
        const r = rng(20);
        const { B, T, S, Hq, Hkv, D } = c.a;
        let mask: Float32Array | null = null;
        if (c.mask === 'keys') {
          mask = new Float32Array(B * S);
          for (let i = 0; i < mask.length; i++) if (r() < 0.2) mask[i] = r() < 0.5 ? -Infinity : -2 * r();
          if (c.a.causal) mask[0] = -Infinity; // batch 0: query 0 of a T = S row would see nothing
          else mask.fill(-Infinity, S, 2 * S); // batch 1 sees no key at all
        } else if (c.mask === 'full') {
          mask = randn(r, B * T * S, -3, 0);
          for (let i = 0; i < mask.length; i++) if (r() < 0.2) mask[i] = -Infinity;
          mask.fill(-Infinity, (T + 2) * S, (T + 3) * S); // batch 1, query 2: every key hidden
        }
        const args: AttentionArgs = { ...c.a, scale: 1 / Math.sqrt(D), mask };
        const q = randn(r, B * T * Hq * D, -2, 2);
        const k = randn(r, B * S * Hkv * D, -2, 2);
        const v = randn(r, B * S * Hkv * D);
        const [o1, o2] = two(new Float32Array(B * T * Hq * D));
        const [l1, l2] = two(new Float32Array(B * Hq * T));
        await nat.attentionForward(o1, l1, q, k, v, args);
        ref.attentionForward(o2, l2, q, k, v, args);
        assertClose(o1, o2, 'attention out', 1e-5, 2e-6);
        assertClose(l1, l2, 'attention lse', 1e-5, 2e-6);
        if (c.mask === 'full') assert.equal(l1[(1 * Hq + 0) * T + 2], -Infinity, 'fully hidden row has lse -Infinity');
        for (const x of o1) assert.ok(Number.isFinite(x), 'attention out is finite');
        const dout = randn(r, B * T * Hq * D);
        const [dq1, dq2] = two(randn(r, q.length)); // garbage: the kernels write dq, dk, dv
        const [dk1, dk2] = two(randn(r, k.length));
        const [dv1, dv2] = two(randn(r, v.length));
        await nat.attentionBackward(dq1, dk1, dv1, dout, q, k, v, o2, l2, args);
        ref.attentionBackward(dq2, dk2, dv2, dout, q, k, v, o2, l2, args);
        assertClose(dq1, dq2, 'attention dq', 1e-4, 1e-5);
        assertClose(dk1, dk2, 'attention dk', 1e-4, 1e-5);
        assertClose(dv1, dv2, 'attention dv', 1e-4, 1e-5);
        if (!c.a.window) return;
        // the window is what a dense [B, T, S] mask hiding the same keys gives (each backend)
        const dense = new Float32Array(B * T * S);
        for (let b = 0; b < B; b++) {
          for (let t = 0; t < T; t++) {
            for (let s = 0; s < S; s++) {
              const m = mask ? mask[mask.length === B * S ? b * S + s : (b * T + t) * S + s]! : 0;
              dense[(b * T + t) * S + s] = t + S - T - s >= c.a.window ? -Infinity : m;
            }
          }
        }
        const dargs: AttentionArgs = { ...args, window: 0, mask: dense };
        for (const be of [nat, ref]) {
          const o = new Float32Array(o1.length);
          const l = new Float32Array(l1.length);
          await be.attentionForward(o, l, q, k, v, dargs);
          assertClose(o, o2, `${be.name}: window ${c.a.window} equals the dense mask (out)`, 1e-5, 2e-6);
          const dq = new Float32Array(q.length);
          const dk = new Float32Array(k.length);
          const dv = new Float32Array(v.length);
          await be.attentionBackward(dq, dk, dv, dout, q, k, v, o2, l2, dargs);
          assertClose(dq, dq2, `${be.name}: window equals the dense mask (dq)`, 1e-4, 1e-5);
          assertClose(dk, dk2, `${be.name}: window equals the dense mask (dk)`, 1e-4, 1e-5);
        }
      });
    }

    it('cross-entropy forward and backward (ignore index, gradient scale, aliased dlogits)', async () => {
      const r = rng(21);
      for (const [N, V] of [[1, 1], [3, 17], [65, 127], [7, 5003]] as const) {
        const logits = randn(r, N * V, -15, 15);
        const targets = randInts(r, N, V);
        if (N > 1) targets[1] = -100;
        const [l1, l2] = two(new Float32Array(N));
        await nat.crossEntropyForward(l1, logits, targets, N, V, -100);
        ref.crossEntropyForward(l2, logits, targets, N, V, -100);
        assertClose(l1, l2, `cross-entropy losses ${N}x${V}`, 1e-5, 1e-5);
        if (N > 1) assert.equal(l1[1], 0, 'ignored row has loss 0');
        const [d1, d2] = two(randn(r, N * V)); // garbage: the kernel writes
        await nat.crossEntropyBackward(d1, logits, targets, N, V, 0.25, -100);
        ref.crossEntropyBackward(d2, logits, targets, N, V, 0.25, -100);
        assertClose(d1, d2, `cross-entropy dlogits ${N}x${V}`, 1e-5, 1e-7);
        const [a1, a2] = two(logits);
        await nat.crossEntropyBackward(a1, a1, targets, N, V, 0.25, -100);
        ref.crossEntropyBackward(a2, a2, targets, N, V, 0.25, -100);
        assertClose(a1, a2, `cross-entropy dlogits aliased ${N}x${V}`, 1e-5, 1e-7);
        // the fused call: the same losses and dlogits as the pair above, bit for bit on the
        // native side, written in place over the logits as a training step does
        const [fl1, fl2] = two(new Float32Array(N).fill(NaN));
        const [f1, f2] = two(logits);
        await nat.crossEntropyLossGrad(fl1, f1, f1, targets, N, V, 0.25, -100);
        ref.crossEntropyLossGrad(fl2, f2, f2, targets, N, V, 0.25, -100);
        assert.deepEqual(fl1, l1, `fused cross-entropy losses ${N}x${V} equal the forward's`);
        assert.deepEqual(f1, a1, `fused cross-entropy dlogits ${N}x${V} equal the backward's`);
        assertClose(fl2, l2, `fused cross-entropy losses (ref) ${N}x${V}`, 0, 0);
        assertClose(f2, a2, `fused cross-entropy dlogits (ref) ${N}x${V}`, 0, 0);
        const g1 = randn(r, N * V); // a separate dlogits buffer leaves the logits alone
        const kept = logits.slice();
        await nat.crossEntropyLossGrad(fl1, g1, kept, targets, N, V, 0.25, -100);
        assert.deepEqual(kept, logits, 'fused cross-entropy: logits untouched when dlogits is another buffer');
        assert.deepEqual(g1, d1, `fused cross-entropy dlogits ${N}x${V} (separate buffer) equal the backward's`);
      }
    });

    it('adamw over several steps (weight decay, bias correction)', async () => {
      const r = rng(22);
      for (const n of SIZES) {
        const [p1, p2] = two(randn(r, n));
        const [m1, m2] = two(new Float32Array(n));
        const [v1, v2] = two(new Float32Array(n));
        for (let step = 1; step <= 3; step++) {
          const g = randn(r, n, -0.1, 0.1);
          const o = { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1, step };
          await nat.adamw(p1, g, m1, v1, o);
          ref.adamw(p2, g, m2, v2, o);
        }
        assertClose(p1, p2, `adamw param n=${n}`, 1e-5, 1e-6);
        assertClose(m1, m2, `adamw m n=${n}`, 1e-5, 1e-8);
        assertClose(v1, v2, `adamw v n=${n}`, 1e-5, 1e-10);
      }
    });
  });
}
