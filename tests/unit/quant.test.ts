// Quantized bases (docs/ARCHITECTURE.md §Quantized weights): a GGUF model's Q4_0 / Q6_K / Q8_0
// matrices stay blocks in memory, the model's forward and a LoRA step on them equal the same
// model with the blocks dequantized to f32 (to f32 rounding: the GEMM packs the same values, and
// only the path it takes for an f32 weight may order sums otherwise), merging dequantizes with the merged weight in f32 and unmerge restores the
// blocks, and the quantized tensor refuses what it cannot do with a message that says why.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { test } from 'node:test';
import { getBackend } from '../../src/backend/index.js';
import { readTokenizerFiles } from '../../src/io/index.node.js';
import { writeGguf } from '../../src/io/gguf.node.js';
import { blockSpec, quantize } from '../../src/io/gguf-blocks.js';
import { BatchIterator, type Example } from '../../src/data/index.js';
import { saveAdapter } from '../../src/lora/files.node.js';
import { getPeftModel } from '../../src/lora/peft-model.js';
import { modelToGguf } from '../../src/models/index.js';
import { loadModel } from '../../src/models/index.node.js';
import type { DecoderLM } from '../../src/models/decoder.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { dequantizeAll, quantNonFinite } from '../../src/tensor/quant.js';
import { causalLmObjective } from '../../src/train/trainer.js';
import { tmpDir } from '../helpers/io-tmp.js';
import { assertClose } from './kernels-util.js';

const BUNDLED = 'models/brown-llama';
/** a tensor's values as a plain Float32Array (the wasm backend's arrays are views of its heap, a subclass) */
const values = (t: Tensor): Float32Array => Float32Array.from(t.toF32Array());
const quantOk = (getBackend().quantTypes ?? []).includes('q4_0');

let file: string | undefined;
/** The bundled model as a Q4_0 GGUF file (q4_0 projections, q6_k embedding, f16 down_proj: 688-value rows), made once. */
async function q4File(): Promise<string> {
  if (file) return file;
  const model = loadModel(BUNDLED, { dtype: 'f32' });
  const out = path.join(tmpDir('lorakit-quant-'), 'brown-q4_0.gguf');
  await writeGguf(out, modelToGguf({ config: model.config as never, state: model.stateDict(), tokenizer: readTokenizerFiles(BUNDLED)!, type: 'q4_0', name: 'brown' }));
  file = out;
  return out;
}

function loraStep(model: DecoderLM): { loss: number; grads: Float32Array[] } {
  getPeftModel(model, { r: 4, lora_alpha: 8, target_modules: ['q_proj', 'v_proj', 'gate_proj', 'down_proj'], init_lora_weights: 'gaussian' });
  model.train(true);
  const V = model.info.vocabSize, T = 24;
  const examples: Example[] = [0, 1].map((e) => ({ ids: Int32Array.from({ length: T }, (_, t) => (e * 7919 + t * 104729 + 13) % V), targetMask: new Uint8Array(T).fill(1), file: 'quant', line: e + 1, fullLength: T }));
  const data = new BatchIterator(examples, { batchSize: 2, order: 'sequential' });
  const b = data.next();
  const r = causalLmObjective(model).forwardBackward(b, 1 / b.targets);
  return { loss: r.lossSum / r.count, grads: model.trainableParameters().map(([, p]) => p.grad!.slice()) };
}

test('a Q4_0 GGUF base stays quantized in memory: its matrices are blocks, no f32 copy', { skip: quantOk ? false : `backend ${getBackend().name} dequantizes on load` }, async () => {
  const model = loadModel(await q4File());
  const state = model.stateDict();
  assert.equal(state.get('model.layers.0.self_attn.q_proj.weight')!.dtype, 'q4_0');
  assert.equal(state.get('model.layers.1.mlp.up_proj.weight')!.dtype, 'q4_0');
  assert.equal(state.get('model.embed_tokens.weight')!.dtype, 'q6_k');
  assert.equal(state.get('model.layers.0.mlp.down_proj.weight')!.dtype, 'f32', '688-value rows were written as F16 and are read widened');
  const q = state.get('model.layers.0.self_attn.q_proj.weight')!;
  assert.ok(q.data instanceof Uint8Array);
  assert.equal(q.data.length, (256 * 256 / 32) * 18);
  assert.equal(q.size, 256 * 256);
});

