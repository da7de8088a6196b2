// Classification data from files (Node): the JSONL file and the tokenizer folder, parsed by classify.ts.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readTokenizerFiles } from '../io/tokenizer.node.js';
import { pairTokenizer, parseTextClassification, type PairTokenizer, type TextDataset } from './classify.js';
import { DataError } from './errors.js';

/**
 * Reads a classification JSONL file: each non-blank line an object with "text" (string),
 * optional "text_pair" (string) and "label" (string or integer). Other keys are ignored.
 * All problems are thrown together, each with file:line.
 */
export function readTextClassification(file: string): TextDataset {
  let content: string;
  try {
    content = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new DataError([{ file, line: 0, message: `cannot read: ${(err as Error).message}` }]);
  }
  return parseTextClassification(content, file);
}

/** A PairTokenizer over a folder's tokenizer.json (and tokenizer_config.json). */
export function pairTokenizerFromFolder(dir: string): PairTokenizer {
  return pairTokenizer(readTokenizerFiles(dir)!);
}

/** A folder's tokenizer when it has one (text models), for messages. */
export function hasTokenizer(dir: string): boolean {
  return fs.existsSync(path.join(dir, 'tokenizer.json'));
}
