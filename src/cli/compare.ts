// Full fine-tuning vs LoRA, measured on this machine in one run (`lorakit compare`): trainable
// parameters, optimizer state (AdamW moments), step time, peak memory, checkpoint size on disk
// and the inference cost of an unmerged vs a merged adapter against the base model.
//
// Each mode trains in its own child process (this file, forked) so that its peak memory
// (process.resourceUsage().maxRSS) belongs to that mode alone; the two run one after the other
// so that their step times do not share the CPU.
import { fork } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { BatchIterator, padIdFor, type Batch } from '../data/batch.js';
import { loadDataset } from '../data/dataset.node.js';
import { type Example } from '../data/dataset.js';
import { isHeldOut, listBrownDocuments, readBrownDocument } from '../corpus/brown.js';
import { documentPieces, kernelDescription } from '../corpus/pretrain.js';
import { Tokenizer } from '../io/tokenizer.js';
import { getPeftModel } from '../lora/peft-model.js';
import type { DecoderLM } from '../models/decoder.js';
import { loadModel, saveModel } from '../models/load.node.js';
import { installNodePlatform } from '../platform.node.js';
import { createOptimizer, type OptimizerState } from '../train/optimizer.js';
import { train } from '../train/trainer.node.js';
import { commas } from '../io/format.js';
import { loadTokenizer } from '../io/tokenizer.node.js';
import { saveAdapter } from '../lora/files.node.js';
import { floatDTypeOf } from '../tensor/tensor.js';

export type CompareMode = 'full' | 'lora';

export interface CompareOptions {
  /** model folder */
  model: string;
  /** JSONL file (text, prompt/completion or chat); default: a few held-out Brown documents */
  data?: string;
  /** measured optimizer steps per mode, after the warm-up steps (default 10) */
  steps?: number;
  /** steps run before measuring (default 3, at least 1) */
  warmup?: number;
  /** LoRA rank (default 8) and alpha (default 2 × rank) */
  rank?: number;
  alpha?: number;
  /** LoRA target modules (default: the model family's default) */
  targets?: string[] | string | null;
  /** rows per step (default 4) */
  batchSize?: number;
  /** tokens per row (default 128): examples are packed into rows of this length */
  seqLen?: number;
  /** AdamW learning rate (default 1e-3) */
  lr?: number;
  /** timed forward passes per inference variant (default 20, after one untimed) */
  inferReps?: number;
  seed?: number;
  /** progress lines (default: none) */
  log?: (line: string) => void;
}

export interface Timing {
  /** each measured run, seconds */
  seconds: number[];
  median: number;
  min: number;
  max: number;
}

export interface ModeResult {
  mode: CompareMode;
  trainableParams: number;
  /** every parameter of the model as trained (base + adapter for LoRA) */
  totalParams: number;
  /** bytes of the optimizer's state buffers (AdamW: the moments m and v, f32) */
  optimizerStateBytes: number;
  step: Timing;
  /** tokens per measured step */
  stepTokens: number;
  firstLoss: number;
  lastLoss: number;
  /** process.resourceUsage().maxRSS of the mode's own process after its steps, bytes */
  peakRssBytes: number;
  /** what a user keeps: the full model folder (full) or the adapter folder (LoRA), as written */
  checkpoint: { kind: 'model' | 'adapter'; dtype: string; bytes: number; files: { name: string; bytes: number }[] };
}

export interface InferenceVariant {
  forward: Timing;
  tokensPerSecond: number;
}

export interface InferenceResult {
  /** tokens per forward pass (B × T) */
  tokens: number;
  base: InferenceVariant;
  unmerged: InferenceVariant;
  merged: InferenceVariant;
  /** speed relative to the base, each from its own alternating round (base time / its time) */
  unmergedVsBase: number;
  mergedVsBase: number;
  /** max |logit difference| between merged and unmerged, and between unmerged and the base */
  mergedMaxAbsDiff: number;
  adapterMaxAbsDiff: number;
  /** positions where the merged model's most likely next token equals the unmerged one's */
  argmaxAgree: number;
  positions: number;
}

export interface CompareResult {
  model: string;
  modelType: string;
  dtype: string;
  params: number;
  kernels: string;
  data: { source: string; rows: number; tokens: number };
  batchSize: number;
  seqLen: number;
  steps: number;
  warmup: number;
  lr: number;
  lora: { r: number; alpha: number; targets: string[]; modules: number };
  full: ModeResult;
  adapter: ModeResult;
  inference: InferenceResult;
  seconds: number;
}

