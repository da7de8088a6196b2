// Classification as a task: data for a model folder (text JSONL or images), the cross-entropy
// objective the trainer runs, LoRA fine-tuning with the classifier in modules_to_save
// (trainClassifier), metrics (accuracy, macro-F1, per-label precision/recall/F1, confusion)
// and prediction with probabilities. The CLI's `train --task classify`, `eval` and `predict`
// call these.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { getBackend } from '../backend/index.js';
import { ClassifyBatches, collateClassify, encodeTextExamples, labelSet, type ClassifyBatch, type ClassifyExample, type PairTokenizer } from '../data/classify.js';
import { pairTokenizerFromFolder, readTextClassification } from '../data/classify.node.js';
import { listImageDataset, loadImageExamples, readImage, readImageProcessorConfig } from '../data/images.node.js';
import { preprocessImage, type ImageProcessorConfig } from '../data/images.js';
import type { FileData } from '../io/atomic.node.js';
import type { LoraConfigInput } from '../lora/config.js';
import { getPeftModel, type PeftModel } from '../lora/peft-model.js';
import { loadPeftModel } from '../lora/files.node.js';
import { readSafetensors } from '../io/safetensors.node.js';
import type { EncoderClassifier, EncoderInputs } from '../models/encoder.js';
import { loadClassifier } from '../models/encoder-load.node.js';
import { ENCODER_FAMILIES } from '../models/registry.js';
import { IGNORE_INDEX } from '../tensor/labels.js';
import type { ViTForImageClassification } from '../models/vit.js';
import type { BertForSequenceClassification } from '../models/bert.js';
import { createOptimizer, type OptimizerOptions } from '../train/optimizer.js';
import { train } from '../train/trainer.node.js';
import { type Objective, type TrainArgs, type TrainCallbacks, type TrainResult } from '../train/trainer.js';
import { saveAdapter } from '../lora/files.node.js';

// ---------------------------------------------------------------------------------------
// Inputs, loss, objective

/** The model inputs of a batch. */
export function batchInputs(batch: ClassifyBatch): EncoderInputs {
  if (batch.pixels) return { pixels: batch.pixels, B: batch.B };
  return { ids: batch.ids!, B: batch.B, T: batch.T!, attentionMask: batch.attentionMask!, tokenTypeIds: batch.typeIds! };
}

/**
 * Summed cross-entropy of logits [B, L] against labels[B]; with gradScale, the model's
 * gradients of gradScale · (summed loss) are added (trainer convention: gradScale = 1/examples).
 */
export function classificationLossAndBackward(model: EncoderClassifier, logits: Float32Array, labels: Int32Array, gradScale: number | null): number {
  const B = labels.length;
  const L = logits.length / B;
  for (let b = 0; b < B; b++) {
    const y = labels[b]!;
    if (!(y >= 0 && y < L)) throw new RangeError(`classification loss: label ${y} at row ${b} is outside the ${L} classes of the head`);
  }
  const be = getBackend();
  const losses = new Float32Array(B);
  be.crossEntropyForward(losses, logits, labels, B, L, IGNORE_INDEX);
  let sum = 0;
  for (let i = 0; i < B; i++) sum += losses[i]!;
  if (gradScale !== null) {
    const dl = new Float32Array(B * L);
    be.crossEntropyBackward(dl, logits, labels, B, L, gradScale, IGNORE_INDEX);
    model.backward(dl);
  }
  return sum;
}

/**
 * The trainer's Objective for a classifier over ClassifyBatch (the trainer's Batch type is for
 * token batches; ClassifyBatch carries the fields it reads: B, tokens, targets).
 */
export function classificationObjective(model: EncoderClassifier): Objective<ClassifyBatch> {
  const run = (batch: ClassifyBatch, gradScale: number | null): { lossSum: number; count: number } => {
    const logits = model.forward(batchInputs(batch));
    return { lossSum: classificationLossAndBackward(model, logits, batch.labels, gradScale), count: batch.B };
  };
  return { forwardBackward: (b, s) => run(b, s), evaluate: (b) => run(b, null) };
}

// ---------------------------------------------------------------------------------------
// Data for a model

export interface ClassifyDataOptions {
  /** labels in class order (default: the model's when they cover the data, else the data's sorted) */
  labels?: readonly string[];
  /** text: longest sequence (default: the model's max positions, at most 512) */
  maxLength?: number;
}

