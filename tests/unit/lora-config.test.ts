// LoraConfig validation and parameter counting from config.json alone.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { adapterConfigJson, LoraConfigError, loraConfig, parseLoraConfig } from '../../src/lora/config.js';
import { countLoraParameters } from '../../src/lora/count.js';
import { layerIndexOf, matchModule, patternKey } from '../../src/lora/match.js';
import { fullMatch } from '../../src/lora/regex.js';
import { createModel } from '../../src/models/load.js';
import { getPeftModel } from '../../src/lora/peft-model.js';

describe('LoraConfig', () => {
  it("has PEFT's defaults", () => {
    const c = loraConfig();
    assert.equal(c.r, 8);
    assert.equal(c.lora_alpha, 8);
    assert.equal(c.lora_dropout, 0);
    assert.equal(c.bias, 'none');
    assert.equal(c.init_lora_weights, true);
    assert.equal(c.target_modules, null);
    assert.equal(c.use_rslora, false);
    assert.equal(c.use_dora, false);
    assert.equal(c.peft_type, 'LORA');
    assert.deepEqual(c.rank_pattern, {});
  });

  it('collects every problem and throws once', () => {
    let err: unknown;
    try {
      parseLoraConfig({ r: 0, bias: 'some', lora_dropout: 1.5, target_modules: '(unclosed', init_lora_weights: 'olora', rank_pattern: { q_proj: -1 }, use_dora: 'yes' });
    } catch (e) {
      err = e;
    }
    assert.ok(err instanceof LoraConfigError);
    const p = err.problems;
    assert.equal(p.length, 7, p.join('\n'));
    assert.ok(p.some((s) => /^r must be a positive integer, got 0/.test(s)));
    assert.ok(p.some((s) => /bias must be "none", "all" or "lora_only", got "some"/.test(s)));
    assert.ok(p.some((s) => /lora_dropout must be a number in \[0, 1\)/.test(s)));
    assert.ok(p.some((s) => /target_modules "\(unclosed" is not a valid regular expression/.test(s)));
    assert.ok(p.some((s) => /init_lora_weights "olora" is a PEFT initialisation lorakit does not support/.test(s)));
    assert.ok(p.some((s) => /rank_pattern\["q_proj"\] must be a positive integer/.test(s)));
    assert.ok(p.some((s) => /use_dora must be true or false/.test(s)));
    assert.match(err.message, /LoraConfig: 7 problem\(s\)/);
  });

  it('rejects negative and fractional ranks, and cross-field conflicts', () => {
    assert.throws(() => loraConfig({ r: -4 }), /r must be a positive integer, got -4/);
    assert.throws(() => loraConfig({ r: 2.5 }), /r must be a positive integer, got 2.5/);
    assert.throws(() => loraConfig({ target_modules: '.*q_proj', layers_to_transform: [0] }), /layers_to_transform cannot be used when target_modules is a regular expression/);
    assert.throws(() => loraConfig({ layers_pattern: 'layers' }), /layers_pattern needs layers_to_transform/);
    assert.throws(() => loraConfig({ use_dora: true, lora_bias: true }), /lora_bias is not supported with use_dora/);
  });

  it('warns about unknown keys (listed) and accepts inert PEFT fields', () => {
    const { config, warnings } = parseLoraConfig({ r: 4, future_option: 1, another: 'x', megatron_config: null, eva_config: null, peft_version: '0.18.0' });
    assert.equal(config.r, 4);
    assert.deepEqual(warnings, ['unknown key(s) ignored: future_option, another']);
    assert.throws(() => parseLoraConfig({ layer_replication: [[0, 2]] }), /layer_replication = \[\[0,2\]\] is a PEFT feature lorakit does not support/);
  });

  it('writes adapter_config.json keys sorted, as PEFT', () => {
    const j = adapterConfigJson(loraConfig({ r: 4, target_modules: ['v_proj', 'q_proj'] }));
    const keys = Object.keys(j);
    assert.deepEqual(keys, [...keys].sort());
    assert.equal(j.peft_type, 'LORA');
    assert.deepEqual(j.target_modules, ['q_proj', 'v_proj']);
    for (const k of ['base_model_name_or_path', 'task_type', 'lora_alpha', 'lora_dropout', 'fan_in_fan_out', 'bias', 'modules_to_save', 'init_lora_weights', 'rank_pattern', 'alpha_pattern', 'use_rslora', 'use_dora', 'inference_mode', 'revision']) {
      assert.ok(k in j, k);
    }
  });
});

