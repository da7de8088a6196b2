// Parity of the model families against the PyTorch fixtures of tests/reference (see its
// README): padded-batch logits, loss, gradient w.r.t. the input embeddings, and greedy
// generation with and without the KV cache, batched and unbatched; on every backend.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { nativeBackend, setBackend } from '../../src/backend/native/select.js';
import { SafetensorsFile, writeSafetensorsSync } from '../../src/io/safetensors.node.js';
import { generate } from '../../src/generate/index.js';
import { causalLMLoss, causalLMLossBackward, Gemma3ForCausalLM, LlamaForCausalLM, Phi3ForCausalLM, positionsFromMask, normalizeMask, ropeInvFreq, type DecoderLM } from '../../src/models/index.js';
import { ropeInvFreq as defaultInvFreq } from '../../src/nn/attention.js';
import { loadModel } from '../../src/models/index.node.js';
import { supportedModelTypes } from '../../src/models/registry.js';
import type { Tensor } from '../../src/tensor/tensor.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const FIXTURES = path.join(ROOT, 'tests/fixtures/models');
const MODELS = ['llama-gqa-llama3rope', 'llama-tied', 'qwen2-bias', 'mistral', 'gpt2', 'llama-bf16', 'qwen3-sliding', 'smollm3-nope', 'gemma3', 'phi3-longrope'];

interface Generation {
  prompt: number[];
  max_new_tokens: number;
  new_tokens: number[];
}
interface Reference {
  model: string;
  model_type: string;
  storage_dtype: string;
  pad_token_id: number;
  input_ids: number[][];
  attention_mask: number[][];
  position_ids: number[][];
  labels: number[][];
  num_loss_tokens: number;
  loss: number;
  generation: Generation[];
}

function readReference(name: string): { ref: Reference; tensors: Map<string, Tensor> } {
  const dir = path.join(FIXTURES, name);
  const ref = JSON.parse(fs.readFileSync(path.join(dir, 'reference.json'), 'utf8')) as Reference;
  const f = SafetensorsFile.open(path.join(dir, 'reference.safetensors'));
  const tensors = new Map<string, Tensor>();
  for (const n of f.names()) if (['F32', 'F16', 'BF16'].includes(f.info(n).dtype)) tensors.set(n, f.tensor(n));
  f.close();
  return { ref, tensors };
}

const flatI32 = (rows: number[][]): Int32Array => Int32Array.from(rows.flat());

/** max |a − b| over rows whose mask is 1 (each row of width W) */
function maxAbsDiff(a: Float32Array, b: Float32Array, W: number, mask?: Uint8Array): number {
  assert.equal(a.length, b.length, 'compared arrays differ in length');
  let m = 0;
  for (let r = 0; r < a.length / W; r++) {
    if (mask && !mask[r]) continue;
    for (let i = r * W; i < (r + 1) * W; i++) {
      const d = Math.abs(a[i]! - b[i]!);
      if (!(d <= m)) m = Number.isNaN(d) ? Infinity : d;
    }
  }
  return m;
}

const backends: ('ref' | 'native')[] = ['ref'];
if (nativeBackend()) backends.push('native');

const report: string[] = [];
after(() => {
  if (report.length) console.log(`max abs errors:\n  ${report.join('\n  ')}`);
});

