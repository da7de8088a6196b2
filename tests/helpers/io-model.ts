// Writes a small Hugging Face model folder for tests: config.json, weights (single or sharded)
// and, optionally, one of the test tokenizers from ./tokenizers.ts.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeShardedSafetensors } from '../../src/io/index.node.js';
import type { TensorMap } from '../../src/io/index.js';
import { writeByteLevelBpeTokenizer, writeSentencePieceBpeTokenizer } from './tokenizers.js';
import type { ByteLevelBpeOptions, SentencePieceBpeOptions, WrittenTokenizer } from './tokenizers.js';

export interface TestModelFolderOptions {
  config: Record<string, unknown>;
  tensors: TensorMap;
  /** Shard when the weights exceed this many bytes (default: one model.safetensors). */
  maxShardBytes?: number;
  tokenizer?: { kind: 'byte-level'; options?: ByteLevelBpeOptions } | { kind: 'sentencepiece'; options?: SentencePieceBpeOptions };
}

export async function writeTestModelFolder(dir: string, opts: TestModelFolderOptions): Promise<{ dir: string; tokenizer?: WrittenTokenizer }> {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(opts.config, null, 2));
  await writeShardedSafetensors(dir, opts.tensors, opts.maxShardBytes !== undefined ? { maxShardBytes: opts.maxShardBytes } : {});
  if (opts.tokenizer === undefined) return { dir };
  const tokenizer =
    opts.tokenizer.kind === 'byte-level' ? writeByteLevelBpeTokenizer(dir, opts.tokenizer.options) : writeSentencePieceBpeTokenizer(dir, opts.tokenizer.options);
  return { dir, tokenizer };
}