interface ChildRequest {
  mode: CompareMode;
  opts: Omit<CompareOptions, 'log'>;
}

interface ChildReply {
  ok: boolean;
  error?: string;
  result?: ChildResult;
}

interface ChildResult {
  mode: ModeResult;
  info: Pick<CompareResult, 'modelType' | 'dtype' | 'params' | 'kernels' | 'data'> & { lora?: CompareResult['lora'] };
  inference?: InferenceResult;
}

const CHILD_FLAG = '--lorakit-compare-child';

function timing(seconds: number[]): Timing {
  const s = [...seconds].sort((a, b) => a - b);
  const n = s.length;
  const median = n === 0 ? NaN : n % 2 ? s[(n - 1) / 2]! : (s[n / 2 - 1]! + s[n / 2]!) / 2;
  return { seconds, median, min: s[0] ?? NaN, max: s[n - 1] ?? NaN };
}

function folderFiles(dir: string, prefix = ''): { name: string; bytes: number }[] {
  const out: { name: string; bytes: number }[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...folderFiles(p, prefix + e.name + '/'));
    else out.push({ name: prefix + e.name, bytes: fs.statSync(p).size });
  }
  return out;
}

function stateBytes(s: OptimizerState): number {
  let n = 0;
  for (const v of Object.values(s)) {
    if (typeof v === 'number') continue;
    if (Array.isArray(v)) for (const a of v) n += a ? a.byteLength : 0;
    else n += stateBytes(v);
  }
  return n;
}

/** The training rows: the JSONL file's examples, or pieces of the first held-out Brown documents. */
async function loadRows(opts: Omit<CompareOptions, 'log'>, tokenizer: Tokenizer, seqLen: number): Promise<{ examples: Example[]; source: string }> {
  if (opts.data !== undefined) {
    const ds = await loadDataset(opts.data, tokenizer, { maxLength: seqLen });
    return { examples: ds.examples, source: `${opts.data} (${ds.format})` };
  }
  const infos = listBrownDocuments().filter((d) => isHeldOut(d.id)).slice(0, 3);
  if (infos.length === 0) throw new Error('compare: the Brown corpus has no held-out documents');
  const docs = infos.map((d) => readBrownDocument(d.id));
  return { examples: documentPieces(docs, tokenizer, seqLen), source: `held-out Brown documents ${infos.map((d) => d.id).join(', ')}` };
}

