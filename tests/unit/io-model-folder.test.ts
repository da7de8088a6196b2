import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Tensor } from '../../src/tensor/index.js';
import { FormatError } from '../../src/io/index.js';
import { loadModelFolder, writeSafetensorsSync, writeShardedSafetensors } from '../../src/io/index.node.js';
import { LLAMA2_CHAT_TEMPLATE, writeSentencePieceBpeTokenizer } from '../helpers/tokenizers.js';
import { tmpDir } from '../helpers/io-tmp.js';

const CONFIG = { model_type: 'llama', hidden_size: 4, num_hidden_layers: 1, vocab_size: 400, architectures: ['LlamaForCausalLM'] };

function folder(): string {
  const dir = path.join(tmpDir(), 'tiny-llama');
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(CONFIG));
  return dir;
}

function expectProblems(fn: () => unknown, ...parts: string[]): FormatError {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof FormatError, `expected a FormatError, got ${String(caught)}`);
  for (const p of parts) assert.ok(caught.message.includes(p), `message ${JSON.stringify(caught.message)} should include ${JSON.stringify(p)}`);
  return caught;
}

test('model folder: config, single weights read lazily, tokenizer files, generation config', () => {
  const dir = folder();
  writeSafetensorsSync(path.join(dir, 'model.safetensors'), {
    'model.embed_tokens.weight': Tensor.fromValues([1, 2, 3, 4, 5, 6, 7, 8], [2, 4], 'bf16'),
    'model.norm.weight': Tensor.fromValues([1, 1, 1, 1], [4]),
  });
  writeSentencePieceBpeTokenizer(dir, { chatTemplate: LLAMA2_CHAT_TEMPLATE, generationConfig: { bos_token_id: 1, eos_token_id: [2, 7], temperature: 0.6 } });
  fs.writeFileSync(path.join(dir, 'special_tokens_map.json'), JSON.stringify({ pad_token: { content: '<unk>' } }));

  const m = loadModelFolder(dir);
  try {
    assert.equal(m.modelType, 'llama');
    assert.deepEqual(m.config, CONFIG);
    assert.deepEqual(m.weightFiles, { kind: 'single', path: path.join(dir, 'model.safetensors') });
    assert.deepEqual(m.weights.names(), ['model.embed_tokens.weight', 'model.norm.weight']);
    assert.equal(m.weights.info('model.embed_tokens.weight').dtype, 'BF16');
    const emb = m.weights.tensor('model.embed_tokens.weight');
    assert.equal(emb.dtype, 'bf16');
    assert.deepEqual([...emb.toF32Array()], [1, 2, 3, 4, 5, 6, 7, 8]);
    // Special tokens: {content} objects in tokenizer_config, pad from special_tokens_map.
    assert.deepEqual(m.specialTokens, { bos: '<s>', eos: '</s>', pad: '<unk>', unk: '<unk>' });
    assert.equal(m.generationConfig?.['temperature'], 0.6);
    assert.equal(m.chatTemplates.get('default'), LLAMA2_CHAT_TEMPLATE);
    const tok = m.tokenizer();
    assert.equal(tok, m.tokenizer(), 'built once');
    assert.deepEqual(tok.eosTokenIds, [2, 7]);
    assert.equal(tok.padTokenId, 0);
    assert.equal(tok.applyChatTemplate([{ role: 'user', content: 'Hi' }]), '<s>[INST] Hi [/INST]');
  } finally {
    m.close();
  }
});

test('model folder: sharded weights, and model.safetensors wins when both exist', async () => {
  const dir = folder();
  const w = new Map([
    ['a', Tensor.fromValues([1, 2], [2])],
    ['b', Tensor.fromValues([3, 4], [2])],
  ]);
  await writeShardedSafetensors(dir, w, { maxShardBytes: 8 });
  const m = loadModelFolder(dir);
  assert.equal(m.weightFiles.kind, 'sharded');
  assert.deepEqual([...m.weights.tensor('b').f32], [3, 4]);
  assert.equal(m.tokenizerFiles, undefined);
  assert.throws(() => m.tokenizer(), /no tokenizer\.json/);
  m.close();
  // A stray single file next to the shards is what transformers would load, so it wins here too.
  writeSafetensorsSync(path.join(dir, 'model.safetensors'), { c: Tensor.fromValues([5], [1]) });
  const m2 = loadModelFolder(dir);
  assert.equal(m2.weightFiles.kind, 'single');
  assert.deepEqual(m2.weights.names(), ['c']);
  m2.close();
});

