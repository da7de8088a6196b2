// The training loop: train({ model, optimizer, data, args, objective?, callbacks? }).
// Evaluation every N steps, best-checkpoint keeping, early stopping, gradient accumulation,
// clipping, a NaN/Inf guard, checkpoints that survive a kill (written atomically) and an
// exact resume, a metrics file, an SVG loss curve and a report in the run folder.
// The run folder and checkpoint reading come in through TrainOptions.host (a sink); lorakit's
// Node entry passes one that writes files atomically (trainer.node.ts).
import { ACC_GRAD_SQ, ACC_LOSS, ACC_SLOTS, getBackend, type Accumulator } from '../backend/index.js';
import { hostTensors } from '../backend/transfer.js';
import type { Batch } from '../data/batch.js';
import { attentionBias } from '../data/batch.js';
import type { FileData } from '../io/file-data.js';
import { commas } from '../io/format.js';
import { deserializeSafetensors, serializeSafetensors } from '../io/safetensors.js';
import type { Module, Parameter } from '../nn/module.js';
import { IGNORE_INDEX } from '../tensor/labels.js';
import { flattenState, unflattenState, type Optimizer } from './optimizer.js';
import { lossCurveSvg } from './plot.js';
import type { Progress } from './progress.js';
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

/**
 * What a step does with a batch: forward and backward (adding gradients scaled by gradScale),
 * and evaluation. When the loop passes an accumulator (`acc`), an objective may add its loss
 * into acc[ACC_LOSS] on the backend and return lossSum 0: the loop reads the accumulator back
 * once per step (docs/ARCHITECTURE.md §Backend memory). An objective that returns its loss
 * as a number instead (a readback per batch) works too: the loop adds the two.
 */
export interface Objective<B extends BatchCounts = Batch> {
  /** Forward + backward; returns the summed loss over the batch's counted targets (less what went into acc) and their number. */
  forwardBackward(batch: B, gradScale: number, acc?: Accumulator): { lossSum: number; count: number };
  /** Forward only (the loss likewise). */
  evaluate(batch: B, acc?: Accumulator): { lossSum: number; count: number };
}

/** What causalLmObjective needs of a causal LM (models/causal-lm.ts's CausalLM has it; train does not import models). */
export interface TokenLM extends Module {
  forward(ids: Int32Array, B: number, T: number, opts: { positionIds: Int32Array; attentionBias?: Float32Array }): Float32Array;
  backward(dlogits: Float32Array): unknown;
  /** with `acc`, the loss is added into acc[ACC_LOSS] and lossSum is 0 */
  lossForwardBackward?(ids: Int32Array, B: number, T: number, targets: Int32Array, gradScale: number | null, opts: { positionIds: Int32Array; attentionBias?: Float32Array }, acc?: Accumulator): { lossSum: number };
}

/** Next-token cross-entropy for a causal LM over a batch whose labels are already shifted (-100 ignored). */
export function causalLmObjective(model: TokenLM): Objective {
  const run = (batch: Batch, gradScale: number | null, acc: Accumulator | undefined): { lossSum: number; count: number } => {
    const { B, T } = batch;
    const opts = batch.packed ? { positionIds: batch.positions, attentionBias: attentionBias(batch) } : { positionIds: batch.positions };
    if (model.lossForwardBackward) {
      // the head and the loss run over blocks of rows: the [B·T, V] logits are never held
      const { lossSum } = model.lossForwardBackward(batch.inputs, B, T, batch.labels, gradScale, opts, acc);
      return { lossSum, count: batch.targets };
    }
    const logits = model.forward(batch.inputs, B, T, opts);
    const V = logits.length / (B * T);
    const be = getBackend();
    const losses = be.memory.alloc(B * T);
    if (gradScale !== null) be.crossEntropyLossGrad(losses, logits, logits, batch.labels, B * T, V, gradScale, IGNORE_INDEX);
    else be.crossEntropyForward(losses, logits, batch.labels, B * T, V, IGNORE_INDEX);
    // the loss goes into the caller's accumulator, or one of our own read back here
    const sums = acc ?? be.memory.allocAccumulator(1);
    be.sumInto(sums, acc ? ACC_LOSS : 0, losses);
    if (gradScale !== null) model.backward(logits);
    return { lossSum: acc ? 0 : sums[0]!, count: batch.targets };
  };
  return { forwardBackward: (b, s, acc) => run(b, s, acc), evaluate: (b, acc) => run(b, null, acc) };
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
  /**
   * After each step. A returned promise is awaited before the next step: a browser worker
   * yields there to take pause and cancel messages (docs/ARCHITECTURE.md §Browser); throwing
   * (or rejecting) ends the run with that error.
   */
  onStep?(row: StepRow): void | Promise<void>;
  onEval?(row: EvalRow): void;
  /** files of the trained result to put in each checkpoint folder (e.g. the PEFT adapter) */
  exportFiles?(): Promise<Map<string, FileData>> | Map<string, FileData>;
  /** a log line (warnings, skipped steps); default: the progress display */
  log?(line: string): void;
}