/** Everything needed to turn a model folder's inputs into ClassifyExamples. */
export interface ClassifyPreprocessor {
  task: 'text' | 'image';
  tokenizer?: PairTokenizer;
  image?: ImageProcessorConfig;
  padId: number;
}

export function preprocessorFor(model: EncoderClassifier, modelDir: string): ClassifyPreprocessor {
  if (model.info.task === 'image') {
    const vit = model as ViTForImageClassification;
    if (vit.cfg.numChannels !== 3) throw new Error(`${modelDir}: the model takes ${vit.cfg.numChannels} channels; images are decoded as RGB (3)`);
    return { task: 'image', image: readImageProcessorConfig(modelDir, vit.cfg.imageSize), padId: 0 };
  }
  if (!fs.existsSync(path.join(modelDir, 'tokenizer.json'))) throw new Error(`${modelDir}: no tokenizer.json (a text classifier needs its tokenizer)`);
  const tokenizer = pairTokenizerFromFolder(modelDir);
  return { task: 'text', tokenizer, padId: tokenizer.padTokenId };
}

function maxLengthOf(model: EncoderClassifier, opts: ClassifyDataOptions): number {
  const cfg = (model as BertForSequenceClassification).cfg;
  // RoBERTa positions start after padding_idx
  const positions = cfg.modelType === 'roberta' ? cfg.maxPositions - cfg.padTokenId - 1 : cfg.maxPositions;
  return Math.min(opts.maxLength ?? 512, positions);
}

/** The labels of a data file or folder (as written), without encoding anything. */
export function dataLabels(task: 'text' | 'image', source: string): string[] {
  if (task === 'image') return listImageDataset(source).labels;
  return labelSet(readTextClassification(source).examples.map((e) => e.label));
}

/** Reads and encodes a data file (text JSONL) or folder/JSONL (images) for the model. */
export function loadClassifyExamples(model: EncoderClassifier, pre: ClassifyPreprocessor, source: string, labels: readonly string[], opts: ClassifyDataOptions = {}): ClassifyExample[] {
  if (pre.task === 'image') {
    const { items } = listImageDataset(source);
    return loadImageExamples(items, pre.image!, labels);
  }
  const ds = readTextClassification(source);
  const typeVocabSize = (model as BertForSequenceClassification).cfg.typeVocabSize;
  return encodeTextExamples(ds, pre.tokenizer!, { labels, typeVocabSize, maxLength: maxLengthOf(model, opts) });
}

/**
 * Makes the model's head fit the data's labels: kept when every data label is one of the
 * model's (named, not LABEL_i) labels; otherwise a new head for the data's labels, with a
 * warning naming the old and new label sets. Returns the labels in class order.
 */
export function fitLabels(model: EncoderClassifier, data: readonly string[], warn: (m: string) => void, seed = 0, given?: readonly string[]): readonly string[] {
  const want = given ?? data;
  const defaultNames = model.labels.every((l, i) => l === `LABEL_${i}`);
  const covered = !given && !defaultNames && data.every((l) => model.labels.includes(l));
  if (covered) return model.labels;
  if (want.length === model.labels.length && want.every((l, i) => l === model.labels[i])) return model.labels;
  const old = model.labels;
  model.replaceHead(want, seed);
  warn(`the model's labels [${old.join(', ')}] differ from the data's [${want.join(', ')}]; using a new classifier head of ${want.length} outputs (trained with the adapter: classifier in modules_to_save)`);
  return model.labels;
}

// ---------------------------------------------------------------------------------------
// Metrics

export interface LabelMetrics {
  label: string;
  precision: number;
  recall: number;
  f1: number;
  /** gold examples of the label */
  support: number;
}

export interface ClassifierMetrics {
  examples: number;
  /** mean cross-entropy */
  loss: number;
  accuracy: number;
  /** unweighted mean of per-label F1 over labels that occur in the gold labels or the predictions (scikit-learn's macro average; 0 where undefined) */
  macroF1: number;
  perLabel: LabelMetrics[];
  /** confusion[gold][predicted] */
  confusion: number[][];
}

