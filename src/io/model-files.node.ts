// The files of a model folder besides config.json and the weights: tokenizer files, chat
// templates and generation_config.json. Copied as they are when a new folder is made from a
// model (a merged adapter, a fully fine-tuned model), so it loads with the same tokenizer.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomicSync } from './atomic.node.js';
import { isGgufPath } from './gguf.node.js';
import { ggufTokenizerFilesOf } from './tokenizer.node.js';

/** Files copied with a model (those present are copied; none is required). */
export const MODEL_SIDE_FILES: readonly string[] = [
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'added_tokens.json',
  'tokenizer.model',
  'vocab.json',
  'merges.txt',
  'chat_template.jinja',
  'chat_template.json',
  'generation_config.json',
];

/**
 * Copies the tokenizer files, chat templates and generation_config.json of model folder `src`
 * into `dst` (each atomically). Returns the names copied.
 */
export function copyModelSideFiles(src: string, dst: string): string[] {
  fs.mkdirSync(dst, { recursive: true });
  if (isGgufPath(src)) {
    // a GGUF model carries its tokenizer in its metadata: write it out as tokenizer files
    const files = ggufTokenizerFilesOf(src);
    writeFileAtomicSync(path.join(dst, 'tokenizer.json'), JSON.stringify(files.tokenizerJson) + '\n');
    writeFileAtomicSync(path.join(dst, 'tokenizer_config.json'), JSON.stringify(files.tokenizerConfig ?? {}, null, 2) + '\n');
    if (!files.generationConfig) return ['tokenizer.json', 'tokenizer_config.json'];
    writeFileAtomicSync(path.join(dst, 'generation_config.json'), JSON.stringify(files.generationConfig, null, 2) + '\n');
    return ['tokenizer.json', 'tokenizer_config.json', 'generation_config.json'];
  }
  const copied: string[] = [];
  for (const name of MODEL_SIDE_FILES) {
    const from = path.join(src, name);
    if (!fs.existsSync(from) || !fs.statSync(from).isFile()) continue;
    writeFileAtomicSync(path.join(dst, name), fs.readFileSync(from));
    copied.push(name);
  }
  return copied;
}

/** Total size in bytes of the files directly inside a folder. */
export function folderBytes(dir: string): number {
  let n = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) if (e.isFile()) n += fs.statSync(path.join(dir, e.name)).size;
  return n;
}