test('model folder errors: no config.json, no weights, broken files (all listed together)', () => {
  const empty = path.join(tmpDir(), 'empty');
  fs.mkdirSync(empty);
  expectProblems(() => loadModelFolder(empty), `not a model folder: ${empty} has no config.json`);
  expectProblems(() => loadModelFolder(path.join(empty, 'nope')), 'is not a folder');

  const dir = folder();
  expectProblems(() => loadModelFolder(dir), 'no weights found: looked for model.safetensors and model.safetensors.index.json');
  fs.writeFileSync(path.join(dir, 'pytorch_model.bin'), 'pickle');
  expectProblems(() => loadModelFolder(dir), 'found pytorch_model.bin, which lorakit cannot read');
  assert.equal(loadModelFolder(dir, { weights: false }).modelType, 'llama');

  // Invalid config.json, invalid tokenizer_config.json, a bad special token and a truncated
  // weights file: one error with every problem.
  fs.writeFileSync(path.join(dir, 'config.json'), '{"model_type": "llama",');
  writeSentencePieceBpeTokenizer(dir);
  fs.writeFileSync(path.join(dir, 'generation_config.json'), 'not json');
  const good = writeAndRead(dir);
  fs.writeFileSync(path.join(dir, 'model.safetensors'), good.subarray(0, good.length - 2));
  const e = expectProblems(
    () => loadModelFolder(dir),
    `${path.join(dir, 'config.json')} is not valid JSON`,
    `${path.join(dir, 'generation_config.json')} is not valid JSON`,
    'model.safetensors: tensor "x": data_offsets [0, 8] run past the end of the data region',
  );
  assert.equal(e.problems.length, 3);
  assert.equal(e.file, dir);

  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ model_type: 7 }));
  fs.writeFileSync(path.join(dir, 'generation_config.json'), '{}');
  fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify({ bos_token: 5, chat_template: [{ name: 'x' }] }));
  fs.writeFileSync(path.join(dir, 'model.safetensors'), good);
  expectProblems(
    () => loadModelFolder(dir),
    'config.json model_type must be a string, got 7',
    'tokenizer_config.json bos_token must be a string or {content: string}, got 5',
    'tokenizer_config.json chat_template[0] must be {name: string, template: string}',
  );
});

function writeAndRead(dir: string): Buffer {
  const file = path.join(dir, 'model.safetensors');
  writeSafetensorsSync(file, { x: Tensor.fromValues([1, 2], [2]) });
  return fs.readFileSync(file);
}

test('writeTestModelFolder helper: a sharded folder with a byte-level tokenizer loads back', async () => {
  const { writeTestModelFolder } = await import('../helpers/io-model.js');
  const dir = path.join(tmpDir(), 'gpt2ish');
  const tensors = { 'wte.weight': Tensor.fromValues([1, 2, 3, 4], [2, 2]), 'ln_f.weight': Tensor.fromValues([1, 1], [2]) };
  const { tokenizer } = await writeTestModelFolder(dir, { config: { model_type: 'gpt2' }, tensors, maxShardBytes: 10, tokenizer: { kind: 'byte-level' } });
  const m = loadModelFolder(dir);
  assert.equal(m.weightFiles.kind, 'sharded');
  assert.deepEqual(m.weights.names(), ['ln_f.weight', 'wte.weight']);
  assert.deepEqual(m.tokenizer().encode('Hello world'), [tokenizer!.id('Hello'), tokenizer!.id('Ġworld')]);
  m.close();
});
