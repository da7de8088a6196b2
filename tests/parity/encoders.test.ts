// BERT / RoBERTa / ViT classification parity against the PyTorch fixtures of
// tests/reference/make_encoder_fixtures.py: base logits, logits and loss with a PEFT adapter
// (query/value LoRA with non-zero B, classifier in modules_to_save), the gradient of every
// lora_A / lora_B and of the classifier copy, the pixel gradient through the patch embedding
// (col2im), merged weights, and the adapter files written back; on every backend.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { getBackend } from '../../src/backend/index.js';
import { nativeBackend, setBackend } from '../../src/backend/native/select.js';
import { SafetensorsFile, readSafetensors } from '../../src/io/safetensors.node.js';
import { loadPeftModel } from '../../src/lora/files.node.js';
import type { EncoderClassifier, EncoderInputs } from '../../src/models/encoder.js';
import { loadClassifier } from '../../src/models/encoder-load.node.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { saveAdapter } from '../../src/lora/files.node.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const FIX = path.join(ROOT, 'tests/fixtures/encoders');
const NAMES = ['bert', 'roberta', 'vit'];
const PEFT = 'base_model.model.';

interface Reference {
  model_type: string;
  labels: string[];
  labels_batch: number[];
  input_ids?: number[][];
  token_type_ids?: number[][];
  attention_mask?: number[][];
  loss: number;
  base_loss: number;
}

function readReference(name: string): { ref: Reference; tensors: Map<string, Tensor> } {
  const dir = path.join(FIX, name);
  const ref = JSON.parse(fs.readFileSync(path.join(dir, 'reference.json'), 'utf8')) as Reference;
  const f = SafetensorsFile.open(path.join(dir, 'reference.safetensors'));
  const tensors = new Map<string, Tensor>();
  for (const n of f.names()) if (f.info(n).dtype === 'F32') tensors.set(n, f.tensor(n));
  f.close();
  return { ref, tensors };
}

function inputsOf(ref: Reference, tensors: Map<string, Tensor>): EncoderInputs {
  if (ref.model_type === 'vit') {
    const px = tensors.get('pixel_values')!;
    return { pixels: px.toF32Array(), B: px.shape[0]! };
  }
  const ids = ref.input_ids!;
  return {
    ids: Int32Array.from(ids.flat()),
    B: ids.length,
    T: ids[0]!.length,
    tokenTypeIds: Int32Array.from(ref.token_type_ids!.flat()),
    attentionMask: Uint8Array.from(ref.attention_mask!.flat()),
  };
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length, 'compared arrays differ in length');
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    if (!(d <= m)) m = Number.isNaN(d) ? Infinity : d;
  }
  return m;
}

/** mean cross-entropy over the batch; with backward, the model's gradients are added */
function lossOf(model: EncoderClassifier, logits: Float32Array, labels: number[], backward: boolean): number {
  const B = labels.length;
  const L = logits.length / B;
  const be = getBackend();
  const targets = Int32Array.from(labels);
  const losses = new Float32Array(B);
  be.crossEntropyForward(losses, logits, targets, B, L, -100);
  const loss = losses.reduce((s, x) => s + x, 0) / B;
  if (backward) {
    const dl = new Float32Array(B * L);
    be.crossEntropyBackward(dl, logits, targets, B, L, 1 / B, -100);
    model.backward(dl);
  }
  return loss;
}

const backends: ('ref' | 'native')[] = ['ref'];
if (nativeBackend()) backends.push('native');
const report: string[] = [];
after(() => {
  if (report.length) console.log(`encoder parity, max abs errors:\n  ${report.join('\n  ')}`);
});

