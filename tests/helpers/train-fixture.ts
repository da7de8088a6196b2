// A tiny, fully local training setup for the training-loop tests: a byte-level tokenizer,
// a small random llama, JSONL data the model can learn, and a LoRA adapter.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BatchIterator, collate, datasetFromJsonl, type Batch, type Dataset } from '../../src/data/index.js';
import { Tokenizer } from '../../src/io/tokenizer.js';
import { createModel } from '../../src/models/load.js';
import type { DecoderLM } from '../../src/models/decoder.js';
import { getPeftModel, type PeftModel } from '../../src/lora/peft-model.js';
import { writeByteLevelBpeTokenizer } from './tokenizers.js';
import { loadTokenizer } from '../../src/io/tokenizer.node.js';

const WORDS = ['red', 'blue', 'green', 'cat', 'dog', 'bird', 'sits', 'runs', 'sings'];

/** Deterministic sentences with a learnable structure: "<color> <animal> <verb>." with fixed pairings. */
export function sentences(n: number, offset = 0): string[] {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const k = (i + offset) % 3;
    const j = Math.floor((i + offset) / 3) % 3;
    out.push(`the ${WORDS[k]} ${WORDS[3 + j]} ${WORDS[6 + j]} and the ${WORDS[3 + j]} ${WORDS[6 + j]} again.`);
  }
  return out;
}

export interface TrainFixture {
  dir: string;
  tokenizer: Tokenizer;
  model: DecoderLM;
  peft: PeftModel<DecoderLM>;
  train: Dataset;
  valid: Dataset;
}

export function writeJsonl(file: string, rows: unknown[]): void {
  writeFileSync(file, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
}

export function makeFixture(dir: string, opts: { format?: 'text' | 'completion'; seed?: number } = {}): TrainFixture {
  mkdirSync(dir, { recursive: true });
  const tokDir = join(dir, 'tokenizer');
  writeByteLevelBpeTokenizer(tokDir, { extraWords: WORDS.map((w) => ' ' + w) });
  const tokenizer = loadTokenizer(tokDir);
  const format = opts.format ?? 'text';
  const rows = (texts: string[]): unknown[] =>
    format === 'text' ? texts.map((text) => ({ text })) : texts.map((t) => ({ prompt: t.slice(0, 8), completion: t.slice(8) }));
  writeJsonl(join(dir, 'train.jsonl'), rows(sentences(24)));
  writeJsonl(join(dir, 'valid.jsonl'), rows(sentences(6, 24)));
  const train = datasetFromJsonl(readFileSync(join(dir, 'train.jsonl'), 'utf8'), join(dir, 'train.jsonl'), tokenizer, { maxLength: 64 });
  const valid = datasetFromJsonl(readFileSync(join(dir, 'valid.jsonl'), 'utf8'), join(dir, 'valid.jsonl'), tokenizer, { maxLength: 64 });
  const model = createTinyLlama(tokenizer.vocabSize, { seed: opts.seed ?? 1 });
  const peft = getPeftModel(model, { r: 8, lora_alpha: 16, target_modules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] });
  return { dir, tokenizer, model, peft, train, valid };
}

/**
 * A tiny random llama (2 layers, GQA 4/2) whose LM head is widened ×25: a random init
 * (std 0.02) gives logits too small for a frozen head to express a learned distribution (and
 * nearly flat ones, full of near-ties); the wider head stands in for a pretrained one.
 */
export function createTinyLlama(vocabSize: number, opts: { hidden?: number; layers?: number; maxPositions?: number; seed?: number } = {}): DecoderLM {
  const C = opts.hidden ?? 32;
  const model = createModel(
    {
      model_type: 'llama',
      vocab_size: vocabSize,
      hidden_size: C,
      intermediate_size: 2 * C,
      num_hidden_layers: opts.layers ?? 2,
      num_attention_heads: 4,
      num_key_value_heads: 2,
      max_position_embeddings: opts.maxPositions ?? 128,
      rms_norm_eps: 1e-6,
      tie_word_embeddings: false,
    },
    { seed: opts.seed ?? 1 },
  );
  const head = model.getModule('lm_head').ownParameters()[0]![1].data;
  for (let i = 0; i < head.length; i++) head[i]! *= 25;
  return model;
}

export function batches(ds: Dataset, batchSize: number, seed = 0): BatchIterator {
  return new BatchIterator(ds.examples, { batchSize, seed, order: 'shuffle' });
}

export function validBatches(ds: Dataset, batchSize: number): Batch[] {
  const out: Batch[] = [];
  for (let i = 0; i < ds.examples.length; i += batchSize) {
    const rows = ds.examples.slice(i, i + batchSize).map((_, j) => [i + j]);
    out.push(collate(ds.examples, rows));
  }
  return out;
}
