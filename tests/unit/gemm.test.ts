// Native GEMM against the naive oracle (src/backend/ref/gemm.ts) on odd shapes, all four
// transpose combinations, accumulate, alpha, strided operands, f16/bf16 A and B, with 1
// and 2 threads. The CPU's best kernels (AVX-512 or AVX2) run in this process; the portable
// kernels run in a child process started with LORAKIT_NO_AVX2=1, and on an AVX-512 CPU the
// AVX2 ones in another with LORAKIT_NO_AVX512=1 (the same file, in child mode).
//
// Tolerance: the oracle sums in f64, the kernels in f32 with a different order, so the
// allowed error grows with K: |native − ref| ≤ (2e-6·K·|alpha| + 1e-5) · (1 + |ref|).
// A missing or doubled term is off by ~0.1..1 and fails.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { nativeBackend, nativeError } from '../../src/backend/native/select.js';
import { loadAddon } from '../../src/backend/native/index.js';
import { gemm as refGemm } from '../../src/backend/ref/gemm.js';
import type { GemmArgs } from '../../src/backend/types.js';
import { f32ToBf16, f32ToF16 } from '../../src/tensor/half.js';
import { blockSpec, quantize } from '../../src/io/gguf-blocks.js';

const CHILD = process.env.LORAKIT_GEMM_TEST_CHILD ?? ''; // '', 'portable' or 'avx2'
type DT = 'f32' | 'f16' | 'bf16' | 'q8_0';

// deterministic values in [-1, 1)
function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 2 ** 31 - 1;
  };
}

function operand(n: number, dt: Exclude<DT, 'q8_0'>, r: () => number): Float32Array | Uint16Array {
  if (dt === 'f32') {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) a[i] = r();
    return a;
  }
  const h = new Uint16Array(n);
  const conv = dt === 'f16' ? f32ToF16 : f32ToBf16;
  for (let i = 0; i < n; i++) h[i] = conv(r());
  return h;
}

interface Case {
  M: number;
  N: number;
  K: number;
  transA?: boolean;
  transB?: boolean;
  accumulate?: boolean;
  alpha?: number;
  aDtype?: DT;
  bDtype?: DT;
  /** extra elements per row of A, B, C (strided operands) */
  pad?: [number, number, number];
}

function label(c: Case): string {
  const t = `${c.transA ? 'T' : 'N'}${c.transB ? 'T' : 'N'}`;
  const extra = [c.accumulate ? 'acc' : '', c.alpha !== undefined ? `alpha=${c.alpha}` : '', c.aDtype && c.aDtype !== 'f32' ? `A:${c.aDtype}` : '', c.bDtype && c.bDtype !== 'f32' ? `B:${c.bDtype}` : '', c.pad ? `pad=${c.pad.join('/')}` : '']
    .filter(Boolean)
    .join(' ');
  return `${c.M}x${c.N}x${c.K} ${t}${extra ? ' ' + extra : ''}`;
}

const oracle = new Map<string, Float32Array>();