/** Times two forward functions, alternating (so that drift hits both alike), reps times each after one untimed call. */
function timePair(a: () => Float32Array, b: () => Float32Array, reps: number): { a: number[]; b: number[]; logitsA: Float32Array; logitsB: Float32Array } {
  const logitsA = a().slice();
  const logitsB = b().slice();
  const ta: number[] = [];
  const tb: number[] = [];
  const time = (fn: () => Float32Array, into: number[]): void => {
    const t = process.hrtime.bigint();
    fn();
    into.push(Number(process.hrtime.bigint() - t) / 1e9);
  };
  for (let i = 0; i < reps; i++) {
    time(a, ta);
    time(b, tb);
  }
  return { a: ta, b: tb, logitsA, logitsB };
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

function argmaxRows(logits: Float32Array, V: number): Int32Array {
  const n = logits.length / V;
  const out = new Int32Array(n);
  for (let r = 0; r < n; r++) {
    let best = 0;
    for (let v = 1; v < V; v++) if (logits[r * V + v]! > logits[r * V + best]!) best = v;
    out[r] = best;
  }
  return out;
}

/**
 * One mode, in this process: load, (LoRA: measure the base's forward), train warm-up + steps
 * with the library's trainer, read the peak RSS, write the checkpoint, count the optimizer
 * state, and (LoRA) measure the unmerged and merged forward. Meant to run in a process of its own.
 */
export async function runCompareMode(mode: CompareMode, opts: Omit<CompareOptions, 'log'>): Promise<ChildResult> {
  const steps = opts.steps ?? 10;
  const warmup = Math.max(1, opts.warmup ?? 3);
  const batchSize = opts.batchSize ?? 4;
  const seqLen = opts.seqLen ?? 128;
  const lr = opts.lr ?? 1e-3;
  const reps = opts.inferReps ?? 20;
  const seed = opts.seed ?? 0;
  const tokenizer = loadTokenizer(opts.model);
  const model: DecoderLM = loadModel(opts.model, { dtype: 'keep' });
  const dtype = floatDTypeOf(model.parameters()[0]?.value.dtype ?? 'f32');
  const params = model.parameters().reduce((n, p) => n + p.value.size, 0);
  const rows = await loadRows(opts, tokenizer, seqLen);
  const batchOpts = { batchSize, order: 'sequential', pack: true, maxLength: seqLen, padId: padIdFor(tokenizer) } as const;
  // every timed step a full batch (an epoch's last, smaller batch left out) when the data allows it
  const packedRows = new BatchIterator(rows.examples, batchOpts).units.length;
  const it = new BatchIterator(rows.examples, { ...batchOpts, dropLast: packedRows >= batchSize });
  const probe = it.epochIterator(0).next().value as Batch;
  const info: ChildResult['info'] = {
    modelType: model.info.modelType,
    dtype,
    params,
    kernels: kernelDescription(),
    data: { source: rows.source, rows: it.units.length, tokens: rows.examples.reduce((n, e) => n + e.ids.length, 0) },
  };
  const forward = (m: DecoderLM) => () => m.forward(probe.inputs, probe.B, probe.T);
  const V = model.info.vocabSize;

  let peft: ReturnType<typeof getPeftModel<DecoderLM>> | null = null;
  if (mode === 'full') {
    model.requiresGrad(true);
  } else {
    const r = opts.rank ?? 8;
    peft = getPeftModel(model, { r, lora_alpha: opts.alpha ?? 2 * r, lora_dropout: 0, target_modules: opts.targets ?? null }, 'default', { seed });
    const c = peft.config('default');
    info.lora = { r: c.r, alpha: c.lora_alpha, targets: Array.isArray(c.target_modules) ? [...c.target_modules] : [String(c.target_modules)], modules: peft.loraLayers.size };
  }
  model.train(true);
  const named = model.trainableParameters();
  const trainableParams = named.reduce((n, [, p]) => n + p.value.size, 0);
  const totalParams = model.parameters().reduce((n, p) => n + p.value.size, 0);
  const optimizer = createOptimizer(named, { lr, weightDecay: 0 });

  const stamps: number[] = [];
  const losses: number[] = [];
  const t0 = performance.now();
  await train({
    model,
    optimizer,
    data: { train: it },
    args: { steps: warmup + steps, lr, progress: false },
    callbacks: {
      onStep: (row) => {
        stamps.push(performance.now());
        losses.push(row.loss);
      },
      log: () => {},
    },
  });
  const peakRssBytes = process.resourceUsage().maxRSS * 1024;
  const measured = stamps.slice(warmup).map((t, i) => (t - (stamps[warmup + i - 1] ?? t0)) / 1000);

  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), `lorakit-compare-${mode}-`));
  let checkpoint: ModeResult['checkpoint'];
  let inference: InferenceResult | undefined;
  try {
    model.train(false);
    if (peft) {
      saveAdapter(peft, tmp, { adapterNames: ['default'], baseModelNameOrPath: opts.model });
      checkpoint = { kind: 'adapter', dtype: 'f32', bytes: 0, files: folderFiles(tmp) };
    } else {
      model.requiresGrad(false);
      await saveModel(model, tmp, { dtype });
      checkpoint = { kind: 'model', dtype, bytes: 0, files: folderFiles(tmp) };
    }
    checkpoint.bytes = checkpoint.files.reduce((n, f) => n + f.bytes, 0);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  const optimizerStateBytes = stateBytes(optimizer.state());

  if (peft) {
    // the base model is a second copy, loaded after the peak memory was read; it runs
    // alternately with the unmerged adapter, then with the merged model
    const baseModel = loadModel(opts.model, { dtype: 'keep' });
    baseModel.eval();
    model.eval();
    const before = timePair(forward(baseModel), forward(model), reps);
    const merged = peft.mergeAndUnload({ safeMerge: true });
    merged.eval();
    const afterMerge = timePair(forward(baseModel), forward(merged), reps);
    const a = argmaxRows(before.logitsB, V);
    const b = argmaxRows(afterMerge.logitsB, V);
    let agree = 0;
    for (let i = 0; i < a.length; i++) if (a[i] === b[i]) agree++;
    const tokens = probe.B * probe.T;
    const variant = (t: Timing): InferenceVariant => ({ forward: t, tokensPerSecond: tokens / t.median });
    inference = {
      tokens,
      base: variant(timing([...before.a, ...afterMerge.a])),
      unmerged: variant(timing(before.b)),
      merged: variant(timing(afterMerge.b)),
      unmergedVsBase: timing(before.a).median / timing(before.b).median,
      mergedVsBase: timing(afterMerge.a).median / timing(afterMerge.b).median,
      mergedMaxAbsDiff: maxAbsDiff(before.logitsB, afterMerge.logitsB),
      adapterMaxAbsDiff: maxAbsDiff(before.logitsB, before.logitsA),
      argmaxAgree: agree,
      positions: a.length,
    };
  }

  return {
    mode: {
      mode,
      trainableParams,
      totalParams,
      optimizerStateBytes,
      step: timing(measured),
      stepTokens: batchSize * seqLen,
      firstLoss: losses[0] ?? NaN,
      lastLoss: losses[losses.length - 1] ?? NaN,
      peakRssBytes,
      checkpoint,
    },
    info,
    ...(inference ? { inference } : {}),
  };
}

