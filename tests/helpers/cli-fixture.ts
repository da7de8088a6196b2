// A tiny model folder as a user would have one (config.json, model.safetensors, tokenizer
// files with a chat template), JSONL data it can learn, and a runner for the real `lorakit`
// binary. For the CLI end-to-end tests.
import { spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { saveModel } from '../../src/models/load.node.js';
import { Tokenizer } from '../../src/io/tokenizer.js';
import { CHATML_TEMPLATE, writeByteLevelBpeTokenizer } from './tokenizers.js';
import { createTinyLlama, sentences, writeJsonl } from './train-fixture.js';
import { loadTokenizer } from '../../src/io/tokenizer.node.js';

export const BIN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'bin', 'lorakit.js');

export interface RunResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `node bin/lorakit.js ...args` (optionally with stdin), one thread per process so parallel tests do not fight. */
export function lorakit(args: readonly string[], opts: { input?: string; cwd?: string } = {}): RunResult {
  const r = spawnSync(process.execPath, [BIN, ...args], {
    encoding: 'utf8',
    input: opts.input ?? '',
    cwd: opts.cwd,
    env: { ...process.env, LORAKIT_THREADS: process.env.LORAKIT_THREADS ?? '1', LORAKIT_DEBUG: '' },
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const WORDS = ['red', 'blue', 'green', 'cat', 'dog', 'bird', 'sits', 'runs', 'sings'];

export interface CliModel {
  dir: string;
  tokenizer: Tokenizer;
}

/**
 * Writes a tiny llama folder: random weights (seeded), its lm_head widened (×25: a random init's
 * logits are too small for a frozen head to express what the adapters learn; a wider head stands
 * in for a pretrained one), a byte-level BPE tokenizer with a ChatML template.
 */
export async function writeTinyModel(dir: string, opts: { seed?: number; hidden?: number } = {}): Promise<CliModel> {
  mkdirSync(dir, { recursive: true });
  writeByteLevelBpeTokenizer(dir, { extraWords: WORDS.map((w) => ' ' + w), chatTemplate: CHATML_TEMPLATE });
  const tokenizer = loadTokenizer(dir);
  const model = createTinyLlama(tokenizer.vocabSize, { ...(opts.hidden ? { hidden: opts.hidden } : {}), seed: opts.seed ?? 1 });
  await saveModel(model, dir);
  return { dir, tokenizer };
}

/** train.jsonl (24 sentences) and valid.jsonl (6 more) of the learnable toy language. */
export function writeData(dir: string): { train: string; valid: string } {
  mkdirSync(dir, { recursive: true });
  const train = join(dir, 'train.jsonl');
  const valid = join(dir, 'valid.jsonl');
  writeJsonl(train, sentences(24).map((text) => ({ text })));
  writeJsonl(valid, sentences(6, 24).map((text) => ({ text })));
  return { train, valid };
}
