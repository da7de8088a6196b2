// Model families as declarations (docs/ARCHITECTURE.md §Model families): each registered
// family's module shapes from config.json alone equal the tree it builds; counts and default
// LoRA targets come from the family; sliding-window layers decode through a KV cache that
// keeps only their window.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { planTargets } from '../../src/lora/match.js';
import { parseLoraConfig } from '../../src/lora/config.js';
import { countLoraParameters } from '../../src/lora/count.js';
import { getPeftModel } from '../../src/lora/peft-model.js';
import { Linear } from '../../src/nn/linear.js';
import { LoraLinear } from '../../src/lora/lora-linear.js';
import { MODEL_FAMILIES, createModel, defaultTargetModules } from '../../src/models/index.js';

/** A tiny config per registered model_type (every family must have one here). */
export const TINY_CONFIGS: Record<string, Record<string, unknown>> = {
  llama: { model_type: 'llama', vocab_size: 40, hidden_size: 16, intermediate_size: 24, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 64, attention_bias: true, mlp_bias: true },
  mistral: { model_type: 'mistral', vocab_size: 40, hidden_size: 16, intermediate_size: 24, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 64, sliding_window: 5, initializer_range: 0.4 },
  qwen2: { model_type: 'qwen2', vocab_size: 40, hidden_size: 16, intermediate_size: 24, num_hidden_layers: 3, num_attention_heads: 4, num_key_value_heads: 1, max_position_embeddings: 64, tie_word_embeddings: true, use_sliding_window: true, sliding_window: 4, max_window_layers: 1, initializer_range: 0.4 },
  gpt2: { model_type: 'gpt2', vocab_size: 40, n_embd: 16, n_layer: 2, n_head: 4, n_positions: 32 },
  gemma3_text: { model_type: 'gemma3_text', vocab_size: 40, hidden_size: 16, intermediate_size: 24, num_hidden_layers: 3, num_attention_heads: 4, num_key_value_heads: 2, head_dim: 6, sliding_window: 4, sliding_window_pattern: 3, query_pre_attn_scalar: 8, final_logit_softcapping: 3, initializer_range: 0.4 },
  phi3: { model_type: 'phi3', vocab_size: 40, hidden_size: 16, intermediate_size: 24, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, partial_rotary_factor: 0.5, sliding_window: 5, tie_word_embeddings: true, initializer_range: 0.4 },
  // head_dim 8 with hidden 16 and 4 heads: q is 32 wide (head_dim comes from the config)
  qwen3: { model_type: 'qwen3', vocab_size: 40, hidden_size: 16, intermediate_size: 24, num_hidden_layers: 3, num_attention_heads: 4, num_key_value_heads: 2, head_dim: 8, max_position_embeddings: 64, attention_bias: true, tie_word_embeddings: true, use_sliding_window: true, sliding_window: 4, layer_types: ['sliding_attention', 'full_attention', 'sliding_attention'], initializer_range: 0.4 },
  smollm3: { model_type: 'smollm3', vocab_size: 40, hidden_size: 16, intermediate_size: 24, num_hidden_layers: 4, num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 64, no_rope_layer_interval: 2, use_sliding_window: true, sliding_window: 5, initializer_range: 0.4 },
};

