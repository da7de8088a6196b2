// Model families beyond the fixtures: config validation, rope scaling types, random init,
// save → load round trips, GPT-2 key sanitizing, gradients by finite differences, where
// backward stops, and gradient checkpointing.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { SafetensorsFile, writeSafetensorsSync } from '../../src/io/safetensors.node.js';
import { ConfigError, createModel, getModelFamily, lossAndBackward, parseLlamaConfig, ropeInvFreq, supportedModelTypes, type DecoderLM } from '../../src/models/index.js';
import { loadModel, saveModel } from '../../src/models/index.node.js';
import { getPeftModel } from '../../src/lora/peft-model.js';
import { ropeInvFreq as defaultInvFreq } from '../../src/nn/attention.js';
import { InferenceBuffers, allModules, retainedBytes } from '../../src/nn/checkpoint.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { createTinyLlama } from '../helpers/train-fixture.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const FIXTURES = path.join(ROOT, 'tests/fixtures/models');

export const TINY_LLAMA = {
  model_type: 'llama',
  vocab_size: 40,
  hidden_size: 16,
  intermediate_size: 24,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  max_position_embeddings: 64,
  rms_norm_eps: 1e-6,
  initializer_range: 0.4,
  tie_word_embeddings: false,
};

const TINY_GPT2 = {
  model_type: 'gpt2',
  vocab_size: 40,
  n_embd: 16,
  n_layer: 2,
  n_head: 4,
  n_positions: 32,
  initializer_range: 0.4,
};

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lorakit-models-unit-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

function ids(n: number, V: number, seed = 1): Int32Array {
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) out[i] = (i * 17 + seed * 7 + 3) % V;
  return out;
}