for (const be of backends) {
  describe(`model parity (${be} backend)`, () => {
    before(() => setBackend(be));

    for (const name of MODELS) {
      describe(name, () => {
        let model: DecoderLM;
        let ref: Reference;
        let tensors: Map<string, Tensor>;
        before(() => {
          setBackend(be);
          ({ ref, tensors } = readReference(name));
          model = loadModel(path.join(FIXTURES, name));
        });

        it('loads with the checkpoint dtype and model_type', () => {
          assert.equal(model.info.modelType, ref.model_type);
          const want = ref.storage_dtype === 'bfloat16' ? 'bf16' : 'f32';
          for (const [k, p] of model.namedParameters()) assert.equal(p.value.dtype, want, `${k} dtype`);
          const f32 = loadModel(path.join(FIXTURES, name), { dtype: 'f32' });
          for (const [k, p] of f32.namedParameters()) assert.equal(p.value.dtype, 'f32', `${k} dtype with dtype: 'f32'`);
        });

        if (name === 'gemma3') {
          it('rope inv_freq of the full and the sliding layers equal the reference; layer windows', () => {
            const cfg = (model as Gemma3ForCausalLM).cfg;
            const full = ropeInvFreq(cfg.rope);
            const local = defaultInvFreq(cfg.headDim, cfg.localRopeTheta);
            for (const [got, key] of [[full, 'rope_inv_freq.full_attention'], [local, 'rope_inv_freq.sliding_attention']] as const) {
              const want = tensors.get(key)!.toF32Array();
              assert.ok(maxAbsDiff(got, want, want.length) <= 1e-7 * Math.max(...want), key);
            }
            assert.deepEqual([...model.layers].map((b) => b.attn.core.window), [4, 0]);
            assert.ok(4 < ref.input_ids[0]!.length, 'the window is shorter than the batch');
          });
        }
        if (name === 'phi3-longrope') {
          it('longrope: short and long inv_freq equal the reference, and a 40-token sequence (past original_max_position_embeddings) gives its logits', () => {
            const cfg = (model as Phi3ForCausalLM).cfg;
            for (const [seq, key] of [[32, 'rope_inv_freq.short'], [33, 'rope_inv_freq.long']] as const) {
              const want = tensors.get(key)!.toF32Array();
              assert.ok(maxAbsDiff(ropeInvFreq(cfg.rope, seq), want, want.length) <= 1e-7 * Math.max(...want), key);
            }
            const f = SafetensorsFile.open(path.join(FIXTURES, name, 'reference.safetensors'));
            const longIds = Int32Array.from(f.raw('long.input_ids').data as BigInt64Array, (x) => Number(x));
            f.close();
            assert.equal(longIds.length, 40);
            const logits = model.forward(longIds, 1, longIds.length);
            const d = maxAbsDiff(logits, tensors.get('long.logits')!.toF32Array(), model.info.vocabSize);
            report.push(`${be} ${name} long-sequence logits: ${d.toExponential(2)}`);
            assert.ok(d <= 1e-4, `long logits max abs diff ${d}`);
            // back within original_max_position_embeddings the short factors return
            const short = model.forward(flatI32(ref.input_ids), ref.input_ids.length, ref.input_ids[0]!.length, { attentionMask: Uint8Array.from(ref.attention_mask.flat()) });
            const ds = maxAbsDiff(short, tensors.get('logits')!.toF32Array(), model.info.vocabSize, Uint8Array.from(ref.attention_mask.flat()));
            assert.ok(ds <= 1e-4, `logits after a long sequence: max abs diff ${ds}`);
          });
        }
        if (!['gpt2', 'gemma3', 'phi3-longrope'].includes(name)) {
          it('rope inv_freq equals the reference', () => {
            const want = tensors.get('rope_inv_freq')!.toF32Array();
            const got = ropeInvFreq((model as LlamaForCausalLM).cfg.rope);
            const d = maxAbsDiff(got, want, want.length);
            report.push(`${be} ${name} rope inv_freq: ${d.toExponential(2)}`);
            assert.ok(d <= 1e-7 * Math.max(...want), `inv_freq max abs diff ${d}`);
          });
        }

        it('positions from the mask equal the reference position_ids', () => {
          const B = ref.input_ids.length;
          const T = ref.input_ids[0]!.length;
          const pos = positionsFromMask(normalizeMask(flatI32(ref.attention_mask), B, T), B, T, T);
          assert.deepEqual([...pos], ref.position_ids.flat());
        });

        it('padded-batch logits and loss', () => {
          const B = ref.input_ids.length;
          const T = ref.input_ids[0]!.length;
          const V = model.info.vocabSize;
          const mask = Uint8Array.from(ref.attention_mask.flat());
          const logits = model.forward(flatI32(ref.input_ids), B, T, { attentionMask: mask });
          const d = maxAbsDiff(logits, tensors.get('logits')!.toF32Array(), V, mask);
          const { loss, count } = causalLMLoss(logits, flatI32(ref.labels), B, T, V);
          report.push(`${be} ${name} logits: ${d.toExponential(2)}, loss: ${Math.abs(loss - ref.loss).toExponential(2)}`);
          assert.ok(d <= 1e-4, `logits max abs diff ${d}`);
          assert.equal(count, ref.num_loss_tokens);
          assert.ok(Math.abs(loss - ref.loss) <= 1e-5, `loss ${loss} vs ${ref.loss}`);
        });

        it('gradient w.r.t. the input embeddings', () => {
          const B = ref.input_ids.length;
          const T = ref.input_ids[0]!.length;
          const V = model.info.vocabSize;
          const C = model.info.hiddenSize;
          const embeds = tensors.get('inputs_embeds')!.toF32Array(true);
          const labels = flatI32(ref.labels);
          const logits = model.forward(null, B, T, { attentionMask: flatI32(ref.attention_mask), inputsEmbeds: embeds, inputGrad: true });
          const { loss, count } = causalLMLoss(logits, labels, B, T, V);
          assert.ok(Math.abs(loss - ref.loss) <= 1e-5, `loss from inputs_embeds ${loss} vs ${ref.loss}`);
          const dlogits = new Float32Array(B * T * V);
          causalLMLossBackward(dlogits, logits, labels, B, T, V, count);
          const grad = model.backward(dlogits);
          assert.ok(grad, 'backward returned the input-embedding gradient');
          const want = tensors.get('inputs_embeds_grad')!.toF32Array();
          const d = maxAbsDiff(grad, want, C);
          let scale = 0;
          for (const x of want) scale = Math.max(scale, Math.abs(x));
          report.push(`${be} ${name} d(inputs_embeds): ${d.toExponential(2)} (max |grad| ${scale.toExponential(2)})`);
          assert.ok(scale > 0, 'the reference gradient is not all zero');
          assert.ok(d <= 1e-5, `inputs_embeds grad max abs diff ${d}`);
        });

        for (const useCache of [true, false]) {
          it(`greedy generation, unbatched, ${useCache ? 'with' : 'without'} the KV cache`, () => {
            for (const g of ref.generation) {
              const [res] = generate(model, [g.prompt], { maxNewTokens: g.max_new_tokens, useCache, stopTokenIds: [], exactProducts: true });
              assert.deepEqual(res!.tokens, g.new_tokens, `prompt of ${g.prompt.length} tokens`);
            }
          });
          it(`greedy generation, batched with left padding, ${useCache ? 'with' : 'without'} the KV cache`, () => {
            const res = generate(model, ref.generation.map((g) => g.prompt), {
              maxNewTokens: ref.generation[0]!.max_new_tokens,
              useCache,
              stopTokenIds: [],
              padTokenId: ref.pad_token_id,
              exactProducts: true,
            });
            ref.generation.forEach((g, i) => assert.deepEqual(res[i]!.tokens, g.new_tokens, `row ${i}`));
          });
        }
      });
    }
  });
}

