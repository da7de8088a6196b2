import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GgufMetadata, parseGguf, serializeGguf, dequantize, type GgufHeader } from '../../src/io/index.js';
import { readTokenizerFiles } from '../../src/io/index.node.js';
import { adapterToGguf, ggufName, hfName, modelToGguf, permuteQK } from '../../src/models/index.js';
import { loadModel } from '../../src/models/index.node.js';

const BUNDLED = 'models/brown-llama';

function values(h: GgufHeader, bytes: Uint8Array, name: string): Float32Array {
  const t = h.tensors.find((x) => x.name === name)!;
  return dequantize(t.spec, bytes.subarray(t.offset, t.offset + t.byteLength), t.byteLength / t.spec.blockBytes * t.spec.blockValues);
}

test('permuteQK: rows of each head from rotate-half to adjacent pairs, and back', () => {
  // 2 heads of D = 4, one column: rows h·4 + [0, 1, 2, 3] → pairs (0, 2), (1, 3)
  const x = Float32Array.from([0, 1, 2, 3, 10, 11, 12, 13]);
  assert.deepEqual([...permuteQK(x, 8, 1, 2)], [0, 2, 1, 3, 10, 12, 11, 13]);
  assert.deepEqual([...permuteQK(permuteQK(x, 8, 1, 2), 8, 1, 2, true)], [...x]);
  assert.equal(ggufName('model.layers.3.self_attn.o_proj.weight'), 'blk.3.attn_output.weight');
  assert.equal(hfName('blk.3.ffn_down.weight'), 'model.layers.3.mlp.down_proj.weight');
  assert.equal(ggufName('model.layers.3.self_attn.rotary_emb.inv_freq'), undefined);
});

test('modelToGguf: the bundled model with llama.cpp metadata, GPT-2 tokenizer keys and permuted q/k rows', () => {
  const model = loadModel(BUNDLED, { dtype: 'f32' });
  const tok = readTokenizerFiles(BUNDLED)!;
  const bytes = serializeGguf(modelToGguf({ config: model.config as never, state: model.stateDict(), tokenizer: tok, type: 'q8_0', name: 'brown' }));
  const h = parseGguf(bytes);
  const m = new GgufMetadata(h.metadata, 'x');
  assert.equal(m.string('general.architecture'), 'llama');
  assert.equal(m.number('llama.context_length'), 512);
  assert.equal(m.number('llama.attention.head_count_kv'), 2);
  assert.equal(m.number('llama.rope.dimension_count'), 64);
  assert.ok(Math.abs(m.number('llama.attention.layer_norm_rms_epsilon') - 1e-5) < 1e-10);
  assert.equal(m.string('tokenizer.ggml.model'), 'gpt2');
  assert.equal(m.string('tokenizer.ggml.pre'), 'gpt-2');
  assert.equal(m.strings('tokenizer.ggml.tokens').length, 4096);
  assert.equal(m.strings('tokenizer.ggml.tokens')[1], '<|im_start|>');
  assert.equal(m.numbers('tokenizer.ggml.token_type')![1], 3);
  assert.equal(m.strings('tokenizer.ggml.merges')[0], 'Ġ t');
  assert.equal(m.bool('tokenizer.ggml.add_bos_token'), false);
  assert.match(m.string('tokenizer.chat_template'), /<\|im_start\|>/);
  assert.equal(h.tensors.some((t) => t.name === 'output.weight'), false, 'tied: no output.weight');
  const q = h.tensors.find((t) => t.name === 'blk.0.attn_q.weight')!;
  assert.deepEqual(q.ne, [256, 256]);
  assert.equal(q.spec.name, 'Q8_0');
  assert.equal(h.tensors.find((t) => t.name === 'blk.0.ffn_down.weight')!.spec.name, 'F16', '688-value rows are not whole Q8_0 blocks');
  assert.equal(h.tensors.find((t) => t.name === 'blk.0.attn_norm.weight')!.spec.name, 'F32');
  // k rows: head 1 (of 2), D = 64: GGUF row 64 + 2·5 + 1 is HF row 64 + 32 + 5
  const k = values(h, bytes, 'blk.0.attn_k.weight');
  const hfK = model.stateDict().get('model.layers.0.self_attn.k_proj.weight')!.toF32Array();
  const row = (a: Float32Array, r: number) => a.subarray(r * 256, (r + 1) * 256);
  const got = row(k, 64 + 11), want = row(hfK, 64 + 37);
  for (let i = 0; i < 256; i++) assert.ok(Math.abs(got[i]! - want[i]!) < 0.01 * Math.max(...want.map(Math.abs)), `k ${i}`);
});