describe('matching semantics', () => {
  const cfg = (o: Record<string, unknown>) => loraConfig(o);
  it('list: exact or dotted suffix; string: Python fullmatch', () => {
    const c = cfg({ target_modules: ['q_proj', 'layers.1.mlp.up_proj'] });
    const m = (n: string): string => matchModule(c, c.target_modules!, n);
    assert.equal(m('model.layers.0.self_attn.q_proj'), 'target');
    assert.equal(m('q_proj'), 'target');
    assert.equal(m('model.layers.0.self_attn.xq_proj'), 'none');
    assert.equal(m('model.layers.1.mlp.up_proj'), 'target');
    assert.equal(m('model.layers.11.mlp.up_proj'), 'none');
    assert.ok(fullMatch('.*q_proj', 'a.q_proj'));
    assert.ok(!fullMatch('q_proj', 'a.q_proj'));
    assert.ok(fullMatch('(?P<x>a)\\.(?P=x)', 'a.a'), 'Python named groups');
  });
  it('exclusions come first, and modules_to_save are never targets', () => {
    const c = cfg({ target_modules: ['q_proj', 'score'], exclude_modules: ['layers.0.self_attn.q_proj'], modules_to_save: ['score'] });
    assert.equal(matchModule(c, c.target_modules!, 'model.layers.0.self_attn.q_proj'), 'excluded');
    assert.equal(matchModule(c, c.target_modules!, 'model.layers.1.self_attn.q_proj'), 'target');
    assert.equal(matchModule(c, c.target_modules!, 'score'), 'excluded');
  });
  it("reads layer indices as PEFT does (the first numbered segment)", () => {
    assert.equal(layerIndexOf('model.layers.3.self_attn.q_proj', null), 3);
    assert.equal(layerIndexOf('transformer.h.11.attn.c_attn', null), 11);
    assert.equal(layerIndexOf('model.layers.1.experts.0.w1', null), 1);
    assert.equal(layerIndexOf('model.layers.3.self_attn.q_proj', 'h'), null);
    assert.equal(layerIndexOf('transformer.h.2.attn.c_attn', ['layers', 'h']), 2);
  });
  it('rank_pattern: first key matching a dotted suffix wins', () => {
    const pats = { 'self_attn.q_proj': 2, q_proj: 3, 'layers\\.1\\..*': 5 };
    assert.equal(patternKey(pats, 'model.layers.0.self_attn.q_proj'), 'self_attn.q_proj');
    assert.equal(patternKey(pats, 'model.layers.1.mlp.up_proj'), 'layers\\.1\\..*');
    assert.equal(patternKey(pats, 'model.layers.0.mlp.up_proj'), null);
    assert.equal(patternKey({ proj: 1 }, 'model.layers.0.mlp.up_proj'), null, 'not a bare substring');
  });
});

describe('countLoraParameters', () => {
  it('a GPT-3-175B-shaped config with r = 8 on q and v: exactly 37,748,736 trainable', () => {
    const gpt3 = { model_type: 'llama', hidden_size: 12288, num_attention_heads: 96, num_hidden_layers: 96, intermediate_size: 4 * 12288, vocab_size: 50257, tie_word_embeddings: true };
    const c = countLoraParameters(gpt3, { r: 8, target_modules: ['q_proj', 'v_proj'] });
    assert.equal(c.trainable, 37_748_736);
    assert.equal(c.targets.length, 192);
    // 96·(4·C² + 3·C·F + 2·C) + V·C + C (tied head)
    const C = 12288;
    assert.equal(c.base, 96 * (4 * C * C + 3 * C * 4 * C + 2 * C) + 50257 * C + C);
  });

  it('equals what getPeftModel builds (llama with GQA, gpt2 with biases, DoRA, rank_pattern, modules_to_save)', () => {
    const llama = { model_type: 'llama', hidden_size: 16, intermediate_size: 24, num_attention_heads: 4, num_key_value_heads: 2, num_hidden_layers: 2, vocab_size: 40, max_position_embeddings: 32, tie_word_embeddings: false };
    const gpt2 = { model_type: 'gpt2', n_embd: 16, n_head: 2, n_layer: 2, n_positions: 32, vocab_size: 40 };
    const cases: [Record<string, unknown>, Record<string, unknown>][] = [
      [llama, { r: 4, target_modules: 'all-linear' }],
      [llama, { r: 2, target_modules: ['k_proj', 'down_proj'], use_dora: true, rank_pattern: { down_proj: 5 } }],
      [llama, { r: 3, target_modules: ['q_proj'], modules_to_save: ['lm_head'] }],
      [gpt2, { r: 2, target_modules: ['c_attn', 'c_fc'], bias: 'lora_only' }],
      [gpt2, { r: 2, target_modules: ['c_proj'], bias: 'all' }],
    ];
    for (const [hf, lc] of cases) {
      const counted = countLoraParameters(hf, lc);
      const model = createModel(hf);
      let base = 0;
      for (const p of model.parameters()) base += p.value.size;
      const peft = getPeftModel(model, lc);
      const [trainable, all] = peft.getNbTrainableParameters();
      assert.equal(counted.base, base, `base ${JSON.stringify(lc)}`);
      assert.equal(counted.trainable, trainable, `trainable ${JSON.stringify(lc)}`);
      assert.equal(counted.all, all, `all ${JSON.stringify(lc)}`);
    }
  });
});
