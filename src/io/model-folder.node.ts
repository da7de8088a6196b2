// A Hugging Face model folder: config.json, weights (model.safetensors, or shards listed in
// model.safetensors.index.json), tokenizer files and generation_config.json.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FormatError, Problems } from './errors.js';
import { readJsonObject } from './json.node.js';
import type { JsonObject } from './json.js';
import { SafetensorsFile } from './safetensors.node.js';
import type { TensorSource } from './safetensors.js';
import { SHARD_INDEX_FILE, SINGLE_WEIGHTS_FILE, ShardedSafetensors } from './sharded.node.js';
import { Tokenizer, parseChatTemplates, specialTokenContent } from './tokenizer.js';
import { readTokenizerFiles } from './tokenizer.node.js';
import type { TokenizerFiles } from './tokenizer.js';

export interface WeightFiles {
  kind: 'single' | 'sharded';
  /** model.safetensors, or the index file. */
  path: string;
}

/** Finds the weights of a folder: model.safetensors first (as transformers does), then the shard index. */
export function findWeights(dir: string): WeightFiles | undefined {
  const single = path.join(dir, SINGLE_WEIGHTS_FILE);
  if (fs.existsSync(single)) return { kind: 'single', path: single };
  const index = path.join(dir, SHARD_INDEX_FILE);
  if (fs.existsSync(index)) return { kind: 'sharded', path: index };
  return undefined;
}

/** Opens the weights of a folder lazily (headers validated now, tensors read on demand). */
export function openWeights(dir: string): TensorSource {
  const found = findWeights(dir);
  if (found === undefined) {
    let hint = '';
    const unsupported = ['pytorch_model.bin', 'pytorch_model.bin.index.json', 'model.pt', 'tf_model.h5', 'flax_model.msgpack'].filter((f) => fs.existsSync(path.join(dir, f)));
    const other = fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith('.safetensors')) : [];
    if (unsupported.length > 0) hint += `; found ${unsupported.join(', ')}, which lorakit cannot read (convert the weights to safetensors)`;
    if (other.length > 0) hint += `; found other .safetensors files (${other.slice(0, 3).join(', ')}) but no ${SHARD_INDEX_FILE} naming them`;
    throw new FormatError('model folder', dir, [`no weights found: looked for ${SINGLE_WEIGHTS_FILE} and ${SHARD_INDEX_FILE}${hint}`]);
  }
  return found.kind === 'single' ? SafetensorsFile.open(found.path) : ShardedSafetensors.open(found.path);
}

export interface SpecialTokens {
  bos?: string;
  eos?: string;
  pad?: string;
  unk?: string;
}

export interface ModelFolder {
  readonly dir: string;
  /** config.json as parsed. */
  readonly config: JsonObject;
  /** config.json `model_type`, when present. */
  readonly modelType: string | undefined;
  readonly weightFiles: WeightFiles;
  /** Weights, opened lazily: headers are checked, tensors are read one at a time by name. */
  readonly weights: TensorSource;
  /** tokenizer.json, tokenizer_config.json, special_tokens_map.json, generation_config.json as parsed (undefined if tokenizer.json is absent). */
  readonly tokenizerFiles: TokenizerFiles | undefined;
  readonly tokenizerConfig: JsonObject | undefined;
  readonly generationConfig: JsonObject | undefined;
  readonly specialTokensMap: JsonObject | undefined;
  /** Special tokens from tokenizer_config.json (strings or {content}) or special_tokens_map.json. */
  readonly specialTokens: SpecialTokens;
  /** Named chat templates ("default" for a single string). */
  readonly chatTemplates: ReadonlyMap<string, string>;
  /** Builds the tokenizer (cached); throws if the folder has no tokenizer.json. */
  tokenizer(): Tokenizer;
  /** Closes the weight files. */
  close(): void;
}

export interface LoadModelFolderOptions {
  /** Open the weights (default true). When false, `weights` throws on use. */
  weights?: boolean;
}

/**
 * Loads a model folder. Every problem found (invalid JSON files, bad tokenizer_config fields,
 * missing or broken weights) is reported together in one FormatError naming the folder.
 */