/**
 * A run folder: where the metrics log, checkpoints and report go. The Node entry's
 * (trainer.node.ts) writes each file atomically; another platform may keep them anywhere.
 */
export interface RunFolder {
  /** the folder's name, reported as TrainResult.outDir */
  readonly path: string;
  /** a fresh run: an empty metrics log */
  start(): void;
  /** resuming from `checkpoint` at `step`: the metrics rows (JSON lines) of the run up to it, which the log now keeps */
  resumeMetrics(checkpoint: string, step: number): string[];
  /** one row (a JSON line) appended to the metrics log */
  appendMetric(line: string): void;
  /** a checkpoint folder ('best' or 'checkpoints/step-0000012'), written whole or not at all */
  writeCheckpoint(name: string, files: Map<string, FileData>): Promise<void>;
  /** removes all but the newest `keep` checkpoints/step-* folders */
  pruneCheckpoints(keep: number): void;
  /** a report file (loss.svg, report.json, report.md) */
  writeFile(name: string, text: string): void;
}

/** What the platform gives the loop: the run folder, checkpoint reading, a progress display, peak memory. */
export interface TrainHost {
  /** needed for args.outDir */
  runFolder?: RunFolder | null;
  /** needed for args.resume: the checkpoint a path names and its files (trainer_state.json, trainable.safetensors, optimizer.safetensors) */
  readCheckpoint?(path: string): { dir: string; files: ReadonlyMap<string, Uint8Array> };
  /** default: log lines to console.log, no bar */
  progress?(totalSteps: number, enabled: boolean): Progress;
  /** peak memory in bytes, for the report (default 0: unknown) */
  peakMemoryBytes?(): number;
  /**
   * Awaited between steps when TrainOptions.stop is given: one turn of the platform's event
   * loop, so that a signal (Node's SIGINT handler) can set the stop request during a run whose
   * steps are synchronous (Node: setImmediate)
   */
  yieldEvents?(): Promise<void>;
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
  /** the run folder and the rest the platform supplies (lorakit's Node entry fills it from args) */
  host?: TrainHost;
  /**
   * Stop request (an AbortSignal fits): once aborted the loop finishes the step under way,
   * writes a checkpoint of it (with a run folder) and returns with `interrupted` set, so a
   * resume continues exactly there (docs/ARCHITECTURE.md §Files written and signals).
   */
  stop?: { readonly aborted: boolean };
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
  /** stopped by TrainOptions.stop before the last step (a checkpoint of the last step done was written) */
  interrupted: boolean;
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

/** The validation loss: the batches' losses summed on the backend, read back once. */
async function evaluate<B extends BatchCounts>(objective: Objective<B>, model: Module, batches: readonly B[], limit: number | undefined): Promise<{ loss: number; count: number }> {
  const wasTraining = model.training;
  model.eval();
  const mem = getBackend().memory;
  const acc = mem.allocAccumulator(ACC_SLOTS);
  let sum = 0;
  let count = 0;
  for (const b of batches.slice(0, limit ?? batches.length)) {
    const r = objective.evaluate(b, acc);
    sum += r.lossSum;
    count += r.count;
  }
  sum += (await mem.readAccumulator(acc))[ACC_LOSS]!;
  model.train(wasTraining);
  return { loss: count > 0 ? sum / count : NaN, count };
}

export async function train<B extends BatchCounts = Batch>(opts: TrainOptions<B>): Promise<TrainResult> {
  const { model, optimizer, data, args } = opts;
  const objective = opts.objective ?? (causalLmObjective(model as TokenLM) as unknown as Objective<B>);
  const params = model.trainableParameters();
  if (params.length === 0) throw new Error('train: the model has no trainable parameters');
  const paramList: Parameter[] = params.map(([, p]) => p);
  const be = getBackend();
  const acc = be.memory.allocAccumulator(ACC_SLOTS);
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
  const host = opts.host ?? {};
  const runFolder = host.runFolder ?? null;
  if (args.outDir && !runFolder) throw new Error('train: outDir needs a run folder (TrainOptions.host.runFolder; lorakit\'s Node entry passes one)');
  const rngs = opts.rngs ?? {};
  const history: (StepRow | EvalRow)[] = [];

  let step = 0;
  let bestValidLoss: number | null = null;
  let evalsWithoutImprovement = 0;
  let tokensSeen = 0;
  let elapsedBefore = 0;

  if (args.resume) {
    if (!host.readCheckpoint) throw new Error('train: resume needs a checkpoint reader (TrainOptions.host.readCheckpoint; lorakit\'s Node entry passes one)');
    const { dir: ckpt, files } = host.readCheckpoint(args.resume);
    const file = (name: string): Uint8Array => {
      const f = files.get(name);
      if (!f) throw new Error(`resume: ${ckpt} has no ${name}`);
      return f;
    };
    const st = JSON.parse(new TextDecoder().decode(file('trainer_state.json'))) as TrainerState;
    const trained = deserializeSafetensors(file('trainable.safetensors'), `${ckpt}/trainable.safetensors`).tensors;
    const missing = params.filter(([n]) => !trained.has(n)).map(([n]) => n);
    if (missing.length) throw new Error(`resume: ${ckpt}/trainable.safetensors lacks ${missing.length} trainable tensor(s): ${missing.slice(0, 5).join(', ')}`);
    for (const [n, p] of params) p.assign(trained.get(n)!, `resume: ${n}`);
    const opt = deserializeSafetensors(file('optimizer.safetensors'), `${ckpt}/optimizer.safetensors`);
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
    if (runFolder) for (const l of runFolder.resumeMetrics(ckpt, step)) history.push(JSON.parse(l) as StepRow | EvalRow);
  } else runFolder?.start();

  const progress: Progress = host.progress ? host.progress(totalSteps, args.progress !== false) : consoleProgress(args.progress !== false);
  const log = opts.callbacks?.log ?? ((l: string) => progress.log(l));
  const record = (row: StepRow | EvalRow): void => {
    history.push(row);
    runFolder?.appendMetric(JSON.stringify(row));
  };

  const saveCheckpoint = async (name: string): Promise<void> => {
    const files = new Map<string, FileData>();
    // read back where they live on a device (docs/ARCHITECTURE.md §Backend memory)
    files.set('trainable.safetensors', serializeSafetensors(await hostTensors(new Map(params.map(([n, p]) => [n, p.value])))));
    const flat = flattenState(optimizer.state());
    files.set('optimizer.safetensors', serializeSafetensors(await hostTensors(flat.tensors), { metadata: { state: JSON.stringify(flat.json) } }));
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
    await runFolder!.writeCheckpoint(name, files);
  };

  const t0 = Date.now();
  let lastLoss = NaN;
  let finalValid: number | null = null;
  let stoppedEarly = false;
  let badInARow = 0;
  let skipped = 0;
  let windowStart = Date.now();
  let windowTokens = 0;
  let interrupted = false;
  let savedStep = args.resume ? step : -1;
  model.train(true);

  while (step < totalSteps) {
    if (opts.stop && host.yieldEvents) await host.yieldEvents();
    if (opts.stop?.aborted) {
      interrupted = true;
      if (runFolder && step > 0 && savedStep !== step) {
        log(`step ${step}: stopping on request; writing a checkpoint`);
        await saveCheckpoint(`checkpoints/step-${String(step).padStart(7, '0')}`);
        runFolder.pruneCheckpoints(args.keepCheckpoints ?? 2);
      }
      break;
    }
    const lr = schedule(step);
    optimizer.lr = lr;
    const batches: B[] = [];
    for (let i = 0; i < gradAccum; i++) batches.push(data.train.next());
    const targets = batches.reduce((n, b) => n + b.targets, 0);
    const tokens = batches.reduce((n, b) => n + b.tokens, 0);
    optimizer.zeroGrad();
    // The step's scalars stay on the backend until one readback (docs/ARCHITECTURE.md
    // §Backend memory): the loss and the squared gradient norm are summed into `acc`, and
    // clipping takes its factor from it.
    be.memory.clearAccumulator(acc);
    let hostLoss = 0;
    for (const b of batches) hostLoss += objective.forwardBackward(b, targets > 0 ? 1 / targets : 0, acc).lossSum;
    for (const p of paramList) if (p.grad) be.sumSquaresInto(acc, ACC_GRAD_SQ, p.grad);
    if (maxGradNorm > 0) for (const p of paramList) if (p.grad) be.clipByNorm(p.grad, acc, ACC_GRAD_SQ, maxGradNorm);
    const sums = await be.memory.readAccumulator(acc);
    const lossSum = sums[ACC_LOSS]! + hostLoss;
    const loss = targets > 0 ? lossSum / targets : NaN;
    const gradNorm = Math.sqrt(sums[ACC_GRAD_SQ]!);
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
    await opts.callbacks?.onStep?.(row);
    progress.update({ step, totalSteps, loss, lr, tokensPerSecond: tps });

    const last = step === totalSteps;
    if (data.valid && data.valid.length > 0 && ((args.evalEvery && step % args.evalEvery === 0) || last)) {
      const ev = await evaluate(objective, model, data.valid, args.evalBatches);
      const erow: EvalRow = { type: 'eval', step, loss: ev.loss, perplexity: Math.exp(ev.loss), targets: ev.count };
      record(erow);
      opts.callbacks?.onEval?.(erow);
      log(`step ${step}: validation loss ${ev.loss.toFixed(4)}, perplexity ${erow.perplexity.toFixed(2)}`);
      finalValid = ev.loss;
      if (bestValidLoss === null || ev.loss < bestValidLoss) {
        bestValidLoss = ev.loss;
        evalsWithoutImprovement = 0;
        if (runFolder) await saveCheckpoint('best');
      } else {
        evalsWithoutImprovement++;
        if (args.earlyStoppingPatience && evalsWithoutImprovement >= args.earlyStoppingPatience) {
          log(`step ${step}: no better validation loss in ${evalsWithoutImprovement} evaluations; stopping early`);
          stoppedEarly = true;
        }
      }
    }
    if (runFolder && ((args.saveEvery && step % args.saveEvery === 0) || last || stoppedEarly)) {
      await saveCheckpoint(`checkpoints/step-${String(step).padStart(7, '0')}`);
      runFolder.pruneCheckpoints(args.keepCheckpoints ?? 2);
      savedStep = step;
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
    interrupted,
    skippedSteps: skipped,
    seconds,
    tokensPerSecond: tokensSeen / Math.max(1e-9, seconds),
    peakRssBytes: host.peakMemoryBytes?.() ?? 0,
    trainableParams: paramList.reduce((n, p) => n + p.value.size, 0),
    outDir: runFolder?.path ?? null,
    history,
  };
  if (runFolder) for (const [name, text] of runReport(result, args)) runFolder.writeFile(name, text);
  return result;
}

/** Log lines to the console, no bar (the Node entry shows a progress bar instead). */
function consoleProgress(enabled: boolean): Progress {
  return { update() {}, log: enabled ? (line) => console.log(line) : () => {}, stop() {} };
}

/** The run folder's report files: loss.svg, report.json and report.md. */
export function runReport(r: TrainResult, args: TrainArgs): Map<string, string> {
  const out = new Map<string, string>();
  const trainPts = r.history.filter((h): h is StepRow => h.type === 'train' && !h.skipped).map((h) => [h.step, h.loss] as const);
  const evalPts = r.history.filter((h): h is EvalRow => h.type === 'eval').map((h) => [h.step, h.loss] as const);
  const series = [{ name: 'train', points: trainPts }];
  if (evalPts.length) series.push({ name: 'validation', points: evalPts });
  out.set('loss.svg', lossCurveSvg(series, { title: 'loss' }));
  const { history: _h, ...summary } = r;
  void _h;
  const report = { ...summary, args: { ...args, config: undefined }, config: args.config ?? {} };
  out.set('report.json', JSON.stringify(report, null, 2) + '\n');
  const fmt = (x: number | null, d = 4): string => (x === null || !Number.isFinite(x) ? '–' : x.toFixed(d));
  const lines = [
    '# Training report',
    '',
    '| | |',
    '|---|---|',
    `| steps | ${r.steps}${r.stoppedEarly ? ' (stopped early)' : ''}${r.interrupted ? ' (interrupted; resume continues from here)' : ''} |`,
    `| time | ${r.seconds.toFixed(1)} s |`,
    `| throughput | ${r.tokensPerSecond.toFixed(0)} tokens/s |`,
    `| peak memory (RSS) | ${(r.peakRssBytes / 2 ** 20).toFixed(0)} MiB |`,
    `| trainable parameters | ${commas(r.trainableParams)} |`,
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
  out.set('report.md', lines.join('\n'));
  return out;
}

