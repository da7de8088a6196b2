// Injection, several adapters, per-row adapters, weighted adapters and merging on tiny
// llama and GPT-2 models built from config objects.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createModel } from '../../src/models/load.js';
import type { DecoderLM } from '../../src/models/decoder.js';
import { lossAndBackward } from '../../src/models/causal-lm.js';
import { Linear } from '../../src/nn/linear.js';
import { Rng } from '../../src/tensor/rng.js';
import { LoraLinear } from '../../src/lora/lora-linear.js';
import { getPeftModel, PeftModel } from '../../src/lora/peft-model.js';
import type { LoraConfigInput } from '../../src/lora/config.js';
import { addWeightedAdapter } from '../../src/lora/weighted.js';

const LLAMA = {
  model_type: 'llama',
  hidden_size: 16,
  intermediate_size: 24,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  num_hidden_layers: 3,
  vocab_size: 40,
  max_position_embeddings: 64,
  rms_norm_eps: 1e-5,
  rope_theta: 10000,
  tie_word_embeddings: false,
  initializer_range: 0.2,
};

const GPT2 = {
  model_type: 'gpt2',
  n_embd: 16,
  n_head: 2,
  n_layer: 2,
  n_positions: 32,
  vocab_size: 40,
  layer_norm_epsilon: 1e-5,
  activation_function: 'gelu_new',
  initializer_range: 0.2,
};

function llama(seed = 0): DecoderLM {
  return createModel(LLAMA, { seed });
}

