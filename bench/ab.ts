// A/B of two built lorakit checkouts in ONE process, alternating call by call: the training
// step (bench/train.ts's model and loop) and the GEMM shapes (bench/gemm.ts's). Each side is
// imported from its own dist/ (and so loads its own addon and thread pool), so both run on
// the same machine state, and a burst of other work hits both sides alike. Reported per
// configuration: wall time and process CPU time per step or call (medians, new/base ratios,
// and the range of the rounds' own new/base ratios: the run-to-run spread). Run it once with
// --new pointing at a second copy of the base (an A/A run) to see the spread of no change.
// With --threads 1 the CPU time is the work done, nearly independent of what else runs on
// the machine: the figure to read on a shared host (bench/RESULTS.md §Issue 17).
//
//   node dist/bench/ab.js --base ../base [--new .] [--only train|gemm] [--threads N]
//                         [--rounds N] [--layers N] [--configs bf16:4x256,f32:1x2048c] [--kernels]
//
// --kernels: every kernel of both backends is timed (wall), and each training configuration
// also prints the median milliseconds per step of each kernel (and of the GEMM by shape) on
// both sides: where a difference between the two checkouts lies.
//
// Each checkout must be built (dist/ and build/Release/lorakit.node). The new side's losses
// may differ from the base's where the model initialisation changed between them.
import { existsSync } from 'node:fs';
import { loadavg } from 'node:os';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { GEMM_SHAPES } from './shapes.js';

/** One side: what this tool needs of a checkout's dist/, by dynamic import. */
interface Side {
  label: string;
  /** with --kernels: milliseconds per kernel (GEMMs also by shape) since the last take() */
  kernels?: { take(): Map<string, number> };
  /** builds a model and returns its training step (returns the mean loss) */
  trainer(cfg: TrainConfig, layers: number, steps: number): Promise<() => number>;
  gemm(c: Float32Array, a: Float32Array | Uint16Array, b: Float32Array | Uint16Array, args: Record<string, unknown>): void;
}

interface TrainConfig {
  dtype: 'f32' | 'bf16';
  B: number;
  T: number;
  checkpointing: boolean;
}

// bench/train.ts's configurations (the full ones; --quick: its quick ones on 2 layers)
const TRAIN_FULL = 'f32:4x256,bf16:4x256,f32:1x2048,f32:1x2048c';
const TRAIN_QUICK = 'f32:1x64,bf16:1x64,f32:1x256,f32:1x256c';

function parseConfig(s: string): TrainConfig {
  const m = /^(f32|bf16):(\d+)x(\d+)(c?)$/.exec(s.trim());
  if (!m) throw new Error(`--configs: "${s}" is not dtype:BxT[c] (e.g. bf16:4x256, f32:1x2048c for checkpointing)`);
  return { dtype: m[1] as 'f32' | 'bf16', B: Number(m[2]), T: Number(m[3]), checkpointing: m[4] === 'c' };
}

/** a GEMM's shape, for --kernels: M×K·K×N, transposes, B dtype, accumulate */
function gemmLabel(g: { M: number; N: number; K: number; transA?: boolean; transB?: boolean; accumulate?: boolean; bDtype?: string }): string {
  return `  gemm ${g.M}×${g.K}·${g.K}×${g.N}${g.transA ? ' Aᵀ' : ''}${g.transB ? ' Bᵀ' : ''}${g.accumulate ? ' +=' : ''}${g.bDtype && g.bDtype !== 'f32' ? ` B ${g.bDtype}` : ''}`;
}

/** Wraps every kernel of a backend in a wall-clock timer (bench/tools/kernel-profile.ts's way). */
function timeKernels(base: Record<string, unknown>): { backend: object; take(): Map<string, number> } {
  let ms = new Map<string, number>();
  const wrapped: Record<string, PropertyDescriptor> = {};
  for (const key of Object.keys(base)) {
    const f = base[key];
    if (typeof f !== 'function') continue;
    const value = (...a: unknown[]): unknown => {
      const t0 = performance.now();
      try {
        return (f as (...x: unknown[]) => unknown).apply(base, a);
      } finally {
        const dt = performance.now() - t0;
        for (const name of key === 'gemm' ? [key, gemmLabel(a[3] as Parameters<typeof gemmLabel>[0])] : [key]) ms.set(name, (ms.get(name) ?? 0) + dt);
      }
    };
    wrapped[key] = { value, enumerable: true };
  }
  return {
    backend: Object.create(base, wrapped) as object,
    take() {
      const m = ms;
      ms = new Map();
      return m;
    },
  };
}