// Runs one case through the native backend and the oracle; checks every element of C,
// the padding columns of C included (they must stay as they were).
function check(c: Case, seed: number): void {
  const nat = nativeBackend()!;
  const { M, N, K } = c;
  const [pa, pb, pc] = c.pad ?? [0, 0, 0];
  const ta = c.transA ?? false;
  const tb = c.transB ?? false;
  const lda = (ta ? M : K) + pa;
  const ldb = (tb ? K : N) + pb;
  const ldc = N + pc;
  const r = rng(seed);
  const aDt = c.aDtype ?? 'f32';
  const bDt = c.bDtype ?? 'f32';
  if (aDt === 'q8_0') throw new Error('check: a quantized A is not a GEMM operand');
  const a = operand((ta ? K : M) * lda, aDt, r);
  // Q8_0: rows of whole 32-value blocks
  const b = bDt === 'q8_0' ? quantize(blockSpec('Q8_0'), operand((tb ? N : K) * ldb, 'f32', r) as Float32Array) : operand((tb ? N : K) * ldb, bDt, r);
  const c0 = new Float32Array(M * ldc);
  for (let i = 0; i < c0.length; i++) c0[i] = r();
  if (!c.accumulate) {
    // C must be written, not read: NaN anywhere in the computed part would leak through
    for (let i = 0; i < M; i++) c0.fill(Number.NaN, i * ldc, i * ldc + N);
  }
  const args: GemmArgs = { M, N, K, transA: ta, transB: tb, accumulate: c.accumulate ?? false, alpha: c.alpha ?? 1, aDtype: aDt, bDtype: bDt, lda, ldb, ldc };
  // the oracle's answer does not depend on the thread count: compute it once per case
  const key = `${label(c)} seed=${seed}`;
  let cached = oracle.get(key);
  if (!cached) {
    cached = c0.slice();
    refGemm(cached, a, b as Parameters<typeof refGemm>[2], args); // the reference reads blocks too (bDtype)
    oracle.set(key, cached);
  }
  const want: Float32Array = cached;
  const got = c0.slice();
  nat.gemm(got, a, b, args);
  const tol = 2e-6 * K * Math.abs(c.alpha ?? 1) + 1e-5;
  for (let i = 0; i < got.length; i++) {
    const w = want[i]!;
    const g = got[i]!;
    if (Number.isNaN(w)) {
      // only a padding element of a non-accumulating case could be NaN, and it is not: c0 padding is finite
      assert.ok(Number.isNaN(g), `${label(c)}: C[${i}] want NaN, got ${g}`);
      continue;
    }
    const err = Math.abs(g - w);
    if (!(err <= tol * (1 + Math.abs(w)))) {
      assert.fail(`${label(c)}: C[${Math.floor(i / ldc)}, ${i % ldc}] = ${g}, want ${w} (error ${err.toExponential(2)} > ${(tol * (1 + Math.abs(w))).toExponential(2)})`);
    }
  }
}

const TRANS: [boolean, boolean][] = [
  [false, false],
  [true, false],
  [false, true],
  [true, true],
];

// small and odd shapes: every transpose combination, with and without accumulate
const SMALL: [number, number, number][] = [
  [1, 1, 1],
  [1, 17, 3],
  [3, 1, 65],
  [17, 3, 1],
  [2, 5, 7],
  [17, 65, 127],
  [65, 127, 17],
  [127, 17, 65],
  [13, 8, 300], // thin N = 8 (the 8×8 kernel), M not a multiple of 6 or 8
  [32, 8, 768], // the tiny LoRA product x·Aᵀ
  [9, 24, 40],
  [50, 40, 10], // short K
  [8, 200, 130], // few rows, B used in place
];

// larger than the cache blocks (MC 144, KC at most 512 in equal blocks, NC 3072): several blocks per loop
const LARGE: [number, number, number][] = [
  [300, 700, 129],
  [300, 129, 700], // K in two blocks of 350
  [40, 3100, 40],
  [60, 50, 1100], // K in three blocks, the last one shorter (367, 367, 366)
  [45, 53, 600], // the AVX-512 tile's edges: 9 of 12 rows, 21 of 32 columns (a partial second zmm)
  [300, 16, 700], // LoRA's dB = GLᵀ·h: transposed A with long rows, direct (a short strided pass)
  [300, 24, 700], // the same with N > 16: packed (not direct) over a long K
  [16, 300, 700], // LoRA's dA = dhᵀ·x: a B read in place with long rows, packed over a long K
];

