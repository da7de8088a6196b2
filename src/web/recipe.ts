// LoRA training of a causal LM on JSONL text, set up the way `lorakit train` sets it up
// (src/cli/commands/train.ts): the same dataset options, adapter seed, optimizer, batch order
// and trainer arguments, so that an adapter trained in a page with a seed equals the one the
// CLI writes with the same backend and seed (tests/e2e/browser.test.ts checks it bit for bit).
// See docs/ARCHITECTURE.md §Browser.
import { BatchIterator, padIdFor, type Batch } from '../data/batch.js';
import { datasetFromJsonl, splitDataset, type Dataset } from '../data/dataset.js';
import type { Tokenizer } from '../io/tokenizer.js';
import type { LoraConfigInput } from '../lora/config.js';
import { readAdapterFiles } from '../lora/files.js';
import { getPeftModel, type PeftModel } from '../lora/peft-model.js';
import type { DecoderLM } from '../models/decoder.js';
import { createOptimizer, type Optimizer } from '../train/optimizer.js';
import type { ScheduleKind } from '../train/schedule.js';
import type { TrainArgs } from '../train/trainer.js';

/** The `lorakit train` flags a page offers, with the CLI's defaults. */
export interface LoraSettings {
  rank: number;
  /** default 2 × rank */
  alpha?: number;
  dropout?: number;
  /** 'q_proj,v_proj', 'all-linear' or a regular expression, as --targets; default the family's */
  targets?: string;
  rslora?: boolean;
  /** optimizer steps; else one epoch */
  steps?: number;
  epochs?: number;
  batchSize?: number;
  gradAccum?: number;
  lr?: number;
  schedule?: ScheduleKind;
  warmup?: number;
  weightDecay?: number;
  maxLength?: number;
  pack?: boolean;
  maskPrompt?: boolean;
  seed?: number;
  maxGradNorm?: number;
  /** hold out this fraction of the data for validation (as --valid-split) */
  validSplit?: number;
  evalEvery?: number;
}

export const LORA_SETTING_DEFAULTS = {
  dropout: 0,
  batchSize: 4,
  gradAccum: 1,
  lr: 2e-4,
  schedule: 'constant' as ScheduleKind,
  warmup: 0,
  maxLength: 2048,
  pack: false,
  maskPrompt: true,
  seed: 0,
  maxGradNorm: 1,
};

/** --targets as the CLI parses it (cli/common.ts parseTargets). */
export function parseTargetList(v: string): string[] | string {
  const s = v.trim();
  if (s === '') throw new Error('targets is empty');
  if (s.toLowerCase() === 'all-linear') return 'all-linear';
  if (/[\\^$*+?()[\]{}|]/.test(s)) return s;
  const list = s.split(',').map((t) => t.trim()).filter((t) => t.length > 0);
  if (list.length === 0) throw new Error(`targets ${JSON.stringify(v)} names no module`);
  return list;
}

export interface LoraRun {
  peft: PeftModel<DecoderLM>;
  loraConfig: LoraConfigInput;
  optimizer: Optimizer;
  train: BatchIterator;
  valid: Batch[] | null;
  args: TrainArgs;
  data: { train: Dataset; valid: Dataset | null };
}

/**
 * Injects a fresh adapter into `model` and prepares its data, optimizer and arguments from
 * JSONL text (`file` names it in errors). Train with `train({ model, optimizer, data: { train,
 * valid }, args, rngs: { lora: peft.rng } })`.
 */
export function prepareLoraRun(model: DecoderLM, tokenizer: Tokenizer, jsonl: string, file: string, settings: LoraSettings): LoraRun {
  const s = { ...LORA_SETTING_DEFAULTS, ...settings };
  const dsOpts = { maxLength: s.maxLength, maskPrompt: s.maskPrompt };
  const all = datasetFromJsonl(jsonl, file, tokenizer, dsOpts);
  const data = s.validSplit !== undefined ? splitDataset(all, s.validSplit, s.seed) : { train: all, valid: null };
  const loraConfig: LoraConfigInput = {
    r: s.rank,
    lora_alpha: s.alpha ?? 2 * s.rank,
    lora_dropout: s.dropout,
    target_modules: s.targets === undefined ? null : parseTargetList(s.targets),
    use_rslora: s.rslora ?? false,
    use_dora: false,
    init_lora_weights: true,
  };
  const peft = getPeftModel(model, loraConfig, 'default', { seed: s.seed });
  model.train(true);
  const named = model.trainableParameters();
  const optimizer = createOptimizer(named, { lr: s.lr, ...(s.weightDecay !== undefined ? { weightDecay: s.weightDecay } : {}) });
  const padId = padIdFor(tokenizer);
  const train = new BatchIterator(data.train.examples, { batchSize: s.batchSize, seed: s.seed, order: 'shuffle', pack: s.pack, maxLength: s.maxLength, padId });
  const valid = data.valid ? [...new BatchIterator(data.valid.examples, { batchSize: s.batchSize, order: 'sequential', padId }).epochIterator(0)] : null;
  const steps = s.steps;
  const epochs = s.epochs ?? (steps === undefined ? 1 : undefined);
  const args: TrainArgs = {
    lr: s.lr,
    gradAccum: s.gradAccum,
    schedule: s.schedule,
    warmupSteps: s.warmup,
    maxGradNorm: s.maxGradNorm,
    progress: false,
    ...(steps !== undefined ? { steps } : {}),
    ...(epochs !== undefined ? { epochs } : {}),
    ...(s.evalEvery !== undefined ? { evalEvery: s.evalEvery } : {}),
  };
  return { peft, loraConfig, optimizer, train, valid, args, data };
}

/** The trained adapter's PEFT files (adapter_config.json, adapter_model.safetensors) as bytes, read back from a device backend's memory where it lives there. */
export async function adapterBytes(peft: PeftModel, baseModelNameOrPath: string): Promise<Map<string, Uint8Array>> {
  const out = new Map<string, Uint8Array>();
  for (const [name, v] of await readAdapterFiles(peft, 'default', { baseModelNameOrPath })) out.set(name, typeof v === 'string' ? new TextEncoder().encode(v) : v);
  return out;
}
