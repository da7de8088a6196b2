// Encoder models: loading base checkpoints (BertModel / ViTModel key layouts, no classifier),
// label changes, saving, every weight problem reported together, input errors, and the
// gradients of every parameter (not only LoRA's) against finite differences.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { getBackend } from '../../src/backend/index.js';
import { readSafetensors, writeSafetensorsSync } from '../../src/io/safetensors.node.js';
import type { EncoderClassifier, EncoderInputs } from '../../src/models/encoder.js';
import { loadClassifier, saveClassifier } from '../../src/models/encoder-load.node.js';
import { getEncoderFamily, getModelFamily } from '../../src/models/registry.js';
import { Rng } from '../../src/tensor/rng.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { loadPeftModel } from '../../src/lora/files.node.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const FIX = path.join(ROOT, 'tests/fixtures/encoders');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lorakit-encmodels-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

function copyConfig(src: string, dst: string, edit: (c: Record<string, unknown>) => void = () => undefined): void {
  fs.mkdirSync(dst, { recursive: true });
  const c = JSON.parse(fs.readFileSync(path.join(src, 'config.json'), 'utf8')) as Record<string, unknown>;
  edit(c);
  fs.writeFileSync(path.join(dst, 'config.json'), JSON.stringify(c));
}

describe('loading encoder checkpoints', () => {
  it('a BertModel checkpoint (no "bert." prefix, no classifier) loads with a new head and a warning', () => {
    const src = path.join(FIX, 'bert');
    const dst = path.join(tmp, 'bertmodel');
    copyConfig(src, dst);
    const t = readSafetensors(path.join(src, 'model.safetensors')).tensors;
    const base = new Map<string, Tensor>();
    for (const [k, v] of t) if (k.startsWith('bert.')) base.set(k.slice(5), v);
    base.set('embeddings.position_ids', Tensor.zeros([1, 16])); // an old buffer, dropped
    // old TensorFlow-converted names: LayerNorm.gamma / beta
    base.set('embeddings.LayerNorm.gamma', base.get('embeddings.LayerNorm.weight')!);
    base.delete('embeddings.LayerNorm.weight');
    base.set('encoder.layer.1.output.LayerNorm.beta', base.get('encoder.layer.1.output.LayerNorm.bias')!);
    base.delete('encoder.layer.1.output.LayerNorm.bias');
    writeSafetensorsSync(path.join(dst, 'model.safetensors'), base);
    const warnings: string[] = [];
    const m = loadClassifier(dst, { warn: (w) => warnings.push(w) });
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /no trained classifier/);
    const ref = loadClassifier(src);
    const p = new Map(m.namedParameters());
    for (const [k, v] of ref.namedParameters()) {
      if (k.startsWith('classifier.')) continue;
      assert.deepEqual(p.get(k)!.value.toF32Array(), v.value.toF32Array(), k);
    }
    assert.ok(p.get('classifier.weight')!.value.toF32Array().some((x) => x !== 0), 'the new head is initialised');
  });

  it('a ViTModel checkpoint (pooler, no classifier) loads; the pooler is dropped', () => {
    const src = path.join(FIX, 'vit');
    const dst = path.join(tmp, 'vitmodel');
    copyConfig(src, dst);
    const t = readSafetensors(path.join(src, 'model.safetensors')).tensors;
    const base = new Map<string, Tensor>();
    for (const [k, v] of t) if (k.startsWith('vit.')) base.set(k.slice(4), v);
    base.set('pooler.dense.weight', Tensor.zeros([16, 16]));
    base.set('pooler.dense.bias', Tensor.zeros([16]));
    writeSafetensorsSync(path.join(dst, 'model.safetensors'), base);
    const warnings: string[] = [];
    const m = loadClassifier(dst, { warn: (w) => warnings.push(w) });
    assert.equal(m.info.task, 'image');
    assert.match(warnings.join('\n'), /classifier/);
  });

  it('new labels replace the head (warning names both sets); saveClassifier round-trips labels and weights', async () => {
    const warnings: string[] = [];
    const m = loadClassifier(path.join(FIX, 'bert'), { labels: ['a', 'b', 'c', 'd'], warn: (w) => warnings.push(w) });
    assert.equal(m.labels.length, 4);
    assert.match(warnings[0]!, /\["negative", "neutral", "positive"\] differ from \["a", "b", "c", "d"\]/);
    assert.deepEqual(m.config['id2label'], { '0': 'a', '1': 'b', '2': 'c', '3': 'd' });
    const out = path.join(tmp, 'saved');
    await saveClassifier(m, out);
    const back = loadClassifier(out);
    assert.deepEqual(back.labels, ['a', 'b', 'c', 'd']);
    const cfg = JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8')) as Record<string, unknown>;
    assert.deepEqual(cfg['architectures'], ['BertForSequenceClassification']);
    const ids = { ids: Int32Array.from([2, 9, 10, 3]), B: 1, T: 4 };
    assert.deepEqual(back.forward(ids), m.forward(ids));
  });

  it('reports every missing, mis-shaped and unexpected tensor together', () => {
    const src = path.join(FIX, 'roberta');
    const dst = path.join(tmp, 'broken');
    copyConfig(src, dst);
    const t = readSafetensors(path.join(src, 'model.safetensors')).tensors;
    t.delete('roberta.encoder.layer.1.attention.self.query.weight');
    t.set('roberta.encoder.layer.0.output.dense.weight', Tensor.zeros([16, 31]));
    t.set('roberta.encoder.layer.0.extra', Tensor.zeros([2]));
    writeSafetensorsSync(path.join(dst, 'model.safetensors'), t);
    assert.throws(
      () => loadClassifier(dst),
      (e: Error) =>
        e.message.includes('3 problem(s)') &&
        e.message.includes('missing tensor roberta.encoder.layer.1.attention.self.query.weight (expected shape [16, 16])') &&
        e.message.includes('tensor roberta.encoder.layer.0.output.dense.weight has shape [16, 31], the model expects [16, 32]') &&
        e.message.includes('unexpected tensor roberta.encoder.layer.0.extra'),
    );
  });

  it('config problems, family lookups and input errors name what was expected', () => {
    const dst = path.join(tmp, 'badcfg');
    copyConfig(path.join(FIX, 'bert'), dst, (c) => {
      c['hidden_act'] = 'relu';
      c['position_embedding_type'] = 'relative_key';
    });
    fs.copyFileSync(path.join(FIX, 'bert', 'model.safetensors'), path.join(dst, 'model.safetensors'));
    assert.throws(() => loadClassifier(dst), (e: Error) => e.message.includes('"hidden_act" must be one of') && e.message.includes('"position_embedding_type" "relative_key" is not supported'));
    assert.throws(() => getEncoderFamily('llama'), /llama is a causal LM: load it with loadModel/);
    assert.throws(() => getModelFamily('vit'), /vit is a classification model: load it with loadClassifier/);
    const roberta = loadClassifier(path.join(FIX, 'roberta'));
    assert.throws(() => roberta.forward({ ids: Int32Array.from([0, 5, 2]), B: 1, T: 3, tokenTypeIds: Int32Array.from([0, 1, 1]) }), /token type id 1 at row 0, token 1; the model has type_vocab_size 1 \(no sentence pairs\)/);
    assert.throws(() => roberta.forward({ pixels: new Float32Array(3), B: 1 }), /this is a text model/);
    assert.throws(() => roberta.forward({ ids: new Int32Array(40).fill(5), B: 1, T: 40 }), /position 41 is beyond the model's 18 positions/);
    const vit = loadClassifier(path.join(FIX, 'vit'));
    assert.throws(() => vit.forward({ pixels: new Float32Array(3 * 8 * 8), B: 1 }), /pixels has 192 elements, expected \[1, 3, 16, 16\] = 768 \(image_size 16/);
  });
});

/** mean cross-entropy of the model on inputs; with backward, gradients are added */
function loss(model: EncoderClassifier, inputs: EncoderInputs, labels: Int32Array, backward: boolean): number {
  const logits = model.forward(inputs);
  const B = labels.length;
  const L = logits.length / B;
  const be = getBackend();
  const losses = new Float32Array(B);
  be.crossEntropyForward(losses, logits, labels, B, L, -100);
  if (backward) {
    const dl = new Float32Array(logits.length);
    be.crossEntropyBackward(dl, logits, labels, B, L, 1 / B, -100);
    model.backward(dl);
  }
  return losses.reduce((a, b) => a + b, 0) / B;
}

describe('gradients of every parameter (finite differences)', () => {
  const cases: [string, () => { model: EncoderClassifier; inputs: EncoderInputs; labels: Int32Array }][] = [
    [
      'bert (post-LN, embeddings, pooler)',
      () => ({
        model: loadClassifier(path.join(FIX, 'bert'), { dtype: 'f32' }),
        inputs: { ids: Int32Array.from([2, 9, 30, 3, 40, 3, 2, 17, 3, 0]), B: 2, T: 5, tokenTypeIds: Int32Array.from([0, 0, 0, 1, 1, 0, 0, 0, 0, 0]), attentionMask: Uint8Array.from([1, 1, 1, 1, 1, 1, 1, 1, 0, 0]) },
        labels: Int32Array.from([2, 0]),
      }),
    ],
    [
      'vit (pre-LN, cls token, position embeddings, patch projection)',
      () => {
        const rng = new Rng(4);
        const pixels = new Float32Array(2 * 3 * 16 * 16);
        for (let i = 0; i < pixels.length; i++) pixels[i] = rng.normal();
        return { model: loadClassifier(path.join(FIX, 'vit'), { dtype: 'f32' }), inputs: { pixels, B: 2 }, labels: Int32Array.from([1, 2]) };
      },
    ],
  ];
  for (const [name, make] of cases) {
    it(name, () => {
      const { model, inputs, labels } = make();
      model.requiresGrad(true);
      model.zeroGrad();
      loss(model, inputs, labels, true);
      const rng = new Rng(7);
      let checked = 0;
      for (const [pname, p] of model.namedParameters()) {
        const data = p.value.f32;
        // two coordinates per tensor, the largest-gradient one and a random one
        let big = 0;
        for (let i = 1; i < data.length; i++) if (Math.abs(p.grad![i]!) > Math.abs(p.grad![big]!)) big = i;
        for (const i of [big, rng.nextInt(data.length)]) {
          const g = p.grad![i]!;
          const x = data[i]!;
          const h = 1e-2;
          data[i] = x + h;
          const lp = loss(model, inputs, labels, false);
          data[i] = x - h;
          const lm = loss(model, inputs, labels, false);
          data[i] = x;
          const num = (lp - lm) / (2 * h);
          assert.ok(Math.abs(num - g) <= 2e-3 + 0.05 * Math.abs(num), `${pname}[${i}]: backward ${g}, finite difference ${num}`);
          checked++;
        }
      }
      assert.ok(checked > 40, `checked ${checked}`);
    });
  }
});

describe('dropout (hidden_dropout_prob, classifier dropout) in training mode', () => {
  for (const name of ['bert', 'roberta']) {
    it(`${name}: masks differ between forwards, the backward applies the forward's masks (finite differences with replayed masks)`, () => {
      const model = loadClassifier(path.join(FIX, name), { dtype: 'f32' });
      model.requiresGrad(true);
      model.train(true);
      const inputs: EncoderInputs = { ids: Int32Array.from([name === 'bert' ? 2 : 0, 9, 30, 17, 40, 3]), B: 1, T: 6 };
      const labels = Int32Array.from([1]);
      const a = model.forward(inputs).slice();
      const b = model.forward(inputs).slice();
      assert.notDeepEqual(a, b, 'dropout is active in training mode');
      model.eval();
      assert.deepEqual(model.forward(inputs).slice(), model.forward(inputs).slice());
      model.train(true);
      const st = model.rng.state();
      model.zeroGrad();
      loss(model, inputs, labels, true);
      const params = model.namedParameters().filter(([n]) => /attention\.self\.value\.weight$|output\.dense\.weight$|word_embeddings|classifier/.test(n));
      assert.ok(params.length >= 5);
      for (const [pname, p] of params) {
        const data = p.value.f32;
        let i = 0;
        for (let j = 1; j < data.length; j++) if (Math.abs(p.grad![j]!) > Math.abs(p.grad![i]!)) i = j;
        const g = p.grad![i]!;
        const x = data[i]!;
        const h = 1e-2;
        data[i] = x + h;
        model.rng.setState(st);
        const lp = loss(model, inputs, labels, false);
        data[i] = x - h;
        model.rng.setState(st);
        const lm = loss(model, inputs, labels, false);
        data[i] = x;
        const num = (lp - lm) / (2 * h);
        assert.ok(Math.abs(num - g) <= 2e-3 + 0.05 * Math.abs(num), `${pname}[${i}]: backward ${g}, finite difference ${num}`);
      }
    });
  }
});

describe('gradient checkpointing', () => {
  for (const name of ['bert', 'vit']) {
    it(`${name}: the same logits and adapter gradients with and without recomputation`, () => {
      const run = (gc: boolean): Map<string, Float32Array> => {
        const model = loadClassifier(path.join(FIX, name));
        loadPeftModel(model, path.join(FIX, name, 'adapter'), { isTrainable: true });
        model.train(true);
        model.gradientCheckpointing = gc;
        const rng = new Rng(3);
        const inputs: EncoderInputs =
          name === 'vit'
            ? { pixels: Float32Array.from({ length: 2 * 3 * 16 * 16 }, () => rng.normal()), B: 2 }
            : { ids: Int32Array.from([2, 9, 30, 3, 40, 3, 2, 17, 3, 0]), B: 2, T: 5, attentionMask: Uint8Array.from([1, 1, 1, 1, 1, 1, 1, 1, 0, 0]) };
        model.zeroGrad();
        const l = loss(model, inputs, Int32Array.from([1, 0]), true);
        const out = new Map<string, Float32Array>([['loss', Float32Array.of(l)]]);
        for (const [n, p] of model.trainableParameters()) out.set(n, p.grad!.slice());
        return out;
      };
      const plain = run(false);
      const ckpt = run(true);
      assert.deepEqual([...ckpt.keys()], [...plain.keys()]);
      assert.ok(plain.size > 8);
      for (const [k, v] of plain) assert.deepEqual(ckpt.get(k), v, k);
    });
  }
});
