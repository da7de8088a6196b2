// Inference products on AMX-BF16 (native/src/gemm_amx.cc; docs/ARCHITECTURE.md §Decoding,
// "Prompt products on AMX"): the addon's gemmInference against an f64 oracle of the numerics it
// promises (A rounded to bf16; the weight exact for bf16 and f16, a quantized block's values
// d·q rounded to bf16; f32 sums), on shapes whose M, N and K are not multiples of the tiles, for
// each weight format; and generation with the products on against off on the bundled model.
// Skips, saying so, where the CPU or the kernel offers no AMX (the addon then runs gemm's own path,
// which gemm.test.ts covers).
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { getBackend, setBackend, withInferenceProducts } from '../../src/backend/index.js';
import { nativeBackend } from '../../src/backend/native/select.js';
import { loadAddon } from '../../src/backend/native/index.js';
import { generate } from '../../src/generate/index.js';
import { serializeGguf } from '../../src/io/index.js';
import { readTokenizerFiles } from '../../src/io/index.node.js';
import { modelToGguf } from '../../src/models/index.js';
import { loadModel } from '../../src/models/index.node.js';
import { blockSpec, quantize } from '../../src/io/gguf-blocks.js';
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from '../../src/tensor/half.js';
import { dequantizeBlocks } from '../../src/tensor/quant.js';
import { Rng } from '../../src/tensor/rng.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const addon = nativeBackend() ? (loadAddon().addon as unknown as Record<string, (...a: unknown[]) => unknown> | null) : null;
const amx = addon !== null && typeof addon['amxAvailable'] === 'function' && addon['amxAvailable']() === true;
const skip = amx ? false : 'no AMX-BF16 here (CPU, kernel permission or LORAKIT_AMX=0): gemmInference runs gemm’s own path, covered by gemm.test.ts';
// Q8_0 and Q4_0 weights on AMX-INT8 (A quantized per 32-block) when the mode is on (addon.amxInt8)
const amxInt8 = (on?: boolean): boolean => (on === undefined ? addon!['amxInt8']!() : addon!['amxInt8']!(on)) === true;

// deterministic values in [-1, 1)
function rng(seed: number): () => number {
  const r = new Rng(seed);
  return () => r.uniform(-1, 1);
}

// round to bf16, nearest even: A's values, and a quantized weight's (its one bf16 term)
const bf16Round = (x: number): number => bf16ToF32(f32ToBf16(x));

type WT = 'bf16' | 'f16' | 'q8_0' | 'q4_0';

// W [N, K] in the format, and the values the kernel multiplies (f64 oracle's weights)
function weight(N: number, K: number, dt: WT, r: () => number): { data: Uint16Array | Uint8Array; used: Float64Array } {
  const x = new Float32Array(N * K);
  for (let i = 0; i < x.length; i++) x[i] = r();
  const used = new Float64Array(N * K);
  if (dt === 'bf16' || dt === 'f16') {
    const h = new Uint16Array(N * K);
    for (let i = 0; i < h.length; i++) {
      h[i] = dt === 'bf16' ? f32ToBf16(x[i]!) : f32ToF16(x[i]!);
      used[i] = dt === 'bf16' ? bf16ToF32(h[i]!) : f16ToF32(h[i]!);
    }
    return { data: h, used };
  }
  const data = quantize(blockSpec(dt === 'q8_0' ? 'Q8_0' : 'Q4_0'), x);
  const deq = new Float32Array(N * K);
  dequantizeBlocks(dt, data, N * K, deq);
  for (let i = 0; i < deq.length; i++) used[i] = bf16Round(deq[i]!);
  return { data, used };
}

// round to nearest, ties to even (the kernel's vcvtps2dq)
function rne(x: number): number {
  const f = Math.floor(x), r = x - f;
  return r > 0.5 ? f + 1 : r < 0.5 ? f : f % 2 === 0 ? f : f + 1;
}