test('adapterToGguf: lora_a ne [in, r], lora_b ne [r, out] with q/k rows permuted, one alpha with per-module scaling folded into B', () => {
  const model = loadModel(BUNDLED, { dtype: 'f32' });
  const r = 2;
  const A = Float32Array.from({ length: r * 256 }, (_, i) => i / 512);
  const Bq = Float32Array.from({ length: 256 * r }, (_, i) => i);
  const Bv = Float32Array.from({ length: 128 * r }, (_, i) => i);
  const out = adapterToGguf(model.config as never, [
    { path: 'model.layers.1.self_attn.q_proj', A, B: Bq, r, inFeatures: 256, outFeatures: 256, scaling: 4 },
    { path: 'model.layers.1.self_attn.v_proj', A, B: Bv, r, inFeatures: 256, outFeatures: 128, scaling: 2 },
  ]);
  const bytes = serializeGguf(out);
  const h = parseGguf(bytes);
  const m = new GgufMetadata(h.metadata, 'x');
  assert.equal(m.string('general.type'), 'adapter');
  assert.equal(m.string('adapter.type'), 'lora');
  assert.equal(m.number('adapter.lora.alpha'), 8);
  assert.deepEqual(h.tensors.map((t) => [t.name, t.ne]), [
    ['blk.1.attn_q.weight.lora_a', [256, 2]],
    ['blk.1.attn_q.weight.lora_b', [2, 256]],
    ['blk.1.attn_v.weight.lora_a', [256, 2]],
    ['blk.1.attn_v.weight.lora_b', [2, 128]],
  ]);
  assert.deepEqual(values(h, bytes, 'blk.1.attn_q.weight.lora_a'), A);
  assert.deepEqual(values(h, bytes, 'blk.1.attn_q.weight.lora_b'), permuteQK(Bq, 256, r, 4));
  assert.deepEqual(values(h, bytes, 'blk.1.attn_v.weight.lora_b'), Bv.map((v) => v / 2), 'v: scaling 2 = alpha 8 / r 2 · 1/2');
  assert.throws(() => adapterToGguf(model.config as never, [{ path: 'score', A, B: Bv, r, inFeatures: 256, outFeatures: 128, scaling: 1 }]), /score has no llama.cpp name/);
});

test('a GGUF export loads back (--model file.gguf): f32 logits equal the folder\'s, the tokenizer encodes and renders chats the same', async () => {
  const { writeGguf } = await import('../../src/io/index.node.js');
  const { loadTokenizer } = await import('../../src/io/index.node.js');
  const { tmpDir } = await import('../helpers/io-tmp.js');
  const path = await import('node:path');
  const model = loadModel(BUNDLED, { dtype: 'f32' });
  const file = path.join(tmpDir(), 'b.gguf');
  await writeGguf(file, modelToGguf({ config: model.config as never, state: model.stateDict(), tokenizer: readTokenizerFiles(BUNDLED)!, type: 'f32' }));
  const back = loadModel(file);
  assert.equal(back.config['model_type'], 'llama');
  assert.equal(back.config['tie_word_embeddings'], true);
  const ids = Int32Array.from([460, 465, 560, 327, 13, 1, 2]);
  const a = model.forward(ids, 1, ids.length).slice();
  const b = back.forward(ids, 1, ids.length);
  assert.deepEqual(b, a);
  const t0 = loadTokenizer(BUNDLED), t1 = loadTokenizer(file);
  const text = 'It was a cold morning, 1961; "Yes," she said.\n\n<|im_start|>user  ünïcode  x<|im_end|>';
  assert.deepEqual(t1.encode(text), t0.encode(text));
  assert.equal(t1.decode(t0.encode(text)), text);
  assert.deepEqual([t1.bosTokenId, t1.eosTokenIds, t1.vocabSize], [t0.bosTokenId, t0.eosTokenIds, t0.vocabSize]);
  const chat = [{ role: 'user', content: 'hi' }];
  assert.equal(t1.applyChatTemplate(chat, { addGenerationPrompt: true }), t0.applyChatTemplate(chat, { addGenerationPrompt: true }));
});
