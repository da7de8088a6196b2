// QLoRA benchmark (issue 23, docs/ARCHITECTURE.md §Quantized weights): the same LoRA run on one
// llama-shaped model held four ways, each a GGUF file that lorakit exports from one seeded f32
// model: F32, BF16, Q4_0 and Q4_K (the 4-bit files keep the tied embedding at Q6_K, as
// llama.cpp does). Same data, seed, steps and settings; each run in its own process, so its
// peak RSS (loading included) is its own. Reports the validation loss before and after, tokens/s
// and peak RSS, and the 4-bit runs against f32 (final validation loss) and bf16 (peak RSS).
//
// The model is big enough that its weights dominate the process (~888M parameters: hidden 2048,
// 16 layers, MLP 5632, vocabulary 32000, tied; lorakit inspect estimates 1.7 GiB of bf16
// weights, 0.5 GiB as Q4_0 with a Q6_K embedding), and a run keeps little else: batch 1 × 64,
// gradient checkpointing, LoRA r = 8 on q_proj and v_proj (16 MiB with AdamW's state; on every
// projection it would be 100 MiB, a fifth of the 4-bit weights). The task is learnable from a
// random base: token sequences that follow a fixed successor map over 256 of the ids,
// validation on other sequences of the same map; AdamW lr 2e-3.
//
//   node dist/bench/qlora.js [--steps N] [--quick] [--dir D]   (or npm run bench -- --only qlora)
// The f32 run holds 3.6 GB. The GGUF files (about 6.4 GB for the full model) are written once under D (default
// $TMPDIR/lorakit-bench-qlora) and reused while the config is the same.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { getBackend } from '../src/backend/index.js';
import { BatchIterator, type Example } from '../src/data/index.js';
import { readTokenizerFiles } from '../src/io/index.node.js';
import { writeGguf } from '../src/io/gguf.node.js';
import { getPeftModel } from '../src/lora/peft-model.js';
import { createModel, modelToGguf, type GgufExportType } from '../src/models/index.js';
import { loadModel } from '../src/models/index.node.js';
import { installNodePlatform } from '../src/platform.node.js';
import { Rng } from '../src/tensor/rng.js';
import { createOptimizer } from '../src/train/optimizer.js';
import { causalLmObjective } from '../src/train/trainer.js';
import { stat, timeTrainSteps } from './train.js';

export const QLORA_CONFIG = {
  model_type: 'llama',
  vocab_size: 32000,
  hidden_size: 2048,
  intermediate_size: 5632,
  num_hidden_layers: 16,
  num_attention_heads: 16,
  num_key_value_heads: 16,
  max_position_embeddings: 2048,
  rms_norm_eps: 1e-6,
  rope_theta: 10000,
  tie_word_embeddings: true,
};
const QUICK_CONFIG = { ...QLORA_CONFIG, hidden_size: 256, intermediate_size: 512, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 4, vocab_size: 4096 };
const TYPES: GgufExportType[] = ['f32', 'bf16', 'q4_0', 'q4_k'];
const T = 64;
const VAL_ROWS = 4;

interface RunOutput {
  type: GgufExportType;
  valBefore: number;
  valAfter: number;
  losses: number[];
  stepSeconds: number[];
  peakRssBytes: number;
  backend: string;
  threads: number;
  baseDtypes: string[];
  phases: Phase[];
}

/** The process's memory after one phase of a run (MiB): resident now, peak so far, and V8's share. */
interface Phase {
  phase: string;
  rss: number;
  peak: number;
  heap: number;
  arrayBuffers: number;
}

const MIB = 2 ** 20;

/** VmRSS and VmHWM (peak so far) from /proc/self/status where there is one, else Node's figures. */
function phase(name: string): Phase {
  let rss = process.memoryUsage.rss(), peak = process.resourceUsage().maxRSS * 1024;
  try {
    const st = fs.readFileSync('/proc/self/status', 'utf8');
    const kb = (k: string): number | undefined => {
      const m = new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(st);
      return m ? Number(m[1]) * 1024 : undefined;
    };
    rss = kb('VmRSS') ?? rss;
    peak = kb('VmHWM') ?? peak;
  } catch {
    // not Linux: Node's figures
  }
  const m = process.memoryUsage();
  return { phase: name, rss: rss / MIB, peak: peak / MIB, heap: m.heapUsed / MIB, arrayBuffers: m.arrayBuffers / MIB };
}

