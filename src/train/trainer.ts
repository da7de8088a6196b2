// The training loop: train({ model, optimizer, data, args, objective?, callbacks? }).
// Evaluation every N steps, best-checkpoint keeping, early stopping, gradient accumulation,
// clipping, a NaN/Inf guard, checkpoints that survive a kill (written atomically) and an
// exact resume, a metrics file, an SVG loss curve and a report in the run folder.
import { appendFileSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { getBackend } from '../backend/index.js';
import type { Batch } from '../data/batch.js';
import { attentionBias } from '../data/batch.js';
import { writeDirAtomic, writeFileAtomicSync, type FileData } from '../io/atomic.js';
import { readSafetensors, serializeSafetensors } from '../io/safetensors.js';
import type { CausalLM } from '../models/causal-lm.js';
import type { Module, Parameter } from '../nn/module.js';
import { clipGradNorm, globalGradNorm } from './clip.js';
import { flattenState, unflattenState, type Optimizer } from './optimizer.js';
import { lossCurveSvg } from './plot.js';
import { createProgress, type Progress } from './progress.js';
import { makeSchedule, type ScheduleKind } from './schedule.js';

/** What the loop needs of a batch: how many input tokens it has and how many targets the loss counts. */
export interface BatchCounts {
  tokens: number;
  targets: number;
}

/** Where batches come from: endless, with a resumable position (BatchIterator, ClassifyBatches, …). */
export interface BatchSource<B extends BatchCounts = Batch> {
  readonly batchesPerEpoch: number;
  next(): B;
  state(): unknown;
  setState(s: never): void;
}

/** What a step does with a batch: forward and backward (adding gradients scaled by gradScale), and evaluation. */
export interface Objective<B extends BatchCounts = Batch> {
  /** Forward + backward; returns the summed loss over the batch's counted targets and their number. */
  forwardBackward(batch: B, gradScale: number): { lossSum: number; count: number };
  /** Forward only. */
  evaluate(batch: B): { lossSum: number; count: number };
}

/** Next-token cross-entropy for a causal LM over a batch whose labels are already shifted (-100 ignored). */
export function causalLmObjective(model: CausalLM): Objective {
  const run = (batch: Batch, gradScale: number | null): { lossSum: number; count: number } => {
    const { B, T } = batch;
    const opts = batch.packed ? { positionIds: batch.positions, attentionBias: attentionBias(batch) } : { positionIds: batch.positions };
    if (model.lossForwardBackward) {
      // the head and the loss run over blocks of rows: the [B·T, V] logits are never held
      const { lossSum } = model.lossForwardBackward(batch.inputs, B, T, batch.labels, gradScale, opts);
      return { lossSum, count: batch.targets };
    }
    const logits = model.forward(batch.inputs, B, T, opts);
    const V = logits.length / (B * T);
    const be = getBackend();
    const losses = new Float32Array(B * T);
    if (gradScale !== null) be.crossEntropyLossGrad(losses, logits, logits, batch.labels, B * T, V, gradScale, -100);
    else be.crossEntropyForward(losses, logits, batch.labels, B * T, V, -100);
    let lossSum = 0;
    for (let i = 0; i < losses.length; i++) lossSum += losses[i]!;
    if (gradScale !== null) model.backward(logits);
    return { lossSum, count: batch.targets };
  };
  return { forwardBackward: (b, s) => run(b, s), evaluate: (b) => run(b, null) };
}

/** Anything with a resumable random state (dropout generators, data shufflers). */
export interface Stateful {
  state(): unknown;
  setState(s: never): void;
}

export interface TrainArgs {
  /** optimizer steps; or give epochs */
  steps?: number;
  epochs?: number;
  gradAccum?: number;
  lr: number;
  schedule?: ScheduleKind;
  warmupSteps?: number;
  minLrRatio?: number;
  /** clip the global gradient norm to this (0: no clipping); default 1 */
  maxGradNorm?: number;
  evalEvery?: number;
  /** at most this many validation batches per evaluation (default all) */
  evalBatches?: number;
  saveEvery?: number;
  /** checkpoints kept besides best (default 2) */
  keepCheckpoints?: number;
  /** stop after this many evaluations without a better validation loss */
  earlyStoppingPatience?: number;
  /** consecutive skipped (non-finite) steps before giving up; default 5 */
  maxBadSteps?: number;
  /** run folder: checkpoints, metrics.jsonl, loss.svg, report.md */
  outDir?: string;
  /** a checkpoint folder (or a run folder: its latest checkpoint) to continue from */
  resume?: string;
  /** progress bar / log lines (default true) */
  progress?: boolean;
  /** recorded in the report */
  config?: Record<string, unknown>;
}

export interface TrainCallbacks {
  onStep?(row: StepRow): void;
  onEval?(row: EvalRow): void;
  /** files of the trained result to put in each checkpoint folder (e.g. the PEFT adapter) */
  exportFiles?(): Promise<Map<string, FileData>> | Map<string, FileData>;
  /** a log line (warnings, skipped steps); default: the progress display */
  log?(line: string): void;
}

export interface TrainOptions<B extends BatchCounts = Batch> {
  model: Module;
  optimizer: Optimizer;
  data: { train: BatchSource<B>; valid?: readonly B[] | null };
  args: TrainArgs;
  /** default: causalLmObjective(model) (token batches only) */
  objective?: Objective<B>;
  callbacks?: TrainCallbacks;
  /** random generators whose state checkpoints save and resume restores, by name */
  rngs?: Record<string, Stateful>;
}

export interface StepRow {
  type: 'train';
  step: number;
  loss: number;
  lr: number;
  gradNorm: number;
  tokens: number;
  targets: number;
  tokensPerSecond: number;
  elapsed: number;
  skipped?: true;
}

export interface EvalRow {
  type: 'eval';
  step: number;
  loss: number;
  perplexity: number;
  targets: number;
}

export interface TrainResult {
  steps: number;
  finalLoss: number;
  bestValidLoss: number | null;
  finalValidLoss: number | null;
  stoppedEarly: boolean;
  skippedSteps: number;
  seconds: number;
  tokensPerSecond: number;
  peakRssBytes: number;
  trainableParams: number;
  outDir: string | null;
  history: (StepRow | EvalRow)[];
}

interface TrainerState {
  version: 1;
  step: number;
  data: unknown;
  rngs: Record<string, unknown>;
  bestValidLoss: number | null;
  evalsWithoutImprovement: number;
  tokensSeen: number;
  elapsed: number;
}

const STEP_DIR = /^step-(\d+)$/;

/** The checkpoint folder a resume path names: the folder itself, or a run folder's latest. */
export function resolveCheckpoint(path: string): string {
  const p = resolve(path);
  if (existsSync(join(p, 'trainer_state.json'))) return p;
  const dir = existsSync(join(p, 'checkpoints')) ? join(p, 'checkpoints') : p;
  const steps = existsSync(dir) ? readdirSync(dir).filter((n) => STEP_DIR.test(n)).sort() : [];
  if (steps.length === 0) throw new Error(`resume: ${path} is not a checkpoint (no trainer_state.json) and holds no checkpoints/step-* folders`);
  return join(dir, steps[steps.length - 1]!);
}

function evaluate<B extends BatchCounts>(objective: Objective<B>, model: Module, batches: readonly B[], limit: number | undefined): { loss: number; count: number } {
  const wasTraining = model.training;
  model.eval();
  let sum = 0;
  let count = 0;
  for (const b of batches.slice(0, limit ?? batches.length)) {
    const r = objective.evaluate(b);
    sum += r.lossSum;
    count += r.count;
  }
  model.train(wasTraining);
  return { loss: count > 0 ? sum / count : NaN, count };
}

export async function train<B extends BatchCounts = Batch>(opts: TrainOptions<B>): Promise<TrainResult> {
  const { model, optimizer, data, args } = opts;
  const objective = opts.objective ?? (causalLmObjective(model as CausalLM) as unknown as Objective<B>);
  const params = model.trainableParameters();
  if (params.length === 0) throw new Error('train: the model has no trainable parameters');
  const paramList: Parameter[] = params.map(([, p]) => p);
  const gradAccum = args.gradAccum ?? 1;
  const problems: string[] = [];
  if (!Number.isInteger(gradAccum) || gradAccum < 1) problems.push(`gradAccum must be a positive integer, got ${gradAccum}`);
  if (args.steps === undefined && args.epochs === undefined) problems.push('give steps or epochs');
  if (args.steps !== undefined && (!Number.isInteger(args.steps) || args.steps < 1)) problems.push(`steps must be a positive integer, got ${args.steps}`);
  if (args.epochs !== undefined && !(args.epochs > 0)) problems.push(`epochs must be positive, got ${args.epochs}`);
  if (problems.length) throw new Error(`train: ${problems.join('; ')}`);
  const totalSteps = args.steps ?? Math.max(1, Math.ceil((args.epochs! * data.train.batchesPerEpoch) / gradAccum));
  const schedule = makeSchedule({ kind: args.schedule ?? 'constant', lr: args.lr, warmupSteps: args.warmupSteps ?? 0, totalSteps, minLrRatio: args.minLrRatio ?? 0 });
  const maxGradNorm = args.maxGradNorm ?? 1;
  const maxBad = args.maxBadSteps ?? 5;
  const outDir = args.outDir ? resolve(args.outDir) : null;
  const metricsFile = outDir ? join(outDir, 'metrics.jsonl') : null;
  const rngs = opts.rngs ?? {};
  const history: (StepRow | EvalRow)[] = [];

  let step = 0;
  let bestValidLoss: number | null = null;
  let evalsWithoutImprovement = 0;
  let tokensSeen = 0;
  let elapsedBefore = 0;

  if (args.resume) {
    const ckpt = resolveCheckpoint(args.resume);
    const st = JSON.parse(readFileSync(join(ckpt, 'trainer_state.json'), 'utf8')) as TrainerState;
    const trained = readSafetensors(join(ckpt, 'trainable.safetensors')).tensors;
    const missing = params.filter(([n]) => !trained.has(n)).map(([n]) => n);
    if (missing.length) throw new Error(`resume: ${ckpt}/trainable.safetensors lacks ${missing.length} trainable tensor(s): ${missing.slice(0, 5).join(', ')}`);
    for (const [n, p] of params) p.assign(trained.get(n)!, `resume: ${n}`);
    const opt = readSafetensors(join(ckpt, 'optimizer.safetensors'));
    optimizer.loadState(unflattenState(opt.tensors, JSON.parse(opt.metadata.state ?? '{}') as Record<string, unknown>));
    data.train.setState(st.data as never);
    for (const [name, r] of Object.entries(rngs)) {
      if (st.rngs[name] === undefined) throw new Error(`resume: the checkpoint has no state for random generator "${name}"`);
      r.setState(st.rngs[name] as never);
    }
    step = st.step;
    bestValidLoss = st.bestValidLoss;
    evalsWithoutImprovement = st.evalsWithoutImprovement;
    tokensSeen = st.tokensSeen;
    elapsedBefore = st.elapsed;
    if (outDir && metricsFile) {
      mkdirSync(outDir, { recursive: true });
      // the run's rows up to the checkpoint: from this folder (dropping what the interrupted
      // run wrote after it), or from the folder the checkpoint came from when resuming elsewhere
      const sourceRun = basename(dirname(ckpt)) === 'checkpoints' ? dirname(dirname(ckpt)) : dirname(ckpt);
      const source = existsSync(metricsFile) ? metricsFile : join(sourceRun, 'metrics.jsonl');
      const kept = existsSync(source) ? readFileSync(source, 'utf8').split('\n').filter((l) => l && (JSON.parse(l) as { step: number }).step <= step) : [];
      for (const l of kept) history.push(JSON.parse(l) as StepRow | EvalRow);
      writeFileAtomicSync(metricsFile, kept.map((l) => l + '\n').join(''));
    }
  } else if (outDir) {
    mkdirSync(outDir, { recursive: true });
    if (metricsFile) writeFileSync(metricsFile, '');
  }

  const progress: Progress = createProgress(totalSteps, { enabled: args.progress !== false });
  const log = opts.callbacks?.log ?? ((l: string) => progress.log(l));
  const record = (row: StepRow | EvalRow): void => {
    history.push(row);
    if (metricsFile) appendFileSync(metricsFile, JSON.stringify(row) + '\n');
  };

  const saveCheckpoint = async (dir: string): Promise<void> => {
    const files = new Map<string, FileData>();
    files.set('trainable.safetensors', serializeSafetensors(new Map(params.map(([n, p]) => [n, p.value]))));
    const flat = flattenState(optimizer.state());
    files.set('optimizer.safetensors', serializeSafetensors(flat.tensors, { metadata: { state: JSON.stringify(flat.json) } }));
    const st: TrainerState = {
      version: 1,
      step,
      data: data.train.state(),
      rngs: Object.fromEntries(Object.entries(rngs).map(([k, r]) => [k, r.state()])),
      bestValidLoss,
      evalsWithoutImprovement,
      tokensSeen,
      elapsed: elapsedBefore + (Date.now() - t0) / 1000,
    };
    files.set('trainer_state.json', JSON.stringify(st, null, 2) + '\n');
    const extra = await opts.callbacks?.exportFiles?.();
    if (extra) for (const [k, v] of extra) files.set(k, v);
    mkdirSync(dirname(dir), { recursive: true });
    await writeDirAtomic(dir, files);
  };

  const pruneCheckpoints = (): void => {
    if (!outDir) return;
    const dir = join(outDir, 'checkpoints');
    const keep = args.keepCheckpoints ?? 2;
    const steps = readdirSync(dir).filter((n) => STEP_DIR.test(n)).sort();
    for (const old of steps.slice(0, Math.max(0, steps.length - keep))) rmSync(join(dir, old), { recursive: true, force: true });
  };

  const t0 = Date.now();
  let lastLoss = NaN;
  let finalValid: number | null = null;
  let stoppedEarly = false;
  let badInARow = 0;
  let skipped = 0;
  let windowStart = Date.now();
  let windowTokens = 0;
  model.train(true);

  while (step < totalSteps) {
    const lr = schedule(step);
    optimizer.lr = lr;
    const batches: B[] = [];
    for (let i = 0; i < gradAccum; i++) batches.push(data.train.next());
    const targets = batches.reduce((n, b) => n + b.targets, 0);
    const tokens = batches.reduce((n, b) => n + b.tokens, 0);
    optimizer.zeroGrad();
    let lossSum = 0;
    for (const b of batches) lossSum += objective.forwardBackward(b, targets > 0 ? 1 / targets : 0).lossSum;
    const loss = targets > 0 ? lossSum / targets : NaN;
    const gradNorm = maxGradNorm > 0 ? clipGradNorm(paramList, maxGradNorm) : globalGradNorm(paramList);
    step++;
    tokensSeen += tokens;
    windowTokens += tokens;
    const now = Date.now();
    const tps = windowTokens / Math.max(1e-3, (now - windowStart) / 1000);
    if (now - windowStart > 10_000) {
      windowStart = now;
      windowTokens = 0;
    }
    const row: StepRow = { type: 'train', step, loss, lr, gradNorm, tokens, targets, tokensPerSecond: tps, elapsed: elapsedBefore + (now - t0) / 1000 };
    if (!Number.isFinite(loss) || !Number.isFinite(gradNorm)) {
      badInARow++;
      skipped++;
      row.skipped = true;
      optimizer.zeroGrad();
      log(`step ${step}: ${targets === 0 ? 'no tokens to train on in this batch' : `non-finite ${Number.isFinite(loss) ? 'gradient norm' : 'loss'} (${Number.isFinite(loss) ? gradNorm : loss})`}; the update is skipped`);
      if (badInARow >= maxBad) {
        record(row);
        progress.stop();
        throw new Error(`train: ${badInARow} steps in a row had a non-finite loss or gradient (last at step ${step}); stopping. Lower the learning rate or check the data.`);
      }
    } else {
      badInARow = 0;
      optimizer.step();
      lastLoss = loss;
    }
    record(row);
    opts.callbacks?.onStep?.(row);
    progress.update({ step, totalSteps, loss, lr, tokensPerSecond: tps });

    const last = step === totalSteps;
    if (data.valid && data.valid.length > 0 && ((args.evalEvery && step % args.evalEvery === 0) || last)) {
      const ev = evaluate(objective, model, data.valid, args.evalBatches);
      const erow: EvalRow = { type: 'eval', step, loss: ev.loss, perplexity: Math.exp(ev.loss), targets: ev.count };
      record(erow);
      opts.callbacks?.onEval?.(erow);
      log(`step ${step}: validation loss ${ev.loss.toFixed(4)}, perplexity ${erow.perplexity.toFixed(2)}`);
      finalValid = ev.loss;
      if (bestValidLoss === null || ev.loss < bestValidLoss) {
        bestValidLoss = ev.loss;
        evalsWithoutImprovement = 0;
        if (outDir) await saveCheckpoint(join(outDir, 'best'));
      } else {
        evalsWithoutImprovement++;
        if (args.earlyStoppingPatience && evalsWithoutImprovement >= args.earlyStoppingPatience) {
          log(`step ${step}: no better validation loss in ${evalsWithoutImprovement} evaluations; stopping early`);
          stoppedEarly = true;
        }
      }
    }
    if (outDir && ((args.saveEvery && step % args.saveEvery === 0) || last || stoppedEarly)) {
      await saveCheckpoint(join(outDir, 'checkpoints', `step-${String(step).padStart(7, '0')}`));
      pruneCheckpoints();
    }
    if (stoppedEarly) break;
  }
  progress.stop();

  const seconds = elapsedBefore + (Date.now() - t0) / 1000;
  const result: TrainResult = {
    steps: step,
    finalLoss: lastLoss,
    bestValidLoss,
    finalValidLoss: finalValid,
    stoppedEarly,
    skippedSteps: skipped,
    seconds,
    tokensPerSecond: tokensSeen / Math.max(1e-9, seconds),
    peakRssBytes: process.resourceUsage().maxRSS * 1024,
    trainableParams: paramList.reduce((n, p) => n + p.value.size, 0),
    outDir,
    history,
  };
  if (outDir) writeRunReport(outDir, result, args);
  return result;
}

/** loss.svg and report.md / report.json in the run folder. */
export function writeRunReport(outDir: string, r: TrainResult, args: TrainArgs): void {
  const trainPts = r.history.filter((h): h is StepRow => h.type === 'train' && !h.skipped).map((h) => [h.step, h.loss] as const);
  const evalPts = r.history.filter((h): h is EvalRow => h.type === 'eval').map((h) => [h.step, h.loss] as const);
  const series = [{ name: 'train', points: trainPts }];
  if (evalPts.length) series.push({ name: 'validation', points: evalPts });
  writeFileAtomicSync(join(outDir, 'loss.svg'), lossCurveSvg(series, { title: 'loss' }));
  const { history: _h, ...summary } = r;
  void _h;
  const report = { ...summary, args: { ...args, config: undefined }, config: args.config ?? {} };
  writeFileAtomicSync(join(outDir, 'report.json'), JSON.stringify(report, null, 2) + '\n');
  const fmt = (x: number | null, d = 4): string => (x === null || !Number.isFinite(x) ? '–' : x.toFixed(d));
  const lines = [
    '# Training report',
    '',
    '| | |',
    '|---|---|',
    `| steps | ${r.steps}${r.stoppedEarly ? ' (stopped early)' : ''} |`,
    `| time | ${r.seconds.toFixed(1)} s |`,
    `| throughput | ${r.tokensPerSecond.toFixed(0)} tokens/s |`,
    `| peak memory (RSS) | ${(r.peakRssBytes / 2 ** 20).toFixed(0)} MiB |`,
    `| trainable parameters | ${r.trainableParams.toLocaleString('en-US')} |`,
    `| final training loss | ${fmt(r.finalLoss)} |`,
    `| final validation loss | ${fmt(r.finalValidLoss)} (perplexity ${r.finalValidLoss === null ? '–' : fmt(Math.exp(r.finalValidLoss), 2)}) |`,
    `| best validation loss | ${fmt(r.bestValidLoss)} |`,
    `| skipped steps | ${r.skippedSteps} |`,
    '',
    '![loss](loss.svg)',
    '',
    '## Configuration',
    '',
    '```json',
    JSON.stringify({ ...(args.config ?? {}), lr: args.lr, steps: args.steps, epochs: args.epochs, gradAccum: args.gradAccum ?? 1, schedule: args.schedule ?? 'constant', warmupSteps: args.warmupSteps ?? 0 }, null, 2),
    '```',
    '',
  ];
  writeFileAtomicSync(join(outDir, 'report.md'), lines.join('\n'));
}

