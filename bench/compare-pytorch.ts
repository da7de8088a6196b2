// lorakit against a plain PyTorch LoRA loop (bench/pytorch/lora_train.py), one training job on
// both, side by side: tokens/s, peak RSS, their ratios next to the issue's targets, and a check
// that the first 10 step losses agree.
//
// The job: LoRA r = 8, lora_alpha 16, dropout 0, AdamW (lr 1e-4, betas (0.9, 0.999), eps 1e-8,
// weight_decay 0.01 on both sides: every trainable tensor is a 2-D lora_A / lora_B), every token
// a target (transformers' causal LM loss, mean over B · (T − 1) targets), batch 4 × 256, on two
// models with random weights: the GPT-2-small-shaped llama (LoRA on q_proj, v_proj) and GPT-2
// small (LoRA on c_attn, a Conv1D: fan_in_fan_out).
//
// Both sides start from the same weights (lorakit's createModel, saved with saveModel), the same
// adapter (init_lora_weights false, so B ≠ 0 and step 1 already runs through the adapter; saved
// with saveAdapter, PEFT format) and the same batches (a file of int32 token ids).
//
// Runs per model, each in its own process (so peak RSS, whole process life, is its own), one
// at a time: lorakit with an f32 base, lorakit with a bf16 base, PyTorch as a user gets it
// (torch's default threads, glibc malloc), and PyTorch tuned (torch.set_num_threads(1),
// OPENBLAS_NUM_THREADS=2, jemalloc preloaded).
//
//   npm run bench -- --compare-pytorch [--quick] [--steps N]
//   node dist/bench/compare-pytorch.js [--quick] [--steps N] [--rounds N] [--models llama,gpt2] [--layers N]
// --layers N keeps each model's shape and batch but stacks N layers (a middle shape: e.g.
// qwen3 with 4 layers at 4 × 256 shows the per-layer costs next to the head's in minutes).
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { getBackend } from '../src/backend/index.js';
import { installNodePlatform } from '../src/platform.node.js';
import { BatchIterator, type Example } from '../src/data/index.js';
import { loadPeftModel, saveAdapter } from '../src/lora/files.node.js';
import { getPeftModel } from '../src/lora/peft-model.js';
import { createModel } from '../src/models/index.js';
import { loadModel, saveModel } from '../src/models/index.node.js';
import { createOptimizer } from '../src/train/optimizer.js';
import { BENCH_LLAMA_CONFIG, type BenchStat } from './models.js';
import { stat, timeTrainSteps } from './train.js';

export type CompareModel = 'llama' | 'gpt2' | 'qwen3';

/**
 * Qwen3-0.6B's config.json (Qwen/Qwen3-0.6B), weights random: 28 layers, hidden 1024, 16 query
 * and 8 key/value heads of head_dim 128, intermediate 3072, the 151,936-word vocabulary, tied
 * embeddings, q_norm / k_norm.
 */
export const QWEN3_0_6B_CONFIG = {
  architectures: ['Qwen3ForCausalLM'],
  attention_bias: false,
  attention_dropout: 0.0,
  bos_token_id: 151643,
  eos_token_id: 151645,
  head_dim: 128,
  hidden_act: 'silu',
  hidden_size: 1024,
  initializer_range: 0.02,
  intermediate_size: 3072,
  max_position_embeddings: 40960,
  max_window_layers: 28,
  model_type: 'qwen3',
  num_attention_heads: 16,
  num_hidden_layers: 28,
  num_key_value_heads: 8,
  rms_norm_eps: 1e-6,
  rope_scaling: null,
  rope_theta: 1000000,
  sliding_window: null,
  tie_word_embeddings: true,
  torch_dtype: 'bfloat16',
  use_cache: true,
  use_sliding_window: false,
  vocab_size: 151936,
};

export const GPT2_SMALL_CONFIG = {
  model_type: 'gpt2',
  vocab_size: 50257,
  n_embd: 768,
  n_layer: 12,
  n_head: 12,
  n_positions: 1024,
  activation_function: 'gelu_new',
  layer_norm_epsilon: 1e-5,
  tie_word_embeddings: true,
};