function configOf(quick: boolean): typeof QLORA_CONFIG {
  return quick ? QUICK_CONFIG : QLORA_CONFIG;
}

/** Sequences following a fixed successor map over 256 ids (seeded): `rows` of T tokens from `first`. */
function sequences(vocab: number, first: number, rows: number): Example[] {
  const rng = new Rng(7);
  const ids = Array.from({ length: 256 }, (_, i) => (1000 + 97 * i) % vocab);
  const succ = new Map<number, number>();
  const order = [...ids];
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(rng.uniform() * (i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  ids.forEach((id, i) => succ.set(id, order[i]!));
  const out: Example[] = [];
  for (let e = 0; e < rows; e++) {
    const seq = new Int32Array(T);
    seq[0] = ids[(first + e * 37) % ids.length]!;
    for (let t = 1; t < T; t++) seq[t] = succ.get(seq[t - 1]!)!;
    out.push({ ids: seq, targetMask: new Uint8Array(T).fill(1), file: 'qlora', line: first + e + 1, fullLength: T });
  }
  return out;
}

/** The GGUF files of the seeded model, written once per config (in its own process: it holds the f32 model). */
async function makeFiles(dir: string, quick: boolean): Promise<void> {
  const config = configOf(quick);
  const stamp = path.join(dir, 'config.json');
  if (fs.existsSync(stamp) && fs.readFileSync(stamp, 'utf8') === JSON.stringify(config) && TYPES.every((t) => fs.existsSync(path.join(dir, `${t}.gguf`)))) return;
  fs.mkdirSync(dir, { recursive: true });
  fs.rmSync(stamp, { force: true });
  const model = createModel(config, { seed: 0 });
  const tokenizer = readTokenizerFiles('models/brown-llama')!;
  for (const type of TYPES) await writeGguf(path.join(dir, `${type}.gguf`), modelToGguf({ config: model.config as never, state: model.stateDict(), tokenizer, type, name: `qlora-bench-${type}` }));
  fs.writeFileSync(stamp, JSON.stringify(config));
}

/** One run, in this process: load the file, LoRA, validation loss, `steps` training steps (+1 warm-up), validation loss. */
function runOne(type: GgufExportType, dir: string, steps: number, quick: boolean): RunOutput {
  const phases = [phase('start')];
  const model = loadModel(path.join(dir, `${type}.gguf`));
  phases.push(phase('loaded'));
  const baseDtypes = [...new Set(model.parameters().map((p) => p.value.dtype))].sort();
  model.gradientCheckpointing = true;
  getPeftModel(model, { r: 8, lora_alpha: 16, target_modules: ['q_proj', 'v_proj'], init_lora_weights: 'gaussian' });
  const V = configOf(quick).vocab_size;
  const objective = causalLmObjective(model);
  const val = new BatchIterator(sequences(V, 100_000, VAL_ROWS), { batchSize: 1, order: 'sequential' });
  const evaluate = (): number => {
    model.train(false);
    let sum = 0, count = 0;
    for (let i = 0; i < VAL_ROWS; i++) {
      const r = objective.evaluate(val.next());
      sum += r.lossSum;
      count += r.count;
    }
    return sum / count;
  };
  const valBefore = evaluate();
  phases.push(phase('validated'));
  const data = new BatchIterator(sequences(V, 0, steps + 1), { batchSize: 1, order: 'sequential' });
  const optimizer = createOptimizer(model.trainableParameters(), { lr: 2e-3 });
  const { stepSeconds, losses } = timeTrainSteps(model, data, optimizer, 1, 0);
  phases.push(phase('1 step'));
  const rest = timeTrainSteps(model, data, optimizer, steps, 0);
  stepSeconds.push(...rest.stepSeconds);
  losses.push(...rest.losses);
  phases.push(phase(`${steps + 1} steps`));
  const valAfter = evaluate();
  phases.push(phase('end'));
  const be = getBackend();
  return { type, valBefore, valAfter, losses, stepSeconds: stepSeconds.slice(1), peakRssBytes: process.resourceUsage().maxRSS * 1024, backend: be.name, threads: be.threads, baseDtypes, phases };
}

export interface QloraBenchOptions {
  steps?: number;
  quick?: boolean;
  dir?: string;
  log?: (line: string) => void;
}

export async function runQloraBench(opts: QloraBenchOptions = {}): Promise<RunOutput[]> {
  const log = opts.log ?? ((l: string) => console.log(l));
  const quick = opts.quick ?? false;
  const steps = opts.steps ?? (quick ? 6 : 20);
  const dir = opts.dir ?? path.join(os.tmpdir(), `lorakit-bench-qlora${quick ? '-quick' : ''}`);
  const self = fileURLToPath(import.meta.url);
  const cfg = configOf(quick);
  const child = (args: string[]): string => {
    const r = spawnSync(process.execPath, [self, ...args], { encoding: 'utf8', maxBuffer: 1 << 24, env: process.env });
    if (r.status !== 0) throw new Error(`qlora bench child (${args.join(' ')}) failed: ${r.stderr}`);
    return r.stdout;
  };
  log(`qlora: LoRA r=8 on q_proj, v_proj, AdamW lr 2e-3, batch 1 × ${T}, gradient checkpointing, ${steps} steps after 1 warm-up; llama hidden ${cfg.hidden_size}, ${cfg.num_hidden_layers} layers, MLP ${cfg.intermediate_size}, vocab ${cfg.vocab_size}, tied; one GGUF file per base type (${dir}), each run in its own process`);
  child(['--make', dir, quick ? '1' : '0']);
  const out: RunOutput[] = [];
  for (const type of TYPES) {
    const o = JSON.parse(child(['--child', type, dir, String(steps), quick ? '1' : '0']).trim().split('\n').pop()!) as RunOutput;
    out.push(o);
    const tps = stat(type, 'tokens/s', o.stepSeconds.map((s) => T / s));
    log(`${`${type} base`.padEnd(10)} val loss ${o.valBefore.toFixed(4)} → ${o.valAfter.toFixed(4)}   ${tps.median.toFixed(1).padStart(7)} tokens/s (min ${tps.min.toFixed(1)}, max ${tps.max.toFixed(1)})   peak RSS ${(o.peakRssBytes / 2 ** 20).toFixed(0).padStart(5)} MiB   [held as ${o.baseDtypes.join(', ')}; ${o.backend}, ${o.threads} threads]`);
    log(`           RSS by phase (MiB, now / peak so far / V8 heap / array buffers): ${o.phases.map((p) => `${p.phase} ${p.rss.toFixed(0)}/${p.peak.toFixed(0)}/${p.heap.toFixed(0)}/${p.arrayBuffers.toFixed(0)}`).join(', ')}`);
  }
  const by = (t: GgufExportType): RunOutput => out.find((o) => o.type === t)!;
  for (const q of ['q4_0', 'q4_k'] as const) {
    const d = (by(q).valAfter - by('f32').valAfter) / by('f32').valAfter;
    log(`${q}: final val loss ${d >= 0 ? '+' : ''}${(100 * d).toFixed(2)}% vs the f32 base; peak RSS ${(by(q).peakRssBytes / by('bf16').peakRssBytes).toFixed(3)}× the bf16 base's`);
  }
  return out;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  await installNodePlatform();
  const args = process.argv.slice(2);
  if (args[0] === '--make') await makeFiles(args[1]!, args[2] === '1');
  else if (args[0] === '--child') console.log(JSON.stringify(runOne(args[1] as GgufExportType, args[2]!, Number(args[3]), args[4] === '1')));
  else {
    const i = args.indexOf('--steps'), d = args.indexOf('--dir');
    await runQloraBench({ quick: args.includes('--quick'), ...(i >= 0 ? { steps: Number(args[i + 1]) } : {}), ...(d >= 0 ? { dir: args[d + 1]! } : {}) });
  }
}