/** Accuracy, macro-F1, per-label scores and the confusion matrix of predictions against gold class indices. */
export function classificationMetrics(pred: readonly number[], gold: readonly number[], labels: readonly string[], loss = NaN): ClassifierMetrics {
  if (pred.length !== gold.length) throw new RangeError(`classificationMetrics: ${pred.length} predictions for ${gold.length} gold labels`);
  const L = labels.length;
  const confusion = Array.from({ length: L }, () => new Array<number>(L).fill(0));
  let correct = 0;
  for (let i = 0; i < pred.length; i++) {
    confusion[gold[i]!]![pred[i]!]!++;
    if (pred[i] === gold[i]) correct++;
  }
  const perLabel: LabelMetrics[] = [];
  let f1Sum = 0;
  let present = 0;
  for (let c = 0; c < L; c++) {
    const tp = confusion[c]![c]!;
    const support = confusion[c]!.reduce((a, b) => a + b, 0);
    const predicted = confusion.reduce((a, row) => a + row[c]!, 0);
    const precision = predicted > 0 ? tp / predicted : 0;
    const recall = support > 0 ? tp / support : 0;
    const f1 = precision + recall > 0 ? (2 * precision * recall) / (precision + recall) : 0;
    perLabel.push({ label: labels[c]!, precision, recall, f1, support });
    if (support > 0 || predicted > 0) {
      f1Sum += f1;
      present++;
    }
  }
  return { examples: pred.length, loss, accuracy: pred.length ? correct / pred.length : NaN, macroF1: present ? f1Sum / present : NaN, perLabel, confusion };
}

/** Runs the model (eval mode) over batches: metrics against their labels. */
export function evaluateClassifier(model: EncoderClassifier, batches: Iterable<ClassifyBatch>): ClassifierMetrics {
  const was = model.training;
  model.eval();
  const pred: number[] = [];
  const gold: number[] = [];
  let lossSum = 0;
  try {
    for (const b of batches) {
      const logits = model.forward(batchInputs(b));
      lossSum += classificationLossAndBackward(model, logits, b.labels, null);
      const L = logits.length / b.B;
      for (let i = 0; i < b.B; i++) {
        pred.push(argmax(logits, i * L, L));
        gold.push(b.labels[i]!);
      }
    }
  } finally {
    model.train(was);
  }
  return classificationMetrics(pred, gold, model.labels, pred.length ? lossSum / pred.length : NaN);
}

function argmax(x: Float32Array, off: number, n: number): number {
  let best = 0;
  for (let j = 1; j < n; j++) if (x[off + j]! > x[off + best]!) best = j;
  return best;
}

// ---------------------------------------------------------------------------------------
// Prediction

export interface Prediction {
  /** the most probable label */
  label: string;
  index: number;
  /** softmax probability of each label, in the model's label order */
  probabilities: number[];
}

/** Predictions for batches (eval mode): the top label and every label's probability. */
export function predictBatches(model: EncoderClassifier, batches: Iterable<ClassifyBatch>): Prediction[] {
  const was = model.training;
  model.eval();
  const out: Prediction[] = [];
  try {
    for (const b of batches) {
      const logits = model.forward(batchInputs(b));
      const L = logits.length / b.B;
      const probs = new Float32Array(logits.length);
      getBackend().softmax(probs, logits, b.B, L);
      for (let i = 0; i < b.B; i++) {
        const index = argmax(logits, i * L, L);
        out.push({ label: model.labels[index]!, index, probabilities: Array.from(probs.subarray(i * L, (i + 1) * L)) });
      }
    }
  } finally {
    model.train(was);
  }
  return out;
}

/** An input to predict(): a text, a sentence pair, or an image file. */
export type PredictInput = string | { text: string; textPair?: string } | { image: string };

/**
 * Predicts labels with probabilities for texts / pairs (text models) or image files (image
 * models), in batches. An image that does not decode is an error naming the file.
 */
export function predict(model: EncoderClassifier, pre: ClassifyPreprocessor, inputs: readonly PredictInput[], opts: { batchSize?: number; maxLength?: number } = {}): Prediction[] {
  const examples: ClassifyExample[] = inputs.map((inp, i) => {
    if (typeof inp === 'object' && 'image' in inp) {
      if (pre.task !== 'image') throw new Error(`predict: input ${i} is an image, the model (${model.info.modelType}) classifies text`);
      return { label: 0, where: inp.image, pixels: preprocessImage(readImage(inp.image), pre.image!) };
    }
    if (pre.task !== 'text') throw new Error(`predict: input ${i} is text, the model (${model.info.modelType}) classifies images`);
    const t = typeof inp === 'string' ? { text: inp } : inp;
    const enc = encodeTextExamples({ file: 'predict input', pairs: t.textPair !== undefined, examples: [{ line: i + 1, text: t.text, ...(t.textPair !== undefined ? { textPair: t.textPair } : {}), label: model.labels[0]! }] }, pre.tokenizer!, {
      labels: model.labels,
      typeVocabSize: (model as BertForSequenceClassification).cfg.typeVocabSize,
      maxLength: maxLengthOf(model, opts),
    });
    return enc[0]!;
  });
  const bs = opts.batchSize ?? 16;
  const batches: ClassifyBatch[] = [];
  for (let i = 0; i < examples.length; i += bs) batches.push(collateClassify(examples.slice(i, i + bs), pre.padId));
  return predictBatches(model, batches);
}