function registerAll(): void {
  const addon = loadAddon().addon!;
  const before = addon.threads();
  for (const threads of [1, 2]) {
    describe(`gemm, ${threads} thread(s)`, () => {
      it('sets the thread count', () => {
        addon.threads(threads);
        assert.equal(addon.threads(), Math.min(threads, availableParallelism())); // never more than the cores
      });
      it('small and odd shapes, all transposes, accumulate', () => {
        let seed = 1;
        for (const [M, N, K] of SMALL)
          for (const [transA, transB] of TRANS)
            for (const accumulate of [false, true]) check({ M, N, K, transA, transB, accumulate, alpha: accumulate ? -0.75 : 1 }, seed++);
      });
      it('shapes larger than the cache blocks, all transposes', () => {
        let seed = 100;
        for (const [M, N, K] of LARGE)
          for (const [transA, transB] of TRANS) check({ M, N, K, transA, transB, accumulate: seed % 2 === 0, alpha: 1.5 }, seed++);
      });
      it('f16 and bf16 operands (widened while packing)', () => {
        let seed = 200;
        for (const [M, N, K] of [[17, 65, 127], [13, 8, 300], [150, 70, 260], [8, 200, 130]] as [number, number, number][])
          for (const [transA, transB] of TRANS)
            for (const [aDtype, bDtype] of [['f32', 'bf16'], ['f32', 'f16'], ['bf16', 'f32'], ['f16', 'bf16']] as [DT, DT][])
              check({ M, N, K, transA, transB, aDtype, bDtype, accumulate: seed % 3 === 0 }, seed++);
      });
      it('few rows against a [N, K] weight, f32 and half (gemv.cc: the weight rows split among the threads)', () => {
        let seed = 250;
        for (const [M, N, K] of [[1, 2048, 768], [2, 515, 131], [5, 300, 257], [16, 130, 260]] as [number, number, number][])
          for (const bDtype of ['f32', 'bf16', 'f16'] as DT[]) check({ M, N, K, transB: true, bDtype, accumulate: seed % 2 === 0, alpha: seed % 3 ? 1 : -0.5, ...(seed % 4 === 1 ? { pad: [3, 5, 7] as [number, number, number] } : {}) }, seed++);
      });
      it('few rows against a Q8_0 weight (gemv.cc: fused on AVX-512, dequantized rows on AVX2 and the portable kernels)', () => {
        let seed = 270;
        for (const [M, N, K] of [[1, 2048, 768], [2, 67, 256], [5, 300, 288], [16, 130, 64]] as [number, number, number][])
          check({ M, N, K, transB: true, bDtype: 'q8_0', accumulate: seed % 2 === 0, alpha: seed % 3 ? 1 : -0.5, ...(seed % 2 === 1 ? { pad: [3, 32, 7] as [number, number, number] } : {}) }, seed++);
      });
      it('strided lda/ldb/ldc (padding of C untouched)', () => {
        let seed = 300;
        for (const [M, N, K] of [[17, 65, 127], [13, 8, 300], [32, 8, 768], [150, 70, 260], [8, 200, 130]] as [number, number, number][])
          for (const [transA, transB] of TRANS)
            for (const bDtype of ['f32', 'bf16'] as DT[]) check({ M, N, K, transA, transB, bDtype, pad: [3, 5, 7], accumulate: seed % 2 === 1, alpha: 0.5 }, seed++);
      });
      it('many back-to-back calls on the pool give the same answer every time', () => {
        // 2·66·40·100 flops: above the threshold for threading, so each call is one pool job
        const nat = nativeBackend()!;
        const r = rng(7);
        const M = 66, N = 40, K = 100;
        const a = operand(M * K, 'f32', r) as Float32Array;
        const b = operand(K * N, 'f32', r) as Float32Array;
        const first = new Float32Array(M * N);
        nat.gemm(first, a, b, { M, N, K });
        const c = new Float32Array(M * N);
        for (let it = 0; it < 3000; it++) {
          c.fill(Number.NaN);
          nat.gemm(c, a, b, { M, N, K });
          if (it % 50 === 0 || it === 2999) assert.deepEqual(c, first, `call ${it} differs from the first`);
        }
      });
      it('empty dimensions: K = 0 writes zeros (or keeps C when accumulating); M or N = 0 does nothing', () => {
        const nat = nativeBackend()!;
        const a = new Float32Array(4);
        const b = new Float32Array(4);
        const c = new Float32Array(6).fill(Number.NaN);
        nat.gemm(c, a, b, { M: 2, N: 3, K: 0 });
        assert.deepEqual([...c], [0, 0, 0, 0, 0, 0]);
        c.fill(2);
        nat.gemm(c, a, b, { M: 2, N: 3, K: 0, accumulate: true });
        assert.deepEqual([...c], [2, 2, 2, 2, 2, 2]);
        nat.gemm(c, a, b, { M: 0, N: 3, K: 4 });
        nat.gemm(c, a, b, { M: 2, N: 0, K: 4 });
        assert.deepEqual([...c], [2, 2, 2, 2, 2, 2]);
      });
      it('rejects an operand whose array kind does not match its dtype', () => {
        const c = new Float32Array(4);
        assert.throws(() => addon.gemm(c, new Uint16Array(4), new Float32Array(4), 2, 2, 2, false, false, false, 1, 0, 0, 2, 2, 2), /argument a/);
        assert.throws(() => addon.gemm(c, new Float32Array(4), new Float32Array(4), 2, 2, 2, false, false, false, 1, 0, 2, 2, 2, 2), /argument b/);
      });
    });
  }
  describe('gemm, restore the thread count', () => {
    it('restores', () => {
      addon.threads(before);
      assert.equal(addon.threads(), before);
    });
  });
}

