// The bundled base model (models/brown-llama) and the pretraining function that made it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { readBrownCorpus, splitBrown, type BrownDocument } from '../../src/corpus/brown.js';
import { BROWN_LLAMA_CONFIG, documentPieces, heldOutBatches, meanLoss, pretrain } from '../../src/corpus/pretrain.js';
import { BUNDLED_MODEL_DIR } from '../../src/demo/demo.js';
import { generate } from '../../src/generate/generate.js';
import { loadModel } from '../../src/models/load.node.js';
import { loadTokenizer } from '../../src/io/tokenizer.node.js';

const docs: BrownDocument[] = readBrownCorpus();
const { train: trainDocs, heldOut } = splitBrown(docs);

test('the bundled model loads in bf16 with the documented config and files', () => {
  const model = loadModel(BUNDLED_MODEL_DIR);
  for (const [name, p] of model.namedParameters()) assert.equal(p.value.dtype, 'bf16', name);
  const config = JSON.parse(fs.readFileSync(path.join(BUNDLED_MODEL_DIR, 'config.json'), 'utf8')) as Record<string, unknown>;
  for (const k of ['model_type', 'vocab_size', 'hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads', 'num_key_value_heads', 'max_position_embeddings', 'tie_word_embeddings']) {
    assert.deepEqual(config[k], BROWN_LLAMA_CONFIG[k], k);
  }
  assert.equal(config['torch_dtype'], 'bfloat16');
  assert.ok(fs.statSync(path.join(BUNDLED_MODEL_DIR, 'model.safetensors')).size <= 12 * 2 ** 20, 'model.safetensors ≤ 12 MiB');
  const gen = JSON.parse(fs.readFileSync(path.join(BUNDLED_MODEL_DIR, 'generation_config.json'), 'utf8')) as Record<string, unknown>;
  assert.deepEqual(gen['eos_token_id'], [0, 2]);
  const tc = JSON.parse(fs.readFileSync(path.join(BUNDLED_MODEL_DIR, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;
  assert.equal(tc['model_max_length'], BROWN_LLAMA_CONFIG['max_position_embeddings']);
  const tok = loadTokenizer(BUNDLED_MODEL_DIR);
  assert.equal(tok.idToToken(0), '<|endoftext|>');
  assert.ok(fs.existsSync(path.join(BUNDLED_MODEL_DIR, 'PRETRAINING.md')));
});

test('held-out loss of the bundled model is far below a unigram model of the pretraining text', () => {
  const tok = loadTokenizer(BUNDLED_MODEL_DIR);
  // Unigram (add-one) distribution of the tokens of 60 pretraining documents.
  const counts = new Float64Array(4096);
  let n = 0;
  for (const e of documentPieces(trainDocs.slice(0, 60), tok, 256)) {
    for (const id of e.ids) {
      counts[id]!++;
      n++;
    }
  }
  const batches = heldOutBatches(documentPieces(heldOut.slice(0, 6), tok, 256), 256, 8);
  // The unigram model's cross-entropy on exactly the targets the model is scored on.
  let uni = 0;
  let targets = 0;
  for (const b of batches) {
    for (let i = 0; i < b.labels.length; i++) {
      const y = b.labels[i]!;
      if (y < 0) continue;
      uni -= Math.log((counts[y]! + 1) / (n + 4096));
      targets++;
    }
  }
  uni /= targets;
  const model = loadModel(BUNDLED_MODEL_DIR);
  const { loss, targets: t2 } = meanLoss(model, batches);
  assert.equal(t2, targets);
  assert.ok(Number.isFinite(loss));
  // A model that learned nothing beyond token frequencies scores `uni`; the bundled one must be
  // at least 1 nat per token better (perplexity e times lower), and below ln(vocab) by far.
  assert.ok(loss < uni - 1 && loss < Math.log(4096) - 2.5, `held-out loss ${loss.toFixed(3)} vs unigram ${uni.toFixed(3)}`);
});

test('greedy generation from the bundled model is deterministic and decodes to text', () => {
  const tok = loadTokenizer(BUNDLED_MODEL_DIR);
  const ids = tok.encode('The city council voted');
  const a = generate(loadModel(BUNDLED_MODEL_DIR), [ids], { maxNewTokens: 16, tokenizer: tok })[0]!;
  const b = generate(loadModel(BUNDLED_MODEL_DIR), [ids], { maxNewTokens: 16, tokenizer: tok })[0]!;
  assert.deepEqual(a.tokens, b.tokens);
  assert.equal(a.text, b.text);
  assert.ok(a.tokens.length > 0);
  assert.match(a.text, /[a-z]/);
});

const tiny = { hidden_size: 32, intermediate_size: 64, num_hidden_layers: 1, num_attention_heads: 2, num_key_value_heads: 1 };
// five pretraining documents and one held-out one
const few = [...trainDocs.slice(0, 5), heldOut[0]!];

test('documentPieces cuts each document (text + EOS) into pieces of at most seqLen tokens', () => {
  const tok = loadTokenizer('models/brown-tokenizer');
  const pieces = documentPieces(few.slice(0, 2), tok, 64);
  assert.ok(pieces.every((p) => p.ids.length <= 64 && p.ids.length >= 2));
  const first = pieces.filter((p) => p.file === few[0]!.id);
  const all = first.flatMap((p) => [...p.ids]);
  assert.equal(all[all.length - 1], 0, 'each document ends with EOS');
  assert.ok(first.slice(0, -1).every((p) => p.ids.length === 64));
});

test('pretrain runs a tiny config deterministically and writes a loadable bf16 folder', async () => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'lorakit-pretrain-'));
  const opts = { steps: 3, batchSize: 2, seqLen: 64, config: tiny, docs: few, progress: false, evalRows: 4 };
  const a = await pretrain({ ...opts, out: path.join(out, 'model'), runDir: path.join(out, 'run') });
  const b = await pretrain(opts);
  assert.equal(a.report.losses.length, 3);
  assert.deepEqual(a.report.losses, b.report.losses);
  assert.equal(a.report.heldOutLoss, b.report.heldOutLoss);
  assert.equal(a.report.trainDocuments, 5);
  assert.equal(a.report.heldOutDocuments, 1);
  assert.ok(a.report.losses.every((l) => Number.isFinite(l) && l > 0));
  for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json', 'generation_config.json', 'PRETRAINING.md', 'loss.svg', 'metrics.jsonl']) {
    assert.ok(fs.existsSync(path.join(out, 'model', f)), f);
  }
  const m = loadModel(path.join(out, 'model'));
  assert.equal(m.namedParameters()[0]![1].value.dtype, 'bf16');
  assert.equal(m.config['hidden_size'], 32);
  const md = fs.readFileSync(path.join(out, 'model', 'PRETRAINING.md'), 'utf8');
  assert.match(md, /held-out loss/);
  fs.rmSync(out, { recursive: true, force: true });
});
