// Classification models (BERT, RoBERTa, ViT) from Hugging Face folders (loadClassifier), from a
// config with seeded random weights (createClassifier), and back to a folder (saveClassifier).
import { getBackend } from '../backend/index.js';
import { warn } from '../io/errors.js';
import { tensorDTypeOf, type TensorSource } from '../io/safetensors.js';
import { Embedding } from '../nn/embedding.js';
import { Linear } from '../nn/linear.js';
import { Rng } from '../tensor/rng.js';
import { Tensor, formatShape, type DType } from '../tensor/tensor.js';
import type { JsonObject } from './config.js';
import { initLinear, type EncoderClassifier } from './encoder.js';
import { WeightsError, scanCheckpoint, type WeightsWhere } from './load.js';
import { getEncoderFamily } from './registry.js';
import { ViTEmbeddings } from './vit.js';

export interface LoadClassifierOptions {
  /** 'keep' (default): parameters stay in the checkpoint's dtype; 'f32': widen everything */
  dtype?: 'f32' | 'keep';
  /**
   * The labels to classify into (e.g. a dataset's). When they differ from the config's
   * id2label, the head is replaced by a new one of this size (with a warning naming both sets).
   */
  labels?: readonly string[];
  /** seed of a new head's init (default 0) */
  seed?: number;
  /** where warnings go (default: io/errors.ts warn, which lorakit's Node entry sends to process.emitWarning) */
  warn?: (message: string) => void;
}

function defaultWarn(msg: string): void {
  warn(msg, 'LORAKIT_CLASSIFIER');
}