// f64 oracle of the AMX-INT8 product for one row of A against blocks (Q8_0 or Q4_0 bytes):
// A quantized per 32-block as llama.cpp's q8_0 activations (f32 arithmetic: d = max|a| / 127,
// q = rne(a · (127 / max|a|))), int dot products per block, scaled by d_a · d_w.
function quantA(a: Float32Array): { q: Int8Array; d: Float64Array } {
  const Kb = a.length / 32, q = new Int8Array(a.length), d = new Float64Array(Kb);
  for (let b = 0; b < Kb; b++) {
    let amax = 0;
    for (let k = 0; k < 32; k++) amax = Math.max(amax, Math.abs(a[32 * b + k]!));
    d[b] = Math.fround(amax / 127);
    const id = amax !== 0 ? Math.fround(127 / amax) : 0;
    for (let k = 0; k < 32; k++) q[32 * b + k] = Math.max(-128, Math.min(127, rne(Math.fround(a[32 * b + k]! * id))));
  }
  return { q, d };
}
function blocksInt(data: Uint8Array, N: number, K: number, dt: 'q8_0' | 'q4_0'): { q: Int8Array; d: Float64Array } {
  const Kb = K / 32, bb = dt === 'q8_0' ? 34 : 18, q = new Int8Array(N * K), d = new Float64Array(N * Kb);
  for (let n = 0; n < N; n++)
    for (let b = 0; b < Kb; b++) {
      const o = (n * Kb + b) * bb;
      d[n * Kb + b] = f16ToF32(data[o]! | (data[o + 1]! << 8));
      for (let j = 0; j < (dt === 'q8_0' ? 32 : 16); j++) {
        if (dt === 'q8_0') q[n * K + 32 * b + j] = (data[o + 2 + j]! << 24) >> 24;
        else {
          q[n * K + 32 * b + j] = (data[o + 2 + j]! & 15) - 8;
          q[n * K + 32 * b + j + 16] = (data[o + 2 + j]! >> 4) - 8;
        }
      }
    }
  return { q, d };
}

const CODE: Record<WT, number> = { f16: 1, bf16: 2, q8_0: 3, q4_0: 4 };

