// Building models: from a Hugging Face folder (loadModel), from a config with seeded random
// weights (createModel), and back to a folder (saveModel).
import { getBackend } from '../backend/index.js';
import { ProblemsError, formatProblems } from '../io/errors.js';
import { tensorDTypeOf, type SafetensorsDType, type TensorSource } from '../io/safetensors.js';
import { Embedding } from '../nn/embedding.js';
import { Linear } from '../nn/linear.js';
import { Rng } from '../tensor/rng.js';
import { Tensor, formatShape, type DType } from '../tensor/tensor.js';
import type { JsonObject } from './config.js';
import type { DecoderLM } from './decoder.js';
import { getModelFamily } from './registry.js';

export interface LoadModelOptions {
  /** 'keep' (default): parameters stay in the checkpoint's dtype (bf16/f16 stay half); 'f32': widen everything */
  dtype?: 'f32' | 'keep';
}

export class WeightsError extends ProblemsError {
  override name = 'WeightsError';
  constructor(where: string, problems: readonly string[]) {
    super(formatProblems(where, problems, 'problem(s) with the weights'), problems);
  }
}

/**
 * Maps each model key to its name in the checkpoint (through the family's sanitizeKey; null
 * drops a name) and picks the dtype to build in: the checkpoint's first float dtype, so a half
 * model never exists in f32, unless f32 is asked for.
 */
export function scanCheckpoint(src: { names(): Iterable<string>; info(name: string): { dtype: SafetensorsDType } }, sanitizeKey: (name: string) => string | null, wantF32: boolean): { names: Map<string, string>; dtype: DType } {
  const names = new Map<string, string>();
  for (const name of src.names()) {
    const key = sanitizeKey(name);
    if (key !== null) names.set(key, name);
  }
  let dtype: DType = 'f32';
  if (!wantF32) {
    for (const name of names.values()) {
      const d = tensorDTypeOf(src.info(name).dtype);
      if (d) {
        dtype = d;
        break;
      }
    }
  }
  return { names, dtype };
}

/**
 * What would stop a folder loading, found from config.json and the weights' headers alone
 * (nothing read, nothing allocated: the family's moduleShapes): a config its family rejects,
 * missing or unexpected tensors, element counts the model does not expect, dtypes it cannot
 * hold. For `lorakit inspect`, which must not say a folder is fine when loading it fails.
 */
export function weightProblems(config: JsonObject, src: { names(): Iterable<string>; info(name: string): { dtype: SafetensorsDType; shape: readonly number[] } }, whereConfig: string): string[] {
  const fam = getModelFamily(config['model_type'], whereConfig);
  let cfg: unknown;
  try {
    cfg = fam.parseConfig(config, whereConfig);
  } catch (e) {
    return [(e as Error).message];
  }
  const { names } = scanCheckpoint(src, (n) => fam.sanitizeKey(cfg, n), true);
  const params = new Map(fam.moduleShapes(cfg).flatMap((m) => m.params.map((p) => [p.name, p.size] as const)));
  const problems: string[] = [];
  for (const [key, size] of params) {
    const name = names.get(key);
    if (name === undefined) {
      problems.push(`missing tensor ${key}`);
      continue;
    }
    const info = src.info(name);
    if (!tensorDTypeOf(info.dtype)) problems.push(`tensor ${name} has dtype ${info.dtype}; expected F32, F16 or BF16`);
    const n = info.shape.reduce((a, b) => a * b, 1);
    if (n !== size) problems.push(`tensor ${name} has shape ${formatShape(info.shape)} (${n} values); the model expects ${size}`);
  }
  for (const [key, name] of names) if (!params.has(key)) problems.push(`unexpected tensor ${name}${name === key ? '' : ` (as ${key})`}`);
  return problems;
}

/** Where a model's config and weights came from, as error messages name them. */
export interface WeightsWhere {
  /** the config (e.g. a config.json path) */
  config: string;
  /** the weights, for the WeightsError that lists every problem (e.g. "model folder m (model.safetensors, model_type llama)") */
  weights: string;
}

/**
 * A model from a config.json object (validated by the family of its model_type) and its
 * weights, from any TensorSource (a file, shards, bytes in memory). Every missing tensor, wrong
 * shape or unexpected key is reported together. The model is frozen (no parameter requires
 * grad) and in eval mode. loadModel (load.node.ts) reads a folder and calls this.
 */