function sameLabels(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function showLabels(l: readonly string[]): string {
  return l.length > 12 ? `[${l.slice(0, 12).map((x) => JSON.stringify(x)).join(', ')}, … (${l.length} labels)]` : `[${l.map((x) => JSON.stringify(x)).join(', ')}]`;
}

/**
 * A classifier from a config.json object (model_type bert / roberta / vit) and its weights
 * from any TensorSource. Every missing tensor, wrong shape or unexpected key is reported
 * together. A checkpoint without its task head (BertModel, ViTModel) gets a new one, with a
 * warning. The model is frozen and in eval mode. loadClassifier (encoder-load.node.ts) reads a
 * folder and calls this; `where.folder` names it in warnings.
 */
export function classifierFromWeights(config: JsonObject, src: TensorSource, where: WeightsWhere & { folder: string }, opts: LoadClassifierOptions = {}): EncoderClassifier {
  const warn = opts.warn ?? defaultWarn;
  getBackend(); // the native addon sets up the allocator before the weights arrive
  const fam = getEncoderFamily(config['model_type'], where.config);
  const cfg = fam.parseConfig(config, where.config);
  const { names, dtype } = scanCheckpoint(src, (name) => fam.sanitizeKey(cfg, name), opts.dtype === 'f32');
  const model = fam.build(cfg, { dtype });
  const params = new Map(model.namedParameters());
  const errs: string[] = [];
  const fresh: string[] = [];
  for (const [key, p] of params) {
    const name = names.get(key);
    if (name === undefined) {
      if (fam.optionalPrefixes.some((pre) => key.startsWith(pre))) fresh.push(key);
      else errs.push(`missing tensor ${key} (expected shape ${formatShape(p.shape)})`);
      continue;
    }
    const info = src.info(name);
    const shown = name === key ? key : `${name} (as ${key})`;
    if (!tensorDTypeOf(info.dtype)) errs.push(`tensor ${shown} has dtype ${info.dtype}; expected F32, F16 or BF16`);
    if (info.shape.length !== p.shape.length || info.shape.some((d, i) => d !== p.shape[i])) {
      // a head of another size is replaced below when labels are given; otherwise it is an error
      const isHead = fam.headModules.some((h) => key.startsWith(`${h}.`));
      if (isHead && opts.labels) fresh.push(key);
      else errs.push(`tensor ${shown} has shape ${formatShape(info.shape)}, the model expects ${formatShape(p.shape)}${isHead ? ' (config id2label / num_labels disagree with the checkpoint head)' : ''}`);
    }
  }
  for (const [key, name] of names) if (!params.has(key)) errs.push(`unexpected tensor ${name}${name === key ? '' : ` (as ${key})`}`);
  if (errs.length) throw new WeightsError(where.weights, errs);
  const rng = new Rng(opts.seed ?? 0);
  for (const [key, p] of params) {
    if (fresh.includes(key)) continue;
    let t = src.tensor(names.get(key)!);
    const bad = t.nonFiniteCount();
    if (bad > 0) errs.push(`tensor ${names.get(key)!} holds ${bad} NaN/Inf value(s) of ${t.size}; the checkpoint is damaged`);
    if (opts.dtype === 'f32') t = t.toF32();
    p.assign(t, key);
  }
  if (errs.length) throw new WeightsError(where.weights, errs);
  if (fresh.length) {
    initModules(model, rng, fresh);
    warn(`${where.folder}: the checkpoint has no trained ${[...new Set(fresh.map((k) => k.slice(0, k.lastIndexOf('.'))))].join(', ')} (a base model?); initialised new weights, train them (modules_to_save)`);
  }
  if (opts.labels && !sameLabels(opts.labels, model.labels)) {
    const old = model.labels;
    model.replaceHead(opts.labels, opts.seed ?? 0);
    warn(`${where.folder}: the checkpoint's labels ${showLabels(old)} differ from ${showLabels(opts.labels)}; using a new classifier head of ${opts.labels.length} outputs (train it: the classifier is in modules_to_save)`);
  }
  model.eval();
  return model;
}

/** normal(0, initializer_range) for the Linears/Embeddings/ViT embeddings holding a key in `keys` (all when absent); biases 0. */
function initModules(model: EncoderClassifier, rng: Rng, keys?: readonly string[]): void {
  const want = (p: string): boolean => !keys || keys.some((k) => k.startsWith(`${p}.`));
  const std = model.initStd;
  for (const [p, m] of model.namedModules()) {
    if (!want(p)) continue;
    if (m instanceof Linear) initLinear(m, std, rng);
    else if (m instanceof Embedding || m instanceof ViTEmbeddings) {
      for (const [, w] of m.ownParameters()) {
        const v = new Float32Array(w.value.size);
        for (let i = 0; i < v.length; i++) v[i] = rng.normal(0, std);
        w.value = Tensor.fromValues(v, w.shape, w.value.floatDtype);
      }
    }
  }
}

export interface CreateClassifierOptions {
  seed?: number;
  dtype?: DType;
  /** labels (replace the config's id2label) */
  labels?: readonly string[];
}

/**
 * A classifier from a config.json object with random weights: Linear, Embedding and ViT
 * embedding tensors normal(0, initializer_range) (seeded), biases 0, LayerNorms 1/0 (conv
 * projection weights stay 0 unless the family's init covers them: they are filled too).
 * Frozen and in eval mode.
 */
export function createClassifier(config: JsonObject, opts: CreateClassifierOptions = {}): EncoderClassifier {
  const fam = getEncoderFamily(config['model_type'], 'createClassifier config');
  const cfg = fam.parseConfig(config, 'createClassifier config');
  const model = fam.build(cfg, { dtype: opts.dtype ?? 'f32' });
  const rng = new Rng(opts.seed ?? 0);
  initModules(model, rng);
  for (const [name, p] of model.namedParameters()) {
    if (name.endsWith('projection.weight')) {
      const v = new Float32Array(p.value.size);
      for (let i = 0; i < v.length; i++) v[i] = rng.normal(0, model.initStd);
      p.value = Tensor.fromValues(v, p.shape, p.value.floatDtype);
    }
  }
  if (opts.labels) model.replaceHead(opts.labels, opts.seed ?? 0);
  model.eval();
  return model;
}
