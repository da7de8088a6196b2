// Inference attention on AMX-BF16 (native/src/attention_amx.cc; docs/ARCHITECTURE.md §Decoding,
// "Prompt products on AMX"): the addon's attentionInference against an f64 oracle of the
// numerics it promises (q, k, v rounded to bf16, exact softmax; p's own rounding to bf16 is
// the tolerance), over head counts, grouped-query heads, query and key lengths that are not
// multiples of the tiles, a KV-cache offset, a sliding window, padding and full masks, a row
// that sees no key, and head sizes with tails; shapes it does not take (a lone query row, 16
// rows) answer false and write nothing; the backend routes there only inside
// withInferenceProducts. Skips, saying so, where the CPU or the kernel offers no AMX.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { getBackend, setBackend, withInferenceProducts } from '../../src/backend/index.js';
import { nativeBackend } from '../../src/backend/native/select.js';
import { loadAddon } from '../../src/backend/native/index.js';
import type { AttentionArgs } from '../../src/backend/types.js';
import { bf16ToF32, f32ToBf16 } from '../../src/tensor/half.js';
import { Rng } from '../../src/tensor/rng.js';

const addon = nativeBackend() ? (loadAddon().addon as unknown as Record<string, (...a: unknown[]) => unknown> | null) : null;
const on = addon !== null && typeof addon['amxAttentionAvailable'] === 'function' && addon['amxAttentionAvailable']() === true;
const skip = on ? false : 'no AMX-BF16 here (CPU, kernel permission, LORAKIT_AMX=0) or LORAKIT_AMX_ATTENTION=0: attentionInference declines and attentionForward runs, covered by kernels.test.ts';

const bf = (x: number): number => bf16ToF32(f32ToBf16(x));
const dims = (g: AttentionArgs): Float64Array => Float64Array.of(g.B, g.T, g.S, g.Hq, g.Hkv, g.D, g.causal ? 1 : 0, g.scale, g.window ?? 0);

interface Case extends AttentionArgs {
  name: string;
  maskKind?: 'pad' | 'full' | 'hideRow';
}

// f64 oracle on bf16-rounded q, k, v: out[B,T,Hq·D], lse[B,Hq,T]
function oracle(g: AttentionArgs, q: Float32Array, k: Float32Array, v: Float32Array): { out: Float64Array; lse: Float64Array } {
  const { B, T, S, Hq, Hkv, D } = g;
  const out = new Float64Array(B * T * Hq * D), lse = new Float64Array(B * Hq * T);
  const G = Hq / Hkv, full = g.mask && g.mask.length === B * T * S && T > 1;
  const sc = new Float64Array(S);
  for (let b = 0; b < B; b++)
    for (let h = 0; h < Hq; h++)
      for (let t = 0; t < T; t++) {
        const hk = Math.floor(h / G), pos = t + S - T;
        let mx = -Infinity;
        for (let s = 0; s < S; s++) {
          const visible = (!g.causal || s <= pos) && (!g.window || pos - s < g.window);
          if (!visible) { sc[s] = -Infinity; continue; }
          let dot = 0;
          for (let j = 0; j < D; j++) dot += bf(q[((b * T + t) * Hq + h) * D + j]!) * bf(k[((b * S + s) * Hkv + hk) * D + j]!);
          sc[s] = g.scale * dot + (g.mask ? g.mask[full ? (b * T + t) * S + s : b * S + s]! : 0);
          mx = Math.max(mx, sc[s]!);
        }
        const o = ((b * T + t) * Hq + h) * D;
        if (mx === -Infinity) { lse[(b * Hq + h) * T + t] = -Infinity; continue; }
        let l = 0;
        for (let s = 0; s < S; s++) {
          if (sc[s] === -Infinity) continue;
          const p = Math.exp(sc[s]! - mx);
          l += p;
          for (let j = 0; j < D; j++) out[o + j] += p * bf(v[((b * S + s) * Hkv + hk) * D + j]!);
        }
        for (let j = 0; j < D; j++) out[o + j] /= l;
        lse[(b * Hq + h) * T + t] = mx + Math.log(l);
      }
  return { out, lse };
}

function inputs(c: Case, seed: number): { q: Float32Array; k: Float32Array; v: Float32Array; mask: Float32Array | null } {
  const r = new Rng(seed);
  const u = (n: number): Float32Array => Float32Array.from({ length: n }, () => r.uniform(-1, 1));
  const q = u(c.B * c.T * c.Hq * c.D), k = u(c.B * c.S * c.Hkv * c.D), v = u(c.B * c.S * c.Hkv * c.D);
  let mask: Float32Array | null = null;
  if (c.maskKind === 'pad') {
    // batch b hides its first 3b + 1 keys (left padding) and one more in the middle
    mask = new Float32Array(c.B * c.S);
    for (let b = 0; b < c.B; b++) {
      for (let s = 0; s < 3 * b + 1; s++) mask[b * c.S + s] = -Infinity;
      mask[b * c.S + Math.floor(c.S / 2)] = -Infinity;
    }
  } else if (c.maskKind === 'full') {
    mask = Float32Array.from({ length: c.B * c.T * c.S }, (_, i) => (i % 7 === 3 ? -Infinity : r.uniform(-2, 2)));
  } else if (c.maskKind === 'hideRow') {
    // batch 1 sees no key at all: its rows give zeros and lse = −∞
    mask = new Float32Array(c.B * c.S);
    for (let s = 0; s < c.S; s++) mask[c.S + s] = -Infinity;
  }
  return { q, k, v, mask };
}