function maxAbs(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

describe('model families', () => {
  for (const [type, fam] of MODEL_FAMILIES) {
    it(`${type}: the module shapes from config.json are the tree build() makes`, () => {
      const json = TINY_CONFIGS[type];
      assert.ok(json, `tests/unit/families.test.ts has no tiny config for the registered model_type ${type}`);
      const shapes = fam.moduleShapes(fam.parseConfig(json));
      const model = createModel(json);
      const built = model.namedModules().filter(([n]) => n !== '');
      assert.deepEqual(shapes.map((m) => m.name), built.map(([n]) => n), 'the same modules in the same order');
      for (const [i, [name, m]] of built.entries()) {
        const s = shapes[i]!;
        assert.equal(s.linear, m instanceof Linear, `${name}: a Linear or not`);
        if (m instanceof Linear) assert.deepEqual([s.in, s.out], [m.inFeatures, m.outFeatures], `${name}: in and out features`);
        const own = m.namedParameters().filter(([n]) => !n.includes('.')).map(([n, p]) => ({ name: `${name}.${n}`, size: p.value.size }));
        assert.deepEqual(s.params, own, `${name}: its own parameters`);
      }
    });
  }

  it('default LoRA targets are declared by each family, as PEFT has them; no default asks for target_modules / --targets', () => {
    assert.deepEqual(defaultTargetModules('llama'), ['q_proj', 'v_proj']);
    assert.deepEqual(defaultTargetModules('gpt2'), ['c_attn']);
    assert.deepEqual(defaultTargetModules('bert'), ['query', 'value']);
    assert.deepEqual(defaultTargetModules('qwen3'), ['q_proj', 'v_proj']);
    assert.equal(defaultTargetModules('smollm3'), null, "PEFT's table has no smollm3");
    assert.throws(() => getPeftModel(createModel(TINY_CONFIGS.smollm3!), { r: 2 }), /PEFT has no default for model type "smollm3".*--targets.*model\.layers\.<i>\.self_attn\.q_proj/);
    assert.equal(defaultTargetModules('no-such-type'), null);
    const { config } = parseLoraConfig({ r: 2 });
    const mods = [{ name: 'model.layers.0.self_attn.qkv_proj', linear: true }];
    assert.throws(() => planTargets(config, mods, 'phi3'), /PEFT has no default for model type "phi3"; name the modules to adapt \(target_modules in the adapter config, --targets on the command line\).*qkv_proj/);
  });

  it('countLoraParameters derives its count from the family (mistral with a window, qwen2 with sliding layers and tied embeddings)', () => {
    for (const type of ['mistral', 'qwen2', 'qwen3', 'smollm3']) {
      const hf = TINY_CONFIGS[type]!;
      for (const lc of [...(type === 'smollm3' ? [] : [{ r: 2 }]), { r: 3, target_modules: 'all-linear' }, { r: 2, target_modules: ['k_proj', 'up_proj'], modules_to_save: ['lm_head'] }]) {
        const counted = countLoraParameters(hf, lc);
        const model = createModel(hf);
        let base = 0;
        for (const p of model.parameters()) base += p.value.size;
        const peft = getPeftModel(model, lc);
        const [trainable] = peft.getNbTrainableParameters();
        assert.equal(counted.base, base, `${type} base`);
        assert.equal(counted.trainable, trainable, `${type} trainable ${JSON.stringify(lc)}`);
        assert.deepEqual(counted.targets, peft.model.namedModules().filter(([, m]) => m instanceof LoraLinear).map(([n]) => n));
      }
    }
  });

  it('sliding layers: decoding token by token through the cache equals the full forward; a sliding layer keeps only its window', () => {
    for (const type of ['mistral', 'qwen2', 'qwen3', 'smollm3']) {
      const json = TINY_CONFIGS[type]!;
      const m = createModel(json, { seed: 3 });
      const V = 40;
      const T = 19;
      const x = Int32Array.from({ length: T }, (_, i) => (i * 7 + 3) % V);
      const full = m.forward(x, 1, T).slice();
      const cache = m.createCache();
      // the cached calls (≤ 16 rows) run the few-row products, the full forward the packed
      // GEMM: f32 sums in another order, on logits up to ~5 here (initializer_range 0.4)
      const tol = 1e-5 * Math.max(1, maxAbs(full, new Float32Array(full.length)));
      const prefill = m.forward(x.subarray(0, 6), 1, 6, { cache }).slice();
      assert.ok(maxAbs(prefill, full.subarray(0, 6 * V)) <= tol, `${type}: prefill`);
      for (let t = 6; t < T; t++) {
        const step = m.forward(x.subarray(t, t + 1), 1, 1, { cache });
        assert.ok(maxAbs(step, full.subarray(t * V, (t + 1) * V)) <= tol, `${type}: step ${t}`);
      }
      const windows = [...m.layers].map((b) => b.attn.core.window);
      cache.layers.forEach((l, i) => {
        assert.equal(l.length, T);
        if (windows[i]) assert.ok(l.held <= 2 * windows[i]!, `${type} layer ${i} holds ${l.held} slots for a window of ${windows[i]}`);
        else assert.equal(l.held, T, `${type} layer ${i} (full attention) holds every slot`);
      });
      if (type === 'qwen2') assert.deepEqual(windows, [0, 4, 4], 'qwen2: layers from max_window_layers on slide');
      if (type === 'qwen3') assert.deepEqual(windows, [4, 0, 4], 'qwen3: the layers layer_types names slide');
      if (type === 'smollm3') {
        assert.deepEqual(windows, [0, 5, 0, 5], 'smollm3: by default the NoPE layers slide');
        assert.deepEqual([...m.layers].map((b) => b.attn.core.rope !== null), [true, false, true, false], 'smollm3: every 2nd layer has no RoPE');
      }
    }
  });
});
