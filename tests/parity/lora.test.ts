// LoRA / DoRA parity against the PyTorch fixtures of tests/reference (PEFT-layout adapters
// with non-zero B on the tiny llama and GPT-2): logits, loss, the gradient of every lora_A,
// lora_B and DoRA magnitude, and merged weights; on every backend. Adapters written by lorakit,
// as PyTorch read them (tests/fixtures/readback; live too where /usr/bin/python3 has torch).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { nativeBackend, setBackend } from '../../src/backend/native/select.js';
import { SafetensorsFile, readSafetensors } from '../../src/io/safetensors.node.js';
import { causalLMLoss, causalLMLossBackward, lossAndBackward, type DecoderLM } from '../../src/models/index.js';
import { loadModel } from '../../src/models/index.node.js';
import { generate } from '../../src/generate/index.js';
import type { Module } from '../../src/nn/module.js';
import { Rng } from '../../src/tensor/rng.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { loadPeftModel } from '../../src/lora/files.node.js';
import type { PeftModel } from '../../src/lora/peft-model.js';
import { saveAdapter } from '../../src/lora/files.node.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const ADAPTERS = path.join(ROOT, 'tests/fixtures/adapters');
const NAMES = fs.existsSync(ADAPTERS) ? fs.readdirSync(ADAPTERS).filter((n) => fs.existsSync(path.join(ADAPTERS, n, 'reference.json'))).sort() : [];

interface Reference {
  base_model_path: string;
  /** greedy continuations with the adapter active (make_fixtures.py; no near-ties: min_top2_margin > 1e-3) */
  generation: { prompt: number[]; max_new_tokens: number; new_tokens: number[] }[];
  input_ids: number[][];
  attention_mask: number[][];
  labels: number[][];
  num_loss_tokens: number;
  loss: number;
}

function readReference(name: string): { ref: Reference; tensors: Map<string, Tensor> } {
  const dir = path.join(ADAPTERS, name);
  const ref = JSON.parse(fs.readFileSync(path.join(dir, 'reference.json'), 'utf8')) as Reference;
  const f = SafetensorsFile.open(path.join(dir, 'reference.safetensors'));
  const tensors = new Map<string, Tensor>();
  for (const n of f.names()) if (['F32', 'F16', 'BF16'].includes(f.info(n).dtype)) tensors.set(n, f.tensor(n));
  f.close();
  return { ref, tensors };
}