interface ModelSpec {
  config: Record<string, unknown>;
  layersKey: string;
  targets: string[];
  fanInFanOut: boolean;
  r: number;
  alpha: number;
  /**
   * 'f32': lorakit f32 and bf16 bases against PyTorch tuned and default on the f32 weights (the
   * issue-14 job); 'bf16': lorakit's bf16 base against PyTorch tuned on the same bf16-rounded
   * weights (computed in f32), the job of issue 18
   */
  job: 'f32' | 'bf16';
}

const ALL_LINEAR = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];

const MODELS: Record<CompareModel, ModelSpec> = {
  llama: { config: BENCH_LLAMA_CONFIG, layersKey: 'num_hidden_layers', targets: ['q_proj', 'v_proj'], fanInFanOut: false, r: 8, alpha: 16, job: 'f32' },
  gpt2: { config: GPT2_SMALL_CONFIG, layersKey: 'n_layer', targets: ['c_attn'], fanInFanOut: true, r: 8, alpha: 16, job: 'f32' },
  // LoRA r = 16 on every linear layer but the (tied) head
  qwen3: { config: QWEN3_0_6B_CONFIG, layersKey: 'num_hidden_layers', targets: ALL_LINEAR, fanInFanOut: false, r: 16, alpha: 32, job: 'bf16' },
};

const ADAMW = { lr: 1e-4, betas: [0.9, 0.999] as [number, number], eps: 1e-8, weightDecay: 0.01 };
const LOSS_STEPS = 10;
const LOSS_TOLERANCE = 1e-3;
const JEMALLOC = '/usr/lib/x86_64-linux-gnu/libjemalloc.so.2';
// jemalloc keeps what it frees (no decay back to the OS), as a tuned training process would:
// freed activations are reused next step without page faults.
const MALLOC_CONF = 'dirty_decay_ms:-1,muzzy_decay_ms:-1';

export interface ComparePytorchOptions {
  /** 2 layers, batch 1 × 64: a smoke run */
  quick?: boolean;
  /** timed steps after the 1 warm-up step (default 9: 10 steps in all, the ones whose losses are compared) */
  steps?: number;
  /**
   * rounds of the four runs, interleaved (lorakit f32, PyTorch tuned, lorakit bf16, PyTorch
   * default), so that a drift in the machine's speed hits both sides alike (default 2)
   */
  rounds?: number;
  models?: CompareModel[];
  /** layers of every model (default: the model's own, 2 with quick) */
  layers?: number;
  log?: (line: string) => void;
}

/** What a child (lorakit or PyTorch) prints as its last line. */
interface ChildOutput {
  stepSeconds: number[];
  losses: number[];
  peakRssBytes: number;
  tokensPerStep: number;
  threads: number;
  backend?: string;
  blas?: string;
}

export interface CompareRun {
  label: string;
  /** null when the run failed (PyTorch only; lorakit failures throw) */
  tokensPerSecond: BenchStat | null;
  peakRssMiB: number;
  losses: number[];
  note: string;
}

export interface CompareResult {
  model: CompareModel;
  runs: CompareRun[];
  /** max relative difference of the first losses, lorakit f32 vs PyTorch tuned (null without PyTorch) */
  lossMaxRelDiff: number | null;
}

/** A lorakit child's job. */
interface LorakitJob {
  modelDir: string;
  adapterDir: string;
  batches: string;
  dtype: 'f32' | 'keep';
  B: number;
  T: number;
  warmup: number;
  steps: number;
}

function repoRoot(): string {
  // dist/bench/compare-pytorch.js → the repository root
  return path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
}

function pythonPath(): string {
  return fs.existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
}

function lastJson(r: SpawnSyncReturns<string>): ChildOutput {
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as ChildOutput;
}

function failure(r: SpawnSyncReturns<string>): string {
  if (r.error) return r.error.message;
  const tail = r.stderr.trim().split('\n').slice(-3).join(' | ');
  return `exit ${r.status ?? r.signal}${tail ? `: ${tail}` : ''}`;
}

