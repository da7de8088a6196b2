// lorakit train --task classify: LoRA fine-tuning of a BERT / RoBERTa / ViT classifier on a
// text JSONL (single texts or pairs) or images, through trainClassifier. The classifier head is
// trained in full (modules_to_save); the run folder gets adapter/ (PEFT files + labels.json).
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import type { LoraConfigInput } from '../../lora/index.js';
import { trainClassifier } from '../../tasks/classify.js';
import type { StepRow } from '../../train/trainer.js';
import { describeModelFolder, metricsLine, requirePath } from '../classify.js';
import { onInterrupt } from '../../train/signals.node.js';
import { UsageError, bytes, checkOutput, exclusive, given, interruptedLine, refuseOtherRun, parseTargets, required, warnLine } from '../common.js';
import { trainArgsFromFlags, type TrainOpts } from './train-flags.js';

/** Flags of the causal trainer that mean nothing for a classifier. */
const NOT_FOR_CLASSIFY: readonly [attr: string, flag: string][] = [
  ['validSplit', '--valid-split (give --valid FILE|DIR)'],
  ['full', '--full'],
  ['pack', '--pack'],
  ['maskPrompt', '--mask-prompt / --no-mask-prompt'],
  ['gradCheckpoint', '--grad-checkpoint'],
];

export async function runTrainClassify(cmd: Command, modelDir: string): Promise<void> {
  const o = cmd.opts<TrainOpts>();
  const dataPath = required(o.data, '--data FILE|DIR');
  const outDir = required(o.out, '--out DIR');
  const bad = NOT_FOR_CLASSIFY.filter(([attr]) => given(cmd, attr)).map(([, flag]) => flag);
  if (bad.length) throw new UsageError(`${bad.join(', ')} ${bad.length > 1 ? 'do' : 'does'} not apply to --task classify`);
  const len = exclusive(cmd, 'epochs', 'steps', '--epochs', '--steps');
  const info = describeModelFolder(modelDir);
  requirePath(dataPath, 'data');
  if (o.valid !== undefined) requirePath(o.valid, 'validation data');
  if (o.resume !== undefined && !existsSync(o.resume)) throw new UsageError(`--resume ${o.resume} does not exist`);
  checkOutput('--out', outDir, [{ flag: '--model', path: modelDir }]);
  refuseOtherRun(outDir, o.resume);
  if (o.evalEvery !== undefined && o.valid === undefined) warnLine('--eval-every has no effect without --valid');

  // the family's defaults (query,value; classifier in modules_to_save; SEQ_CLS) unless a flag says otherwise
  const lora: LoraConfigInput = {
    r: o.rank,
    lora_alpha: o.alpha ?? 2 * o.rank,
    lora_dropout: o.dropout,
    use_rslora: o.rslora,
    use_dora: o.dora,
    init_lora_weights: o.init,
    ...(o.targets !== undefined ? { target_modules: parseTargets(o.targets) } : {}),
  };
  const steps = len === 'b' ? o.steps! : undefined;
  const epochs = len === 'a' ? o.epochs! : steps === undefined ? 1 : undefined;
  const resolved: Record<string, unknown> = { ...o, task: 'classify', lora };
  delete resolved.config;
  for (const [attr] of NOT_FOR_CLASSIFY) delete resolved[attr];
  if (!given(cmd, 'maxLength')) delete resolved.maxLength;
  const args = trainArgsFromFlags(o, outDir, resolved, steps, epochs);
  console.log(`model ${modelDir}: ${info}`);
  console.log(`data ${dataPath}${o.valid !== undefined ? `, validation ${o.valid}` : ', no validation set'}`);
  // the handlers stay until the adapter is written (trainClassifier writes it)
  const intr = onInterrupt();
  const r = await trainClassifier({
    model: modelDir,
    train: dataPath,
    valid: o.valid,
    lora,
    args,
    batchSize: o.batchSize,
    seed: o.seed,
    ...(o.weightDecay !== undefined ? { optimizer: { weightDecay: o.weightDecay } } : {}),
    ...(given(cmd, 'maxLength') ? { data: { maxLength: o.maxLength } } : {}),
    warn: warnLine,
    stop: intr.stop,
  }).finally(() => intr.dispose());

  const c = r.peft.config('default');
  const targets = Array.isArray(c.target_modules) ? c.target_modules.join(',') : String(c.target_modules);
  console.log(`labels (${r.labels.length}): ${r.labels.join(', ')}`);
  console.log(`LoRA r=${c.r} alpha=${c.lora_alpha}${c.use_rslora ? ' rslora' : ''}${c.use_dora ? ' dora' : ''} on ${r.peft.loraLayers.size} modules (${targets}); trained in full: ${(c.modules_to_save ?? []).join(', ') || '–'}`);
  console.log(r.peft.trainableParametersLine());
  const res = r.result;
  const trainRows = res.history.filter((h): h is StepRow => h.type === 'train' && !h.skipped);
  const f = (x: number | null | undefined): string => (x === null || x === undefined || !Number.isFinite(x) ? '–' : x.toFixed(4));
  console.log(`done: ${res.steps} steps in ${res.seconds.toFixed(1)} s, peak memory ${bytes(res.peakRssBytes)}${res.stoppedEarly ? ' (stopped early)' : ''}`);
  console.log(`train loss: first ${f(trainRows[0]?.loss)}, final ${f(res.finalLoss)}`);
  if (r.metrics) console.log(`validation: ${metricsLine(r.metrics)} (${r.metrics.examples} examples)`);
  if (res.skippedSteps) console.log(`skipped steps (non-finite loss or gradient): ${res.skippedSteps}`);
  console.log(`adapter: ${r.adapterDir} (PEFT files + labels.json)`);
  const ckpts = join(outDir, 'checkpoints');
  if (existsSync(ckpts)) {
    const list = readdirSync(ckpts).sort();
    console.log(`checkpoints: ${ckpts} (latest ${list[list.length - 1] ?? '–'})${existsSync(join(outDir, 'best')) ? `, best: ${join(outDir, 'best')}` : ''}`);
  }
  console.log(`report: ${join(outDir, 'report.md')}, metrics: ${join(outDir, 'metrics.jsonl')}${r.metrics ? `, eval: ${join(outDir, 'eval.json')}` : ''}`);
  interruptedLine(intr, outDir);
}
