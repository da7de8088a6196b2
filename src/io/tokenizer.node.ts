// Tokenizer files from a model folder (Node): tokenizer.json and its companions, parsed.
import * as path from 'node:path';
import { Problems } from './errors.js';
import { GgufFile, isGgufPath } from './gguf.node.js';
import { ggufTokenizerFiles } from './gguf-tokenizer.js';
import { readJsonObject, readTextFile } from './json.node.js';
import { Tokenizer, type TokenizerFiles } from './tokenizer.js';

/** Reads tokenizer.json (required) and the optional companion files from a folder. */
export function readTokenizerFiles(dir: string, problems?: Problems): TokenizerFiles | undefined {
  if (isGgufPath(dir)) return ggufTokenizerFilesOf(dir);
  const p = problems ?? new Problems('tokenizer', dir);
  const tokenizerJson = readJsonObject(path.join(dir, 'tokenizer.json'), p, true);
  const files: TokenizerFiles = { source: dir, tokenizerJson: tokenizerJson ?? {} };
  const cfg = readJsonObject(path.join(dir, 'tokenizer_config.json'), p, false);
  if (cfg) files.tokenizerConfig = cfg;
  const stm = readJsonObject(path.join(dir, 'special_tokens_map.json'), p, false);
  if (stm) files.specialTokensMap = stm;
  const gen = readJsonObject(path.join(dir, 'generation_config.json'), p, false);
  if (gen) files.generationConfig = gen;
  const jinja = readTextFile(path.join(dir, 'chat_template.jinja'), p);
  if (jinja !== undefined) files.chatTemplateFile = jinja;
  else {
    const ct = readJsonObject(path.join(dir, 'chat_template.json'), p, false);
    if (ct) files.chatTemplateFile = ct;
  }
  if (problems === undefined) p.throwIfAny();
  return tokenizerJson ? files : undefined;
}

/** Loads tokenizer.json and its companion files from a folder. */
export function loadTokenizer(dir: string): Tokenizer {
  return new Tokenizer(readTokenizerFiles(dir)!);
}

/** The tokenizer files of a GGUF model file, made from its tokenizer.ggml.* metadata (gguf-tokenizer.ts). */
export function ggufTokenizerFilesOf(file: string): TokenizerFiles {
  const g = GgufFile.open(file);
  try {
    return ggufTokenizerFiles(g.metadata, file);
  } finally {
    g.close();
  }
}