const flatI32 = (rows: number[][]): Int32Array => Int32Array.from(rows.flat());

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>, W = a.length, mask?: Uint8Array): number {
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

function setup(name: string, trainable: boolean): { model: DecoderLM; peft: PeftModel<DecoderLM>; ref: Reference; tensors: Map<string, Tensor> } {
  const { ref, tensors } = readReference(name);
  const model = loadModel(path.join(ROOT, ref.base_model_path));
  const peft = loadPeftModel(model, path.join(ADAPTERS, name), { isTrainable: trainable });
  return { model, peft, ref, tensors };
}

const backends: ('ref' | 'native')[] = ['ref'];
if (nativeBackend()) backends.push('native');
const report: string[] = [];
after(() => {
  if (report.length) console.log(`max abs errors:\n  ${report.join('\n  ')}`);
});

for (const be of backends) {
  describe(`LoRA parity (${be} backend)`, () => {
    before(() => setBackend(be));
    for (const name of NAMES) {
      describe(name, () => {
        it('logits and loss of the loaded PEFT adapter', () => {
          const { model, ref, tensors } = setup(name, false);
          const B = ref.input_ids.length;
          const T = ref.input_ids[0]!.length;
          const V = model.info.vocabSize;
          const mask = Uint8Array.from(ref.attention_mask.flat());
          const logits = model.forward(flatI32(ref.input_ids), B, T, { attentionMask: mask });
          const d = maxAbsDiff(logits, tensors.get('logits')!.toF32Array(), V, mask);
          const { loss, count } = causalLMLoss(logits, flatI32(ref.labels), B, T, V);
          report.push(`${be} ${name} logits ${d.toExponential(2)}, loss ${Math.abs(loss - ref.loss).toExponential(2)}`);
          assert.ok(d <= 1e-4, `logits max abs diff ${d}`);
          assert.equal(count, ref.num_loss_tokens);
          assert.ok(Math.abs(loss - ref.loss) <= 1e-4, `loss ${loss} vs ${ref.loss}`);
        });

        it('gradients of every lora_A, lora_B and magnitude', () => {
          const { model, peft, ref, tensors } = setup(name, true);
          const B = ref.input_ids.length;
          const T = ref.input_ids[0]!.length;
          const V = model.info.vocabSize;
          model.zeroGrad();
          const labels = flatI32(ref.labels);
          const logits = model.forward(flatI32(ref.input_ids), B, T, { attentionMask: flatI32(ref.attention_mask) });
          const { count } = causalLMLoss(logits, labels, B, T, V);
          const dlogits = new Float32Array(logits.length);
          causalLMLossBackward(dlogits, logits, labels, B, T, V, count);
          model.backward(dlogits);
          const grads = [...tensors.keys()].filter((k) => k.startsWith('grad.'));
          assert.ok(grads.length > 0);
          let worst = 0;
          let checked = 0;
          for (const key of grads) {
            const fileKey = key.slice('grad.'.length);
            const m = /^base_model\.model\.(.*)\.(lora_A\.weight|lora_B\.weight|lora_magnitude_vector)$/.exec(fileKey);
            assert.ok(m, `unexpected reference gradient ${key}`);
            const a = peft.loraLayers.get(m[1]!)!.adapter('default');
            const p = m[2] === 'lora_A.weight' ? a.A : m[2] === 'lora_B.weight' ? a.B : a.magnitude!;
            assert.ok(p.grad, `${fileKey} has a gradient`);
            const d = maxAbsDiff(p.grad, tensors.get(key)!.toF32Array());
            worst = Math.max(worst, d);
            checked++;
            assert.ok(d <= 1e-4, `${fileKey}: max abs diff ${d}`);
          }
          // every trainable adapter parameter has a reference gradient
          assert.equal(checked, peft.trainableParameters().length);
          report.push(`${be} ${name} adapter gradients (${checked}) ${worst.toExponential(2)}`);
        });

        it('the same loss and gradients through the fused head + loss, a few rows at a time', () => {
          const { model, peft, ref, tensors } = setup(name, true);
          const B = ref.input_ids.length;
          const T = ref.input_ids[0]!.length;
          model.logitsBlock = 3 * model.info.vocabSize; // blocks of 3 rows, some with every label ignored
          model.zeroGrad();
          const { loss, count } = lossAndBackward(model, flatI32(ref.input_ids), B, T, { attentionMask: flatI32(ref.attention_mask), labels: flatI32(ref.labels) });
          assert.equal(count, ref.num_loss_tokens);
          assert.ok(Math.abs(loss - ref.loss) <= 1e-4, `loss ${loss} vs ${ref.loss}`);
          let checked = 0;
          for (const key of [...tensors.keys()].filter((k) => k.startsWith('grad.'))) {
            const m = /^base_model\.model\.(.*)\.(lora_A\.weight|lora_B\.weight|lora_magnitude_vector)$/.exec(key.slice('grad.'.length))!;
            const a = peft.loraLayers.get(m[1]!)!.adapter('default');
            const p = m[2] === 'lora_A.weight' ? a.A : m[2] === 'lora_B.weight' ? a.B : a.magnitude!;
            const d = maxAbsDiff(p.grad!, tensors.get(key)!.toF32Array());
            assert.ok(d <= 1e-4, `${key}: max abs diff ${d}`);
            checked++;
          }
          assert.equal(checked, peft.trainableParameters().length);
          // the head never held more than one block of logits
          const headBytes = (model.lmHead as unknown as Module).buffers.bytes;
          assert.ok(headBytes <= 4 * 3 * (model.info.vocabSize + model.info.hiddenSize), `the head holds ${headBytes} bytes, more than 3 rows of logits and of dx`);
        });

        it('greedy generation with the adapter equals PyTorch\'s, with and without the KV cache, one by one and batched', () => {
          const { model, ref } = setup(name, false);
          assert.ok(ref.generation.length > 0);
          for (const useCache of [true, false]) {
            for (const g of ref.generation) {
              const [res] = generate(model, [g.prompt], { maxNewTokens: g.max_new_tokens, useCache, stopTokenIds: [], exactProducts: true });
              assert.deepEqual(res!.tokens, g.new_tokens, `prompt of ${g.prompt.length} tokens${useCache ? '' : ', no cache'}`);
            }
          }
          const rows = generate(model, ref.generation.map((g) => g.prompt), { maxNewTokens: ref.generation[0]!.max_new_tokens, stopTokenIds: [], exactProducts: true });
          ref.generation.forEach((g, i) => assert.deepEqual(rows[i]!.tokens, g.new_tokens, `batched row ${i}`));
        });

        it('merged weights, and merged logits equal the adapter logits', () => {
          const { model, peft, ref, tensors } = setup(name, false);
          const B = ref.input_ids.length;
          const T = ref.input_ids[0]!.length;
          const V = model.info.vocabSize;
          const mask = Uint8Array.from(ref.attention_mask.flat());
          peft.merge({ safeMerge: true });
          let worst = 0;
          const merged = [...tensors.keys()].filter((k) => k.startsWith('merged.'));
          assert.equal(merged.length, peft.loraLayers.size);
          for (const key of merged) {
            const modPath = key.slice('merged.'.length, -'.weight'.length);
            const l = peft.loraLayers.get(modPath)!;
            const d = maxAbsDiff(l.weight.value.toF32Array(), tensors.get(key)!.toF32Array());
            worst = Math.max(worst, d);
            assert.ok(d <= 1e-5, `${key}: ${d}`);
          }
          const logits = model.forward(flatI32(ref.input_ids), B, T, { attentionMask: mask });
          const d = maxAbsDiff(logits, tensors.get('logits')!.toF32Array(), V, mask);
          report.push(`${be} ${name} merged weights ${worst.toExponential(2)}, merged logits ${d.toExponential(2)}`);
          assert.ok(d <= 1e-4, `merged logits ${d}`);
        });
      });
    }
  });
}

// ---- adapters written by lorakit, read by PyTorch. tests/fixtures/readback/<name> holds the
// adapter files lorakit wrote and the logits tests/reference/check_adapter.py computed from them
// (PEFT's way, in torch), so the check runs everywhere, CI included, without Python: lorakit
// must write the same bytes, and its logits must equal torch's. Where /usr/bin/python3 has
// torch, the script also reads the adapter written now and must agree with the fixture;
// LORAKIT_WRITE_READBACK=1 (with torch) rewrites the fixture.
const PY = '/usr/bin/python3';
const hasTorch = fs.existsSync(PY) && spawnSync(PY, ['-c', 'import torch'], { encoding: 'utf8' }).status === 0;
const READBACK = path.join(ROOT, 'tests/fixtures/readback');
const ADAPTER_FILES = ['adapter_config.json', 'adapter_model.safetensors'];

function torchReads(adapter: string, name: string, dump: string): Float32Array {
  const r = spawnSync(PY, [path.join(ROOT, 'tests/reference/check_adapter.py'), adapter, '--inputs', path.join(ADAPTERS, name, 'reference.json'), '--reference', path.join(ADAPTERS, name, 'reference.safetensors'), '--tol', '1e9', '--dump', dump], {
    cwd: ROOT,
    encoding: 'utf8',
    // one thread: a loaded machine makes MKL/OpenMP use fewer threads, which changes torch's summation order
    env: { ...process.env, OMP_NUM_THREADS: '1', MKL_NUM_THREADS: '1' },
  });
  assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
  assert.ok(!/keys PEFT 0.14 does not know/.test(r.stdout), r.stdout);
  return readSafetensors(dump).tensors.get('logits')!.toF32Array();
}

describe('PyTorch reads the adapters lorakit writes', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lorakit-lora-parity-'));
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));
  for (const name of NAMES) {
    it(name, () => {
      setBackend('ref');
      const { model, peft, ref } = setup(name, true);
      // change the adapter so the check cannot pass by reading the fixture again
      const rng = new Rng(7);
      for (const [, p] of peft.trainableParameters()) for (let i = 0; i < p.data.length; i++) p.data[i] = p.data[i]! * (1 + 0.2 * rng.normal());
      const B = ref.input_ids.length;
      const T = ref.input_ids[0]!.length;
      const V = model.info.vocabSize;
      const mask = Uint8Array.from(ref.attention_mask.flat());
      const logits = model.forward(flatI32(ref.input_ids), B, T, { attentionMask: mask }).slice();
      const out = path.join(tmp, `lorakit-${name}`);
      saveAdapter(peft, out, { baseModelNameOrPath: ref.base_model_path });
      const fixture = path.join(READBACK, name);
      if (process.env.LORAKIT_WRITE_READBACK === '1') {
        assert.ok(hasTorch, 'LORAKIT_WRITE_READBACK=1 needs /usr/bin/python3 with torch');
        fs.mkdirSync(fixture, { recursive: true });
        for (const f of ADAPTER_FILES) fs.copyFileSync(path.join(out, f), path.join(fixture, f));
        torchReads(fixture, name, path.join(fixture, 'torch-logits.safetensors'));
      }
      // the bytes lorakit writes are the bytes torch read
      for (const f of ADAPTER_FILES) assert.ok(fs.readFileSync(path.join(out, f)).equals(fs.readFileSync(path.join(fixture, f))), `${name}/${f} differs from the bytes PyTorch read (tests/fixtures/readback)`);
      const torchLogits = readSafetensors(path.join(fixture, 'torch-logits.safetensors')).tensors.get('logits')!.toF32Array();
      const d = maxAbsDiff(logits, torchLogits, V, mask);
      report.push(`torch reads lorakit's ${name}: logits ${d.toExponential(2)}`);
      assert.ok(d <= 1e-4, `torch logits of lorakit's adapter differ by ${d}`);
      if (hasTorch) {
        const live = torchReads(out, name, path.join(tmp, `${name}-torch.safetensors`));
        // torch runs of the same file in different processes differ in the last float32 digits
        // (3e-6 seen on logits of size ~5: oneDNN's kernel choice), so not bit for bit
        const dl = maxAbsDiff(live, torchLogits, V, mask);
        assert.ok(dl <= 1e-5, `the live torch read-back differs from tests/fixtures/readback by ${dl}`);
      }
    });
  }
});