test('forward and a LoRA step on the quantized base equal the dequantized f32 base', { skip: quantOk ? false : `backend ${getBackend().name} dequantizes on load` }, async () => {
  const f = await q4File();
  const quant = loadModel(f);
  const deq = loadModel(f, { dtype: 'f32' });
  assert.equal(deq.stateDict().get('model.layers.0.self_attn.q_proj.weight')!.dtype, 'f32');
  // the f32 values are the blocks' values: the Q/K permutation undone the same way on both
  assert.deepEqual(values(quant.stateDict().get('model.layers.0.self_attn.k_proj.weight')!), values(deq.stateDict().get('model.layers.0.self_attn.k_proj.weight')!));
  const a = loraStep(quant), b = loraStep(deq);
  assert.ok(Number.isFinite(a.loss) && a.loss > 0);
  assert.ok(Math.abs(a.loss - b.loss) <= 1e-6 * b.loss, `loss ${a.loss} vs ${b.loss}`);
  assert.equal(a.grads.length, b.grads.length);
  for (let i = 0; i < a.grads.length; i++) {
    const scale = b.grads[i]!.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    assertClose(a.grads[i]!, b.grads[i]!, `gradient ${i}`, 1e-4, 1e-5 * scale);
  }
  assert.ok(a.grads.some((g) => g.some((v) => v !== 0)), 'the step has gradients');
});

test('merging into a quantized weight dequantizes it (the merged weight is f32) and unmerge restores the blocks', { skip: quantOk ? false : `backend ${getBackend().name} dequantizes on load` }, async () => {
  const f = await q4File();
  const quant = loadModel(f), deq = loadModel(f, { dtype: 'f32' });
  const key = 'model.layers.0.self_attn.q_proj.weight';
  const blocks = quant.stateDict().get(key)!;
  const pq = getPeftModel(quant, { r: 4, lora_alpha: 8, target_modules: ['q_proj'], init_lora_weights: 'gaussian' });
  const pd = getPeftModel(deq, { r: 4, lora_alpha: 8, target_modules: ['q_proj'], init_lora_weights: 'gaussian' });
  pq.merge();
  pd.merge();
  const merged = quant.stateDict().get(key)!;
  assert.equal(merged.dtype, 'f32');
  assertClose(merged.toF32Array(), deq.stateDict().get(key)!.toF32Array(), 'merged weight', 1e-6, 1e-7);
  pq.unmerge();
  assert.equal(quant.stateDict().get(key), blocks, 'the blocks themselves are back');
});

test('lorakit merge on a Q4_0 GGUF base says the weights were dequantized and saves f32 safetensors equal to the library merge', { skip: quantOk ? false : `backend ${getBackend().name} dequantizes on load` }, async () => {
  const f = await q4File();
  const dir = tmpDir('lorakit-quant-merge-');
  const model = loadModel(f);
  const peft = getPeftModel(model, { r: 4, lora_alpha: 8, target_modules: ['q_proj', 'down_proj'], init_lora_weights: 'gaussian' });
  // B is zero at init: give it values so the merge changes the weights
  for (const [name, p] of model.trainableParameters()) if (name.includes('lora_B')) p.data.fill(0.01);
  saveAdapter(peft, path.join(dir, 'adapter'));
  const r = spawnSync(process.execPath, ['bin/lorakit.js', 'merge', '--model', f, '--adapter', path.join(dir, 'adapter'), '--out', path.join(dir, 'merged')], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^note: the base holds quantized weights \(q6_k, q4_0\): they were dequantized to merge, and the merged model is saved as f32 safetensors/m);
  const merged = loadModel(path.join(dir, 'merged'));
  peft.mergeAndUnload();
  const want = model.stateDict(), got = merged.stateDict();
  for (const key of ['model.layers.0.self_attn.q_proj.weight', 'model.layers.1.mlp.down_proj.weight', 'model.layers.0.self_attn.k_proj.weight']) {
    assert.equal(got.get(key)!.dtype, 'f32', key);
    assert.deepEqual(values(got.get(key)!), values(want.get(key)!), key);
  }
});

test('quantized tensors: shape checks, read-only, floatData names what to do, non-finite counted from the scales', () => {
  const x = new Float32Array(64).map((_, i) => Math.sin(i));
  const blocks = quantize(blockSpec('Q4_0'), x);
  const t = new Tensor('q4_0', [2, 32], blocks);
  assert.deepEqual(values(t), dequantizeAll('q4_0', blocks));
  assert.equal(t.to('f32').dtype, 'f32');
  assert.throws(() => new Tensor('q4_0', [4, 16], blocks), /rows must be whole 32-value blocks; shape \[4, 16\]/);
  assert.throws(() => new Tensor('q4_0', [3, 32], blocks), /needs 54 bytes, storage has 36/);
  assert.throws(() => t.set([1]), /q4_0 tensor is read-only/);
  assert.throws(() => t.floatData, /holds q4_0 blocks \(a quantized base weight\): dequantize it first/);
  assert.equal(t.nonFiniteCount(), 0);
  const bad = blocks.slice();
  bad[18] = 0x00;
  bad[19] = 0x7c; // the second block's f16 scale: +Inf
  assert.equal(quantNonFinite('q4_0', bad), 32);
  assert.equal(new Tensor('q4_0', [2, 32], bad).nonFiniteCount(), dequantizeAll('q4_0', bad).filter((v) => !Number.isFinite(v)).length);
});