/** Runs one mode in a child process (this file) and returns its result. */
function runChild(mode: CompareMode, opts: Omit<CompareOptions, 'log'>): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    const child = fork(fileURLToPath(import.meta.url), [CHILD_FLAG], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'], serialization: 'advanced', execArgv: process.execArgv.filter((f) => !f.startsWith('--test')) });
    let reply: ChildReply | null = null;
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString('utf8')).slice(-4000);
    });
    child.on('message', (m) => {
      reply = m as ChildReply;
    });
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      const r = reply as ChildReply | null;
      if (r?.ok && r.result) resolve(r.result);
      else {
        const why = r?.error ?? (stderr.trim().split('\n').pop() || (signal ? `killed by ${signal}` : `exit code ${code}`));
        reject(new Error(`compare: the ${mode === 'full' ? 'full fine-tuning' : 'LoRA'} run failed: ${why}`));
      }
    });
    child.send({ mode, opts } satisfies ChildRequest);
  });
}

/** Full fine-tuning vs LoRA on one model, each in its own process, one after the other. */
export async function compareFineTuning(opts: CompareOptions): Promise<CompareResult> {
  const t0 = Date.now();
  const { log, ...rest } = opts;
  const problems: string[] = [];
  for (const [k, v] of [['steps', rest.steps], ['batchSize', rest.batchSize], ['seqLen', rest.seqLen], ['rank', rest.rank], ['inferReps', rest.inferReps]] as const) {
    if (v !== undefined && !(Number.isInteger(v) && v >= 1)) problems.push(`${k} must be a positive integer, got ${v}`);
  }
  if (rest.seqLen !== undefined && rest.seqLen < 2) problems.push(`seqLen must be at least 2, got ${rest.seqLen}`);
  if (problems.length) throw new RangeError(`compare: ${problems.join('; ')}`);
  log?.('full fine-tuning (its own process)…');
  const full = await runChild('full', rest);
  log?.('LoRA (its own process)…');
  const lora = await runChild('lora', rest);
  return {
    model: opts.model,
    ...full.info,
    data: lora.info.data,
    batchSize: rest.batchSize ?? 4,
    seqLen: rest.seqLen ?? 128,
    steps: rest.steps ?? 10,
    warmup: Math.max(1, rest.warmup ?? 3),
    lr: rest.lr ?? 1e-3,
    lora: lora.info.lora!,
    full: full.mode,
    adapter: lora.mode,
    inference: lora.inference!,
    seconds: (Date.now() - t0) / 1000,
  };
}

function mib(n: number): string {
  return n >= 2 ** 20 ? `${(n / 2 ** 20).toFixed(1)} MiB` : `${(n / 1024).toFixed(1)} KiB`;
}

function ms(t: Timing): string {
  return `${(1000 * t.median).toFixed(0)} ms (${(1000 * t.min).toFixed(0)}–${(1000 * t.max).toFixed(0)})`;
}