export function modelFromWeights(config: JsonObject, src: TensorSource, where: WeightsWhere, opts: LoadModelOptions = {}): DecoderLM {
  getBackend(); // the native addon sets up the allocator before the weights arrive
  const fam = getModelFamily(config['model_type'], where.config);
  const cfg = fam.parseConfig(config, where.config);
  const { names, dtype } = scanCheckpoint(src, (name) => fam.sanitizeKey(cfg, name), opts.dtype === 'f32');
  const model = fam.build(cfg, { dtype });
  const problems: string[] = [];
  const params = new Map(model.namedParameters());
  for (const [key, p] of params) {
    const name = names.get(key);
    if (name === undefined) {
      problems.push(`missing tensor ${key} (expected shape ${formatShape(p.shape)})`);
      continue;
    }
    const info = src.info(name);
    const shown = name === key ? key : `${name} (as ${key})`;
    if (!tensorDTypeOf(info.dtype)) problems.push(`tensor ${shown} has dtype ${info.dtype}; expected F32, F16 or BF16`);
    if (info.shape.length !== p.shape.length || info.shape.some((d, i) => d !== p.shape[i])) {
      problems.push(`tensor ${shown} has shape ${formatShape(info.shape)}, the model expects ${formatShape(p.shape)}`);
    }
  }
  for (const [key, name] of names) if (!params.has(key)) problems.push(`unexpected tensor ${name}${name === key ? '' : ` (as ${key})`}`);
  if (problems.length) throw new WeightsError(where.weights, problems);
  for (const [key, p] of params) {
    let t = src.tensor(names.get(key)!);
    // non-finite base weights give NaN losses that look like a bad learning rate or bad data
    const bad = t.nonFiniteCount();
    if (bad > 0) problems.push(`tensor ${names.get(key)!} holds ${bad} NaN/Inf value(s) of ${t.size}; the checkpoint is damaged`);
    if (opts.dtype === 'f32') t = t.toF32();
    p.assign(t, key);
  }
  if (problems.length) throw new WeightsError(where.weights, problems);
  model.eval();
  return model;
}

/**
 * What config.json says of the ids and sequences a model takes, without building it: its
 * vocabulary size and its position limit (learned positions: GPT-2's n_positions; Infinity
 * with RoPE). For checks before anything is loaded (lorakit data check, --max-length).
 */
export function modelLimits(config: JsonObject, where = 'config.json'): { vocabSize: number; maxPositions: number } {
  const fam = getModelFamily(config['model_type'], where);
  const cfg = fam.parseConfig(config, where) as { vocabSize: number };
  return { vocabSize: cfg.vocabSize, maxPositions: fam.positionLimit?.(cfg) ?? Infinity };
}

export interface CreateModelOptions {
  /** seed of the normal(0, initializer_range) init of projections and embeddings (default 0) */
  seed?: number;
  /** parameter dtype (default f32) */
  dtype?: DType;
}

/**
 * A model from a config.json object with random weights: projections and embeddings
 * normal(0, initializer_range), biases 0, norms 1 (transformers' _init_weights).
 * Frozen and in eval mode, like a loaded model.
 */
export function createModel(config: JsonObject, opts: CreateModelOptions = {}): DecoderLM {
  getBackend(); // the native addon sets up the allocator before the weights arrive
  const fam = getModelFamily(config['model_type'], 'createModel config');
  const cfg = fam.parseConfig(config, 'createModel config');
  const dtype = opts.dtype ?? 'f32';
  const model = fam.build(cfg, { dtype });
  const rng = new Rng(opts.seed ?? 0);
  const std = fam.initStd(cfg);
  for (const [, m] of model.namedModules()) {
    if (m instanceof Linear || m instanceof Embedding) {
      const w = m.weight;
      const vals = rng.fillNormalFast(new Float32Array(w.value.size), 0, std);
      w.value = Tensor.fromValues(vals, w.shape, dtype);
    }
  }
  model.eval();
  return model;
}

export interface SaveModelOptions {
  /** dtype of the saved weights (default: as they are) */
  dtype?: DType;
  /** shard above this many bytes of weights (default 5 GB, as transformers): model-0000i-of-0000n.safetensors + index */
  maxShardBytes?: number;
}

const TORCH_DTYPE: Record<DType, string> = { f32: 'float32', f16: 'float16', bf16: 'bfloat16' };

/**
 * What a Hugging Face folder holds for a state dict: the tensors (cast to opts.dtype when
 * given) and config.json with torch_dtype and, when the config has none, `architectures`
 * (keys sorted). writeModelFolder (load.node.ts) writes them.
 */
export function modelFolderContents(state: Map<string, Tensor>, config: Readonly<JsonObject>, architecture: string | null, opts: { dtype?: DType } = {}): { tensors: Map<string, Tensor>; config: JsonObject } {
  const tensors = new Map<string, Tensor>();
  let stored: DType | null = null;
  const problems: string[] = [];
  for (const [k, t] of state) {
    // quantized blocks (a GGUF base) are written as f32 values: safetensors holds no blocks
    const out = opts.dtype ? t.to(opts.dtype) : t.quantized ? t.toF32() : t;
    // the one finiteness check after the final cast (docs/ARCHITECTURE.md §Files written and
    // signals): a finite f32 weight past the half range would be written as Inf
    const bad = out.nonFiniteCount();
    if (bad > 0) {
      const was = out === t ? 0 : t.nonFiniteCount();
      problems.push(`${k}: ${bad} NaN/Inf value(s)${was === 0 && out !== t ? ` after the cast from ${t.dtype} to ${out.dtype} (finite values past the ${out.dtype} range)` : ''}`);
    }
    stored ??= out.floatDtype;
    tensors.set(k, out);
  }
  if (problems.length) throw new ProblemsError(formatProblems('the model cannot be saved: weights would hold NaN/Inf', problems, 'tensors'), problems);
  const cfg: JsonObject = { ...config, torch_dtype: TORCH_DTYPE[stored ?? 'f32'] };
  if (cfg['architectures'] === undefined && architecture) cfg['architectures'] = [architecture];
  return { tensors, config: sortKeys(cfg) };
}

function sortKeys(o: JsonObject): JsonObject {
  const out: JsonObject = {};
  for (const k of Object.keys(o).sort()) out[k] = o[k];
  return out;
}