async function loadSide(dir: string, threads: number | null, kernels = false): Promise<Side> {
  const root = resolve(dir);
  const at = (p: string): string => pathToFileURL(`${root}/dist/${p}`).href;
  if (!existsSync(`${root}/dist/src/backend/index.js`)) throw new Error(`${root} has no dist/src/backend/index.js (build it: npx tsc -p tsconfig.json)`);
  // mains from issue 17 on install the Node platform (backend defaults); earlier ones chose the backend themselves
  if (existsSync(`${root}/dist/src/platform.node.js`)) await ((await import(at('src/platform.node.js'))) as { installNodePlatform(): Promise<void> }).installNodePlatform();
  const backendModule = (await import(at('src/backend/index.js'))) as { getBackend(): { name: string; gemm: Side['gemm'] }; setBackend(b: object): unknown };
  let backend = backendModule.getBackend();
  if (backend.name !== 'native') throw new Error(`${root}: the backend is ${backend.name}, not native (is build/Release/lorakit.node there?)`);
  const addon = ((await import(at('src/backend/native/index.js'))) as { loadAddon(): { addon: { threads(n?: number): number } | null } }).loadAddon().addon!;
  if (threads !== null) addon.threads(threads);
  let timer: ReturnType<typeof timeKernels> | undefined;
  if (kernels) {
    timer = timeKernels(backend as unknown as Record<string, unknown>);
    backendModule.setBackend(timer.backend);
    backend = timer.backend as typeof backend;
  }
  // another checkout's modules: typed by use
  const mod = async (p: string): Promise<any> => import(at(p));
  const [data, peft, models, optim, trainer, benchModels] = await Promise.all(
    ['src/data/index.js', 'src/lora/peft-model.js', 'src/models/index.js', 'src/train/optimizer.js', 'src/train/trainer.js', 'bench/models.js'].map(mod),
  );
  return {
    label: `${root} (${addon.threads()} threads)`,
    ...(timer ? { kernels: timer } : {}),
    gemm: (c, a, b, args) => backend.gemm(c, a, b, args),
    async trainer(cfg, layers, steps) {
      const config = { ...benchModels.BENCH_LLAMA_CONFIG, num_hidden_layers: layers };
      const model = models.createModel(config, { seed: 0, dtype: cfg.dtype });
      model.gradientCheckpointing = cfg.checkpointing;
      peft.getPeftModel(model, { r: 8, lora_alpha: 16, target_modules: ['q_proj', 'v_proj'], init_lora_weights: 'gaussian' });
      const examples = [];
      for (let e = 0; e < cfg.B * steps; e++) {
        const ids = new Int32Array(cfg.T);
        for (let t = 0; t < cfg.T; t++) ids[t] = (e * 7919 + t * 104729 + 13) % config.vocab_size;
        examples.push({ ids, targetMask: new Uint8Array(cfg.T).fill(1), file: 'bench', line: e + 1, fullLength: cfg.T });
      }
      const batches = new data.BatchIterator(examples, { batchSize: cfg.B, order: 'sequential' });
      const optimizer = optim.createOptimizer(model.trainableParameters(), { lr: 1e-4 });
      model.train(true);
      const objective = trainer.causalLmObjective(model);
      // bench/train.ts's timed step: zeroGrad, forwardBackward, step
      return () => {
        const batch = batches.next();
        optimizer.zeroGrad();
        const r = objective.forwardBackward(batch, 1 / batch.targets);
        optimizer.step();
        return (r.lossSum as number) / (r.count as number);
      };
    },
  };
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/** Times fn: wall and process CPU seconds, and the page faults and context switches it took. */
function timed(fn: () => void): { wall: number; cpu: number; faults: number; switches: number } {
  const r0 = process.resourceUsage();
  const c0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  fn();
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  const c = process.cpuUsage(c0);
  const r = process.resourceUsage();
  return { wall, cpu: (c.user + c.system) / 1e6, faults: r.minorPageFault + r.majorPageFault - r0.minorPageFault - r0.majorPageFault, switches: r.voluntaryContextSwitches - r0.voluntaryContextSwitches };
}

const pause = (ms: number): Promise<void> => new Promise((ok) => setTimeout(ok, ms));

interface Samples {
  wall: number[][];
  cpu: number[][];
}

function line(name: string, unit: string, s: Samples, scale = 1): string {
  const f = (x: number): string => (x * scale).toFixed(scale === 1 ? 3 : 1);
  const [wb, wn, cb, cn] = [median(s.wall[0]!), median(s.wall[1]!), median(s.cpu[0]!), median(s.cpu[1]!)];
  // the spread: new/base of each round's pair (both sides ran back to back)
  const pairs = s.wall[0]!.map((b, r) => s.wall[1]![r]! / b).sort((a, b) => a - b);
  const spread = `${pairs[0]!.toFixed(3)}–${pairs[pairs.length - 1]!.toFixed(3)}`;
  return `${name.padEnd(34)} wall ${unit} ${f(wb)} → ${f(wn)} (${(wn / wb).toFixed(3)}, rounds ${spread})   cpu ${unit} ${f(cb)} → ${f(cn)} (${(cn / cb).toFixed(3)})`;
}

async function abTrain(sides: Side[], configs: TrainConfig[], layers: number, rounds: number): Promise<void> {
  console.log(`train: ${layers} layers, LoRA r 8 on q,v, AdamW; per configuration 1 warm-up and ${rounds} timed steps per side, alternated step by step (order swapped each round); medians, new/base in brackets`);
  for (const cfg of configs) {
    const steps = await Promise.all(sides.map((s) => s.trainer(cfg, layers, rounds + 1)));
    const s: Samples = { wall: [[], []], cpu: [[], []] };
    const losses: number[][] = [[], []];
    const perKernel: Map<string, number[]>[] = [new Map(), new Map()];
    for (let r = -1; r < rounds; r++) {
      for (const i of r % 2 === 0 ? [0, 1] : [1, 0]) {
        await pause(20); // the other side's pool goes idle
        let loss = 0;
        sides[i]!.kernels?.take();
        const t = timed(() => void (loss = steps[i]!()));
        losses[i]!.push(loss);
        if (r >= 0) {
          s.wall[i]!.push(t.wall);
          s.cpu[i]!.push(t.cpu);
          const k = sides[i]!.kernels?.take();
          if (k) {
            k.set('(outside kernels)', t.wall * 1e3 - [...k].filter(([n]) => !n.startsWith(' ')).reduce((a, [, v]) => a + v, 0));
            k.set('(page faults, not ms)', t.faults);
            k.set('(voluntary context switches, not ms)', t.switches);
            k.set('(cpu ms)', t.cpu * 1e3);
            for (const [n, v] of k) perKernel[i]!.set(n, [...(perKernel[i]!.get(n) ?? []), v]);
          }
        }
      }
    }
    const name = `${cfg.dtype} base, ${cfg.B} × ${cfg.T}${cfg.checkpointing ? ', checkpointing' : ''}`;
    console.log(`${line(name, 's/step', s)}   tokens/s by wall ${((cfg.B * cfg.T) / median(s.wall[0]!)).toFixed(1)} → ${((cfg.B * cfg.T) / median(s.wall[1]!)).toFixed(1)}`);
    if (sides[0]!.kernels) {
      // per kernel: median ms per step on each side, sorted by the base's share
      const names = [...new Set([...perKernel[0]!.keys(), ...perKernel[1]!.keys()])];
      const med = (i: number, n: string): number => median(perKernel[i]!.get(n) ?? [0]);
      names.sort((a, b) => med(0, b) - med(0, a));
      for (const n of names) {
        const [b, w] = [med(0, n), med(1, n)];
        if (Math.max(b, w) < 0.5) continue;
        console.log(`  ${n.padEnd(44)} ms/step ${b.toFixed(1).padStart(8)} → ${w.toFixed(1).padStart(8)}  (${b > 0 ? (w / b).toFixed(3) : '-'})  diff ${(w - b).toFixed(1)}`);
      }
    }
    if (losses.some((l) => l.some((x) => !Number.isFinite(x)))) throw new Error(`${name}: a loss is not finite (${losses.map((l) => l.join(' ')).join(' | ')})`);
    steps.length = 0; // the models go before the next configuration's
    (globalThis as { gc?: () => void }).gc?.();
  }
}

async function abGemm(sides: Side[], rounds: number): Promise<void> {
  console.log(`gemm: per shape ${rounds} rounds of a ~50 ms block of calls per side, alternated; medians per call, new/base in brackets`);
  const rand = (n: number, seed: number): Float32Array => {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) a[i] = Math.sin((i + 1) * seed) * 0.5;
    return a;
  };
  for (const sh of GEMM_SHAPES) {
    const a = rand(sh.M * sh.K, 12.9898);
    const b32 = rand(sh.K * sh.N, 78.233);
    const b = sh.bDtype === 'bf16' ? new Uint16Array(b32.buffer.slice(0)).filter((_, i) => i % 2 === 1) : b32; // bf16: the f32's high halves (little-endian)
    const c = new Float32Array(sh.M * sh.N);
    const args = { M: sh.M, N: sh.N, K: sh.K, transA: sh.transA ?? false, transB: sh.transB ?? false, bDtype: sh.bDtype === 'bf16' ? 'bf16' : 'f32' };
    const one = timed(() => sides[0]!.gemm(c, a, b, args)).wall;
    const reps = Math.max(1, Math.min(500, Math.round(0.05 / Math.max(one, 1e-5))));
    const s: Samples = { wall: [[], []], cpu: [[], []] };
    for (let r = 0; r < rounds; r++) {
      for (const i of r % 2 === 0 ? [0, 1] : [1, 0]) {
        await pause(10);
        sides[i]!.gemm(c, a, b, args); // warm
        const t = timed(() => {
          for (let k = 0; k < reps; k++) sides[i]!.gemm(c, a, b, args);
        });
        s.wall[i]!.push(t.wall / reps);
        s.cpu[i]!.push(t.cpu / reps);
      }
    }
    const gf = (sec: number): string => ((2 * sh.M * sh.N * sh.K) / sec / 1e9).toFixed(1);
    console.log(`${line(sh.label, 'µs', s, 1e6)}   GFLOP/s by wall ${gf(median(s.wall[0]!))} → ${gf(median(s.wall[1]!))}`);
  }
}