for (const be of backends) {
  describe(`encoder parity (${be} backend)`, () => {
    before(() => setBackend(be));
    for (const name of NAMES) {
      describe(name, () => {
        const dir = path.join(FIX, name);

        it('base logits (and the pixel gradient through the patch embedding)', () => {
          const { ref, tensors } = readReference(name);
          const model = loadClassifier(dir);
          assert.deepEqual(model.labels, ref.labels);
          const inputs = inputsOf(ref, tensors);
          const isVit = ref.model_type === 'vit';
          const logits = model.forward(inputs, { inputGrad: isVit });
          const err = maxAbsDiff(logits, tensors.get('base.logits')!.toF32Array());
          report.push(`${be} ${name} base logits ${err.toExponential(2)}`);
          assert.ok(err <= 1e-4, `base logits differ by ${err}`);
          const loss = lossOf(model, logits, ref.labels_batch, isVit);
          assert.ok(Math.abs(loss - ref.base_loss) <= 1e-5 * Math.max(1, Math.abs(ref.base_loss)), `base loss ${loss} vs ${ref.base_loss}`);
          if (isVit) {
            // frozen model: backward still returns d loss / d pixels (im2col → GEMM → col2im)
            const dl = new Float32Array(logits.length);
            const B = ref.labels_batch.length;
            getBackend().crossEntropyBackward(dl, model.forward(inputs, { inputGrad: true }), Int32Array.from(ref.labels_batch), B, logits.length / B, 1 / B, -100);
            const dpix = model.backward(dl)!;
            const e = maxAbsDiff(dpix, tensors.get('base.grad.pixel_values')!.toF32Array());
            report.push(`${be} ${name} pixel grad ${e.toExponential(2)}`);
            assert.ok(e <= 1e-4, `pixel gradient differs by ${e}`);
          }
        });

        it('adapter: logits, loss, LoRA and classifier gradients, merged weights', () => {
          const { ref, tensors } = readReference(name);
          const model = loadClassifier(dir);
          const peft = loadPeftModel(model, path.join(dir, 'adapter'), { isTrainable: true });
          model.train(false); // no dropout; gradients still flow
          const inputs = inputsOf(ref, tensors);
          const logits = model.forward(inputs);
          const err = maxAbsDiff(logits, tensors.get('logits')!.toF32Array());
          report.push(`${be} ${name} adapter logits ${err.toExponential(2)}`);
          assert.ok(err <= 1e-4, `logits differ by ${err}`);
          model.zeroGrad();
          const loss = lossOf(model, logits, ref.labels_batch, true);
          assert.ok(Math.abs(loss - ref.loss) <= 1e-5 * Math.max(1, Math.abs(ref.loss)), `loss ${loss} vs ${ref.loss}`);

          const params = new Map(model.namedParameters());
          let worst = 0;
          let checked = 0;
          let heads = 0;
          for (const [key, t] of tensors) {
            if (!key.startsWith(`grad.${PEFT}`)) continue;
            const peftKey = key.slice(`grad.${PEFT}`.length);
            const m = /^(.*)\.(lora_[AB])\.weight$/.exec(peftKey);
            const pname = m ? `${m[1]}.${m[2]}.default.weight` : peftKey;
            const p = params.get(pname);
            assert.ok(p, `no parameter ${pname} for ${key}`);
            assert.ok(p.grad, `${pname} has no gradient (is it trainable?)`);
            const e = maxAbsDiff(p.grad, t.toF32Array());
            assert.ok(e <= 1e-4, `gradient of ${pname} differs by ${e}`);
            worst = Math.max(worst, e);
            checked++;
            if (!m) heads++;
          }
          report.push(`${be} ${name} gradients (${checked} tensors) ${worst.toExponential(2)}`);
          assert.ok(checked >= 10 && heads >= 2, `expected LoRA and classifier gradients, checked ${checked} (${heads} head tensors)`);

          const merged = peft.mergeAndUnload();
          const mparams = new Map(merged.namedParameters());
          let mworst = 0;
          for (const [key, t] of tensors) {
            if (!key.startsWith('merged.')) continue;
            const p = mparams.get(key.slice('merged.'.length));
            assert.ok(p, `merged model has no ${key.slice(7)}`);
            mworst = Math.max(mworst, maxAbsDiff(p.value.toF32Array(), t.toF32Array()));
          }
          report.push(`${be} ${name} merged weights ${mworst.toExponential(2)}`);
          assert.ok(mworst <= 1e-6, `merged weights differ by ${mworst}`);
          const ml = (merged as EncoderClassifier).forward(inputs);
          const me = maxAbsDiff(ml, tensors.get('logits')!.toF32Array());
          assert.ok(me <= 1e-4, `merged model logits differ by ${me}`);
        });

        it('adapter files round-trip (LoRA tensors and the classifier copy under PEFT keys)', () => {
          const model = loadClassifier(dir);
          const peft = loadPeftModel(model, path.join(dir, 'adapter'), { isTrainable: true });
          const out = fs.mkdtempSync(path.join(os.tmpdir(), `lorakit-enc-${name}-`));
          try {
            saveAdapter(peft, out);
            const a = readSafetensors(path.join(dir, 'adapter', 'adapter_model.safetensors')).tensors;
            const b = readSafetensors(path.join(out, 'adapter_model.safetensors')).tensors;
            assert.deepEqual([...b.keys()].sort(), [...a.keys()].sort());
            assert.ok([...b.keys()].some((k) => k.startsWith(`${PEFT}classifier.`)), 'the classifier copy is saved');
            for (const [k, t] of a) assert.equal(maxAbsDiff(b.get(k)!.toF32Array(), t.toF32Array()), 0, `${k} changed in the round trip`);
            const cfg = JSON.parse(fs.readFileSync(path.join(out, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
            assert.deepEqual(cfg['modules_to_save'], ['classifier']);
            assert.deepEqual(cfg['target_modules'], ['query', 'value']);
          } finally {
            fs.rmSync(out, { recursive: true, force: true });
          }
        });
      });
    }
  });
}