// ---------------------------------------------------------------------------------------
// Training

export interface TrainClassifierOptions {
  /** the base model folder (bert / roberta / vit) */
  model: string;
  /** text: JSONL; images: a folder per class or a JSONL of {"image", "label"} */
  train: string;
  valid?: string | undefined;
  /** LoRA config (PEFT names); defaults: r 8, lora_alpha 16, target_modules the family's (query, value), modules_to_save the head (classifier), task_type SEQ_CLS */
  lora?: LoraConfigInput | undefined;
  args: TrainArgs;
  batchSize?: number | undefined;
  /** evaluation batch size (default batchSize) */
  evalBatchSize?: number | undefined;
  seed?: number | undefined;
  /** optimizer options besides lr (weightDecay, kind, betas …) */
  optimizer?: Omit<OptimizerOptions, 'lr'> | undefined;
  data?: ClassifyDataOptions | undefined;
  callbacks?: TrainCallbacks | undefined;
  /** warnings (label changes); default process.emitWarning */
  warn?: ((message: string) => void) | undefined;
  /** stop request (TrainOptions.stop): a checkpoint and the adapter of the steps done are written */
  stop?: { readonly aborted: boolean } | undefined;
}

export interface TrainClassifierResult {
  model: EncoderClassifier;
  peft: PeftModel<EncoderClassifier>;
  labels: readonly string[];
  preprocessor: ClassifyPreprocessor;
  result: TrainResult;
  /** metrics on the validation data after training (null without it) */
  metrics: ClassifierMetrics | null;
  /** the adapter folder written (outDir/adapter), when args.outDir is set */
  adapterDir: string | null;
}

/**
 * Fine-tunes a classifier with LoRA: loads the model, fits its head to the data's labels,
 * injects the adapter (classifier in modules_to_save), and runs the trainer with the
 * classification objective. With args.outDir the final adapter lands in outDir/adapter,
 * checkpoints carry the adapter files, and outDir/eval.json holds the validation metrics.
 */
export async function trainClassifier(opts: TrainClassifierOptions): Promise<TrainClassifierResult> {
  const warn = opts.warn ?? ((m: string) => process.emitWarning(m, { code: 'LORAKIT_CLASSIFY' }));
  const seed = opts.seed ?? 0;
  const model = loadClassifier(opts.model, { warn });
  const fam = ENCODER_FAMILIES.get(model.info.modelType)!;
  const pre = preprocessorFor(model, opts.model);
  const seen = [...dataLabels(pre.task, opts.train), ...(opts.valid ? dataLabels(pre.task, opts.valid) : [])];
  const labels = fitLabels(model, labelSet(seen), warn, seed, opts.data?.labels);
  const trainExamples = loadClassifyExamples(model, pre, opts.train, labels, opts.data);
  const valid = opts.valid ? loadClassifyExamples(model, pre, opts.valid, labels, opts.data) : null;

  const lora: LoraConfigInput = {
    r: 8,
    lora_alpha: 16,
    target_modules: [...fam.defaultTargets],
    modules_to_save: [...fam.headModules],
    task_type: 'SEQ_CLS',
    base_model_name_or_path: opts.model,
    ...(opts.lora ?? {}),
  };
  const peft = getPeftModel(model, lora, 'default', { seed });
  const optimizer = createOptimizer(peft.trainableParameters(), { ...(opts.optimizer ?? {}), lr: opts.args.lr });
  const batchSize = opts.batchSize ?? 8;
  const trainBatches = new ClassifyBatches(trainExamples, { batchSize, seed, shuffle: true, padId: pre.padId });
  const validBatches = valid ? new ClassifyBatches(valid, { batchSize: opts.evalBatchSize ?? batchSize, shuffle: false, padId: pre.padId }).all() : null;
  const exportFiles = (): Map<string, FileData> => adapterFiles(peft, opts.model, labels);
  const result = await train({
    model,
    optimizer,
    data: { train: trainBatches, valid: validBatches },
    args: opts.args,
    objective: classificationObjective(model),
    callbacks: { exportFiles, ...(opts.callbacks ?? {}) },
    rngs: { lora: { state: () => peft.rng.state(), setState: (s: never) => peft.rng.setState(s) }, dropout: { state: () => model.rng.state(), setState: (s: never) => model.rng.setState(s) } },
    ...(opts.stop ? { stop: opts.stop } : {}),
  });
  const metrics = validBatches && !result.interrupted ? evaluateClassifier(model, validBatches) : null;
  let adapterDir: string | null = null;
  if (opts.args.outDir) {
    adapterDir = path.join(opts.args.outDir, 'adapter');
    saveAdapter(peft, adapterDir, { adapterNames: ['default'], baseModelNameOrPath: opts.model });
    fs.writeFileSync(path.join(adapterDir, LABELS_FILE), labelsJson(labels));
    if (metrics) fs.writeFileSync(path.join(opts.args.outDir, 'eval.json'), JSON.stringify({ labels, ...metrics }, null, 2) + '\n');
  }
  return { model, peft, labels, preprocessor: pre, result, metrics, adapterDir };
}

