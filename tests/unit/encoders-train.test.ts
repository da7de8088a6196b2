// LoRA fine-tuning of classifiers end to end (files in, adapter out): a tiny BERT-style model
// on a word-order task (the same words in both classes; only their order tells the label) and
// a tiny ViT on synthetic shapes (circles, squares, triangles at random positions, sizes and
// colours). Held-out accuracy must rise well above chance; the adapter (with the resized
// classifier) must reload to the same predictions; bad inputs must fail with clear messages.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import { readSafetensors } from '../../src/io/safetensors.node.js';
import { createClassifier } from '../../src/models/encoder-load.js';
import { saveClassifier } from '../../src/models/encoder-load.node.js';
import { Rng } from '../../src/tensor/rng.js';
import { ClassifyBatches } from '../../src/data/classify.js';
import { classificationMetrics, evaluateClassifier, loadClassifierWithAdapter, loadClassifyExamples, predict, trainClassifier, type PredictInput } from '../../src/tasks/classify.js';
import { SHAPES, encodePng, shapeImage, writeWordPieceTokenizer } from '../../src/tasks/synthetic.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lorakit-enctrain-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const COLORS = ['red', 'blue', 'green', 'yellow', 'black', 'white'];
const ANIMALS = ['cat', 'dog', 'bird', 'fish', 'horse', 'cow'];
const FILLERS = ['the', 'a', 'big', 'small', 'old', 'very'];

/** A sentence with one colour and one animal among fillers; the label says which comes first. */
function orderExample(rng: Rng): { text: string; label: string } {
  const color = COLORS[rng.nextInt(COLORS.length)]!;
  const animal = ANIMALS[rng.nextInt(ANIMALS.length)]!;
  const n = 2 + rng.nextInt(3);
  const fillers = Array.from({ length: n }, () => FILLERS[rng.nextInt(FILLERS.length)]!);
  // two distinct slots p < q among the n + 2 words
  const p = rng.nextInt(n + 1);
  const q = p + 1 + rng.nextInt(n + 1 - p);
  const colorFirst = rng.nextFloat() < 0.5;
  const words: string[] = [];
  for (let k = 0, f = 0; k < n + 2; k++) words.push(k === p ? (colorFirst ? color : animal) : k === q ? (colorFirst ? animal : color) : fillers[f++]!);
  const ci = words.indexOf(color);
  const ai = words.indexOf(animal);
  return { text: words.join(' '), label: ci < ai ? 'color-first' : 'animal-first' };
}

