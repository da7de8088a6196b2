// Model benchmarks: forward throughput of a GPT-2-small-shaped llama (hidden 768, 12 layers,
// 12 heads, intermediate 2048, vocab 32000) at batch 4 × 256 with f32 and bf16 weights, and
// KV-cache generation speed at batch 1 (64-token prompt, 64 new tokens). Random weights.
// Reports the median of several timed runs with their min–max spread.
//
//   node dist/bench/models.js [--runs N] [--quick]
import { pathToFileURL } from 'node:url';
import { getBackend } from '../src/backend/index.js';
import { generate } from '../src/generate/index.js';
import { createModel, type DecoderLM } from '../src/models/index.js';
import type { DType } from '../src/tensor/tensor.js';
import { installNodePlatform } from '../src/platform.node.js';
import { BENCH_LLAMA_CONFIG } from './configs.js';

export interface ModelBenchOptions {
  /** timed runs per measurement (default 5; generation uses max(3, runs − 2)) */
  runs?: number;
  /** smaller shapes (2 layers, batch 1 × 64, 16 new tokens) for a smoke run */
  quick?: boolean;
  dtypes?: DType[];
  log?: (line: string) => void;
}

export interface BenchStat {
  name: string;
  unit: string;
  median: number;
  min: number;
  max: number;
  runs: number;
}

export { BENCH_LLAMA_CONFIG } from './configs.js';

function stat(name: string, unit: string, xs: number[]): BenchStat {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  const median = s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
  return { name, unit, median, min: s[0]!, max: s[s.length - 1]!, runs: s.length };
}

function fmt(s: BenchStat): string {
  const f = (x: number): string => (x >= 100 ? x.toFixed(0) : x.toFixed(1));
  return `${s.name.padEnd(44)} ${f(s.median).padStart(8)} ${s.unit}  (min ${f(s.min)}, max ${f(s.max)}, ${s.runs} runs)`;
}

function seconds(fn: () => void): number {
  const t0 = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

export async function runModelBench(opts: ModelBenchOptions = {}): Promise<BenchStat[]> {
  const log = opts.log ?? ((l: string) => console.log(l));
  const runs = opts.runs ?? 5;
  const quick = opts.quick ?? false;
  const config = { ...BENCH_LLAMA_CONFIG, ...(quick ? { num_hidden_layers: 2 } : {}) };
  const [B, T] = quick ? [1, 64] : [4, 256];
  const [promptLen, newTokens] = quick ? [16, 16] : [64, 64];
  const be = getBackend();
  log(`models: llama hidden ${config.hidden_size}, ${config.num_hidden_layers} layers, ${config.num_attention_heads} heads, intermediate ${config.intermediate_size}, vocab ${config.vocab_size}; backend ${be.name} (${be.threads} threads)`);
  const out: BenchStat[] = [];
  for (const dtype of opts.dtypes ?? (['f32', 'bf16'] as DType[])) {
    const model: DecoderLM = createModel(config, { seed: 0, dtype });
    const ids = new Int32Array(B * T);
    for (let i = 0; i < ids.length; i++) ids[i] = (i * 7919 + 13) % config.vocab_size;
    // forward: full logits [B, T, V], as training computes them
    model.forward(ids, B, T); // warm-up (allocates the scratch buffers)
    const fwd: number[] = [];
    for (let r = 0; r < runs; r++) fwd.push((B * T) / seconds(() => model.forward(ids, B, T)));
    const s1 = stat(`forward ${dtype} weights, batch ${B}x${T}`, 'tok/s', fwd);
    log(fmt(s1));
    out.push(s1);

    // generation at batch 1 with the KV cache (prefill excluded from tokens/s: reported apart)
    const prompt = Array.from({ length: promptLen }, (_, i) => (i * 104729 + 7) % config.vocab_size);
    generate(model, [prompt], { maxNewTokens: 4, stopTokenIds: [] }); // warm-up
    const gen: number[] = [];
    const prefill: number[] = [];
    for (let r = 0; r < Math.max(3, runs - 2); r++) {
      let tFirst = 0;
      const t0 = process.hrtime.bigint();
      const total = seconds(() => {
        generate(model, [prompt], {
          maxNewTokens: newTokens,
          stopTokenIds: [],
          onToken: () => {
            if (tFirst === 0) tFirst = Number(process.hrtime.bigint() - t0) / 1e9;
          },
        });
      });
      prefill.push(promptLen / tFirst);
      gen.push((newTokens - 1) / (total - tFirst));
    }
    const s2 = stat(`generate ${dtype} weights, batch 1, ${promptLen}+${newTokens} (decode)`, 'tok/s', gen);
    const s3 = stat(`generate ${dtype} weights, batch 1, prefill ${promptLen}`, 'tok/s', prefill);
    log(fmt(s2));
    log(fmt(s3));
    out.push(s2, s3);
  }
  return out;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  await installNodePlatform(); // its own process (a child, or run directly): the native backend, as bench/index.ts
  const args = process.argv.slice(2);
  const ri = args.indexOf('--runs');
  await runModelBench({ quick: args.includes('--quick'), ...(ri >= 0 ? { runs: Number(args[ri + 1]) } : {}) });
}