describe('AMX inference products (gemm_amx.cc)', { skip }, () => {
  it('match the f64 oracle of bf16-rounded A times the weight’s terms (Q8_0, Q4_0 on AMX-INT8: of A quantized per block), tails of M, N and K included', (t) => {
    let seed = 11;
    const shapes: [number, number, number][] = [[17, 33, 45], [33, 70, 200], [64, 130, 96], [100, 48, 768], [31, 16, 688], [40, 20, 32]];
    const was = amxInt8();
    const modes = [false];
    if (amxInt8(true)) modes.push(true);
    else t.diagnostic('no AMX-INT8 here: Q8_0 and Q4_0 checked on the bf16 terms only');
    try {
      for (const int8 of modes)
      for (const [M, N, Kraw] of shapes)
        for (const dt of (int8 ? ['q8_0', 'q4_0'] : ['bf16', 'f16', 'q8_0', 'q4_0']) as WT[]) {
          amxInt8(int8);
          const K = dt.startsWith('q') ? Math.ceil(Kraw / 32) * 32 : Kraw; // GGML rows are whole blocks
          const r = rng(seed++);
          const A = new Float32Array(M * K).map(() => r());
          const { data, used } = weight(N, K, dt, r);
          const acc = seed % 2 === 0, alpha = seed % 3 === 0 ? -0.5 : 1, ldc = N + 3;
          const C = new Float32Array(M * ldc).map(() => r());
          const before = C.slice();
          addon!['gemmInference']!(C, A, data, M, N, K, false, true, acc, alpha, 0, CODE[dt], K, K, ldc);
          let worst = 0;
          const onInt8 = int8 && (dt === 'q8_0' || dt === 'q4_0');
          const wq = onInt8 ? blocksInt(data as Uint8Array, N, K, dt as 'q8_0' | 'q4_0') : null;
          for (let i = 0; i < M; i++) {
            const aq = onInt8 ? quantA(A.subarray(i * K, (i + 1) * K)) : null;
            for (let j = 0; j < N; j++) {
              let s = 0, mag = 0;
              if (wq && aq) {
                for (let b = 0; b < K / 32; b++) {
                  let dot = 0;
                  for (let k = 32 * b; k < 32 * b + 32; k++) dot += aq.q[k]! * wq.q[j * K + k]!;
                  const term = aq.d[b]! * wq.d[j * (K / 32) + b]! * dot;
                  s += term;
                  mag += Math.abs(term);
                }
              } else {
                for (let k = 0; k < K; k++) s += bf16Round(A[i * K + k]!) * used[j * K + k]!;
                mag = Math.abs(s);
              }
              const want = alpha * s + (acc ? before[i * ldc + j]! : 0);
              const err = Math.abs(C[i * ldc + j]! - want) / (1 + Math.abs(alpha) * mag + Math.abs(want));
              if (err > worst) worst = err;
            }
            for (let j = N; j < ldc; j++) assert.equal(C[i * ldc + j], before[i * ldc + j], `${M}x${N}x${K} ${dt}: padding of C written`);
          }
          // f32 sums of K bf16 products: a few ulps per term at most; a lost or doubled term is ~1e-2 or more
          assert.ok(worst <= 2e-7 * K + 1e-6, `${M}x${N}x${K} ${dt}${onInt8 ? ' int8' : ''}${acc ? ' acc' : ''} alpha=${alpha}: relative error ${worst.toExponential(2)}`);
        }
    } finally {
      amxInt8(was);
    }
  });

  // greedy tokens with the products on and off, and the logits of one forward, on a model
  function onAgainstOff(model: ReturnType<typeof loadModel>, label: string, limit: number): void {
    const prev = getBackend();
    const be = nativeBackend()!;
    setBackend(be);
    try {
      const prompt = Array.from({ length: 40 }, (_, i) => 1 + ((i * 977 + 31) % 4000));
      const on = generate(model, [prompt], { maxNewTokens: 12, stopTokenIds: [] })[0]!.tokens;
      const setter = be.setInferenceProducts!;
      let off: number[];
      const ids = Int32Array.from(prompt);
      const exact = Float32Array.from(model.forward(ids, 1, ids.length, {}));
      const fast = Float32Array.from(withInferenceProducts(() => model.forward(ids, 1, ids.length, {})));
      // outside withInferenceProducts the products are exact again (training, evaluation)
      assert.deepEqual(Float32Array.from(model.forward(ids, 1, ids.length, {})), exact);
      try {
        (be as { setInferenceProducts?: (on: boolean) => boolean }).setInferenceProducts = () => false;
        off = generate(model, [prompt], { maxNewTokens: 12, stopTokenIds: [] })[0]!.tokens;
      } finally {
        (be as { setInferenceProducts?: (on: boolean) => boolean }).setInferenceProducts = setter;
      }
      assert.deepEqual(on, off, `${label}: greedy tokens`);
      let maxDiff = 0, differs = false;
      for (let i = 0; i < exact.length; i++) {
        maxDiff = Math.max(maxDiff, Math.abs(exact[i]! - fast[i]!));
        if (exact[i] !== fast[i]) differs = true;
      }
      assert.ok(differs, `${label}: the products on gave bit-identical logits: the AMX path was not taken`);
      assert.ok(maxDiff < limit, `${label}: logits differ by up to ${maxDiff.toExponential(2)}`);
    } finally {
      setBackend(prev);
    }
  }

  it('greedy generation on the bundled model (bf16) gives the same tokens with the products on and off; logits within 5e-2; off again after', () => {
    // measured 2.4e-2 (logits' rms 4.1): A rounded to bf16, as llama.cpp's BF16 products do
    onAgainstOff(loadModel(path.join(ROOT, 'models', 'brown-llama')), 'bf16', 5e-2);
  });

  it('the same on the bundled model as Q8_0 (one bf16 term per weight); logits within 8e-2', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lorakit-amx-'));
    try {
      const folder = path.join(ROOT, 'models', 'brown-llama');
      const f32 = loadModel(folder, { dtype: 'f32' });
      const file = path.join(dir, 'brown-q8_0.gguf');
      fs.writeFileSync(file, serializeGguf(modelToGguf({ config: f32.config as never, state: f32.stateDict(), tokenizer: readTokenizerFiles(folder)!, type: 'q8_0', name: 'brown' })));
      // measured 3.6e-2: A's rounding and the weight's (d·q to bf16), each ≤ 2⁻⁹ relative
      onAgainstOff(loadModel(file, { dtype: 'keep' }), 'q8_0', 8e-2);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
