// The model families by config.json `model_type`: an explicit map, no registration by import.
import type { Tensor } from '../tensor/tensor.js';
import { bertFamily } from './bert.js';
import type { EncoderFamily } from './encoder.js';
import type { ModelFamily } from './family.js';
import { gemma3Family } from './gemma3.js';
import { gpt2Family } from './gpt2.js';
import { llamaFamily, mistralFamily, qwen2Family } from './llama.js';
import { phi3Family } from './phi3.js';
import { qwen3Family } from './qwen3.js';
import { smollm3Family } from './smollm3.js';
import { robertaFamily } from './roberta.js';
import { vitFamily } from './vit.js';

export type { ModelFamily, ModuleShape } from './family.js';

/** model_type → causal LM family: one line per family (docs/ARCHITECTURE.md §Model families). */
export const MODEL_FAMILIES: ReadonlyMap<string, ModelFamily> = new Map<string, ModelFamily>([
  ['llama', llamaFamily as ModelFamily],
  ['mistral', mistralFamily as ModelFamily],
  ['qwen2', qwen2Family as ModelFamily],
  ['qwen3', qwen3Family as ModelFamily],
  ['smollm3', smollm3Family as ModelFamily],
  ['gpt2', gpt2Family as ModelFamily],
  ['gemma3_text', gemma3Family as ModelFamily],
  ['phi3', phi3Family as ModelFamily],
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

/**
 * PEFT's default LoRA target_modules for a model_type, as its family declares them; null
 * where PEFT has none (or the type is unknown): target_modules must then be given.
 */
export function defaultTargetModules(modelType: string | undefined): readonly string[] | null {
  if (modelType === undefined) return null;
  return MODEL_FAMILIES.get(modelType)?.defaultTargets ?? ENCODER_FAMILIES.get(modelType)?.defaultTargets ?? null;
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