function ids(B: number, T: number, seed = 3): Int32Array {
  const r = new Rng(seed);
  return Int32Array.from({ length: B * T }, () => r.nextInt(40));
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** Gives every adapter's B random values so adapters change the output. */
function randomizeB(peft: PeftModel, name: string, seed: number, scale = 0.3): void {
  const r = new Rng(seed);
  for (const l of peft.loraLayers.values()) {
    if (!l.hasAdapter(name)) continue;
    const B = l.adapter(name).B.data;
    for (let i = 0; i < B.length; i++) B[i] = r.normal(0, scale);
  }
}

function logits(model: DecoderLM, x: Int32Array, B: number, T: number): Float32Array {
  return model.forward(x, B, T).slice();
}

function withWarnings<T>(fn: () => T): { result: T; warnings: string[] } {
  const warnings: string[] = [];
  const orig = process.emitWarning;
  process.emitWarning = ((w: string | Error) => {
    warnings.push(typeof w === 'string' ? w : w.message);
  }) as typeof process.emitWarning;
  try {
    return { result: fn(), warnings };
  } finally {
    process.emitWarning = orig;
  }
}

describe('getPeftModel: injection', () => {
  it('wraps q_proj and v_proj of every layer, freezes the base, and a fresh adapter changes nothing', () => {
    const model = llama();
    const x = ids(2, 5);
    const base = logits(model, x, 2, 5);
    const peft = getPeftModel(model, { r: 4, lora_alpha: 8, target_modules: ['q_proj', 'v_proj'] });
    assert.deepEqual([...peft.loraLayers.keys()], [0, 1, 2].flatMap((i) => [`model.layers.${i}.self_attn.q_proj`, `model.layers.${i}.self_attn.v_proj`]));
    assert.ok(model.getModule('model.layers.0.self_attn.q_proj') instanceof LoraLinear);
    assert.ok(model.getModule('model.layers.0.self_attn.k_proj') instanceof Linear);
    const trainable = peft.trainableParameters().map(([n]) => n);
    assert.ok(trainable.length === 12 && trainable.every((n) => /\.lora_[AB]\.default\.weight$/.test(n)), trainable.join(', '));
    assert.deepEqual(logits(model, x, 2, 5), base);
  });

  it('prints trainable parameters exactly as PEFT', () => {
    const peft = getPeftModel(llama(), { r: 4, lora_alpha: 8, target_modules: ['q_proj', 'v_proj'] });
    // q: 16→16, v: 16→8 (2 kv heads × 4); per layer 4·(16+16) + 4·(16+8) = 224; 3 layers
    const trainable = 3 * 224;
    let base = 0;
    for (const p of llama().parameters()) base += p.value.size;
    const lines: string[] = [];
    const orig = console.log;
    console.log = (s: string) => lines.push(s);
    try {
      peft.printTrainableParameters();
    } finally {
      console.log = orig;
    }
    const all = base + trainable;
    assert.equal(lines[0], `trainable params: ${trainable} || all params: ${all.toLocaleString('en-US')} || trainable%: ${((100 * trainable) / all).toFixed(4)}`);
    assert.match(lines[0]!, /^trainable params: 672 \|\| all params: \d{1,3}(,\d{3})+ \|\| trainable%: \d+\.\d{4}$/);
  });

  it('matches suffixes, regexes, all-linear (without lm_head), exclusions and layers_to_transform', () => {
    const names = (cfg: LoraConfigInput): string[] => [...getPeftModel(llama(), cfg).loraLayers.keys()];
    assert.deepEqual(names({ target_modules: ['model.layers.1.mlp.up_proj'] }), ['model.layers.1.mlp.up_proj']);
    assert.deepEqual(names({ target_modules: ['mlp.up_proj'] }), [0, 1, 2].map((i) => `model.layers.${i}.mlp.up_proj`));
    assert.throws(() => names({ target_modules: ['_proj'] }), /matches no module/, 'a suffix must start at a dot');
    assert.deepEqual(names({ target_modules: '.*\\.(0|2)\\.self_attn\\.(k|o)_proj' }), ['model.layers.0.self_attn.k_proj', 'model.layers.0.self_attn.o_proj', 'model.layers.2.self_attn.k_proj', 'model.layers.2.self_attn.o_proj']);
    // a string is a full match: 'q_proj' alone matches no full name
    assert.throws(() => names({ target_modules: 'q_proj' }), /matches no module.*model\.layers\.<i>\.self_attn\.q_proj/s);
    const all = names({ target_modules: 'all-linear' });
    assert.equal(all.length, 3 * 7);
    assert.ok(!all.includes('lm_head'));
    const ex = names({ target_modules: 'all-linear', exclude_modules: ['mlp.down_proj', 'model.layers.0.self_attn.q_proj'] });
    assert.equal(ex.length, 3 * 7 - 3 - 1);
    assert.ok(!ex.includes('model.layers.0.self_attn.q_proj') && ex.includes('model.layers.1.self_attn.q_proj'));
    assert.deepEqual(names({ target_modules: 'all-linear', exclude_modules: '.*mlp.*' }).length, 3 * 4);
    assert.deepEqual(names({ target_modules: ['q_proj'], layers_to_transform: [0, 2] }), ['model.layers.0.self_attn.q_proj', 'model.layers.2.self_attn.q_proj']);
    assert.deepEqual(names({ target_modules: ['q_proj'], layers_to_transform: 1, layers_pattern: 'layers' }), ['model.layers.1.self_attn.q_proj']);
    assert.throws(() => names({ target_modules: ['q_proj'], layers_to_transform: 1, layers_pattern: 'blocks' }), /matches no module/);
  });

  it('uses the family default (q_proj, v_proj for llama) when target_modules is unset', () => {
    assert.equal(getPeftModel(llama(), {}).loraLayers.size, 6);
    assert.deepEqual([...getPeftModel(createModel(GPT2), {}).loraLayers.keys()], ['transformer.h.0.attn.c_attn', 'transformer.h.1.attn.c_attn']);
  });

  it('errors list the modules that exist; an unmatched list entry is a warning naming it', () => {
    assert.throws(
      () => getPeftModel(llama(), { target_modules: ['query', 'value'] }),
      (e: Error) => /matches no module/.test(e.message) && e.message.includes('model.layers.<i>.self_attn.q_proj') && e.message.includes('model.layers.<i>.mlp.gate_proj'),
    );
    const { result, warnings } = withWarnings(() => getPeftModel(llama(), { target_modules: ['q_proj', 'qproj'] }));
    assert.equal(result.loraLayers.size, 3);
    assert.ok(warnings.some((w) => w.includes('"qproj"') && w.includes('matches no module')), warnings.join('\n'));
  });

  it('applies rank_pattern / alpha_pattern by name suffix (PEFT get_pattern_key)', () => {
    const peft = getPeftModel(llama(), { r: 4, lora_alpha: 8, target_modules: ['q_proj', 'v_proj'], rank_pattern: { 'layers.1.self_attn.q_proj': 2, v_proj: 6 }, alpha_pattern: { '^model.layers.2.*': 1 } });
    const a = (p: string) => peft.loraLayers.get(p)!.adapter('default');
    assert.equal(a('model.layers.1.self_attn.q_proj').r, 2);
    assert.equal(a('model.layers.0.self_attn.q_proj').r, 4);
    assert.equal(a('model.layers.0.self_attn.v_proj').r, 6);
    assert.equal(a('model.layers.2.self_attn.q_proj').alpha, 1);
    assert.equal(a('model.layers.0.self_attn.q_proj').scaling, 2);
  });

  it('forces fan_in_fan_out on for GPT-2 Conv1D with a warning', () => {
    const { result, warnings } = withWarnings(() => getPeftModel(createModel(GPT2), { target_modules: ['c_attn'] }));
    assert.ok(warnings.some((w) => /fan_in_fan_out/.test(w)));
    assert.ok(result.loraLayers.get('transformer.h.0.attn.c_attn')!.transposed);
  });

  it('makes modules_to_save trainable copies and keeps the original', () => {
    const model = llama();
    const orig = model.getModule('lm_head') as Linear;
    const w0 = orig.weight.value.f32.slice();
    const peft = getPeftModel(model, { r: 2, target_modules: ['q_proj'], modules_to_save: ['lm_head'] });
    assert.ok(orig.weight.requiresGrad, 'the copy in use is trainable');
    orig.weight.data[0] = orig.weight.data[0]! + 1;
    peft.disableAdapter(() => assert.equal(orig.weight.value.f32[0], w0[0], 'the original is untouched'));
    assert.equal(orig.weight.value.f32[0], Math.fround(w0[0]! + 1));
    const [, all] = peft.getNbTrainableParameters();
    let base = 0;
    for (const p of llama().parameters()) base += p.value.size;
    assert.equal(all, base + 3 * 2 * 32 + 16 * 40, 'PEFT counts the original and the copy');
  });
});

describe('PeftModel: several adapters', () => {
  function twoAdapters(): { model: DecoderLM; peft: PeftModel<DecoderLM> } {
    const model = llama(1);
    const peft = getPeftModel(model, { r: 2, lora_alpha: 4, target_modules: ['q_proj', 'v_proj'] }, 'a');
    peft.addAdapter('b', { r: 3, lora_alpha: 3, target_modules: ['v_proj', 'o_proj'] });
    randomizeB(peft, 'a', 10);
    randomizeB(peft, 'b', 11);
    return { model, peft };
  }

  it('setAdapter switches, sums several, and sets what is trainable', () => {
    const { model, peft } = twoAdapters();
    const x = ids(2, 4);
    const base = peft.disableAdapter(() => logits(model, x, 2, 4));
    peft.setAdapter('a');
    const ya = logits(model, x, 2, 4);
    assert.ok(peft.trainableParameters().every(([n]) => n.includes('.a.')));
    peft.setAdapter('b');
    const yb = logits(model, x, 2, 4);
    assert.ok(peft.trainableParameters().every(([n]) => n.includes('.b.')));
    assert.ok(maxAbsDiff(ya, base) > 1e-3 && maxAbsDiff(yb, base) > 1e-3 && maxAbsDiff(ya, yb) > 1e-3);
    peft.setAdapter(['a', 'b']);
    const yab = logits(model, x, 2, 4);
    assert.ok(maxAbsDiff(yab, ya) > 1e-3 && maxAbsDiff(yab, yb) > 1e-3);
    // disableAdapter is scoped
    assert.deepEqual(peft.disableAdapter(() => logits(model, x, 2, 4)), base);
    assert.deepEqual(logits(model, x, 2, 4), yab);
    assert.throws(() => peft.setAdapter('c'), /unknown adapter\(s\) c/);
  });

  it('per-row adapters in one batch equal running each row alone', () => {
    const { model, peft } = twoAdapters();
    const T = 5;
    const x = ids(3, T, 7);
    const rows = ['a', 'b', '__base__'];
    const mixed = peft.withAdapterNames(rows, () => logits(model, x, 3, T));
    const V = 40;
    rows.forEach((name, b) => {
      const xb = x.slice(b * T, (b + 1) * T);
      let alone: Float32Array;
      if (name === '__base__') alone = peft.disableAdapter(() => logits(model, xb, 1, T));
      else {
        peft.setAdapter(name);
        alone = logits(model, xb, 1, T);
      }
      const d = maxAbsDiff(mixed.subarray(b * T * V, (b + 1) * T * V), alone);
      assert.ok(d < 1e-5, `row ${b} (${name}): ${d}`);
    });
    assert.throws(() => peft.setAdapterNames(['a', 'zz']), /unknown adapter\(s\) zz/);
  });

  it('deleteAdapter removes it and restores plain Linears where nothing is left', () => {
    const { model, peft } = twoAdapters();
    peft.setAdapter('b');
    peft.deleteAdapter('b');
    assert.deepEqual(peft.adapterNames, ['a']);
    assert.ok(model.getModule('model.layers.0.self_attn.o_proj') instanceof Linear);
    assert.ok(!model.namedParameters().some(([n]) => n.includes('.b.')));
    assert.deepEqual(peft.activeAdapters, ['a']);
  });
});

describe('PeftModel: merge', () => {
  for (const [fam, cfg] of [['llama', LLAMA], ['gpt2', GPT2]] as const) {
    it(`${fam}: merged logits equal unmerged; unmerge restores W; mergeAndUnload gives a plain model`, () => {
      const model = createModel(cfg, { seed: 2 });
      const x = ids(2, 4);
      const w0 = new Map(model.namedParameters().map(([n, p]) => [n, p.value.toF32Array(true)]));
      const peft = getPeftModel(model, { r: 3, lora_alpha: 6, target_modules: 'all-linear', use_rslora: true });
      randomizeB(peft, 'default', 5);
      const y = logits(model, x, 2, 4);
      peft.merge();
      const ym = logits(model, x, 2, 4);
      assert.ok(maxAbsDiff(ym, y) < 1e-4, `merged ${maxAbsDiff(ym, y)}`);
      peft.unmerge();
      for (const [n, p] of model.namedParameters()) {
        const w = w0.get(n);
        if (w) assert.ok(maxAbsDiff(p.value.toF32Array(), w) < 1e-6, n);
      }
      const plain = peft.mergeAndUnload();
      assert.ok(!plain.namedModules().some(([, m]) => m instanceof LoraLinear));
      assert.deepEqual([...plain.namedParameters().map(([n]) => n)], [...w0.keys()]);
      assert.ok(maxAbsDiff(logits(plain, x, 2, 4), y) < 1e-4);
    });
  }

  it('bf16 base: merge in f32, unmerge restores the half weights exactly', () => {
    const model = createModel(LLAMA, { seed: 4, dtype: 'bf16' });
    const q = model.getModule('model.layers.0.self_attn.q_proj') as Linear;
    const before = q.weight.value.data.slice();
    const peft = getPeftModel(model, { r: 2, target_modules: ['q_proj'] });
    randomizeB(peft, 'default', 1);
    peft.merge();
    assert.notDeepEqual(q.weight.value.data, before);
    assert.equal(q.weight.value.dtype, 'bf16');
    peft.unmerge();
    assert.deepEqual(q.weight.value.data, before);
  });

  it('safeMerge names the adapter and the module', () => {
    const peft = getPeftModel(llama(), { r: 2, target_modules: ['v_proj'] }, 'broken');
    peft.loraLayers.get('model.layers.1.self_attn.v_proj')!.adapter('broken').A.data[0] = Infinity;
    randomizeB(peft, 'broken', 3);
    const before = new Map(peft.model.namedParameters().map(([n, p]) => [n, p.value.toF32Array(true)]));
    assert.throws(() => peft.merge({ safeMerge: true }), /adapter "broken".*model\.layers\.1\.self_attn\.v_proj/);
    // layer 0 merged before layer 1 failed: it is undone, nothing stays merged
    for (const l of peft.loraLayers.values()) assert.deepEqual(l.merged, []);
    for (const [n, p] of peft.model.namedParameters()) if (!n.includes('lora_')) assert.ok(maxAbsDiff(p.value.toF32Array(), before.get(n)!) < 1e-6, n);
  });
});

describe('PeftModel: weighted adapters', () => {
  function delta(peft: PeftModel, path: string, name: string): Float32Array {
    return peft.loraLayers.get(path)!.deltaWeight(name);
  }

  it('cat is exactly Σ w_i·ΔW_i; svd is Σ w_i·s_i·ΔW_i truncated (PEFT); linear sums A and B', () => {
    const model = llama(3);
    const peft = getPeftModel(model, { r: 2, lora_alpha: 4, target_modules: ['q_proj', 'v_proj'] }, 'a');
    peft.addAdapter('b', { r: 2, lora_alpha: 2, target_modules: ['q_proj', 'v_proj'] });
    randomizeB(peft, 'a', 1);
    randomizeB(peft, 'b', 2);
    const path = 'model.layers.1.self_attn.q_proj';
    const da = delta(peft, path, 'a');
    const db = delta(peft, path, 'b');
    const [w1, w2] = [0.7, -1.3];
    addWeightedAdapter(peft, ['a', 'b'], [w1, w2], 'cat', 'cat');
    assert.equal(peft.loraLayers.get(path)!.adapter('cat').r, 4);
    assert.equal(peft.loraLayers.get(path)!.adapter('cat').scaling, 1);
    const dc = delta(peft, path, 'cat');
    assert.ok(maxAbsDiff(dc, da.map((v, i) => w1 * v + w2 * db[i]!)) < 1e-5);
    // svd with rank 4 keeps everything: Σ w_i·s_i·ΔW_i (s_a = 2, s_b = 1)
    addWeightedAdapter(peft, ['a', 'b'], [w1, w2], 'svd', 'svd', { svdRank: 4 });
    const ds = delta(peft, path, 'svd');
    assert.ok(maxAbsDiff(ds, da.map((v, i) => w1 * 2 * v + w2 * 1 * db[i]!)) < 1e-4);
    // truncated svd is the best rank-2 approximation: closer than any other rank-2 adapter we have
    addWeightedAdapter(peft, ['a', 'b'], [w1, w2], 'svd2', 'svd');
    assert.equal(peft.loraLayers.get(path)!.adapter('svd2').r, 2);
    // linear: A = Σ sign·√|w s| A_i, B = Σ √|w s| B_i
    addWeightedAdapter(peft, ['a', 'b'], [w1, w2], 'lin', 'linear');
    const l = peft.loraLayers.get(path)!;
    const A = l.adapter('lin').A.data;
    const Aa = l.adapter('a').A.data;
    const Ab = l.adapter('b').A.data;
    const expA = Aa.map((v, i) => Math.sqrt(w1 * 2) * v - Math.sqrt(Math.abs(w2 * 1)) * Ab[i]!);
    assert.ok(maxAbsDiff(A, expA) < 1e-6);
    // one adapter with weight 1 gives it back
    addWeightedAdapter(peft, ['a'], [1], 'same', 'svd');
    assert.ok(maxAbsDiff(delta(peft, path, 'same'), da) < 1e-5);
    assert.throws(() => addWeightedAdapter(peft, ['a', 'b'], [1], 'x', 'cat'), /2 adapters but 1 weights/);
    peft.addAdapter('c', { r: 3, target_modules: ['q_proj'] });
    assert.throws(() => addWeightedAdapter(peft, ['a', 'c'], [1, 1], 'x', 'linear'), /equal ranks/);
  });
});

describe('training through a PeftModel', () => {
  it('adapter gradients flow, the base gets none, and a loss step with AdamW lowers the loss', async () => {
    const { AdamW } = await import('../../src/train/adamw.js');
    const model = llama(5);
    const peft = getPeftModel(model, { r: 4, lora_alpha: 8, target_modules: 'all-linear', lora_dropout: 0.1 }, 'default', { seed: 1 });
    model.train();
    const x = ids(2, 6, 9);
    const opt = new AdamW(peft.trainableParameters().map(([, p]) => p), { lr: 1e-2, weightDecay: 0 });
    const losses: number[] = [];
    for (let step = 0; step < 8; step++) {
      opt.zeroGrad();
      const res = lossAndBackward(model, x, 2, 6);
      losses.push(res.loss);
      opt.step();
    }
    assert.ok(losses[7]! < losses[0]! - 0.05, losses.join(', '));
    for (const [n, p] of model.namedParameters()) if (!n.includes('lora_')) assert.equal(p.grad, null, n);
    assert.ok(model.namedParameters().some(([n, p]) => n.includes('lora_A') && p.grad && p.grad.some((v) => v !== 0)));
  });

  it('gradient checkpointing gives the same adapter gradients, lora dropout included', () => {
    const grads = (checkpointing: boolean): Map<string, Float32Array> => {
      const model = llama(6);
      const peft = getPeftModel(model, { r: 3, lora_alpha: 6, target_modules: ['q_proj', 'v_proj', 'down_proj'], lora_dropout: 0.2, use_dora: true }, 'default', { seed: 2 });
      randomizeB(peft, 'default', 3);
      model.train();
      model.gradientCheckpointing = checkpointing;
      model.zeroGrad();
      lossAndBackward(model, ids(2, 6, 4), 2, 6);
      return new Map(peft.trainableParameters().map(([n, p]) => [n, p.grad!.slice()]));
    };
    const plain = grads(false);
    const ckpt = grads(true);
    assert.equal(plain.size, 27); // 3 layers × 3 modules × (A, B, magnitude)
    for (const [n, g] of plain) assert.ok(maxAbsDiff(ckpt.get(n)!, g) < 1e-6, n);
  });
});
