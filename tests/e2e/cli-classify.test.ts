// The classification commands end to end through the real `lorakit` binary: `train --task
// classify` on a tiny BERT (an easy colour-or-animal task) and a tiny ViT (shape images),
// `eval` (task told by the model's model_type) with accuracy and macro-F1, `predict` with
// probabilities, and one clear line with a non-zero exit for every mistake.
import assert from 'node:assert/strict';
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { readSafetensors } from '../../src/io/safetensors.node.js';
import { lorakit, type RunResult } from '../helpers/cli-fixture.js';
import { writeJsonl, writeShapes, writeTinyBert, writeTinyVit, writeTopicData } from '../helpers/cli-classify-fixture.js';

const tmp = mkdtempSync(join(tmpdir(), 'lorakit-cli-classify-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const bert = join(tmp, 'bert');
const bertNoTypes = join(tmp, 'bert-no-types');
const vit = join(tmp, 'vit');
const llama = join(tmp, 'llama');
const runBert = join(tmp, 'run-bert');
const runVit = join(tmp, 'run-vit');
let topic: ReturnType<typeof writeTopicData>;

before(async () => {
  await writeTinyBert(bert);
  await writeTinyBert(bertNoTypes, { typeVocabSize: 1 });
  await writeTinyVit(vit);
  topic = writeTopicData(tmp, 200, 60);
  writeShapes(join(tmp, 'shapes-train'), 6, 9);
  writeShapes(join(tmp, 'shapes-test'), 3, 10);
  // a causal LM folder: --task classify must refuse it from config.json alone
  mkdirSync(llama, { recursive: true });
  writeFileSync(join(llama, 'config.json'), JSON.stringify({ model_type: 'llama', hidden_size: 16, num_hidden_layers: 1, num_attention_heads: 2, vocab_size: 32 }));
});

/** stderr without warning lines: the error itself. */
function errorLines(r: RunResult): string[] {
  return r.stderr.split('\n').filter((l) => l.length > 0 && !l.startsWith('lorakit: warning: '));
}

/** Exit code `status`, and exactly one stderr line (no stack trace) matching `expected`. */
function fails(r: RunResult, status: number, expected: RegExp): void {
  assert.equal(r.status, status, `exit ${r.status}, stdout:\n${r.stdout}\nstderr:\n${r.stderr}`);
  const lines = errorLines(r);
  assert.equal(lines.length, 1, `one line expected, got:\n${r.stderr}`);
  assert.match(lines[0]!, expected);
  assert.doesNotMatch(r.stderr, /\n\s+at /);
}

function ok(r: RunResult): string {
  assert.equal(r.status, 0, `exit ${r.status}, stderr:\n${r.stderr}`);
  return r.stdout;
}

/** "loss L, accuracy A, macro-F1 F" from a line of output. */
function metrics(out: string, prefix = ''): { loss: number; accuracy: number; macroF1: number } {
  const m = new RegExp(`^${prefix}loss ([\\d.]+), accuracy ([\\d.]+), macro-F1 ([\\d.]+)`, 'm').exec(out);
  assert.ok(m, `no metrics line in:\n${out}`);
  return { loss: Number(m[1]), accuracy: Number(m[2]), macroF1: Number(m[3]) };
}

/** A human predict line: `WHERE: label p, label p…` → the labels and probabilities, most probable first. */
function predLine(line: string): { where: string; top: [string, number][] } {
  const m = /^(.*): ((?:[\w-]+ [\d.]+(?:, )?)+)( \(label: .*\))?$/.exec(line);
  assert.ok(m, `not a prediction line: ${line}`);
  return { where: m[1]!, top: m[2]!.split(', ').map((s) => [s.split(' ')[0]!, Number(s.split(' ')[1])]) };
}

interface JsonPrediction {
  input: unknown;
  where?: string;
  label: string;
  probabilities: Record<string, number>;
  gold?: string;
}

describe('lorakit train/eval/predict: text classification (tiny BERT)', () => {
  it('train --task classify: a PEFT adapter with labels.json, query/value LoRA and the classifier trained in full', () => {
    const out = ok(lorakit(['train', '--task', 'classify', '--model', bert, '--data', topic.train, '--valid', topic.test, '--out', runBert, '--steps', '60', '--lr', '1e-2', '--batch-size', '16', '--eval-every', '30', '--seed', '1', '--no-progress']));
    assert.match(out, /^labels \(2\): animal, color$/m);
    assert.match(out, /^LoRA r=8 alpha=16 on 4 modules \(query,value\); trained in full: classifier$/m);
    assert.match(out, /^done: 60 steps in /m);
    const v = metrics(out, 'validation: ');
    assert.ok(v.accuracy > 0.5, `validation accuracy ${v.accuracy} (chance 0.5)`);
    const adapter = join(runBert, 'adapter');
    const cfg = JSON.parse(readFileSync(join(adapter, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
    assert.deepEqual(cfg['target_modules'], ['query', 'value']);
    assert.deepEqual(cfg['modules_to_save'], ['classifier']);
    assert.equal(cfg['task_type'], 'SEQ_CLS');
    assert.equal(cfg['r'], 8);
    const labels = JSON.parse(readFileSync(join(adapter, 'labels.json'), 'utf8')) as { id2label: Record<string, string> };
    assert.deepEqual(labels.id2label, { '0': 'animal', '1': 'color' });
    const keys = [...readSafetensors(join(adapter, 'adapter_model.safetensors')).tensors.keys()];
    assert.ok(keys.includes('base_model.model.classifier.weight'), keys.join(', '));
    assert.ok(keys.includes('base_model.model.bert.encoder.layer.0.attention.self.query.lora_A.weight'), keys.join(', '));
    // checkpoints are adapter folders too, with their labels
    assert.ok(existsSync(join(runBert, 'checkpoints', 'step-0000060', 'labels.json')));
  });

  it('eval (task from model_type bert): loss, accuracy and macro-F1 well above chance; --verbose per-label F1; --json one object', () => {
    const adapter = join(runBert, 'adapter');
    const out = ok(lorakit(['eval', '--model', bert, '--adapter', adapter, '--data', topic.test]));
    assert.match(out, /: 60 examples, 2 labels$/m);
    const m = metrics(out);
    assert.ok(m.accuracy >= 0.75, `accuracy ${m.accuracy} (chance 0.5)\n${out}`);
    assert.ok(m.macroF1 >= 0.7, `macro-F1 ${m.macroF1}`);
    const verbose = ok(lorakit(['eval', '--model', bert, '--adapter', adapter, '--data', topic.test, '--verbose']));
    assert.match(verbose, /^label\s+precision\s+recall\s+F1\s+support$/m);
    const rows = ['animal', 'color'].map((l) => {
      const r = new RegExp(`^${l}\\s+([\\d.]+)\\s+([\\d.]+)\\s+([\\d.]+)\\s+(\\d+)$`, 'm').exec(verbose);
      assert.ok(r, `no ${l} row in:\n${verbose}`);
      return { f1: Number(r[3]), support: Number(r[4]) };
    });
    assert.equal(rows[0]!.support + rows[1]!.support, 60);
    assert.ok(Math.abs((rows[0]!.f1 + rows[1]!.f1) / 2 - m.macroF1) < 2e-4, 'macro-F1 is the mean of the per-label F1');
    const j = JSON.parse(ok(lorakit(['eval', '--model', bert, '--adapter', adapter, '--data', topic.test, '--json'])).trim()) as Record<string, unknown>;
    assert.equal(j['task'], 'classify');
    assert.equal(j['examples'], 60);
    assert.ok(Math.abs((j['accuracy'] as number) - m.accuracy) < 1e-4);
    assert.ok(Math.abs((j['macroF1'] as number) - m.macroF1) < 1e-4);
    assert.deepEqual(j['labels'], ['animal', 'color']);
    assert.equal((j['perLabel'] as unknown[]).length, 2);
  });

  it('predict: labels with probabilities that sum to 1 (--text, --text-pair, --top-k, --data --json agreeing with eval)', () => {
    const adapter = join(runBert, 'adapter');
    const out = ok(lorakit(['predict', '--model', bert, '--adapter', adapter, '--text', 'a big dog here', '--text', 'the old red']));
    const lines = out.trim().split('\n');
    assert.equal(lines.length, 2);
    for (const [i, line] of lines.entries()) {
      const p = predLine(line);
      assert.equal(p.where, JSON.stringify(['a big dog here', 'the old red'][i]));
      assert.deepEqual(p.top.map(([l]) => l).sort(), ['animal', 'color']);
      assert.ok(p.top[0]![1] >= p.top[1]![1], 'most probable first');
      assert.ok(Math.abs(p.top[0]![1] + p.top[1]![1] - 1) < 2e-4, line);
    }
    const top1 = ok(lorakit(['predict', '--model', bert, '--adapter', adapter, '--text', 'a big dog here', '--top-k', '1']));
    assert.equal(predLine(top1.trim()).top.length, 1);
    const pair = JSON.parse(ok(lorakit(['predict', '--model', bert, '--adapter', adapter, '--text', 'the red', '--text-pair', 'a cat', '--json'])).trim()) as JsonPrediction;
    assert.deepEqual(pair.input, { text: 'the red', text_pair: 'a cat' });
    assert.ok(Math.abs(Object.values(pair.probabilities).reduce((a, b) => a + b, 0) - 1) < 1e-5);
    // a whole file: one JSON object per line, in order, with the given labels; right as often as eval says
    const preds = ok(lorakit(['predict', '--model', bert, '--adapter', adapter, '--data', topic.test, '--json'])).trim().split('\n').map((l) => JSON.parse(l) as JsonPrediction);
    assert.equal(preds.length, 60);
    preds.forEach((p, i) => {
      assert.equal(p.input, topic.testRows[i]!.text);
      assert.equal(p.gold, topic.testRows[i]!.label);
      const probs = Object.entries(p.probabilities);
      assert.equal(probs.length, 2);
      assert.ok(Math.abs(probs.reduce((a, [, v]) => a + v, 0) - 1) < 1e-5);
      assert.equal(p.label, probs.reduce((a, b) => (b[1] > a[1] ? b : a))[0]);
    });
    const evalAcc = (JSON.parse(ok(lorakit(['eval', '--model', bert, '--adapter', adapter, '--data', topic.test, '--json']))) as { accuracy: number }).accuracy;
    assert.equal(preds.filter((p) => p.label === p.gold).length / 60, evalAcc);
  });
});

describe('lorakit train/eval/predict: image classification (tiny ViT)', () => {
  it('train (task from model_type vit) on a folder per class; eval on a folder and on an image JSONL; predict --image', () => {
    const out = ok(lorakit(['train', '--model', vit, '--data', join(tmp, 'shapes-train'), '--valid', join(tmp, 'shapes-test'), '--out', runVit, '--steps', '6', '--lr', '1e-2', '--batch-size', '6', '--no-progress']));
    assert.match(out, /^labels \(3\): circle, square, triangle$/m);
    metrics(out, 'validation: ');
    const adapter = join(runVit, 'adapter');
    assert.ok(existsSync(join(adapter, 'labels.json')));
    const ev = ok(lorakit(['eval', '--model', vit, '--adapter', adapter, '--data', join(tmp, 'shapes-test'), '--verbose']));
    assert.match(ev, /: 9 examples, 3 labels$/m);
    const m = metrics(ev);
    // training helped: better than chance on three balanced classes (loss ln 3, accuracy 1/3), which a fresh head gives
    assert.ok(m.loss < Math.log(3) - 0.1 && m.accuracy > 1 / 3 && m.macroF1 > 1 / 3, `after 6 steps: ${JSON.stringify(m)}`);
    for (const l of ['circle', 'square', 'triangle']) assert.match(ev, new RegExp(`^${l}\\s+[\\d.]+\\s+[\\d.]+\\s+[\\d.]+\\s+3$`, 'm'));
    // the same images listed in a JSONL (paths relative to it): the same metrics
    writeJsonl(join(tmp, 'shapes-test', 'list.jsonl'), ['circle', 'square', 'triangle'].flatMap((s) => [0, 1, 2].map((i) => ({ image: `${s}/${i}.png`, label: s }))));
    const evJsonl = ok(lorakit(['eval', '--task', 'classify', '--model', vit, '--adapter', adapter, '--data', join(tmp, 'shapes-test', 'list.jsonl')]));
    assert.deepEqual(metrics(evJsonl), m);
    const img = join(tmp, 'shapes-test', 'square', '1.png');
    const p = predLine(ok(lorakit(['predict', '--model', vit, '--adapter', adapter, '--image', img])).trim());
    assert.equal(p.where, img);
    assert.deepEqual(p.top.map(([l]) => l).sort(), ['circle', 'square', 'triangle']);
    assert.ok(Math.abs(p.top.reduce((a, [, v]) => a + v, 0) - 1) < 3e-4);
    const j = JSON.parse(ok(lorakit(['predict', '--model', vit, '--adapter', adapter, '--image', img, '--json'])).trim()) as JsonPrediction;
    assert.equal(j.input, img);
    assert.ok(Math.abs(Object.values(j.probabilities).reduce((a, b) => a + b, 0) - 1) < 1e-5);
  });
});

describe('lorakit classification errors: one line, non-zero exit', () => {
  it('--task classify on a causal LM names its model_type and the encoder types; --task causal on BERT says so', () => {
    fails(lorakit(['train', '--task', 'classify', '--model', llama, '--data', topic.train, '--out', join(tmp, 'x')]), 2, /model_type "llama" \(a causal LM\); classification needs an encoder model: bert, roberta, vit$/);
    fails(lorakit(['eval', '--task', 'classify', '--model', llama, '--data', topic.test]), 2, /model_type "llama"/);
    fails(lorakit(['predict', '--model', llama, '--text', 'hi']), 2, /model_type "llama".*bert, roberta, vit$/);
    fails(lorakit(['train', '--task', 'causal', '--model', bert, '--data', topic.train, '--out', join(tmp, 'x')]), 2, /model_type "bert" \(a classification model: use --task classify\)/);
    fails(lorakit(['train', '--task', 'classify', '--model', bert, '--data', topic.train, '--out', join(tmp, 'x'), '--pack']), 2, /^lorakit: --pack does not apply to --task classify$/);
  });

  it('an image that does not decode names the file (predict, and in a training folder)', () => {
    const bad = join(tmp, 'not-an-image.png');
    writeFileSync(bad, 'this is text');
    fails(lorakit(['predict', '--model', vit, '--adapter', join(runVit, 'adapter'), '--image', bad]), 1, new RegExp(`${bad.replace(/[.]/g, '\\.')}: cannot decode the image`));
    const folder = join(tmp, 'shapes-bad');
    cpSync(join(tmp, 'shapes-test'), folder, { recursive: true });
    copyFileSync(bad, join(folder, 'circle', 'broken.png'));
    fails(lorakit(['train', '--task', 'classify', '--model', vit, '--data', folder, '--out', join(tmp, 'x'), '--steps', '1', '--no-progress']), 1, /circle\/broken\.png: cannot decode the image/);
  });

  it('a label not in the label set: file:line', () => {
    const file = join(tmp, 'unknown-label.jsonl');
    writeJsonl(file, [{ text: 'the red', label: 'color' }, { text: 'a fern', label: 'plant' }]);
    fails(lorakit(['eval', '--model', bert, '--adapter', join(runBert, 'adapter'), '--data', file]), 1, /unknown-label\.jsonl:2: label "plant" is not in the label set \(animal, color\)$/);
  });

  it('a text pair for a model without token types', () => {
    const file = join(tmp, 'pairs.jsonl');
    writeJsonl(file, [{ text: 'the red', text_pair: 'a cat', label: 'animal' }, { text: 'a dog', text_pair: 'blue', label: 'color' }]);
    fails(lorakit(['train', '--task', 'classify', '--model', bertNoTypes, '--data', file, '--out', join(tmp, 'x'), '--steps', '1', '--no-progress']), 1, /pairs\.jsonl:1: a text pair .*no token types \(type_vocab_size 1\)/);
    fails(lorakit(['predict', '--model', bertNoTypes, '--text', 'the red', '--text-pair', 'a cat']), 1, /no token types/);
  });

  it('wrong paths and missing inputs', () => {
    const adapter = join(runBert, 'adapter');
    fails(lorakit(['train', '--task', 'classify', '--model', bert, '--data', join(tmp, 'nope.jsonl'), '--out', join(tmp, 'x')]), 2, /^lorakit: data .*nope\.jsonl does not exist$/);
    fails(lorakit(['train', '--task', 'classify', '--model', join(tmp, 'no-model'), '--data', topic.train, '--out', join(tmp, 'x')]), 2, /^lorakit: model folder .*no-model does not exist$/);
    fails(lorakit(['eval', '--model', bert, '--adapter', join(tmp, 'no-adapter'), '--data', topic.test]), 2, /^lorakit: adapter folder .*no-adapter does not exist$/);
    fails(lorakit(['eval', '--model', bert, '--adapter', bert, '--data', topic.test]), 2, /not an adapter folder: .* \(it is a model folder\)$/);
    fails(lorakit(['predict', '--model', vit, '--image', join(tmp, 'nope.png')]), 2, /^lorakit: image .*nope\.png does not exist$/);
    fails(lorakit(['predict', '--model', bert, '--adapter', adapter, '--image', join(tmp, 'shapes-test', 'circle', '0.png')]), 2, /--image: the model \(bert\) classifies text; give --text$/);
    fails(lorakit(['predict', '--model', bert, '--adapter', adapter]), 2, /give something to classify/);
  });
});
