// lorakit train: LoRA (or full) fine-tuning of a model folder on a JSONL file.
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { BatchIterator, padIdFor, type Batch } from '../../data/index.js';
import { loadTrainValid } from '../../data/index.node.js';
import type { FileData } from '../../io/atomic.node.js';
import { copyModelSideFiles } from '../../io/model-files.node.js';
import { getPeftModel, type InitLoraWeights, type LoraConfigInput, type PeftModel } from '../../lora/index.js';
import type { DecoderLM } from '../../models/decoder.js';
import { saveModel } from '../../models/load.node.js';
import { createOptimizer } from '../../train/optimizer.js';
import { SCHEDULE_KINDS } from '../../train/schedule.js';
import { onInterrupt } from '../../train/signals.node.js';
import { train } from '../../train/trainer.node.js';
import type { EvalRow, StepRow } from '../../train/trainer.js';
import {
  UsageError,
  checkOutput,
  clampMaxLength,
  droppedNote,
  interruptedLine,
  refuseOtherRun,
  bytes,
  commas,
  exclusive,
  parseChoice,
  parseDropout,
  parseFraction,
  parseInit,
  parseNonNegativeInt,
  parseNonNegativeNumber,
  parseNumber,
  parsePositiveInt,
  parsePositiveNumber,
  parseTargets,
  required,
  requireFile,
  stdoutClosed,
  warnLine,
} from '../common.js';
import { openModel } from '../load.js';
import { TASKS, resolveTask } from '../task.js';
import { runTrainClassify } from './train-classify.js';
import { type TrainOpts, trainArgsFromFlags } from './train-flags.js';
import { saveAdapter } from '../../lora/files.node.js';
import { floatDTypeOf } from '../../tensor/tensor.js';

function initArg(v: string): InitLoraWeights {
  try {
    return parseInit(v);
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message.replace(/^--init: /, ''));
  }
}

export function trainCommand(): Command {
  return new Command('train')
    .description('fine-tune a model folder on a JSONL file: LoRA adapters (PEFT layout) or, with --full, every weight; --task classify: a BERT/RoBERTa/ViT classifier')
    .option('--config <file>', 'YAML or JSON file of options (keys are flag names: rank, batch-size, …); flags override it')
    .addOption(new Option('--task <task>', 'causal (language modelling) or classify (BERT, RoBERTa, ViT) (default: from the model\'s model_type)').choices(TASKS).argParser(parseChoice(TASKS)))
    .option('--model <dir>', 'Hugging Face model folder (config.json, safetensors weights, tokenizer)')
    .option('--data <path>', 'training JSONL: {"text"}, {"prompt","completion"} or {"messages"} per line; classify: {"text"[,"text_pair"],"label"} lines, an image folder per class, or {"image","label"} lines')
    .option('--valid <path>', 'validation JSONL (classify: or image folder)')
    .option('--valid-split <f>', 'hold out this fraction of --data for validation instead', parseFraction)
    .option('--out <dir>', 'run folder: adapter/, checkpoints/, best/, metrics.jsonl, report.md, loss.svg')
    .option('--rank <r>', 'LoRA rank r', parsePositiveInt, 8)
    .option('--alpha <a>', 'LoRA alpha (scaling alpha/r) (default: 2 × rank)', parseNumber)
    .option('--dropout <p>', 'LoRA dropout on the adapter input', parseDropout, 0)
    .option('--targets <list>', 'modules to adapt: comma list (q_proj,v_proj), a regex (full match), or all-linear (default: the model family\'s default, e.g. q_proj,v_proj for llama, query,value for BERT/RoBERTa/ViT)')
    .option('--rslora', 'rank-stabilised scaling alpha/√r', false)
    .option('--dora', 'DoRA (weight-decomposed LoRA)', false)
    .option('--init <kind>', 'adapter init: true (Kaiming A, zero B), false, gaussian, pissa, pissa_niter_<n>', initArg, true)
    .option('--full', 'full fine-tuning: train every weight, save the model to OUT/model', false)
    .option('--epochs <n>', 'passes over the training data (default 1 unless --steps)', parsePositiveNumber)
    .option('--steps <n>', 'optimizer steps (instead of --epochs)', parsePositiveInt)
    .option('--batch-size <n>', 'examples (or packed rows) per batch', parsePositiveInt, 4)
    .option('--grad-accum <n>', 'batches per optimizer step', parsePositiveInt, 1)
    .option('--lr <x>', 'peak learning rate (AdamW)', parsePositiveNumber, 2e-4)
    .addOption(new Option('--schedule <kind>', 'learning-rate schedule').choices(SCHEDULE_KINDS).default('constant').argParser(parseChoice(SCHEDULE_KINDS)))
    .option('--warmup <steps>', 'linear warmup steps', parseNonNegativeInt, 0)
    .option('--weight-decay <x>', 'AdamW weight decay (not on biases and norms) (default 0.01)', parseNonNegativeNumber)
    .option('--max-length <n>', 'longest example in tokens (longer ones are cut); the packed row length (classify: default the model\'s positions, at most 512)', parsePositiveInt, 2048)
    .option('--pack', 'pack several examples into each row of --max-length tokens', false)
    .option('--mask-prompt', 'train only on completions / assistant turns (default)')
    .option('--no-mask-prompt', 'train on prompts and every chat turn too')
    .option('--seed <n>', 'seed of adapter init, dropout, shuffling and the validation split', parseNonNegativeInt, 0)
    .option('--eval-every <steps>', 'evaluate on the validation set every n steps (and at the end)', parsePositiveInt)
    .option('--save-every <steps>', 'write a checkpoint every n steps (and at the end)', parsePositiveInt)
    .option('--grad-checkpoint', 'recompute each layer in backward instead of keeping its activations (less memory)', false)
    .option('--max-grad-norm <x>', 'clip the global gradient norm (0: off)', parseNonNegativeNumber, 1)
    .option('--resume <dir>', 'continue from a checkpoint folder, or a run folder\'s latest checkpoint')
    .option('--no-progress', 'no progress bar or step lines')
    .action(async function (this: Command) {
      await runTrain(this);
    });
}

