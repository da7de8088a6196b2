// Adapter folders: PEFT layout written and read back (keys checked literally), errors for
// corrupt files and adapters of another base, and mlx-lm adapters converted.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import { readSafetensors, writeSafetensorsSync } from '../../src/io/safetensors.node.js';
import { createModel } from '../../src/models/load.js';
import type { DecoderLM } from '../../src/models/decoder.js';
import { Rng } from '../../src/tensor/rng.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { loadPeftModel } from '../../src/lora/files.node.js';
import { getPeftModel, type PeftModel } from '../../src/lora/peft-model.js';
import type { LoraConfigInput } from '../../src/lora/config.js';
import { saveAdapter, loadAdapter } from '../../src/lora/files.node.js';

const LLAMA = { model_type: 'llama', hidden_size: 16, intermediate_size: 24, num_attention_heads: 4, num_key_value_heads: 2, num_hidden_layers: 2, vocab_size: 40, max_position_embeddings: 32, tie_word_embeddings: false, initializer_range: 0.2 };
const GPT2 = { model_type: 'gpt2', n_embd: 16, n_head: 2, n_layer: 2, n_positions: 32, vocab_size: 40, initializer_range: 0.2 };

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lorakit-lora-files-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));
let n = 0;
const freshDir = (): string => path.join(tmp, `a${n++}`);

function ids(B: number, T: number): Int32Array {
  const r = new Rng(8);
  return Int32Array.from({ length: B * T }, () => r.nextInt(40));
}