const cases: Case[] = [
  { name: 'MHA, causal, T = S = 37', B: 1, T: 37, S: 37, Hq: 4, Hkv: 4, D: 64, causal: true, scale: 0.5 },
  { name: 'GQA 6/2, causal, cache offset 33', B: 2, T: 50, S: 83, Hq: 6, Hkv: 2, D: 64, causal: true, scale: 0.4 },
  { name: 'GQA 2/1, D = 40 (tails of D), T = 17', B: 1, T: 17, S: 17, Hq: 2, Hkv: 1, D: 40, causal: true, scale: 0.6 },
  { name: 'D = 128, padding mask, cache offset 30', B: 2, T: 40, S: 70, Hq: 4, Hkv: 2, D: 128, causal: true, scale: 0.3, maskKind: 'pad' },
  { name: 'sliding window 20, cache offset 67', B: 1, T: 33, S: 100, Hq: 3, Hkv: 3, D: 32, causal: true, scale: 0.5, window: 20 },
  { name: 'not causal, full mask, D = 80', B: 2, T: 20, S: 45, Hq: 2, Hkv: 1, D: 80, causal: false, scale: 0.4, maskKind: 'full' },
  { name: 'a batch that sees no key', B: 2, T: 18, S: 18, Hq: 2, Hkv: 2, D: 64, causal: true, scale: 0.5, maskKind: 'hideRow' },
  { name: 'peaked scores (the running max moves; the accumulator is rescaled)', B: 1, T: 70, S: 200, Hq: 2, Hkv: 1, D: 64, causal: true, scale: 2.5 },
  { name: 'many keys: T = 130, S = 300', B: 1, T: 130, S: 300, Hq: 2, Hkv: 1, D: 64, causal: true, scale: 0.25 },
];

describe('AMX inference attention (attention_amx.cc)', { skip }, () => {
  it('matches the f64 oracle of bf16-rounded q, k, v: out within p’s bf16 rounding, lse within f32 sums', (t) => {
    let seed = 101;
    for (const c of cases) {
      const { q, k, v, mask } = inputs(c, seed++);
      const g: AttentionArgs = { ...c, mask };
      const out = new Float32Array(c.B * c.T * c.Hq * c.D).fill(NaN), lse = new Float32Array(c.B * c.Hq * c.T).fill(NaN);
      assert.equal(addon!['attentionInference']!(out, lse, q, k, v, mask, dims(g)), true, `${c.name}: declined`);
      const want = oracle(g, q, k, v);
      // p rounded to bf16 (relative 2^-8 at most) moves out by at most 2^-8 · max|v| = 3.9e-3; a lost,
      // doubled or misplaced key moves lse by its weight (≥ 1e-3 at these scales; measured ≤ 8e-8 relative)
      let worstOut = 0, worstLse = 0;
      for (let i = 0; i < out.length; i++) worstOut = Math.max(worstOut, Math.abs(out[i]! - want.out[i]!));
      for (let i = 0; i < lse.length; i++) {
        if (want.lse[i] === -Infinity) {
          assert.equal(lse[i], -Infinity, `${c.name}: lse[${i}] of a row that sees no key`);
          continue;
        }
        worstLse = Math.max(worstLse, Math.abs(lse[i]! - want.lse[i]!) / (1 + Math.abs(want.lse[i]!)));
      }
      t.diagnostic(`${c.name}: max |Δout| ${worstOut.toExponential(2)}, max relative |Δlse| ${worstLse.toExponential(2)}`);
      assert.ok(worstOut <= 4e-3, `${c.name}: out differs by ${worstOut.toExponential(2)}`);
      assert.ok(worstLse <= 1e-6, `${c.name}: lse differs by ${worstLse.toExponential(2)} (relative)`);
      if (c.maskKind === 'hideRow')
        for (let i = c.T * c.Hq * c.D; i < out.length; i++) assert.equal(out[i], 0, `${c.name}: out of a row that sees no key`);
    }
  });

  it('declines a lone query row and 16 rows (the decode path keeps attentionForward), writing nothing', () => {
    for (const T of [1, 16]) {
      const g: AttentionArgs = { B: 1, T, S: 40, Hq: 2, Hkv: 2, D: 64, causal: true, scale: 0.125 };
      const { q, k, v } = inputs({ ...g, name: '' }, 7);
      const out = new Float32Array(T * 2 * 64).fill(5), lse = new Float32Array(2 * T).fill(5);
      assert.equal(addon!['attentionInference']!(out, lse, q, k, v, null, dims(g)), false);
      assert.ok(out.every((x) => x === 5) && lse.every((x) => x === 5));
    }
  });

  it('the backend takes it only inside withInferenceProducts; outside, attentionForward is bit-exact f32', () => {
    const prev = getBackend();
    const be = nativeBackend()!;
    setBackend(be);
    try {
      const c = cases[1]!;
      const { q, k, v } = inputs(c, 3);
      const run = (): Float32Array => {
        const out = new Float32Array(c.B * c.T * c.Hq * c.D), lse = new Float32Array(c.B * c.Hq * c.T);
        getBackend().attentionForward(out, lse, q, k, v, c);
        return out;
      };
      const exact = run();
      const direct = new Float32Array(exact.length), lse = new Float32Array(c.B * c.Hq * c.T);
      addon!['attentionForward']!(direct, lse, q, k, v, null, dims(c));
      assert.deepEqual(exact, direct, 'outside withInferenceProducts the backend runs attentionForward');
      const fast = withInferenceProducts(run);
      const amxOut = new Float32Array(exact.length);
      addon!['attentionInference']!(amxOut, lse, q, k, v, null, dims(c));
      assert.deepEqual(fast, amxOut, 'inside withInferenceProducts the backend runs attentionInference');
      assert.notDeepEqual(fast, exact);
      assert.deepEqual(run(), exact, 'exact again after withInferenceProducts');
    } finally {
      setBackend(prev);
    }
  });
});