export function loadModelFolder(dir: string, options: LoadModelFolderOptions = {}): ModelFolder {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) {
    throw new FormatError('model folder', dir, [`not a model folder: ${dir} is not a folder`]);
  }
  if (!fs.existsSync(path.join(dir, 'config.json'))) {
    throw new FormatError('model folder', dir, [`not a model folder: ${dir} has no config.json`]);
  }
  const p = new Problems('model folder', dir);
  const config = readJsonObject(path.join(dir, 'config.json'), p, true);
  const modelType = config?.['model_type'];
  if (config && modelType !== undefined && typeof modelType !== 'string') p.add(`config.json model_type must be a string, got ${JSON.stringify(modelType)}`);

  const hasTokenizer = fs.existsSync(path.join(dir, 'tokenizer.json'));
  const tokenizerFiles = hasTokenizer ? readTokenizerFiles(dir, p) : undefined;
  // Without tokenizer.json the other tokenizer files are still useful (chat templates, EOS ids).
  const tokenizerConfig = tokenizerFiles?.tokenizerConfig ?? (hasTokenizer ? undefined : readJsonObject(path.join(dir, 'tokenizer_config.json'), p, false));
  const generationConfig = tokenizerFiles?.generationConfig ?? (hasTokenizer ? undefined : readJsonObject(path.join(dir, 'generation_config.json'), p, false));
  const specialTokensMap = tokenizerFiles?.specialTokensMap ?? (hasTokenizer ? undefined : readJsonObject(path.join(dir, 'special_tokens_map.json'), p, false));

  const specialTokens: SpecialTokens = {};
  for (const [key, field] of [['bos', 'bos_token'], ['eos', 'eos_token'], ['pad', 'pad_token'], ['unk', 'unk_token']] as const) {
    const raw = tokenizerConfig?.[field];
    const v = specialTokenContent(raw) ?? specialTokenContent(specialTokensMap?.[field]);
    if (raw !== undefined && raw !== null && specialTokenContent(raw) === undefined) p.add(`tokenizer_config.json ${field} must be a string or {content: string}, got ${JSON.stringify(raw)}`);
    if (v !== undefined) specialTokens[key] = v;
  }
  let chatTemplates = new Map<string, string>();
  const ctf = tokenizerFiles?.chatTemplateFile;
  if (typeof ctf === 'string') chatTemplates.set('default', ctf);
  else if (ctf !== undefined) chatTemplates = parseChatTemplates(ctf['chat_template'], 'chat_template.json chat_template', p);
  if (chatTemplates.size === 0) chatTemplates = parseChatTemplates(tokenizerConfig?.['chat_template'], 'tokenizer_config.json chat_template', p);

  let weightFiles: WeightFiles | undefined;
  let weights: TensorSource | undefined;
  if (options.weights ?? true) {
    try {
      weights = openWeights(dir);
      weightFiles = findWeights(dir);
    } catch (err) {
      if (err instanceof FormatError) {
        const prefix = err.file === dir ? '' : `${path.relative(dir, err.file) || err.file}: `;
        for (const q of err.problems) p.add(prefix + q);
      } else throw err;
    }
  }
  if (!p.empty) {
    weights?.close();
    p.throwIfAny();
  }
  let tokenizer: Tokenizer | undefined;
  const noWeights = (): never => {
    throw new Error(`model folder ${dir} was loaded with weights: false`);
  };
  return {
    dir,
    config: config!,
    modelType: modelType as string | undefined,
    weightFiles: weightFiles ?? findWeights(dir) ?? { kind: 'single', path: path.join(dir, SINGLE_WEIGHTS_FILE) },
    weights: weights ?? { names: noWeights, has: noWeights, info: noWeights, tensor: noWeights, raw: noWeights, tensors: noWeights, close: () => undefined },
    tokenizerFiles,
    tokenizerConfig,
    generationConfig,
    specialTokensMap,
    specialTokens,
    chatTemplates,
    tokenizer(): Tokenizer {
      if (tokenizerFiles === undefined) throw new FormatError('model folder', dir, [`no tokenizer.json (needed to build the tokenizer)`]);
      tokenizer ??= new Tokenizer(tokenizerFiles);
      return tokenizer;
    },
    close(): void {
      weights?.close();
    },
  };
}