async function runTrain(cmd: Command): Promise<void> {
  stdoutClosed.exit = false;
  const o = cmd.opts<TrainOpts>();
  const modelDir = required(o.model, '--model DIR');
  if (resolveTask(modelDir, o.task) === 'classify') return runTrainClassify(cmd, modelDir);
  const dataFile = required(o.data, '--data FILE');
  const outDir = required(o.out, '--out DIR');
  const len = exclusive(cmd, 'epochs', 'steps', '--epochs', '--steps');
  const val = exclusive(cmd, 'valid', 'validSplit', '--valid', '--valid-split');
  requireFile(dataFile, 'data file');
  if (val === 'a') requireFile(o.valid!, 'validation file');
  if (o.resume !== undefined && !existsSync(o.resume)) throw new UsageError(`--resume ${o.resume} does not exist`);
  checkOutput('--out', outDir, [{ flag: '--model', path: modelDir }]);
  const maskPrompt = o.maskPrompt ?? true;
  if (o.full) {
    const loraFlags = ['rank', 'alpha', 'dropout', 'targets', 'rslora', 'dora', 'init'].filter((k) => cmd.getOptionValueSource(k) === 'cli');
    if (loraFlags.length) throw new UsageError(`--full trains every weight; LoRA flags do not apply (${loraFlags.map((k) => `--${k}`).join(', ')})`);
  }
  refuseOtherRun(outDir, o.resume);
  if (o.evalEvery !== undefined && val === null) warnLine('--eval-every has no effect without --valid or --valid-split');

  const loaded = openModel(modelDir);
  const { model, tokenizer } = loaded;
  const dtype = floatDTypeOf(model.parameters()[0]?.value.dtype ?? 'f32');
  const maxLength = clampMaxLength(cmd, o.maxLength, model.info.maxPositions, modelDir);
  const data = await loadTrainValid(dataFile, tokenizer, {
    maxLength,
    vocabSize: model.info.vocabSize,
    maskPrompt,
    seed: o.seed,
    ...(val === 'a' ? { valid: o.valid! } : {}),
    ...(val === 'b' ? { validSplit: o.validSplit! } : {}),
  });

  // the model to train
  let peft: PeftModel<DecoderLM> | null = null;
  let loraConfig: LoraConfigInput | null = null;
  if (o.full) {
    model.requiresGrad(true);
  } else {
    loraConfig = {
      r: o.rank,
      lora_alpha: o.alpha ?? 2 * o.rank,
      lora_dropout: o.dropout,
      target_modules: o.targets === undefined ? null : parseTargets(o.targets),
      use_rslora: o.rslora,
      use_dora: o.dora,
      init_lora_weights: o.init,
    };
    peft = getPeftModel(model, loraConfig, 'default', { seed: o.seed });
  }
  model.gradientCheckpointing = o.gradCheckpoint;
  model.train(true);

  const named = model.trainableParameters();
  const optimizer = createOptimizer(named, { lr: o.lr, ...(o.weightDecay !== undefined ? { weightDecay: o.weightDecay } : {}) });
  const padId = padIdFor(tokenizer);
  const trainIt = new BatchIterator(data.train.examples, { batchSize: o.batchSize, seed: o.seed, order: 'shuffle', pack: o.pack, maxLength, padId });
  let validBatches: Batch[] | null = null;
  if (data.valid) validBatches = [...new BatchIterator(data.valid.examples, { batchSize: o.batchSize, order: 'sequential', padId }).epochIterator(0)];

  const trainable = named.reduce((n, [, p]) => n + p.value.size, 0);
  const all = model.parameters().reduce((n, p) => n + p.value.size, 0);
  const modelType = model.info.modelType;
  console.log(`model ${modelDir}: ${modelType}, ${model.info.numLayers} layers, hidden ${model.info.hiddenSize}, ${dtype}`);
  console.log(
    `data ${dataFile}: ${data.train.examples.length} training examples (${data.train.format})` +
      (data.valid ? `, ${data.valid.examples.length} validation examples` : ', no validation set') +
      (data.train.truncated ? `; ${data.train.truncated} cut at ${maxLength} tokens` : '') +
      droppedNote(data.train),
  );
  if (peft) {
    const c = peft.config('default');
    const targets = Array.isArray(c.target_modules) ? c.target_modules.join(',') : String(c.target_modules);
    console.log(`LoRA r=${c.r} alpha=${c.lora_alpha}${c.use_rslora ? ' rslora' : ''}${c.use_dora ? ' dora' : ''} on ${peft.loraLayers.size} modules (${targets})`);
  } else {
    console.log('full fine-tuning (every weight trained, in f32)');
  }
  console.log(`trainable params: ${commas(trainable)} || all params: ${commas(all)} || trainable%: ${((100 * trainable) / all).toFixed(4)}`);

  const steps = len === 'b' ? o.steps! : undefined;
  const epochs = len === 'a' ? o.epochs! : steps === undefined ? 1 : undefined;
  const resolved: Record<string, unknown> = { ...o, maskPrompt, ...(loraConfig ? { lora: loraConfig } : {}) };
  delete resolved.config;
  const args = trainArgsFromFlags(o, outDir, resolved, steps, epochs);
  const pissa = peft !== null && typeof o.init === 'string' && o.init.startsWith('pissa');
  // the one signal path: the handlers stay until the result is written
  const intr = onInterrupt();
  try {
    await trainAndSave();
  } finally {
    intr.dispose();
  }
  interruptedLine(intr, outDir);

  async function trainAndSave(): Promise<void> {
    const result = await train({
      model,
      optimizer,
      data: { train: trainIt, valid: validBatches },
      args,
      callbacks: peft ? { exportFiles: () => adapterFiles(peft!, modelDir) } : {},
      rngs: peft ? { lora: peft.rng } : {},
      stop: intr.stop,
    });

    // the result
    let saved: string;
    if (peft) {
      saved = join(outDir, 'adapter');
      saveAdapter(peft, saved, { baseModelNameOrPath: modelDir });
      // a PiSSA adapter is relative to lorakit's SVD of the base; adapter-lora/ is the same
      // change as a plain LoRA on the original weights, which any PEFT loader reads exactly
      if (pissa) saveAdapter(peft, join(outDir, 'adapter-lora'), { baseModelNameOrPath: modelDir, pissaAsLora: true });
    } else {
      saved = join(outDir, 'model');
      model.requiresGrad(false);
      await saveModel(model, saved, { dtype });
      copyModelSideFiles(modelDir, saved);
    }

    const trainRows = result.history.filter((h): h is StepRow => h.type === 'train' && !h.skipped);
    const evalRows = result.history.filter((h): h is EvalRow => h.type === 'eval');
    const f = (x: number | null | undefined): string => (x === null || x === undefined || !Number.isFinite(x) ? '–' : x.toFixed(4));
    console.log(`done: ${result.steps} steps in ${result.seconds.toFixed(1)} s, ${result.tokensPerSecond.toFixed(0)} tokens/s, peak memory ${bytes(result.peakRssBytes)}${result.stoppedEarly ? ' (stopped early)' : ''}`);
    console.log(`train loss: first ${f(trainRows[0]?.loss)}, final ${f(result.finalLoss)} (perplexity ${Number.isFinite(result.finalLoss) ? Math.exp(result.finalLoss).toFixed(2) : '–'})`);
    if (evalRows.length) {
      const first = evalRows[0]!;
      console.log(`validation loss: ${f(result.finalValidLoss)} (perplexity ${result.finalValidLoss === null ? '–' : Math.exp(result.finalValidLoss).toFixed(2)}), best ${f(result.bestValidLoss)}, first ${f(first.loss)} at step ${first.step}`);
    }
    if (result.skippedSteps) console.log(`skipped steps (non-finite loss or gradient): ${result.skippedSteps}`);
    console.log(`${peft ? 'adapter' : 'model'}: ${saved}`);
    if (pissa) console.log(`the same as a plain LoRA on the original weights (rank ${2 * o.rank}, portable: no SVD at load): ${join(outDir, 'adapter-lora')}`);
    const ckpts = join(outDir, 'checkpoints');
    if (existsSync(ckpts)) {
      const list = readdirSync(ckpts).sort();
      console.log(`checkpoints: ${ckpts} (latest ${list[list.length - 1] ?? '–'})${existsSync(join(outDir, 'best')) ? `, best: ${join(outDir, 'best')}` : ''}`);
    }
    console.log(`report: ${join(outDir, 'report.md')}, metrics: ${join(outDir, 'metrics.jsonl')}, loss curve: ${join(outDir, 'loss.svg')}`);
  }
}

/** The PEFT adapter files as saveAdapter writes them, for each checkpoint folder. */
function adapterFiles(peft: PeftModel<DecoderLM>, modelDir: string): Map<string, FileData> {
  const tmp = mkdtempSync(join(tmpdir(), 'lorakit-adapter-'));
  try {
    saveAdapter(peft, tmp, { adapterNames: ['default'], baseModelNameOrPath: modelDir });
    const files = new Map<string, FileData>();
    for (const name of readdirSync(tmp)) files.set(name, readFileSync(join(tmp, name)));
    return files;
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