/** The default adapter's files (adapter_config.json, adapter_model.safetensors) for checkpoints. */
function adapterFiles(peft: PeftModel<EncoderClassifier>, modelDir: string, labels: readonly string[]): Map<string, FileData> {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lorakit-adapter-'));
  try {
    saveAdapter(peft, tmp, { adapterNames: ['default'], baseModelNameOrPath: modelDir });
    const files = new Map<string, FileData>();
    for (const name of fs.readdirSync(tmp)) files.set(name, fs.readFileSync(path.join(tmp, name)));
    files.set(LABELS_FILE, labelsJson(labels));
    return files;
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------
// Adapters with their labels

/**
 * labels.json beside adapter_config.json: {"id2label", "label2id"} of the head the adapter was
 * trained with (PEFT folders do not record them; transformers takes them from the model config).
 */
export const LABELS_FILE = 'labels.json';

function labelsJson(labels: readonly string[]): string {
  return JSON.stringify({ id2label: Object.fromEntries(labels.map((l, i) => [String(i), l])), label2id: Object.fromEntries(labels.map((l, i) => [l, i])) }, null, 2) + '\n';
}

/**
 * The labels an adapter folder was trained with: labels.json when present, else LABEL_i for
 * as many outputs as its classifier tensor has, else null (the base model's labels apply).
 */
export function adapterLabels(adapterDir: string, headKeys: readonly string[] = ['classifier.weight', 'classifier.out_proj.weight']): string[] | null {
  const file = path.join(adapterDir, LABELS_FILE);
  if (fs.existsSync(file)) {
    const j = JSON.parse(fs.readFileSync(file, 'utf8')) as { id2label?: Record<string, unknown> };
    const entries = Object.entries(j.id2label ?? {});
    const out = new Array<string>(entries.length);
    for (const [k, v] of entries) {
      const i = Number(k);
      if (!Number.isInteger(i) || i < 0 || i >= entries.length || typeof v !== 'string') throw new Error(`${file}: "id2label" must map "0".."${entries.length - 1}" to label names, got ${JSON.stringify(k)}: ${JSON.stringify(v)}`);
      out[i] = v;
    }
    if (out.length === 0) throw new Error(`${file}: no labels in "id2label"`);
    return out;
  }
  const weights = readSafetensors(path.join(adapterDir, 'adapter_model.safetensors')).tensors;
  for (const k of headKeys) {
    const t = weights.get(`base_model.model.${k}`);
    if (t) return Array.from({ length: t.shape[0]! }, (_, i) => `LABEL_${i}`);
  }
  return null;
}

/**
 * Loads a base classifier and a PEFT adapter trained on it (labels from the adapter folder, so
 * a head resized for the data fits), for evaluation or prediction (or more training with
 * isTrainable).
 */
export function loadClassifierWithAdapter(modelDir: string, adapterDir: string, opts: { isTrainable?: boolean; warn?: (m: string) => void } = {}): { model: EncoderClassifier; peft: PeftModel<EncoderClassifier>; preprocessor: ClassifyPreprocessor } {
  const labels = adapterLabels(adapterDir);
  // the adapter's classifier copy replaces the head: a fresh head of the right size is only a placeholder
  const model = loadClassifier(modelDir, { ...(labels ? { labels } : {}), warn: opts.warn ?? (() => undefined) });
  const peft = loadPeftModel(model, adapterDir, { isTrainable: opts.isTrainable ?? false });
  return { model, peft, preprocessor: preprocessorFor(model, modelDir) };
}
