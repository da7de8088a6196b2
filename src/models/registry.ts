// The model families by config.json `model_type`: an explicit map, no registration by import.
import type { DType, Tensor } from '../tensor/tensor.js';
import type { JsonObject } from './config.js';
import type { DecoderLM } from './decoder.js';
import { GPT2LMHeadModel, parseGPT2Config, sanitizeGPT2Key, type GPT2Config } from './gpt2.js';
import { LlamaForCausalLM, parseLlamaConfig, sanitizeLlamaKey, type LlamaConfig } from './llama.js';
import { bertFamily } from './bert.js';
import type { EncoderFamily } from './encoder.js';
import { robertaFamily } from './roberta.js';
import { vitFamily } from './vit.js';

export interface ModelFamily<Cfg = unknown> {
  /** e.g. 'llama' */
  readonly name: string;
  /** Validates config.json; throws a ConfigError naming every bad key. */
  parseConfig(json: JsonObject, where?: string): Cfg;
  /** The module tree with zero (or unit, for norms) parameters of the given dtype. */
  build(cfg: Cfg, opts?: { dtype?: DType }): DecoderLM;
  /** The key a checkpoint tensor loads into, or null for a known buffer to drop. */
  sanitizeKey(cfg: Cfg, key: string): string | null;
  /** Applies sanitizeKey to a whole state dict (dropping known buffers). */
  sanitize(cfg: Cfg, stateDict: ReadonlyMap<string, Tensor>): Map<string, Tensor>;
  /** std of the normal init of projection and embedding weights (config initializer_range) */
  initStd(cfg: Cfg): number;
  /** config.json `architectures` for a model_type (written by saveModel when the config has none) */
  architecture(modelType: string): string;
  /** the longest sequence the model can run: learned positions end (GPT-2's n_positions); RoPE does not (Infinity) */
  positionLimit?(cfg: Cfg): number;
}

function sanitizeWith<Cfg>(sanitizeKey: (cfg: Cfg, key: string) => string | null) {
  return (cfg: Cfg, stateDict: ReadonlyMap<string, Tensor>): Map<string, Tensor> => {
    const out = new Map<string, Tensor>();
    for (const [k, t] of stateDict) {
      const key = sanitizeKey(cfg, k);
      if (key !== null) out.set(key, t);
    }
    return out;
  };
}

const llama: ModelFamily<LlamaConfig> = {
  name: 'llama',
  parseConfig: parseLlamaConfig,
  build: (cfg, opts) => new LlamaForCausalLM(cfg, opts),
  sanitizeKey: sanitizeLlamaKey,
  sanitize: sanitizeWith(sanitizeLlamaKey),
  initStd: (cfg) => initializerRange(cfg.raw),
  architecture: (t) => ({ mistral: 'MistralForCausalLM', qwen2: 'Qwen2ForCausalLM' })[t] ?? 'LlamaForCausalLM',
  positionLimit: () => Infinity,
};

const gpt2: ModelFamily<GPT2Config> = {
  name: 'gpt2',
  parseConfig: parseGPT2Config,
  build: (cfg, opts) => new GPT2LMHeadModel(cfg, opts),
  sanitizeKey: (_cfg, key) => sanitizeGPT2Key(key),
  sanitize: sanitizeWith((_cfg: GPT2Config, key: string) => sanitizeGPT2Key(key)),
  initStd: (cfg) => initializerRange(cfg.raw),
  architecture: () => 'GPT2LMHeadModel',
  positionLimit: (cfg) => cfg.maxPositions,
};

function initializerRange(raw: JsonObject): number {
  const v = raw['initializer_range'];
  return typeof v === 'number' && v > 0 ? v : 0.02;
}

/** model_type → family. */
export const MODEL_FAMILIES: ReadonlyMap<string, ModelFamily> = new Map<string, ModelFamily>([
  ['llama', llama as ModelFamily],
  ['mistral', llama as ModelFamily],
  ['qwen2', llama as ModelFamily],
  ['gpt2', gpt2 as ModelFamily],
]);

/** model_type → classification (encoder) family: loaded with loadClassifier (src/models/encoder-load.ts). */
export const ENCODER_FAMILIES: ReadonlyMap<string, EncoderFamily> = new Map<string, EncoderFamily>([
  ['bert', bertFamily as EncoderFamily],
  ['roberta', robertaFamily as EncoderFamily],
  ['vit', vitFamily as EncoderFamily],
]);

/** The encoder family of a model_type; throws naming the supported ones. */
export function getEncoderFamily(modelType: unknown, where = 'config.json'): EncoderFamily {
  const fam = typeof modelType === 'string' ? ENCODER_FAMILIES.get(modelType) : undefined;
  if (!fam) {
    const got = modelType === undefined ? 'no "model_type"' : `"model_type" ${JSON.stringify(modelType)}`;
    const causal = typeof modelType === 'string' && MODEL_FAMILIES.has(modelType) ? ` (${modelType} is a causal LM: load it with loadModel)` : '';
    throw new UnsupportedModelError(`${where}: ${got} is not a classification model${causal}; supported classification model types: ${[...ENCODER_FAMILIES.keys()].join(', ')}`);
  }
  return fam;
}

export function supportedModelTypes(): string[] {
  return [...MODEL_FAMILIES.keys()];
}

export class UnsupportedModelError extends Error {
  override name = 'UnsupportedModelError';
}

/** The family of a model_type; throws naming the supported ones. */
export function getModelFamily(modelType: unknown, where = 'config.json'): ModelFamily {
  const fam = typeof modelType === 'string' ? MODEL_FAMILIES.get(modelType) : undefined;
  if (!fam) {
    const got = modelType === undefined ? 'no "model_type"' : `"model_type" ${JSON.stringify(modelType)}`;
    const enc = typeof modelType === 'string' && ENCODER_FAMILIES.has(modelType) ? ` (${modelType} is a classification model: load it with loadClassifier)` : '';
    throw new UnsupportedModelError(`${where}: ${got} is not supported; supported model types: ${supportedModelTypes().join(', ')}${enc}`);
  }
  return fam;
}

/** Applies a family's key fixes to a whole state dict (dropping known buffers). */
export function sanitizeStateDict(fam: ModelFamily, cfg: unknown, tensors: ReadonlyMap<string, Tensor>): Map<string, Tensor> {
  return fam.sanitize(cfg, tensors);
}