describe('loading errors', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lorakit-models-'));
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  function copyFixture(name: string, to: string): string {
    const dst = path.join(tmp, to);
    fs.mkdirSync(dst, { recursive: true });
    for (const f of ['config.json', 'model.safetensors']) fs.copyFileSync(path.join(FIXTURES, name, f), path.join(dst, f));
    return dst;
  }

  it('reports a missing tensor and a wrong shape together, naming each and both shapes', () => {
    const dir = copyFixture('llama-tied', 'broken');
    const f = SafetensorsFile.open(path.join(dir, 'model.safetensors'));
    const all = new Map<string, Tensor>();
    for (const n of f.names()) all.set(n, f.tensor(n));
    f.close();
    all.delete('model.layers.1.mlp.up_proj.weight');
    const q = all.get('model.layers.0.self_attn.q_proj.weight')!; // [48, 32]
    all.set('model.layers.0.self_attn.q_proj.weight', q.reshape([32, 48]));
    writeSafetensorsSync(path.join(dir, 'model.safetensors'), all);
    assert.throws(
      () => loadModel(dir),
      (e: Error) => {
        assert.match(e.message, /missing tensor model\.layers\.1\.mlp\.up_proj\.weight \(expected shape \[48, 32\]\)/);
        assert.match(e.message, /model\.layers\.0\.self_attn\.q_proj\.weight has shape \[32, 48\], the model expects \[48, 32\]/);
        return true;
      },
    );
  });

  it('reports an unexpected tensor', () => {
    const dir = copyFixture('llama-tied', 'extra');
    const f = SafetensorsFile.open(path.join(dir, 'model.safetensors'));
    const all = new Map<string, Tensor>();
    for (const n of f.names()) all.set(n, f.tensor(n));
    f.close();
    all.set('model.layers.0.self_attn.extra.weight', all.get('model.norm.weight')!);
    writeSafetensorsSync(path.join(dir, 'model.safetensors'), all);
    assert.throws(() => loadModel(dir), /unexpected tensor model\.layers\.0\.self_attn\.extra\.weight/);
  });

  it('rejects an unsupported model_type, listing the supported ones', () => {
    const dir = copyFixture('gpt2', 'bert');
    const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    cfg['model_type'] = 'bert';
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(cfg));
    assert.throws(() => loadModel(dir), new RegExp(`"model_type" "bert" is not supported; supported model types: ${supportedModelTypes().join(', ')}`));
  });

  it('names the config key and the expected type', () => {
    const dir = copyFixture('mistral', 'badcfg');
    const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    cfg['num_attention_heads'] = '4';
    cfg['rope_scaling'] = { rope_type: 'yarn-ish', factor: 2 };
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(cfg));
    assert.throws(() => loadModel(dir), (e: Error) => {
      assert.match(e.message, /"num_attention_heads" must be an integer ≥ 1, got the string "4"/);
      assert.match(e.message, /"rope_scaling.rope_type" = "yarn-ish" is not supported; supported rope types: default, linear, dynamic, llama3/);
      return true;
    });
  });
});
