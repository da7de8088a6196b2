// LoRA training-step benchmark: the GPT-2-small-shaped llama (hidden 768, 12 layers, 12 heads,
// intermediate 2048, vocab 32000), batch 4 × 256, r = 8 on q_proj and v_proj, AdamW, with an
// f32 base and a bf16 base. Each configuration runs in its own process so that its peak RSS
// is its own. Reports tokens/s (median of the timed steps after warm-up, with min–max) and
// peak RSS.
//
//   node dist/bench/train.js [--steps N] [--quick]
import { spawnSync } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { getBackend } from '../src/backend/index.js';
import { installNodePlatform } from '../src/platform.node.js';
import { BatchIterator, type Example } from '../src/data/index.js';
import { getPeftModel } from '../src/lora/peft-model.js';
import type { CausalLM } from '../src/models/causal-lm.js';
import { createModel } from '../src/models/index.js';
import type { DType } from '../src/tensor/tensor.js';
import { createOptimizer, type Optimizer } from '../src/train/optimizer.js';
import { causalLmObjective, type BatchSource } from '../src/train/trainer.js';
import { BENCH_LLAMA_CONFIG, type BenchStat } from './models.js';

export interface TrainBenchResult {
  dtype: DType;
  tokensPerSecond: BenchStat;
  peakRssMiB: number;
  losses: number[];
}

interface ChildOutput {
  stepSeconds: number[];
  losses: number[];
  peakRssBytes: number;
  tokensPerStep: number;
  backend: string;
  threads: number;
}

/** A run's shape: base dtype, batch rows × tokens, gradient checkpointing. */
export interface TrainShape {
  dtype: DType;
  B: number;
  T: number;
  checkpointing: boolean;
}

/** One configuration, in this process: returns per-step seconds after `warmup` steps. */
export function trainSteps(shape: TrainShape, steps: number, quick: boolean, warmup = 1, onTimed?: (timed: boolean) => void): ChildOutput {
  const config = { ...BENCH_LLAMA_CONFIG, ...(quick ? { num_hidden_layers: 2 } : {}) };
  const { dtype, B, T } = shape;
  const model = createModel(config, { seed: 0, dtype });
  model.gradientCheckpointing = shape.checkpointing;
  getPeftModel(model, { r: 8, lora_alpha: 16, target_modules: ['q_proj', 'v_proj'], init_lora_weights: 'gaussian' });
  const examples: Example[] = [];
  for (let e = 0; e < B * (steps + warmup); e++) {
    const ids = new Int32Array(T);
    for (let t = 0; t < T; t++) ids[t] = (e * 7919 + t * 104729 + 13) % config.vocab_size;
    examples.push({ ids, targetMask: new Uint8Array(T).fill(1), file: 'bench', line: e + 1, fullLength: T });
  }
  const data = new BatchIterator(examples, { batchSize: B, order: 'sequential' });
  const optimizer = createOptimizer(model.trainableParameters(), { lr: 1e-4 });
  const { stepSeconds, losses } = timeTrainSteps(model, data, optimizer, steps + warmup, warmup, onTimed);
  const be = getBackend();
  return { stepSeconds, losses, peakRssBytes: process.resourceUsage().maxRSS * 1024, tokensPerStep: B * T, backend: be.name, threads: be.threads };
}

/**
 * The timed training loop (also compare-pytorch's): per step zeroGrad, forwardBackward(batch,
 * 1 / targets), step. Returns the seconds of each step after `warmup` and every step's mean loss.
 * `onTimed(true)` and `onTimed(false)` bracket each timed step (bench/tools/kernel-profile.ts).
 */