/** The comparison as a plain-text table. */
export function compareTable(r: CompareResult): string[] {
  const f = r.full;
  const l = r.adapter;
  const inf = r.inference;
  const pct = (m: ModeResult): string => `${((100 * m.trainableParams) / m.totalParams).toFixed(2)}%`;
  const ratio = (a: number, b: number): string => (b > 0 ? `${(a / b).toFixed(a / b < 0.1 ? 4 : 2)}×` : '–');
  const rows: [string, string, string, string][] = [
    ['', 'full fine-tuning', `LoRA r=${r.lora.r}`, 'LoRA / full'],
    ['trainable parameters', `${commas(f.trainableParams)} (${pct(f)})`, `${commas(l.trainableParams)} (${pct(l)})`, ratio(l.trainableParams, f.trainableParams)],
    ['optimizer state (AdamW m+v)', mib(f.optimizerStateBytes), mib(l.optimizerStateBytes), ratio(l.optimizerStateBytes, f.optimizerStateBytes)],
    ['step time, median (min–max)', ms(f.step), ms(l.step), ratio(l.step.median, f.step.median)],
    ['training tokens/s', commas(Math.round(f.stepTokens / f.step.median)), commas(Math.round(l.stepTokens / l.step.median)), ratio(f.step.median, l.step.median)],
    ['peak memory (maxRSS)', mib(f.peakRssBytes), mib(l.peakRssBytes), ratio(l.peakRssBytes, f.peakRssBytes)],
    ['checkpoint on disk', `${mib(f.checkpoint.bytes)} (model, ${f.checkpoint.dtype})`, `${mib(l.checkpoint.bytes)} (adapter, ${l.checkpoint.dtype})`, ratio(l.checkpoint.bytes, f.checkpoint.bytes)],
  ];
  const w = [0, 1, 2, 3].map((c) => Math.max(...rows.map((row) => row[c]!.length)));
  const line = (row: readonly string[]): string => row.map((s, c) => s.padEnd(w[c]!)).join('  ').trimEnd();
  const inferRows: [string, string, string, string][] = [
    ['inference (forward)', 'tokens/s', 'time, median (min–max)', 'speed vs base'],
    ['base model', commas(Math.round(inf.base.tokensPerSecond)), ms(inf.base.forward), '1.00×'],
    ['LoRA unmerged', commas(Math.round(inf.unmerged.tokensPerSecond)), ms(inf.unmerged.forward), `${inf.unmergedVsBase.toFixed(2)}×`],
    ['LoRA merged', commas(Math.round(inf.merged.tokensPerSecond)), ms(inf.merged.forward), `${inf.mergedVsBase.toFixed(2)}×`],
  ];
  const wi = [0, 1, 2, 3].map((c) => Math.max(...inferRows.map((row) => row[c]!.length)));
  const iline = (row: readonly string[]): string => row.map((s, c) => (c === 0 ? s.padEnd(wi[c]!) : s.padStart(wi[c]!))).join('  ');
  return [
    `model ${r.model}: ${r.modelType}, ${commas(r.params)} parameters, ${r.dtype}; kernels: ${r.kernels}`,
    `data: ${r.data.source}: ${r.data.rows} packed rows of ≤ ${r.seqLen} tokens; ${r.batchSize} × ${r.seqLen} tokens per step, ${r.steps} steps timed after ${r.warmup} warm-up, AdamW lr ${r.lr}`,
    `LoRA: r=${r.lora.r}, alpha=${r.lora.alpha} on ${r.lora.modules} modules (${r.lora.targets.join(',')}); each mode in its own process`,
    '',
    line(rows[0]!),
    ...rows.slice(1).map(line),
    '',
    iline(inferRows[0]!),
    ...inferRows.slice(1).map(iline),
    `  (${inf.tokens} tokens per forward, median of ${inf.unmerged.forward.seconds.length} each, base and adapter runs alternating, speed vs the base of the same round; merged vs unmerged: max |Δlogit| ${inf.mergedMaxAbsDiff.toPrecision(3)}, same greedy token at ${inf.argmaxAgree}/${inf.positions} positions; adapter vs base: max |Δlogit| ${inf.adapterMaxAbsDiff.toPrecision(3)})`,
    '',
    `measured in ${r.seconds.toFixed(1)} s`,
  ];
}

// the child process: one mode, its result sent back over IPC
if (process.argv[2] === CHILD_FLAG && typeof process.send === 'function' && path.resolve(process.argv[1] ?? '') === fileURLToPath(import.meta.url)) {
  const ready = installNodePlatform(); // a Node entry point of its own: the native backend, as in the parent
  process.once('message', (m: ChildRequest) => {
    ready.then(() => runCompareMode(m.mode, m.opts)).then(
      (result) => process.send!({ ok: true, result } satisfies ChildReply, () => process.exit(0)),
      (e: unknown) => process.send!({ ok: false, error: (e as Error).message.split('\n')[0] } satisfies ChildReply, () => process.exit(1)),
    );
  });
}