describe('reference gemm, few rows against a [N, K] weight', () => {
  it('reads the weight rows in place with the same f64 sums as the transposed copy (bit-identical)', () => {
    const r = rng(41);
    for (const [M, N, K, bDtype] of [[1, 37, 53, 'f32'], [5, 20, 9, 'bf16'], [16, 7, 130, 'f16']] as [number, number, number, Exclude<DT, 'q8_0'>][]) {
      const a = operand(17 * K, 'f32', r) as Float32Array;
      const b = operand(N * K, bDtype, r);
      const few = new Float32Array(17 * N).fill(1);
      const copied = few.slice();
      refGemm(few, a, b, { M, N, K, transB: true, bDtype, alpha: 0.5, accumulate: true });
      refGemm(copied, a, b, { M: 17, N, K, transB: true, bDtype, alpha: 0.5, accumulate: true }); // 17 rows: the copy path
      assert.deepEqual(few.subarray(0, M * N), copied.subarray(0, M * N), `${M}x${N}x${K} ${bDtype}`);
    }
  });
});

const nat = nativeBackend();
if (!nat) {
  if (process.env.CI) {
    it('native addon loads (required under CI)', () => assert.fail(`the native addon did not load: ${nativeError()}`));
  } else {
    it('native gemm', { skip: `native addon not loaded: ${nativeError()}` }, () => {});
  }
} else {
  const addon = loadAddon().addon!;
  // CHILD: 'portable' (LORAKIT_NO_AVX2=1) or 'avx2' (LORAKIT_NO_AVX512=1 on an AVX-512 CPU)
  const info = addon.cpuInfo();
  describe('gemm kernel set', () => {
    it(CHILD ? `is the ${CHILD} one in the child` : 'is AVX-512 or AVX2 when the CPU has them', () => {
      if (CHILD === 'portable') assert.equal(addon.gemmImpl(), 'sse2');
      else if (CHILD === 'avx2') assert.equal(addon.gemmImpl(), 'avx2');
      else if (info.avx512f) assert.equal(addon.gemmImpl(), 'avx512');
      else if (nat.avx2fma) assert.equal(addon.gemmImpl(), 'avx2');
      else assert.equal(addon.gemmImpl(), 'sse2');
    });
  });
  registerAll();
  if (!CHILD) {
    const children: [string, string, NodeJS.ProcessEnv][] = [['portable', 'LORAKIT_NO_AVX2=1', { LORAKIT_NO_AVX2: '1' }]];
    // on an AVX-512 CPU the packed path runs the 12×32 kernel here, so the AVX2 one gets its own child
    if (info.avx512f) children.push(['avx2', 'LORAKIT_NO_AVX512=1', { LORAKIT_NO_AVX512: '1' }]);
    for (const [kind, flag, extra] of children) {
      describe(`gemm, ${kind} kernels`, () => {
        it(`pass the same checks in a child process with ${flag}`, () => {
          const env: NodeJS.ProcessEnv = { ...process.env, ...extra, LORAKIT_GEMM_TEST_CHILD: kind };
          delete env.NODE_TEST_CONTEXT; // the child reports on its own, not to this runner
          const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url)], { env, encoding: 'utf8', timeout: 120_000 });
          assert.equal(r.status, 0, `${kind} gemm checks failed (status ${r.status ?? r.signal}):\n${r.stdout}\n${r.stderr}`);
          assert.match(r.stdout, /# fail 0/);
          assert.doesNotMatch(r.stdout, /# pass 0\b/);
        });
      });
    }
  }
}