function arg(argv: string[], name: string): string | undefined {
  const i = argv.indexOf(name);
  if (i < 0) return undefined;
  const v = argv[i + 1];
  if (v === undefined || v.startsWith('--')) throw new Error(`${name} needs a value`);
  return v;
}

async function main(argv: string[]): Promise<void> {
  const base = arg(argv, '--base');
  if (!base) throw new Error('usage: node dist/bench/ab.js --base <built checkout> [--new <built checkout, default .>] [--only train|gemm] [--threads N] [--rounds N] [--layers N] [--quick] [--configs bf16:4x256,…]');
  const only = arg(argv, '--only');
  if (only !== undefined && only !== 'train' && only !== 'gemm') throw new Error(`--only must be train or gemm (got "${only}")`);
  const threads = arg(argv, '--threads') === undefined ? null : Number(arg(argv, '--threads'));
  if (threads !== null && !(Number.isInteger(threads) && threads > 0)) throw new Error('--threads must be a positive integer');
  const quick = argv.includes('--quick');
  const rounds = Number(arg(argv, '--rounds') ?? (quick ? 6 : 4));
  const layers = Number(arg(argv, '--layers') ?? (quick ? 2 : 12));
  const configs = (arg(argv, '--configs') ?? (quick ? TRAIN_QUICK : TRAIN_FULL)).split(',').map(parseConfig);
  const kernels = argv.includes('--kernels');
  const sides = [await loadSide(base, threads, kernels), await loadSide(arg(argv, '--new') ?? '.', threads, kernels)];
  console.log(`base: ${sides[0]!.label}\nnew:  ${sides[1]!.label}\nload average at start: ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  if (only !== 'gemm') await abTrain(sides, configs, layers, rounds);
  if (only !== 'train') await abGemm(sides, Math.max(rounds, 6));
  console.log(`load average at end: ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
}

await main(process.argv.slice(2));