/** torch version, default threads and BLAS, or why PyTorch cannot run. */
function probeTorch(script: string): { ok: true; torch: string; threads: number; blas: string } | { ok: false; why: string } {
  if (!fs.existsSync(script)) return { ok: false, why: `${script} is missing` };
  const r = spawnSync(pythonPath(), [script, '--probe'], { encoding: 'utf8' });
  if (r.status !== 0) return { ok: false, why: `${pythonPath()} ${path.basename(script)} --probe failed (${failure(r)})` };
  const p = lastJson(r) as unknown as { torch: string; threads: number; blas: string };
  return { ok: true, ...p };
}

/** (warmup + steps) · B · T token ids, uniform over the vocabulary from a fixed seed (xorshift32). */
function writeBatches(file: string, n: number, vocab: number): void {
  const ids = new Int32Array(n);
  let x = 0x2545f491;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    ids[i] = (x >>> 0) % vocab;
  }
  fs.writeFileSync(file, Buffer.from(ids.buffer));
}

/** What the prepare child writes: the model (f32 and bf16 folders), the initial adapter, the batches. */
interface PrepareJob {
  model: CompareModel;
  config: Record<string, unknown>;
  f32: string;
  bf16: string;
  adapter: string;
  batches: string;
  tokens: number;
}

async function prepare(job: PrepareJob): Promise<void> {
  const spec = MODELS[job.model];
  const model = createModel(job.config, { seed: 0, dtype: 'f32' });
  await saveModel(model, job.f32);
  await saveModel(model, job.bf16, { dtype: 'bf16' });
  // init_lora_weights false: A and B both Kaiming-uniform, so the adapter changes step 1's loss
  const peft = getPeftModel(model, { r: spec.r, lora_alpha: spec.alpha, lora_dropout: 0, target_modules: spec.targets, fan_in_fan_out: spec.fanInFanOut, init_lora_weights: false }, 'default', { seed: 1 });
  saveAdapter(peft, job.adapter);
  writeBatches(job.batches, job.tokens, job.config['vocab_size'] as number);
}

/** The lorakit side, in this (child) process: load, adapter from the folder, AdamW, timed steps. */
function lorakitSteps(job: LorakitJob): ChildOutput {
  const model = loadModel(job.modelDir, { dtype: job.dtype });
  loadPeftModel(model, job.adapterDir, { isTrainable: true });
  const { B, T } = job;
  const buf = fs.readFileSync(job.batches);
  const ids = new Int32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
  const examples: Example[] = [];
  for (let e = 0; e < B * (job.warmup + job.steps); e++) {
    examples.push({ ids: ids.slice(e * T, (e + 1) * T), targetMask: new Uint8Array(T).fill(1), file: 'bench', line: e + 1, fullLength: T });
  }
  const data = new BatchIterator(examples, { batchSize: B, order: 'sequential' });
  const optimizer = createOptimizer(model.trainableParameters(), ADAMW);
  const { stepSeconds, losses } = timeTrainSteps(model, data, optimizer, job.warmup + job.steps, job.warmup);
  const be = getBackend();
  return { stepSeconds, losses, peakRssBytes: process.resourceUsage().maxRSS * 1024, tokensPerStep: B * T, backend: be.name, threads: be.threads };
}

function maxRelDiff(a: readonly number[], b: readonly number[], n: number): number {
  let worst = 0;
  for (let i = 0; i < n; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!) / Math.abs(b[i]!));
  return worst;
}

function fmtRate(x: number): string {
  return x >= 100 ? x.toFixed(0) : x.toFixed(1);
}

/** The compare's options from command-line flags: --quick, --steps N, --rounds N, --models llama,gpt2, --layers N. */
export function parseCompareArgs(args: readonly string[]): ComparePytorchOptions {
  const count = (flag: string): number | undefined => {
    const i = args.indexOf(flag);
    if (i < 0) return undefined;
    const n = Number(args[i + 1]);
    if (!Number.isInteger(n) || n < 1) throw new Error(`${flag} needs a positive whole number, got ${args[i + 1] ?? 'nothing'}`);
    return n;
  };
  const steps = count('--steps');
  const rounds = count('--rounds');
  const layers = count('--layers');
  const mi = args.indexOf('--models');
  let models: CompareModel[] | undefined;
  if (mi >= 0) {
    models = (args[mi + 1] ?? '').split(',').map((m) => {
      if (!(m in MODELS)) throw new Error(`--models: unknown model "${m}" (known: ${Object.keys(MODELS).join(', ')})`);
      return m as CompareModel;
    });
  }
  return { quick: args.includes('--quick'), ...(steps !== undefined ? { steps } : {}), ...(rounds !== undefined ? { rounds } : {}), ...(models ? { models } : {}), ...(layers !== undefined ? { layers } : {}) };
}