function randomize(peft: PeftModel, name: string, seed: number): void {
  const r = new Rng(seed);
  for (const l of peft.loraLayers.values()) {
    if (!l.hasAdapter(name)) continue;
    const a = l.adapter(name);
    for (const p of [a.B, a.A, a.magnitude]) if (p) for (let i = 0; i < p.data.length; i++) p.data[i] = p.data[i]! + r.normal(0, 0.2);
  }
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

function logits(model: DecoderLM): Float32Array {
  return model.forward(ids(2, 5), 2, 5).slice();
}

describe('saveAdapter: PEFT layout', () => {
  it('writes PEFT keys and shapes, adapter name stripped, config sorted with inference_mode true', () => {
    const peft = getPeftModel(createModel(LLAMA), { r: 3, lora_alpha: 6, target_modules: ['q_proj', 'v_proj'], task_type: 'CAUSAL_LM' });
    randomize(peft, 'default', 1);
    const dir = freshDir();
    assert.deepEqual(saveAdapter(peft, dir, { baseModelNameOrPath: 'tiny-llama' }), [dir]);
    const st = readSafetensors(path.join(dir, 'adapter_model.safetensors'));
    const keys = [...st.tensors.keys()].sort();
    const expected = [0, 1].flatMap((i) => ['q_proj', 'v_proj'].flatMap((m) => [`base_model.model.model.layers.${i}.self_attn.${m}.lora_A.weight`, `base_model.model.model.layers.${i}.self_attn.${m}.lora_B.weight`])).sort();
    assert.deepEqual(keys, expected);
    assert.deepEqual(st.tensors.get('base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight')!.shape, [3, 16]);
    assert.deepEqual(st.tensors.get('base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight')!.shape, [8, 3]);
    assert.deepEqual(st.metadata, { format: 'pt' });
    const text = fs.readFileSync(path.join(dir, 'adapter_config.json'), 'utf8');
    assert.ok(!text.endsWith('\n'), 'no trailing newline, as json.dumps');
    const cfg = JSON.parse(text) as Record<string, unknown>;
    assert.deepEqual(Object.keys(cfg), Object.keys(cfg).sort());
    assert.equal(cfg.peft_type, 'LORA');
    assert.equal(cfg.base_model_name_or_path, 'tiny-llama');
    assert.equal(cfg.task_type, 'CAUSAL_LM');
    assert.equal(cfg.inference_mode, true);
    assert.equal(cfg.r, 3);
    assert.match(text, /"lora_dropout": 0\.0,/);
    assert.match(text, /^\{\n {2}"alpha_pattern": \{\},\n {2}"auto_mapping": null,/);
  });

  it('round trip: a fresh model loading the folder gives the same logits (LoRA, DoRA on GPT-2 Conv1D, modules_to_save, bias)', () => {
    const cases: { cfg: Record<string, unknown>; lora: LoraConfigInput }[] = [
      { cfg: LLAMA, lora: { r: 2, lora_alpha: 5, target_modules: 'all-linear', use_rslora: true, rank_pattern: { o_proj: 4 } } },
      { cfg: LLAMA, lora: { r: 2, target_modules: ['v_proj', 'up_proj'], use_dora: true, modules_to_save: ['lm_head'] } },
      { cfg: GPT2, lora: { r: 2, target_modules: ['c_attn', 'c_proj'], use_dora: true, bias: 'lora_only' } },
      { cfg: GPT2, lora: { r: 3, target_modules: ['c_fc'], bias: 'all', lora_bias: true } },
    ];
    for (const [k, c] of cases.entries()) {
      const model = createModel(c.cfg, { seed: 3 });
      const peft = getPeftModel(model, c.lora);
      randomize(peft, 'default', 10 + k);
      for (const [, p] of peft.trainableParameters()) if (!p.grad) assert.fail('trainable without grad');
      // change trained copies / biases so they must come from the file
      const r = new Rng(k);
      for (const [name, p] of peft.trainableParameters()) if (!name.includes('lora_')) for (let i = 0; i < p.data.length; i++) p.data[i] = p.data[i]! + r.normal(0, 0.1);
      const y = logits(model);
      const dir = freshDir();
      saveAdapter(peft, dir);
      const keys = [...readSafetensors(path.join(dir, 'adapter_model.safetensors')).tensors.keys()];
      if ('use_dora' in c.lora) assert.ok(keys.some((key) => /\.lora_magnitude_vector$/.test(key)), 'DoRA magnitude key');
      if ('modules_to_save' in c.lora) assert.ok(keys.includes('base_model.model.lm_head.weight'), keys.join(', '));
      if (c.lora.bias === 'lora_only') assert.ok(keys.includes('base_model.model.transformer.h.0.attn.c_attn.base_layer.bias'), keys.join(', '));
      if (c.lora.bias === 'all') {
        assert.ok(keys.includes('base_model.model.transformer.h.0.ln_1.bias') && keys.includes('base_model.model.transformer.h.1.mlp.c_fc.base_layer.bias'), keys.join(', '));
        assert.ok(keys.includes('base_model.model.transformer.h.0.mlp.c_fc.lora_B.bias'));
      }
      const fresh = createModel(c.cfg, { seed: 3 });
      const y0 = logits(fresh);
      const loaded = loadPeftModel(fresh, dir);
      assert.ok(maxAbsDiff(y, y0) > 1e-3, 'the adapter changes the logits');
      const d = maxAbsDiff(logits(fresh), y);
      assert.ok(d < 1e-5, `case ${k}: loaded logits differ by ${d}`);
      assert.equal(loaded.trainableParameters().length, 0, 'loaded for inference');
    }
  });

  it('records resolved target_modules as PEFT does (family default; all-linear as layer names)', () => {
    const saveCfg = (lora: LoraConfigInput, cfg: Record<string, unknown> = LLAMA): Record<string, unknown> => {
      const dir = freshDir();
      saveAdapter(getPeftModel(createModel(cfg), lora), dir);
      return JSON.parse(fs.readFileSync(path.join(dir, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
    };
    assert.deepEqual(saveCfg({ r: 2 }).target_modules, ['q_proj', 'v_proj']);
    assert.deepEqual(saveCfg({ r: 2, target_modules: 'all-linear' }).target_modules, ['down_proj', 'gate_proj', 'k_proj', 'o_proj', 'q_proj', 'up_proj', 'v_proj']);
    const gpt = saveCfg({ r: 2, target_modules: ['c_attn'] }, GPT2);
    assert.equal(gpt.fan_in_fan_out, true, 'Conv1D targets: fan_in_fan_out recorded as used');
  });

  it('several adapters: "default" in the folder, others in subfolders; loadAdapter adds one by name', () => {
    const model = createModel(LLAMA);
    const peft = getPeftModel(model, { r: 2, target_modules: ['q_proj'] });
    peft.addAdapter('other', { r: 4, target_modules: ['k_proj'] });
    randomize(peft, 'other', 4);
    const dir = freshDir();
    assert.deepEqual(saveAdapter(peft, dir), [dir, path.join(dir, 'other')]);
    peft.setAdapter('other');
    const y = logits(model);
    const fresh = createModel(LLAMA);
    const p2 = loadPeftModel(fresh, dir);
    loadAdapter(p2, path.join(dir, 'other'), 'second', { isTrainable: true });
    p2.setAdapter('second');
    assert.ok(maxAbsDiff(logits(fresh), y) < 1e-5);
    assert.ok(p2.trainableParameters().length > 0 && p2.trainableParameters().every(([nm]) => nm.includes('.second.')));
  });
});

describe('loadAdapter errors', () => {
  function saved(): string {
    const peft = getPeftModel(createModel(LLAMA), { r: 2, target_modules: ['q_proj', 'v_proj'] });
    const dir = freshDir();
    saveAdapter(peft, dir);
    return dir;
  }

  it('an adapter for another base names the tensor and both shapes, all problems at once', () => {
    const dir = saved();
    const other = createModel({ ...LLAMA, hidden_size: 24, num_attention_heads: 4, num_key_value_heads: 2 });
    const before = other.namedModules().length;
    assert.throws(
      () => loadPeftModel(other, dir),
      (e: Error) => {
        assert.match(e.message, /8 problem\(s\)/);
        assert.match(e.message, /tensor base_model\.model\.model\.layers\.0\.self_attn\.q_proj\.lora_A\.weight has shape \[2, 16\], the model expects \[2, 24\]/);
        assert.match(e.message, /tensor base_model\.model\.model\.layers\.1\.self_attn\.v_proj\.lora_B\.weight has shape \[8, 2\], the model expects \[12, 2\]/);
        return true;
      },
    );
    assert.equal(other.namedModules().length, before, 'nothing injected on failure');
  });

  it('keys for modules the model lacks', () => {
    const dir = saved();
    const st = readSafetensors(path.join(dir, 'adapter_model.safetensors'));
    st.tensors.set('base_model.model.model.layers.7.self_attn.q_proj.lora_A.weight', Tensor.zeros([2, 16]));
    writeSafetensorsSync(path.join(dir, 'adapter_model.safetensors'), st.tensors);
    assert.throws(() => loadPeftModel(createModel(LLAMA), dir), /tensor base_model\.model\.model\.layers\.7\.self_attn\.q_proj\.lora_A\.weight: the model has no module model\.layers\.7\.self_attn\.q_proj/);
  });

  it('missing tensors and a corrupt file', () => {
    const dir = saved();
    const st = readSafetensors(path.join(dir, 'adapter_model.safetensors'));
    st.tensors.delete('base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight');
    writeSafetensorsSync(path.join(dir, 'adapter_model.safetensors'), st.tensors);
    assert.throws(() => loadPeftModel(createModel(LLAMA), dir), /missing tensor base_model\.model\.model\.layers\.1\.self_attn\.v_proj\.lora_B\.weight \(expected shape \[8, 2\]\)/);
    const bad = saved();
    const file = path.join(bad, 'adapter_model.safetensors');
    const bytes = fs.readFileSync(file);
    fs.writeFileSync(file, bytes.subarray(0, bytes.length - 10));
    assert.throws(() => loadPeftModel(createModel(LLAMA), bad), /adapter_model\.safetensors/);
    const badCfg = saved();
    fs.writeFileSync(path.join(badCfg, 'adapter_config.json'), '{"r": 0, "bias": "maybe", "peft_type": "LORA", "target_modules": ["q_proj"]}');
    assert.throws(() => loadPeftModel(createModel(LLAMA), badCfg), (e: Error) => /r must be a positive integer/.test(e.message) && /bias must be/.test(e.message));
    assert.throws(() => loadPeftModel(createModel(LLAMA), freshDir()), /no adapter_model\.safetensors \(PEFT\) or adapters\.safetensors \(mlx-lm\)/);
  });
});

describe('mlx-lm adapters', () => {
  it('converts lora_a [in, r] / lora_b [r, out] with absolute scale into A, B and alpha = scale·r', () => {
    const r = 2;
    const scale = 3.5;
    const model = createModel(LLAMA, { seed: 9 });
    const rng = new Rng(2);
    const tensors = new Map<string, Tensor>();
    const ref = getPeftModel(createModel(LLAMA, { seed: 9 }), { r, lora_alpha: scale * r, target_modules: ['q_proj', 'down_proj'] });
    for (const [p, l] of ref.loraLayers) {
      const a = l.adapter('default');
      for (const pr of [a.A, a.B]) for (let i = 0; i < pr.data.length; i++) pr.data[i] = rng.normal(0, 0.3);
      const I = l.inFeatures;
      const O = l.outFeatures;
      const la = new Float32Array(I * r);
      const lb = new Float32Array(r * O);
      for (let k = 0; k < r; k++) for (let i = 0; i < I; i++) la[i * r + k] = a.A.data[k * I + i]!;
      for (let o = 0; o < O; o++) for (let k = 0; k < r; k++) lb[k * O + o] = a.B.data[o * r + k]!;
      tensors.set(`${p}.lora_a`, Tensor.fromF32(la, [I, r]));
      tensors.set(`${p}.lora_b`, Tensor.fromF32(lb, [r, O]));
    }
    const dir = freshDir();
    fs.mkdirSync(dir);
    writeSafetensorsSync(path.join(dir, 'adapters.safetensors'), tensors);
    fs.writeFileSync(path.join(dir, 'adapter_config.json'), JSON.stringify({ fine_tune_type: 'lora', num_layers: 2, lora_parameters: { rank: r, scale, dropout: 0.0 } }));
    const peft = loadPeftModel(model, dir);
    assert.equal(peft.config('default').lora_alpha, scale * r);
    assert.equal(peft.loraLayers.get('model.layers.0.mlp.down_proj')!.adapter('default').scaling, scale);
    assert.ok(maxAbsDiff(logits(model), logits(ref.model as DecoderLM)) < 1e-5);
    // a wrong shape is reported with the mlx key
    tensors.set('model.layers.0.self_attn.q_proj.lora_a', Tensor.zeros([5, r]));
    writeSafetensorsSync(path.join(dir, 'adapters.safetensors'), tensors);
    assert.throws(() => loadPeftModel(createModel(LLAMA), dir), /tensor model\.layers\.0\.self_attn\.q_proj\.lora_a has shape \[5, 2\], the model expects \[16, 2\]/);
  });

  it('reads DoRA (fine_tune_type "dora", magnitude "m")', () => {
    const ref = getPeftModel(createModel(LLAMA, { seed: 2 }), { r: 2, lora_alpha: 2, target_modules: ['v_proj'], use_dora: true });
    randomize(ref, 'default', 6);
    const tensors = new Map<string, Tensor>();
    for (const [p, l] of ref.loraLayers) {
      const a = l.adapter('default');
      const I = l.inFeatures;
      const O = l.outFeatures;
      const la = new Float32Array(I * 2);
      const lb = new Float32Array(2 * O);
      for (let k = 0; k < 2; k++) for (let i = 0; i < I; i++) la[i * 2 + k] = a.A.data[k * I + i]!;
      for (let o = 0; o < O; o++) for (let k = 0; k < 2; k++) lb[k * O + o] = a.B.data[o * 2 + k]!;
      tensors.set(`${p}.lora_a`, Tensor.fromF32(la, [I, 2]));
      tensors.set(`${p}.lora_b`, Tensor.fromF32(lb, [2, O]));
      tensors.set(`${p}.m`, Tensor.fromF32(a.magnitude!.data.slice(), [O]));
    }
    const dir = freshDir();
    fs.mkdirSync(dir);
    writeSafetensorsSync(path.join(dir, 'adapters.safetensors'), tensors);
    fs.writeFileSync(path.join(dir, 'adapter_config.json'), JSON.stringify({ fine_tune_type: 'dora', num_layers: 2, lora_parameters: { rank: 2, scale: 1.0, dropout: 0.0, keys: ['self_attn.v_proj'] } }));
    const model = createModel(LLAMA, { seed: 2 });
    const peft = loadPeftModel(model, dir);
    assert.equal(peft.config('default').use_dora, true);
    assert.ok(maxAbsDiff(logits(model), logits(ref.model as DecoderLM)) < 1e-5);
  });
});