function maxAbs(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

describe('config validation', () => {
  it('collects every problem, each naming the key and the expected type', () => {
    const bad = { ...TINY_LLAMA, hidden_size: 'big', num_hidden_layers: -1, rms_norm_eps: null, tie_word_embeddings: 'yes' };
    delete (bad as Record<string, unknown>)['intermediate_size'];
    assert.throws(
      () => parseLlamaConfig(bad),
      (e: Error) => {
        assert.ok(e instanceof ConfigError);
        assert.match(e.message, /"hidden_size" must be an integer ≥ 1, got the string "big"/);
        assert.match(e.message, /"intermediate_size" is missing \(expected an integer ≥ 1\)/);
        assert.match(e.message, /"num_hidden_layers" must be an integer ≥ 1, got number -1/);
        assert.match(e.message, /"tie_word_embeddings" must be a boolean, got the string "yes"/);
        return true;
      },
    );
  });
  it('checks head counts', () => {
    assert.throws(() => parseLlamaConfig({ ...TINY_LLAMA, num_key_value_heads: 3 }), /"num_attention_heads" \(4\) must be a multiple of "num_key_value_heads" \(3\)/);
  });
  it('rejects an unknown rope type and a llama3 rope missing its keys', () => {
    assert.throws(() => parseLlamaConfig({ ...TINY_LLAMA, rope_scaling: { rope_type: 'yarn', factor: 4 } }), /"rope_scaling.rope_type" = "yarn" is not supported; supported rope types: default, linear, dynamic, llama3/);
    assert.throws(() => parseLlamaConfig({ ...TINY_LLAMA, rope_scaling: { rope_type: 'llama3', factor: 8 } }), /"rope_scaling.low_freq_factor" is missing/);
  });
  it('qwen2 always has q/k/v biases; llama only with attention_bias', () => {
    const q = createModel({ ...TINY_LLAMA, model_type: 'qwen2' });
    const names = q.namedParameters().map(([n]) => n);
    assert.ok(names.includes('model.layers.0.self_attn.q_proj.bias'));
    assert.ok(!names.includes('model.layers.0.self_attn.o_proj.bias'));
    const l = createModel(TINY_LLAMA).namedParameters().map(([n]) => n);
    assert.ok(!l.some((n) => n.endsWith('.bias')));
    const lb = createModel({ ...TINY_LLAMA, attention_bias: true }).namedParameters().map(([n]) => n);
    assert.ok(lb.includes('model.layers.1.self_attn.o_proj.bias') && lb.includes('model.layers.1.self_attn.v_proj.bias'));
  });
  it('unsupported model_type lists the supported ones', () => {
    for (const t of ['llama', 'mistral', 'qwen2', 'qwen3', 'smollm3', 'gpt2']) assert.ok(supportedModelTypes().includes(t), t);
    assert.throws(() => getModelFamily('falcon'), new RegExp(`"model_type" "falcon" is not supported; supported model types: ${supportedModelTypes().join(', ')}$`));
    assert.throws(() => createModel({ vocab_size: 3 }), /no "model_type" is not supported/);
  });
});

describe('rope scaling', () => {
  const base = defaultInvFreq(16, 10000);
  it('default: 1 / theta^(2i/D)', () => {
    for (let i = 0; i < 8; i++) assert.ok(Math.abs(base[i]! - 1 / Math.pow(10000, (2 * i) / 16)) <= 1e-7 * base[i]!);
  });
  it('linear divides by the factor', () => {
    const lin = ropeInvFreq({ type: 'linear', theta: 10000, dim: 16, factor: 4 });
    for (let i = 0; i < 8; i++) assert.ok(Math.abs(lin[i]! - base[i]! / 4) <= 1e-7 * base[i]!);
  });
  it('dynamic: default up to max positions, NTK-scaled theta beyond', () => {
    const spec = { type: 'dynamic' as const, theta: 10000, dim: 16, factor: 2, originalMaxPositions: 32 };
    assert.deepEqual([...ropeInvFreq(spec, 32)], [...base]);
    const theta = 10000 * Math.pow((2 * 64) / 32 - 1, 16 / 14);
    const dyn = ropeInvFreq(spec, 64);
    for (let i = 0; i < 8; i++) assert.ok(Math.abs(dyn[i]! - 1 / Math.pow(theta, (2 * i) / 16)) <= 1e-6 * dyn[i]!);
  });
  it('llama3 keeps high frequencies, divides low ones, blends between', () => {
    const spec = { type: 'llama3' as const, theta: 10000, dim: 16, factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 128 };
    const s = ropeInvFreq(spec);
    for (let i = 0; i < 8; i++) {
      const wl = (2 * Math.PI) / base[i]!;
      if (wl < 128 / 4) assert.equal(s[i], base[i]);
      else if (wl > 128) assert.ok(Math.abs(s[i]! - base[i]! / 8) <= 1e-7 * base[i]!);
      else assert.ok(s[i]! < base[i]! && s[i]! > base[i]! / 8, `blended ${i}`);
    }
  });
  it('a dynamic-rope model changes its tables only past max_position_embeddings', () => {
    const cfg = { ...TINY_LLAMA, max_position_embeddings: 8, rope_scaling: { rope_type: 'dynamic', factor: 2 } };
    const m = createModel(cfg, { seed: 3 });
    const plain = createModel({ ...TINY_LLAMA, max_position_embeddings: 8 }, { seed: 3 });
    const x = ids(8, 40);
    assert.ok(maxAbs(m.forward(x, 1, 8).slice(), plain.forward(x, 1, 8).slice()) === 0);
    const y = ids(12, 40);
    assert.ok(maxAbs(m.forward(y, 1, 12).slice(), plain.forward(y, 1, 12).slice()) > 1e-4);
  });
});

describe('createModel, saveModel, loadModel', () => {
  for (const [label, cfg] of [['llama', TINY_LLAMA], ['llama tied', { ...TINY_LLAMA, tie_word_embeddings: true }], ['gpt2', TINY_GPT2]] as const) {
    it(`${label}: a saved model loads back with identical logits`, async () => {
      const m = createModel(cfg, { seed: 7 });
      const dir = path.join(tmp, `rt-${label.replace(' ', '-')}`);
      await saveModel(m, dir);
      const f = SafetensorsFile.open(path.join(dir, 'model.safetensors'));
      const keys = f.names();
      f.close();
      const tied = label !== 'llama';
      assert.equal(keys.includes('lm_head.weight'), !tied, 'tied weights are written once, under the embedding');
      const back = loadModel(dir);
      const x = ids(10, 40);
      assert.equal(maxAbs(m.forward(x, 2, 5).slice(), back.forward(x, 2, 5)), 0);
      const cfgBack = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
      assert.equal(cfgBack['torch_dtype'], 'float32');
    });
  }
  it('sharded save and load (index + shards), with architectures written', async () => {
    const m = createModel({ ...TINY_LLAMA, model_type: 'qwen2' }, { seed: 12 });
    const dir = path.join(tmp, 'rt-sharded');
    await saveModel(m, dir, { maxShardBytes: 8000 });
    const files = fs.readdirSync(dir).sort();
    assert.ok(files.includes('model.safetensors.index.json') && !files.includes('model.safetensors'), files.join(', '));
    assert.ok(files.filter((f) => /^model-\d{5}-of-\d{5}\.safetensors$/.test(f)).length > 1);
    const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    assert.deepEqual(cfg['architectures'], ['Qwen2ForCausalLM']);
    const back = loadModel(dir);
    const x = ids(6, 40);
    assert.equal(maxAbs(m.forward(x, 1, 6).slice(), back.forward(x, 1, 6)), 0);
  });
  it('bf16 weights are saved and loaded as bf16', async () => {
    const m = createModel(TINY_LLAMA, { seed: 2, dtype: 'bf16' });
    const dir = path.join(tmp, 'rt-bf16');
    await saveModel(m, dir);
    const back = loadModel(dir);
    for (const [k, p] of back.namedParameters()) assert.equal(p.value.dtype, 'bf16', k);
    const x = ids(6, 40);
    assert.equal(maxAbs(m.forward(x, 1, 6).slice(), back.forward(x, 1, 6)), 0);
  });
  it('seeded init is reproducible and seeds differ', () => {
    const a = createModel(TINY_LLAMA, { seed: 1 }).stateDict().get('model.layers.0.mlp.up_proj.weight')!;
    const b = createModel(TINY_LLAMA, { seed: 1 }).stateDict().get('model.layers.0.mlp.up_proj.weight')!;
    const c = createModel(TINY_LLAMA, { seed: 2 }).stateDict().get('model.layers.0.mlp.up_proj.weight')!;
    assert.deepEqual(a.data, b.data);
    assert.notDeepEqual(a.data, c.data);
  });
});

describe('GPT-2 sanitize', () => {
  it('loads keys without the transformer. prefix and drops attn.bias / masked_bias buffers', () => {
    const src = path.join(FIXTURES, 'gpt2');
    const dir = path.join(tmp, 'gpt2-old');
    fs.mkdirSync(dir, { recursive: true });
    fs.copyFileSync(path.join(src, 'config.json'), path.join(dir, 'config.json'));
    const f = SafetensorsFile.open(path.join(src, 'model.safetensors'));
    const all = new Map<string, Tensor>();
    for (const n of f.names()) all.set(n.replace(/^transformer\./, ''), f.tensor(n));
    f.close();
    all.set('h.0.attn.bias', Tensor.zeros([1, 1, 64, 64]));
    all.set('h.1.attn.masked_bias', Tensor.fromValues([-1e4], []));
    writeSafetensorsSync(path.join(dir, 'model.safetensors'), all);
    const a = loadModel(src);
    const b = loadModel(dir);
    const x = ids(12, 128);
    assert.equal(maxAbs(a.forward(x, 2, 6).slice(), b.forward(x, 2, 6)), 0);
  });
  it('rejects positions beyond n_positions', () => {
    const m = createModel(TINY_GPT2);
    assert.throws(() => m.forward(ids(33, 40), 1, 33), /position 32 is beyond the model's 32 positions/);
  });
});

/** loss at the current parameters */
function lossOf(m: DecoderLM, x: Int32Array, B: number, T: number, mask: Int32Array): number {
  m.zeroGrad();
  return lossAndBackward(m, x, B, T, { attentionMask: mask }).loss;
}

describe('gradients', () => {
  for (const [label, cfg] of [['llama', { ...TINY_LLAMA, attention_bias: true }], ['gpt2', TINY_GPT2]] as const) {
    it(`${label}: trainable parameter gradients match finite differences (padded batch)`, () => {
      const m = createModel(cfg, { seed: 11 });
      m.requiresGrad(true);
      const B = 2;
      const T = 6;
      const x = ids(B * T, 40, 5);
      const mask = Int32Array.from([0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]);
      lossOf(m, x, B, T, mask);
      const params = new Map(m.namedParameters());
      const picks = label === 'llama'
        ? ['model.embed_tokens.weight', 'model.layers.0.self_attn.q_proj.weight', 'model.layers.0.self_attn.k_proj.bias', 'model.layers.1.mlp.down_proj.weight', 'model.layers.0.input_layernorm.weight', 'model.norm.weight', 'lm_head.weight']
        : ['transformer.wte.weight', 'transformer.wpe.weight', 'transformer.h.0.attn.c_attn.weight', 'transformer.h.1.mlp.c_fc.bias', 'transformer.h.0.ln_1.bias', 'transformer.ln_f.weight'];
      const grads = new Map(picks.map((k) => [k, params.get(k)!.grad!.slice()]));
      const h = 1e-2;
      for (const k of picks) {
        const p = params.get(k)!;
        const g = grads.get(k)!;
        // the three largest-gradient entries and one more
        const order = [...g.keys()].sort((a, b) => Math.abs(g[b]!) - Math.abs(g[a]!));
        for (const i of [order[0]!, order[1]!, order[2]!, order[Math.floor(order.length / 2)]!]) {
          const v0 = p.data[i]!;
          p.data[i] = v0 + h;
          const lp = lossOf(m, x, B, T, mask);
          p.data[i] = v0 - h;
          const lm = lossOf(m, x, B, T, mask);
          p.data[i] = v0;
          const fd = (lp - lm) / (2 * h);
          assert.ok(Math.abs(fd - g[i]!) <= 2e-3 + 3e-2 * Math.abs(fd), `${k}[${i}]: analytic ${g[i]} vs finite difference ${fd}`);
        }
      }
    });
  }

  it('backward stops at the lowest trainable layer', () => {
    const m = createModel(TINY_LLAMA, { seed: 4 });
    const layers = m.layers;
    let calls0 = 0;
    const blk0 = layers.at(0);
    const orig = blk0.backward.bind(blk0);
    blk0.backward = (dy: Float32Array) => {
      calls0++;
      return orig(dy);
    };
    layers.at(1).getModule('self_attn.q_proj').requiresGrad(true);
    const x = ids(8, 40);
    assert.equal(lossAndBackward(m, x, 1, 8).inputGrad, null);
    assert.equal(calls0, 0, 'layer 0 has nothing to learn: its backward is not run');
    assert.equal(layers.at(1).computeInputGrad, false);
    assert.equal(layers.at(1).attn.computeInputGrad, false);
    const g = m.getModule('model.layers.1.self_attn.q_proj').namedParameters()[0]![1].grad!;
    assert.ok(g.some((v) => v !== 0));
    // asking for the input gradient runs everything below
    const embeds = new Float32Array(8 * 16).fill(0.1);
    const r = lossAndBackward(m, null, 1, 8, { inputsEmbeds: embeds, inputGrad: true, labels: x });
    assert.equal(calls0, 1);
    assert.ok(r.inputGrad && r.inputGrad.some((v) => v !== 0));
  });

  for (const [label, cfg] of [['llama', TINY_LLAMA], ['gpt2', TINY_GPT2]] as const) {
    it(`${label}: gradient checkpointing gives the same gradients`, () => {
      const run = (ckpt: boolean): Map<string, Float32Array> => {
        const m = createModel(cfg, { seed: 9 });
        m.requiresGrad(true);
        m.train();
        m.gradientCheckpointing = ckpt;
        const x = ids(12, 40, 2);
        lossAndBackward(m, x, 2, 6, { attentionMask: Int32Array.from([0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]) });
        return new Map(m.trainableParameters().map(([k, p]) => [k, p.grad!.slice()]));
      };
      const a = run(false);
      const b = run(true);
      for (const [k, g] of a) assert.ok(maxAbs(g, b.get(k)!) <= 1e-6, k);
    });
  }
});

describe('masks and the KV cache', () => {
  it('a left-padded row gives the same logits as the row alone', () => {
    const m = createModel(TINY_LLAMA, { seed: 5 });
    const V = 40;
    const row = Int32Array.from([5, 9, 3, 7]);
    const alone = m.forward(row, 1, 4).slice();
    const padded = m.forward(Int32Array.from([0, 0, 5, 9, 3, 7]), 1, 6, { attentionMask: [0, 0, 1, 1, 1, 1] }).slice();
    assert.ok(maxAbs(alone, padded.subarray(2 * V)) <= 1e-5);
  });
  it('prefill + one cached step equals the full forward', () => {
    for (const cfg of [TINY_LLAMA, TINY_GPT2]) {
      const m = createModel(cfg, { seed: 6 });
      const V = 40;
      const full = m.forward(Int32Array.from([1, 2, 3, 4, 5]), 1, 5).slice();
      const cache = m.createCache();
      m.forward(Int32Array.from([1, 2, 3, 4]), 1, 4, { cache });
      const step = m.forward(Int32Array.from([5]), 1, 1, { cache });
      assert.ok(maxAbs(step, full.subarray(4 * V)) <= 1e-5, cfg.model_type);
      assert.throws(() => m.backward(new Float32Array(V)), /used a KV cache/);
    }
  });
  it('mistral sliding window hides keys too far back', () => {
    // one layer: deeper, the keys' own hidden states would differ (they saw further back themselves)
    const cfg = { ...TINY_LLAMA, model_type: 'mistral', num_hidden_layers: 1, sliding_window: 3 };
    const m = createModel(cfg, { seed: 8 });
    const V = 40;
    const x = Int32Array.from([4, 8, 15, 16, 23, 42 % 40]);
    const full = m.forward(x, 1, 6).slice();
    // the last token sees only the last 3 slots: the same as a forward over them with the true positions
    const tail = m.forward(x.subarray(3), 1, 3, { positionIds: Int32Array.from([3, 4, 5]) }).slice();
    assert.ok(maxAbs(full.subarray(5 * V), tail.subarray(2 * V)) <= 1e-5);
    const noWindow = createModel({ ...cfg, sliding_window: null }, { seed: 8 }).forward(x, 1, 6);
    assert.ok(maxAbs(full.subarray(5 * V), noWindow.subarray(5 * V)) > 1e-4);
  });
  it('rejects a malformed attention mask', () => {
    const m = createModel(TINY_LLAMA);
    assert.throws(() => m.forward(ids(4, 40), 1, 4, { attentionMask: [1, 1, 2, 1] }), /entry 2 .* is 2; expected 0 or 1/);
    assert.throws(() => m.forward(ids(4, 40), 1, 4, { attentionMask: [1, 1, 1] }), /expected \[1, 4\] = 4 entries/);
  });
});

describe('generation memory (issue 24)', () => {
  const T = 12;
  it('cached forwards share one block of activations between the blocks, with the same logits', () => {
    const bytes: number[] = [];
    for (const layers of [2, 4]) {
      const m = createModel({ ...TINY_LLAMA, num_hidden_layers: layers }, { seed: 3 });
      m.eval();
      const x = ids(T, 40, 7);
      const full = m.forward(x, 1, T).slice(); // no cache: each block its own buffers
      const cache = m.createCache();
      const cached = m.forward(x, 1, T, { cache }).slice();
      assert.ok(maxAbs(full, cached) <= 1e-5, `${layers} layers: ${maxAbs(full, cached)}`);
      const last = m.forward(x, 1, T, { cache: m.createCache(), lastTokenOnly: true });
      assert.deepEqual(last, cached.subarray((T - 1) * 40), 'lastTokenOnly gives the last row of the full logits');
      const before = m.bufferBytes;
      m.forward(x, 1, T, { cache: m.createCache() });
      bytes.push(m.bufferBytes - before);
    }
    // the blocks' activations of the cached forwards do not grow with depth (the uncached
    // forward's per-block buffers are kept for a switch back, and counted the same at both depths)
    assert.deepEqual(bytes, [0, 0]);
    const deep = createModel({ ...TINY_LLAMA, num_hidden_layers: 4 }, { seed: 3 });
    const shallow = createModel({ ...TINY_LLAMA, num_hidden_layers: 2 }, { seed: 3 });
    for (const m of [deep, shallow]) m.forward(ids(T, 40, 7), 1, T, { cache: m.createCache() });
    // 2 more layers add only their KV cache (the cache is not counted): nothing per block
    assert.equal(deep.bufferBytes, shallow.bufferBytes);
  });

  it('cached forwards pick up modules injected since (LoRA): their activations are shared too', () => {
    const m = createModel(TINY_LLAMA, { seed: 7 });
    m.eval();
    const x = ids(T, 40, 15);
    m.forward(x, 1, T, { cache: m.createCache() });
    m.forward(x, 1, T, { cache: m.createCache() }); // the blocks are not walked again here
    getPeftModel(m, { r: 4, lora_alpha: 8, target_modules: ['q_proj', 'v_proj'] });
    m.eval();
    const got = m.forward(x, 1, T, { cache: m.createCache() }).slice();
    for (const blk of m.layers) {
      for (const [path, mod] of allModules(blk)) assert.ok(mod.buffers instanceof InferenceBuffers, `${path} (${mod.constructor.name}) draws on the shared arena`);
    }
    assert.deepEqual(got, m.forward(x, 1, T, { cache: m.createCache() }));
  });

  it('an all-ones mask gives the logits of no mask, bit for bit (generate() leaves it out without padding)', () => {
    const m = createModel(TINY_LLAMA, { seed: 6 });
    const x = ids(T, 40, 13);
    const a = m.forward(x, 1, T, { cache: m.createCache(), lastTokenOnly: true }).slice();
    const b = m.forward(x, 1, T, { cache: m.createCache(), lastTokenOnly: true, attentionMask: new Array<number>(T).fill(1) });
    assert.deepEqual(b, a);
  });

  it('a released cache gives its arrays to the next cache of the model, with the same results', () => {
    const m = createModel(TINY_LLAMA, { seed: 4 });
    const x = ids(T, 40, 9);
    const c1 = m.createCache();
    const a = m.forward(x, 1, T, { cache: c1 }).slice();
    const k0 = c1.layers[0]!.k;
    c1.release();
    assert.equal(c1.bytes, 0);
    assert.equal(c1.length, 0);
    const c2 = m.createCache();
    const b = m.forward(x, 1, T, { cache: c2 }).slice();
    assert.equal(c2.layers[0]!.k.buffer, k0.buffer, 'the released arrays are reused');
    assert.deepEqual(b, a);
    // a released cache stays usable: it allocates again
    const c = m.forward(x, 1, T, { cache: c1 });
    assert.deepEqual(c, a);
    assert.notEqual(c1.layers[0]!.k.buffer, k0.buffer);
  });

  it('prepareGeneration readies a prompt of that size: it then allocates nothing, with the same tokens', () => {
    const m = createModel(TINY_LLAMA, { seed: 5 });
    const x = ids(T, 40, 11);
    const plain = createModel(TINY_LLAMA, { seed: 5 });
    const want = plain.forward(x, 1, T, { cache: plain.createCache(), lastTokenOnly: true }).slice();
    m.train();
    m.prepareGeneration(1, T, T + 8);
    assert.equal(m.training, true, 'the mode is restored');
    m.eval();
    const before = m.bufferBytes;
    const cache = m.createCache();
    const got = m.forward(x, 1, T, { cache, lastTokenOnly: true });
    assert.equal(m.bufferBytes, before, 'no step buffer allocated');
    assert.equal(cache.layers[0]!.capacity, T + 8, "the cache took the prepared cache's arrays");
    assert.deepEqual(got, want);
    assert.throws(() => m.prepareGeneration(1, 8, 4), /context ≥ T/);
  });
});

describe('training step memory', () => {
  const B = 2;
  const T = 16;
  const C = 32;
  const H = 64; // createTinyLlama: intermediate 2·C
  const step = (layers: number): { model: ReturnType<typeof createTinyLlama>; first: number; second: number } => {
    const model = createTinyLlama(64, { layers, hidden: C });
    getPeftModel(model, { r: 4, lora_alpha: 8, target_modules: ['q_proj', 'v_proj'] });
    model.train();
    const x = ids(B * T, 64);
    lossAndBackward(model, x, B, T);
    const first = model.bufferBytes;
    lossAndBackward(model, x, B, T);
    return { model, first, second: model.bufferBytes };
  };

  it('the fused loss names a bad target and a wrong length', () => {
    const model = createTinyLlama(64, { layers: 1, hidden: C });
    const x = ids(B * T, 64);
    const targets = x.slice();
    targets[T + 3] = 64;
    assert.throws(() => model.lossForwardBackward(x, B, T, targets, null), /target 64 \(row 1, position 3\) is outside the vocabulary 0\.\.63 \(use -100 to ignore a token\)/);
    assert.throws(() => model.lossForwardBackward(x, B, T, x.subarray(1), null), /targets has 31 elements, expected \[2, 16\] = 32/);
  });

  it('allocates nothing once the shapes are settled', () => {
    const { first, second } = step(2);
    assert.equal(second, first);
  });

  it('only the activations backward reads grow with depth; scratch is shared by the blocks', () => {
    // (from 3 layers on: the bottom block, which learns but needs no dx, returns none)
    const three = step(3);
    const five = step(5);
    const perBlock = retainedBytes(five.model.layers.at(1));
    assert.equal(five.second - three.second, 2 * perBlock);
    // what a block's backward reads (q, v learn): h, y, the rotated q and k, the attention
    // output, v (v_proj's output), gate and up outputs, plus per-row statistics
    const N = B * T;
    const needed = 4 * N * (C /* h */ + C /* y */ + C /* q */ + C / 2 /* k (GQA 4/2) */ + C /* out */ + C / 2 /* v */ + 2 * H /* gate, up */);
    assert.ok(perBlock >= needed && perBlock <= needed + 4 * N * 16, `a block holds ${perBlock} bytes; its backward reads ${needed}`);
  });

  it('with gradient checkpointing, an evaluation between steps holds no per-block activations and gives the same loss', () => {
    // (issue 23's QLoRA bench: an evaluation in eval mode gave every block its own buffers, a
    // tenth of a 4-bit 888M model's peak memory, then dropped them at the next training step)
    const evalLoss = (gc: boolean): { loss: number; bytes: number[] } => {
      const model = createTinyLlama(64, { layers: 4, hidden: C });
      getPeftModel(model, { r: 4, lora_alpha: 8, target_modules: ['q_proj', 'v_proj'] });
      model.gradientCheckpointing = gc;
      const x = ids(B * T, 64);
      const targets = ids(B * T, 64, 3);
      model.train();
      lossAndBackward(model, x, B, T);
      const bytes = [model.bufferBytes];
      model.eval();
      const { lossSum, count } = model.lossForwardBackward(x, B, T, targets, null);
      bytes.push(model.bufferBytes);
      model.train();
      lossAndBackward(model, x, B, T);
      bytes.push(model.bufferBytes);
      return { loss: lossSum / count, bytes };
    };
    const on = evalLoss(true);
    const off = evalLoss(false);
    assert.deepEqual(on.bytes, [on.bytes[0], on.bytes[0], on.bytes[0]], `buffer bytes after a step, the evaluation, a step: ${on.bytes.join(', ')}`);
    assert.ok(off.bytes[0]! > on.bytes[0]!, 'checkpointing holds less than the blocks without it');
    assert.equal(on.loss, off.loss);
  });
});