export async function runComparePytorch(opts: ComparePytorchOptions = {}): Promise<CompareResult[]> {
  const log = opts.log ?? ((l: string) => console.log(l));
  const quick = opts.quick ?? false;
  const warmup = 1;
  const steps = opts.steps ?? 9;
  const rounds = opts.rounds ?? 2;
  const [B, T] = quick ? [1, 64] : [4, 256];
  const self = fileURLToPath(import.meta.url);
  const script = path.join(repoRoot(), 'bench', 'pytorch', 'lora_train.py');
  const be = getBackend();
  const torch = probeTorch(script);
  const jemalloc = fs.existsSync(JEMALLOC);

  log(`compare-pytorch: ${process.argv.map((a) => (/\s/.test(a) ? JSON.stringify(a) : a)).join(' ')}`);
  log(`date ${new Date().toISOString()}, load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}, ${os.cpus().length} CPUs`);
  log(`lorakit: backend ${be.name}, ${be.threads} threads, node ${process.version}`);
  if (torch.ok) {
    log(`PyTorch: torch ${torch.torch} (${pythonPath()}), default ${torch.threads} thread(s), BLAS ${torch.blas}`);
    log(`  default: no env changes · tuned: torch.set_num_threads(1), OPENBLAS_NUM_THREADS=2, ${jemalloc ? `LD_PRELOAD=${JEMALLOC} MALLOC_CONF=${MALLOC_CONF}` : `no jemalloc (${JEMALLOC} missing)`}`);
  } else {
    log(`PyTorch: not available, so lorakit's figures alone: ${torch.why}`);
  }
  log(`job: LoRA r=8, alpha 16 (qwen3: r=16, alpha 32 on all seven linear layers), dropout 0, AdamW lr ${ADAMW.lr} betas (${ADAMW.betas.join(', ')}) eps ${ADAMW.eps} weight_decay ${ADAMW.weightDecay}; batch ${B} × ${T}, every token a target; ${warmup} warm-up + ${steps} timed steps; each run in its own process, one at a time; ${rounds} round(s) of lorakit f32, PyTorch tuned, lorakit bf16, PyTorch default, interleaved; figures pool the steps of all rounds${quick ? '; quick shapes (batch 1 × 64)' : ''}${opts.layers !== undefined ? `; ${opts.layers} layers per model` : quick ? '; 2 layers per model' : ''}`);

  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lorakit-compare-'));
  const results: CompareResult[] = [];
  try {
    for (const name of opts.models ?? (['llama', 'gpt2'] as CompareModel[])) {
      const spec = MODELS[name];
      const layerCount = opts.layers ?? (quick ? 2 : undefined);
      const config = { ...spec.config, ...(layerCount !== undefined ? { [spec.layersKey]: layerCount } : {}) };
      const dir = path.join(tmp, name);
      const job = { f32: path.join(dir, 'model-f32'), bf16: path.join(dir, 'model-bf16'), adapter: path.join(dir, 'adapter'), batches: path.join(dir, 'batches.bin') };
      // The same start for every run, written by a child so that this process stays small: a
      // child's ru_maxrss starts at its parent's RSS when it was forked.
      const prep: PrepareJob = { model: name, config, ...job, tokens: (warmup + steps) * B * T };
      const pr = spawnSync(process.execPath, [self, '--prepare', JSON.stringify(prep)], { encoding: 'utf8', maxBuffer: 1 << 24, env: process.env });
      if (pr.status !== 0) throw new Error(`compare-pytorch: preparing ${name} failed: ${failure(pr)}`);
      const layers = config[spec.layersKey] as number;
      log(`\n${name}: ${layers} layers, hidden ${(config['hidden_size'] ?? config['n_embd']) as number}, vocab ${config['vocab_size'] as number}; LoRA r=${spec.r} on ${spec.targets.join(', ')}${spec.job === 'bf16' ? '; bf16 base: lorakit keeps the bf16 weights, PyTorch computes in f32 from the same bf16-rounded weights' : ''}`);

      const toRun = (label: string, outs: ChildOutput[], note: string): CompareRun => ({
        label,
        tokensPerSecond: stat(label, 'tokens/s', outs.flatMap((o) => o.stepSeconds.map((sec) => o.tokensPerStep / sec))),
        peakRssMiB: Math.max(...outs.map((o) => o.peakRssBytes)) / 2 ** 20,
        losses: outs[0]!.losses,
        note,
      });
      const lorakit = (label: string, dtype: 'f32' | 'keep', folder: string) => (): { out: ChildOutput; note: string } => {
        const child: LorakitJob = { modelDir: folder, adapterDir: job.adapter, batches: job.batches, dtype, B, T, warmup, steps };
        const r = spawnSync(process.execPath, [self, '--child', JSON.stringify(child)], { encoding: 'utf8', maxBuffer: 1 << 24, env: process.env });
        if (r.status !== 0) throw new Error(`compare-pytorch: lorakit child (${name}, ${label}) failed: ${failure(r)}`);
        const out = lastJson(r);
        return { out, note: `${out.backend}, ${out.threads} threads` };
      };
      const args = [script, '--model', spec.job === 'bf16' ? job.bf16 : job.f32, '--adapter', job.adapter, '--batches', job.batches, '--batch', String(B), '--seq', String(T), '--warmup', String(warmup), '--steps', String(steps), '--lr', String(ADAMW.lr), '--weight-decay', String(ADAMW.weightDecay)];
      const tunedEnv = { ...process.env, OPENBLAS_NUM_THREADS: '2', ...(jemalloc ? { LD_PRELOAD: JEMALLOC, MALLOC_CONF } : {}) };
      const pytorch = (extra: string[], env: NodeJS.ProcessEnv, note: string) => (): { out: ChildOutput; note: string } | string => {
        const r = spawnSync(pythonPath(), [...args, ...extra], { encoding: 'utf8', maxBuffer: 1 << 24, env });
        if (r.status !== 0) return failure(r);
        const out = lastJson(r);
        return { out, note: `${out.threads} torch thread(s), ${note}; ${out.blas ?? ''}` };
      };
      const tuned = { label: 'PyTorch tuned', run: pytorch(['--threads', '1'], tunedEnv, jemalloc ? 'OPENBLAS_NUM_THREADS=2, jemalloc' : 'OPENBLAS_NUM_THREADS=2') };
      const variants: { label: string; run: () => { out: ChildOutput; note: string } | string }[] =
        spec.job === 'bf16'
          ? [{ label: 'lorakit bf16 base', run: lorakit('lorakit bf16 base', 'keep', job.bf16) }, ...(torch.ok ? [tuned] : [])]
          : [
              { label: 'lorakit f32 base', run: lorakit('lorakit f32 base', 'f32', job.f32) },
              ...(torch.ok ? [tuned] : []),
              { label: 'lorakit bf16 base', run: lorakit('lorakit bf16 base', 'keep', job.bf16) },
              ...(torch.ok ? [{ label: 'PyTorch default', run: pytorch([], process.env, 'torch default threads, glibc malloc') }] : []),
            ];
      const outs = new Map<string, { outs: ChildOutput[]; note: string }>();
      const failed = new Map<string, string>();
      const perRound: Map<string, number>[] = [];
      for (let round = 0; round < rounds; round++) {
        const rates = new Map<string, number>();
        for (const v of variants) {
          if (failed.has(v.label)) continue;
          const r = v.run();
          if (typeof r === 'string') {
            failed.set(v.label, r);
            continue;
          }
          const e = outs.get(v.label) ?? { outs: [], note: r.note };
          e.outs.push(r.out);
          outs.set(v.label, e);
          rates.set(v.label, stat(v.label, 'tokens/s', r.out.stepSeconds.map((sec) => r.out.tokensPerStep / sec)).median);
        }
        perRound.push(rates);
      }
      const runs: CompareRun[] = [];
      for (const v of variants) {
        const e = outs.get(v.label);
        const r: CompareRun = e ? toRun(v.label, e.outs, e.note) : { label: v.label, tokensPerSecond: null, peakRssMiB: 0, losses: [], note: failed.get(v.label) ?? 'not run' };
        const st = r.tokensPerSecond;
        const body = st ? `${fmtRate(st.median).padStart(7)} tokens/s (min ${fmtRate(st.min)}, max ${fmtRate(st.max)}, ${st.runs} steps)  peak RSS ${r.peakRssMiB.toFixed(0).padStart(5)} MiB` : 'failed';
        log(`  ${r.label.padEnd(18)} ${body}  [${r.note}]`);
        runs.push(r);
      }
      // the key ratio round by round: each round's two runs ran back to back
      const roundRatios = (a: string, b: string): string =>
        perRound
          .filter((m) => m.has(a) && m.has(b))
          .map((m) => (m.get(a)! / m.get(b)!).toFixed(2))
          .join(', ');
      if (torch.ok && rounds > 1 && spec.job === 'f32') {
        log(`  per round (median step rates): lorakit f32 ÷ PyTorch tuned ${roundRatios('lorakit f32 base', 'PyTorch tuned')}; ÷ PyTorch default ${roundRatios('lorakit f32 base', 'PyTorch default')}`);
      }
      if (torch.ok && rounds > 1 && spec.job === 'bf16') log(`  per round (median step rates): lorakit bf16 ÷ PyTorch tuned ${roundRatios('lorakit bf16 base', 'PyTorch tuned')}`);
      results.push(spec.job === 'bf16' ? reportBf16(name, runs, log) : report(name, runs, log));
      // Two cores: anything else running shows as a wide min–max spread. Say so next to the figures.
      const noisy = runs.filter((r) => r.tokensPerSecond && r.tokensPerSecond.max > 1.5 * r.tokensPerSecond.min).map((r) => r.label);
      log(`  load average now ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}${noisy.length ? `; max/min step rate above 1.5 for ${noisy.join(', ')}: the machine was probably busy, rerun before trusting the ratios` : ''}`);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  return results;
}

/** The bf16-base job (issue 18): lorakit bf16 ÷ PyTorch tuned on the same bf16-rounded weights, and the loss check. */
function reportBf16(model: CompareModel, runs: CompareRun[], log: (line: string) => void): CompareResult {
  const by = (label: string): CompareRun | undefined => runs.find((r) => r.label === label && r.tokensPerSecond !== null);
  const bf16 = by('lorakit bf16 base')!;
  const tuned = by('PyTorch tuned');
  if (!tuned) return { model, runs, lossMaxRelDiff: null };
  const speed = bf16.tokensPerSecond!.median / tuned.tokensPerSecond!.median;
  const rss = bf16.peakRssMiB / tuned.peakRssMiB;
  log(`  ${'tokens/s, lorakit bf16 ÷ PyTorch tuned'.padEnd(44)} ${speed.toFixed(2).padStart(5)}×  (target ≥ 1.25×: ${speed >= 1.25 ? 'met' : 'not met'})`);
  log(`  ${'peak RSS, lorakit bf16 ÷ PyTorch tuned'.padEnd(44)} ${rss.toFixed(2).padStart(5)}×  (target ≤ 0.5×: ${rss <= 0.5 ? 'met' : 'not met'})`);
  const n = Math.min(LOSS_STEPS, bf16.losses.length, tuned.losses.length);
  const d = maxRelDiff(bf16.losses, tuned.losses, n);
  log(`  losses, first ${n} steps, lorakit bf16 vs PyTorch tuned (same weights): max relative difference ${d.toExponential(2)} (≤ ${LOSS_TOLERANCE}: ${d <= LOSS_TOLERANCE ? 'pass' : 'FAIL'})`);
  log(`  step  ${'lorakit bf16'.padStart(12)}  ${'PyTorch tuned'.padStart(15)}`);
  for (let i = 0; i < n; i++) log(`  ${String(i + 1).padStart(4)}  ${bf16.losses[i]!.toFixed(6).padStart(12)}  ${tuned.losses[i]!.toFixed(6).padStart(15)}`);
  return { model, runs, lossMaxRelDiff: d };
}

/** Ratios next to the issue's targets, and the loss check. */
function report(model: CompareModel, runs: CompareRun[], log: (line: string) => void): CompareResult {
  const by = (label: string): CompareRun | undefined => runs.find((r) => r.label === label && r.tokensPerSecond !== null);
  const f32 = by('lorakit f32 base')!;
  const bf16 = by('lorakit bf16 base')!;
  const tuned = by('PyTorch tuned');
  const dflt = by('PyTorch default');
  const ratio = (what: string, x: number, target: string, met: boolean): void => log(`  ${what.padEnd(44)} ${x.toFixed(2).padStart(5)}×  (target ${target}: ${met ? 'met' : 'not met'})`);
  if (tuned) {
    ratio('tokens/s, lorakit f32 ÷ PyTorch tuned', f32.tokensPerSecond!.median / tuned.tokensPerSecond!.median, '≥ 1.25×', f32.tokensPerSecond!.median / tuned.tokensPerSecond!.median >= 1.25);
  }
  if (dflt) {
    ratio('tokens/s, lorakit f32 ÷ PyTorch default', f32.tokensPerSecond!.median / dflt.tokensPerSecond!.median, '≥ 2×', f32.tokensPerSecond!.median / dflt.tokensPerSecond!.median >= 2);
  }
  if (tuned) {
    ratio('peak RSS, lorakit f32 ÷ PyTorch tuned', f32.peakRssMiB / tuned.peakRssMiB, '≤ 0.7×', f32.peakRssMiB / tuned.peakRssMiB <= 0.7);
    ratio('peak RSS, lorakit bf16 ÷ PyTorch tuned', bf16.peakRssMiB / tuned.peakRssMiB, '≤ 0.5×', bf16.peakRssMiB / tuned.peakRssMiB <= 0.5);
  }
  const ref = tuned ?? dflt;
  if (!ref) return { model, runs, lossMaxRelDiff: null };
  const n = Math.min(LOSS_STEPS, f32.losses.length, ref.losses.length);
  const d = maxRelDiff(f32.losses, ref.losses, n);
  log(`  losses, first ${n} steps, lorakit f32 vs ${ref.label}: max relative difference ${d.toExponential(2)} (≤ ${LOSS_TOLERANCE}: ${d <= LOSS_TOLERANCE ? 'pass' : 'FAIL'})`);
  log(`  lorakit bf16 vs ${ref.label} (bf16-rounded base, reported only): max relative difference ${maxRelDiff(bf16.losses, ref.losses, n).toExponential(2)}`);
  if (dflt && tuned) log(`  PyTorch default vs tuned: max relative difference ${maxRelDiff(dflt.losses, tuned.losses, n).toExponential(2)}`);
  log(`  step  ${'lorakit f32'.padStart(12)}  ${'lorakit bf16'.padStart(12)}  ${ref.label.padStart(15)}`);
  for (let i = 0; i < n; i++) log(`  ${String(i + 1).padStart(4)}  ${f32.losses[i]!.toFixed(6).padStart(12)}  ${bf16.losses[i]!.toFixed(6).padStart(12)}  ${ref.losses[i]!.toFixed(6).padStart(15)}`);
  return { model, runs, lossMaxRelDiff: d };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  // run as its own process (the prepare and lorakit children, or directly): the Node platform
  // (the native backend) is installed by the entry point, as bench/index.ts does
  await installNodePlatform();
  const args = process.argv.slice(2);
  if (args[0] === '--prepare') {
    await prepare(JSON.parse(args[1]!) as PrepareJob);
  } else if (args[0] === '--child') {
    console.log(JSON.stringify(lorakitSteps(JSON.parse(args[1]!) as LorakitJob)));
  } else {
    await runComparePytorch(parseCompareArgs(args));
  }
}
