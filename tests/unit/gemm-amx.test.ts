// Inference products on AMX-BF16 (native/src/gemm_amx.cc; docs/ARCHITECTURE.md §Decoding,
// "Prompt products on AMX"): the addon's gemmInference against an f64 oracle of the numerics it
// promises (A rounded to bf16; the weight exact for bf16 and f16, a quantized block's values
// d·q rounded to bf16; f32 sums), on shapes whose M, N and K are not multiples of the tiles, for
// each weight format (bf16, f16, Q8_0, Q4_0, Q4_K, Q6_K); and generation with the products on
// against off on the bundled model.
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

// deterministic values in [-1, 1)
function rng(seed: number): () => number {
  const r = new Rng(seed);
  return () => r.uniform(-1, 1);
}

// round to bf16, nearest even: A's values, and a quantized weight's (its one bf16 term)
const bf16Round = (x: number): number => bf16ToF32(f32ToBf16(x));

type WT = 'bf16' | 'f16' | 'q8_0' | 'q4_0' | 'q4_k' | 'q6_k';

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
  let data: Uint8Array;
  if (dt === 'q8_0' || dt === 'q4_0') data = quantize(blockSpec(dt === 'q8_0' ? 'Q8_0' : 'Q4_0'), x);
  else {
    // K-quant blocks from random bytes (quantize writes none), their f16 scales set to small finite values
    const bb = dt === 'q4_k' ? 144 : 210, nb = (N * K) / 256;
    data = Uint8Array.from({ length: nb * bb }, () => Math.floor((r() + 1) * 128) & 255);
    const dv = new DataView(data.buffer);
    for (let b = 0; b < nb; b++)
      for (const o of dt === 'q4_k' ? [0, 2] : [208]) dv.setUint16(b * bb + o, f32ToF16(0.001 + 0.01 * Math.abs(r())), true);
  }
  const deq = new Float32Array(N * K);
  dequantizeBlocks(dt, data, N * K, deq);
  for (let i = 0; i < deq.length; i++) used[i] = bf16Round(deq[i]!);
  return { data, used };
}

const CODE: Record<WT, number> = { f16: 1, bf16: 2, q8_0: 3, q4_0: 4, q4_k: 5, q6_k: 6 };

describe('AMX inference products (gemm_amx.cc)', { skip }, () => {
  it('match the f64 oracle of bf16-rounded A times the weight’s terms, tails of M, N and K included', () => {
    let seed = 11;
    const shapes: [number, number, number][] = [[17, 33, 45], [33, 70, 200], [64, 130, 96], [100, 48, 768], [31, 16, 688], [40, 20, 32]];
    for (const [M, N, Kraw] of shapes)
      for (const dt of ['bf16', 'f16', 'q8_0', 'q4_0', 'q4_k', 'q6_k'] as WT[]) {
        const K = dt.startsWith('q') ? Math.ceil(Kraw / (dt.endsWith('_k') ? 256 : 32)) * (dt.endsWith('_k') ? 256 : 32) : Kraw; // GGML rows are whole blocks
        const r = rng(seed++);
        const A = new Float32Array(M * K).map(() => r());
        const { data, used } = weight(N, K, dt, r);
        const acc = seed % 2 === 0, alpha = seed % 3 === 0 ? -0.5 : 1, ldc = N + 3;
        const C = new Float32Array(M * ldc).map(() => r());
        const before = C.slice();
        addon!['gemmInference']!(C, A, data, M, N, K, false, true, acc, alpha, 0, CODE[dt], K, K, ldc);
        let worst = 0;
        for (let i = 0; i < M; i++) {
          for (let j = 0; j < N; j++) {
            let s = 0;
            for (let k = 0; k < K; k++) s += bf16Round(A[i * K + k]!) * used[j * K + k]!;
            const want = alpha * s + (acc ? before[i * ldc + j]! : 0);
            const err = Math.abs(C[i * ldc + j]! - want) / (1 + Math.abs(alpha * s) + Math.abs(want));
            if (err > worst) worst = err;
          }
          for (let j = N; j < ldc; j++) assert.equal(C[i * ldc + j], before[i * ldc + j], `${M}x${N}x${K} ${dt}: padding of C written`);
        }
        // f32 sums of K bf16 products: a few ulps per term at most; a lost or doubled term is ~1e-2 or more
        assert.ok(worst <= 2e-7 * K + 1e-6, `${M}x${N}x${K} ${dt}${acc ? ' acc' : ''} alpha=${alpha}: relative error ${worst.toExponential(2)}`);
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