export function timeTrainSteps(model: CausalLM, data: BatchSource, optimizer: Optimizer, total: number, warmup: number, onTimed?: (timed: boolean) => void): { stepSeconds: number[]; losses: number[] } {
  model.train(true); // as train() does: training mode (dropout, gradient checkpointing)
  const objective = causalLmObjective(model);
  const stepSeconds: number[] = [];
  const losses: number[] = [];
  for (let s = 0; s < total; s++) {
    const batch = data.next();
    if (s >= warmup) onTimed?.(true);
    const t0 = process.hrtime.bigint();
    optimizer.zeroGrad();
    const r = objective.forwardBackward(batch, 1 / batch.targets);
    optimizer.step();
    const dt = Number(process.hrtime.bigint() - t0) / 1e9;
    onTimed?.(false);
    losses.push(r.lossSum / r.count);
    if (s >= warmup) stepSeconds.push(dt);
  }
  return { stepSeconds, losses };
}

export function stat(name: string, unit: string, xs: number[]): BenchStat {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return { name, unit, median: s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2, min: s[0]!, max: s[s.length - 1]!, runs: s.length };
}

export interface TrainBenchOptions {
  steps?: number;
  quick?: boolean;
  dtypes?: DType[];
  log?: (line: string) => void;
}

export async function runTrainBench(opts: TrainBenchOptions = {}): Promise<TrainBenchResult[]> {
  const log = opts.log ?? ((l: string) => console.log(l));
  const steps = opts.steps ?? 4;
  const quick = opts.quick ?? false;
  const self = fileURLToPath(import.meta.url);
  const results: TrainBenchResult[] = [];
  const [B, T] = quick ? [1, 64] : [4, 256];
  // a long row, with and without gradient checkpointing: the activations grow with T, the weights do not
  const [LB, LT] = quick ? [1, 256] : [1, 2048];
  const shapes: TrainShape[] = [
    ...(opts.dtypes ?? (['f32', 'bf16'] as DType[])).map((dtype) => ({ dtype, B, T, checkpointing: false })),
    { dtype: 'f32', B: LB, T: LT, checkpointing: false },
    { dtype: 'f32', B: LB, T: LT, checkpointing: true },
  ];
  log(`train: LoRA r=8 on q_proj,v_proj, AdamW, ${quick ? 'quick shapes (2 layers)' : 'GPT-2-small-shaped llama'}; ${steps} timed steps after 1 warm-up (2 for the long row), each run in its own process`);
  for (const shape of shapes) {
    const long = shape.T === LT;
    const n = long ? Math.min(steps, 2) : steps;
    const r = spawnSync(process.execPath, [self, '--child', JSON.stringify(shape), String(n), quick ? '1' : '0'], { encoding: 'utf8', maxBuffer: 1 << 24, env: process.env });
    if (r.status !== 0) throw new Error(`train bench child (${JSON.stringify(shape)}) failed: ${r.stderr}`);
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as ChildOutput;
    const name = `${shape.dtype} base, ${shape.B} × ${shape.T}${shape.checkpointing ? ', checkpointing' : ''}`;
    const tps = stat(name, 'tokens/s', out.stepSeconds.map((s) => out.tokensPerStep / s));
    const peak = out.peakRssBytes / 2 ** 20;
    if (!long) results.push({ dtype: shape.dtype, tokensPerSecond: tps, peakRssMiB: peak, losses: out.losses });
    log(`${name.padEnd(36)} ${tps.median.toFixed(1).padStart(8)} tokens/s (min ${tps.min.toFixed(1)}, max ${tps.max.toFixed(1)}, ${tps.runs} steps)  peak RSS ${peak.toFixed(0)} MiB  [${out.backend}, ${out.threads} threads]`);
  }
  return results;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  await installNodePlatform(); // its own process (a child, or run directly): the native backend, as bench/index.ts
  const args = process.argv.slice(2);
  if (args[0] === '--child') {
    const out = trainSteps(JSON.parse(args[1]!) as TrainShape, Number(args[2]), args[3] === '1');
    console.log(JSON.stringify(out));
  } else {
    const i = args.indexOf('--steps');
    await runTrainBench({ steps: i >= 0 ? Number(args[i + 1]) : 4, quick: args.includes('--quick') });
  }
}