function writeJsonl(file: string, rows: object[]): void {
  fs.writeFileSync(file, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
}

describe('classification fine-tuning with LoRA', () => {
  it('tiny BERT learns word order (held-out accuracy well above chance); the adapter reloads with its labels', async () => {
    const dir = path.join(tmp, 'bert');
    const vocabSize = writeWordPieceTokenizer(dir, [...COLORS, ...ANIMALS, ...FILLERS]);
    const config = {
      model_type: 'bert', vocab_size: vocabSize, hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 4, intermediate_size: 64,
      max_position_embeddings: 16, type_vocab_size: 2, initializer_range: 0.05, layer_norm_eps: 1e-12, hidden_act: 'gelu', pad_token_id: 0,
    };
    await saveClassifier(createClassifier(config, { seed: 11 }), dir);
    const rng = new Rng(5);
    const trainRows = Array.from({ length: 1000 }, () => orderExample(rng));
    const testRows = Array.from({ length: 120 }, () => orderExample(rng));
    writeJsonl(path.join(tmp, 'order-train.jsonl'), trainRows);
    writeJsonl(path.join(tmp, 'order-test.jsonl'), testRows);
    const warnings: string[] = [];
    const out = path.join(tmp, 'run-bert');
    const t0 = Date.now();
    const r = await trainClassifier({
      model: dir,
      train: path.join(tmp, 'order-train.jsonl'),
      valid: path.join(tmp, 'order-test.jsonl'),
      lora: { r: 8, lora_alpha: 16 },
      args: { steps: 600, lr: 1e-2, schedule: 'cosine', warmupSteps: 10, evalEvery: 200, outDir: out, progress: false },
      batchSize: 16,
      seed: 1,
      optimizer: { weightDecay: 0 },
      warn: (m) => warnings.push(m),
    });
    const secs = (Date.now() - t0) / 1000;
    const m = r.metrics!;
    console.log(`bert word order: accuracy ${m.accuracy.toFixed(3)}, macro-F1 ${m.macroF1.toFixed(3)}, loss ${m.loss.toFixed(3)} (${secs.toFixed(1)} s)`);
    // the config's default labels (LABEL_0, LABEL_1) were replaced by the data's, with a warning naming both
    assert.deepEqual([...r.labels], ['animal-first', 'color-first']);
    assert.ok(warnings.some((w) => w.includes('LABEL_0, LABEL_1') && w.includes('animal-first, color-first')), warnings.join('\n'));
    assert.equal(m.examples, 120);
    assert.ok(m.accuracy >= 0.75, `held-out accuracy ${m.accuracy} (chance 0.5)`);
    assert.ok(m.macroF1 >= 0.72, `macro-F1 ${m.macroF1}`);
    // the trained adapter: query/value LoRA and the classifier copy, plus labels.json
    const adapter = r.adapterDir!;
    const keys = [...readSafetensors(path.join(adapter, 'adapter_model.safetensors')).tensors.keys()];
    assert.ok(keys.includes('base_model.model.classifier.weight') && keys.includes('base_model.model.classifier.bias'), keys.join(', '));
    assert.ok(keys.includes('base_model.model.bert.encoder.layer.0.attention.self.query.lora_A.weight'));
    assert.ok(!keys.some((k) => k.includes('.key.')), 'key is not a default target');
    const cfg = JSON.parse(fs.readFileSync(path.join(adapter, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
    assert.deepEqual(cfg['target_modules'], ['query', 'value']);
    assert.deepEqual(cfg['modules_to_save'], ['classifier']);
    assert.equal(cfg['task_type'], 'SEQ_CLS');
    // reload on a fresh base: same metrics, predictions with probabilities
    const re = loadClassifierWithAdapter(dir, adapter);
    const inputs: PredictInput[] = testRows.slice(0, 20).map((row) => row.text);
    const before = predict(r.model, r.preprocessor, inputs);
    const again = predict(re.model, re.preprocessor, inputs);
    assert.deepEqual(again.map((p) => p.label), before.map((p) => p.label));
    for (let i = 0; i < again.length; i++) {
      const s = again[i]!.probabilities.reduce((a, b) => a + b, 0);
      assert.ok(Math.abs(s - 1) < 1e-5);
      for (let j = 0; j < 2; j++) assert.ok(Math.abs(again[i]!.probabilities[j]! - before[i]!.probabilities[j]!) < 1e-5);
    }
    const correct = again.filter((p, i) => p.label === testRows[i]!.label).length;
    assert.ok(correct >= 14, `reloaded adapter: ${correct}/20 right`);
    assert.ok(fs.existsSync(path.join(out, 'eval.json')));
  });

  it('tiny ViT learns circles vs squares vs triangles (held-out accuracy well above chance)', async () => {
    const dir = path.join(tmp, 'vit');
    const config = {
      model_type: 'vit', hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 4, intermediate_size: 64, image_size: 16, patch_size: 4,
      num_channels: 3, qkv_bias: true, initializer_range: 0.2, layer_norm_eps: 1e-12, hidden_act: 'gelu',
      id2label: { '0': 'circle', '1': 'square', '2': 'triangle' }, label2id: { circle: 0, square: 1, triangle: 2 },
    };
    await saveClassifier(createClassifier(config, { seed: 3 }), dir);
    fs.writeFileSync(path.join(dir, 'preprocessor_config.json'), JSON.stringify({ do_normalize: true, do_rescale: true, do_resize: true, image_mean: [0.5, 0.5, 0.5], image_std: [0.5, 0.5, 0.5], resample: 2, rescale_factor: 1 / 255, size: { height: 16, width: 16 } }));
    const rng = new Rng(9);
    const S = 24; // stored at 24x24, resized to 16x16 by the preprocessor
    const write = (root: string, n: number): void => {
      for (const shape of SHAPES) {
        fs.mkdirSync(path.join(root, shape), { recursive: true });
        for (let i = 0; i < n; i++) fs.writeFileSync(path.join(root, shape, `${i}.png`), encodePng(shapeImage(shape, S, rng), S, S));
      }
    };
    write(path.join(tmp, 'shapes-train'), 80);
    write(path.join(tmp, 'shapes-test'), 30);
    const t0 = Date.now();
    const r = await trainClassifier({
      model: dir,
      train: path.join(tmp, 'shapes-train'),
      valid: path.join(tmp, 'shapes-test'),
      lora: { r: 8, lora_alpha: 16 },
      args: { steps: 200, lr: 1e-2, schedule: 'cosine', warmupSteps: 10, progress: false },
      batchSize: 16,
      seed: 2,
      optimizer: { weightDecay: 0 },
      warn: () => undefined,
    });
    const m = r.metrics!;
    console.log(`vit shapes: accuracy ${m.accuracy.toFixed(3)}, macro-F1 ${m.macroF1.toFixed(3)}, loss ${m.loss.toFixed(3)} (${((Date.now() - t0) / 1000).toFixed(1)} s); confusion ${JSON.stringify(m.confusion)}`);
    assert.deepEqual([...r.labels], ['circle', 'square', 'triangle'], 'the config labels cover the data: the trained head is kept');
    assert.equal(m.examples, 90);
    assert.ok(m.accuracy >= 0.6, `held-out accuracy ${m.accuracy} (chance 0.33)`);
    assert.ok(m.macroF1 >= 0.55, `macro-F1 ${m.macroF1}`);
    const p = predict(r.model, r.preprocessor, [{ image: path.join(tmp, 'shapes-test', 'square', '0.png') }]);
    assert.equal(p[0]!.probabilities.length, 3);
    // an undecodable image in predict() names the file
    const bad = path.join(tmp, 'bad.png');
    fs.writeFileSync(bad, 'garbage');
    assert.throws(() => predict(r.model, r.preprocessor, [{ image: bad }]), (e: Error) => e.message.includes(bad) && e.message.includes('cannot decode'));
    // evaluateClassifier over the test folder, batched differently, agrees with the metrics trainClassifier reported
    const examples = loadClassifyExamples(r.model, r.preprocessor, path.join(tmp, 'shapes-test'), r.labels);
    const again = evaluateClassifier(r.model, new ClassifyBatches(examples, { batchSize: 7, shuffle: false }).all());
    assert.equal(again.accuracy, m.accuracy);
    assert.deepEqual(again.confusion, m.confusion);
  });

  it('macro-F1 and accuracy as scikit-learn computes them', () => {
    const m = classificationMetrics([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 2, 0], ['a', 'b', 'c']);
    assert.equal(m.accuracy, 4 / 6);
    // per label F1: a: p 1/2 r 1/2 → 0.5; b: p 1 r 1/2 → 2/3; c: p 2/3 r 1 → 0.8
    assert.ok(Math.abs(m.macroF1 - (0.5 + 2 / 3 + 0.8) / 3) < 1e-12);
    assert.deepEqual(m.confusion, [[1, 0, 1], [1, 1, 0], [0, 0, 2]]);
  });

  it('a text pair for a model without token types is an error naming file:line', async () => {
    const dir = path.join(tmp, 'roberta');
    const vocabSize = writeWordPieceTokenizer(dir, [...COLORS, ...ANIMALS]);
    await saveClassifier(createClassifier({ model_type: 'roberta', vocab_size: vocabSize, hidden_size: 16, num_hidden_layers: 1, num_attention_heads: 2, intermediate_size: 32, max_position_embeddings: 20, type_vocab_size: 1, pad_token_id: 0 }), dir);
    const f = path.join(tmp, 'pairs.jsonl');
    writeJsonl(f, [{ text: 'red cat', text_pair: 'blue dog', label: 'x' }]);
    await assert.rejects(
      trainClassifier({ model: dir, train: f, args: { steps: 1, lr: 1e-3, progress: false }, warn: () => undefined }),
      (e: Error) => e.message.includes(`${f}:1:`) && e.message.includes('no token types (type_vocab_size 1)'),
    );
    // a label outside a given label set
    const g = path.join(tmp, 'single.jsonl');
    writeJsonl(g, [{ text: 'red cat', label: 'x' }, { text: 'blue dog', label: 'z' }]);
    await assert.rejects(
      trainClassifier({ model: dir, train: g, data: { labels: ['x', 'y'] }, args: { steps: 1, lr: 1e-3, progress: false }, warn: () => undefined }),
      (e: Error) => e.message === `${g}:2: label "z" is not in the label set (x, y)`,
    );
  });
});
