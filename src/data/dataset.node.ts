// Datasets from JSONL files (Node): read the file, then parse and tokenize it (dataset.ts).
import { readFile } from 'node:fs/promises';
import { checkJsonl, datasetFromJsonl, splitDataset, type Dataset, type DatasetOptions, type DatasetReport } from './dataset.js';
import type { DataTokenizer } from './tokenize.js';

/** Reads, checks and tokenizes a JSONL file. */
export async function loadDataset(file: string, tokenizer: DataTokenizer, options: DatasetOptions = {}): Promise<Dataset> {
  return datasetFromJsonl(await readFile(file, 'utf8'), file, tokenizer, options);
}

export interface TrainValidOptions extends DatasetOptions {
  /** held-out file */
  valid?: string;
  /** or a fraction of the training file held out (deterministic with seed) */
  validSplit?: number;
  seed?: number;
}

/** The training set and a validation set: from `valid`, or split off the training file, or none. */
export async function loadTrainValid(train: string, tokenizer: DataTokenizer, options: TrainValidOptions = {}): Promise<{ train: Dataset; valid: Dataset | null }> {
  if (options.valid !== undefined && options.validSplit !== undefined) {
    throw new Error('dataset: give either a validation file or validSplit, not both');
  }
  const tr = await loadDataset(train, tokenizer, options);
  if (options.valid !== undefined) return { train: tr, valid: await loadDataset(options.valid, tokenizer, options) };
  if (options.validSplit !== undefined) return splitDataset(tr, options.validSplit, options.seed ?? 0);
  return { train: tr, valid: null };
}

/** Reads a JSONL file and checks it completely (see checkJsonl). For `lorakit data check`. */
export async function checkDataset(file: string, tokenizer: DataTokenizer, options: DatasetOptions = {}): Promise<DatasetReport> {
  return checkJsonl(await readFile(file, 'utf8'), file, tokenizer, options);
}
