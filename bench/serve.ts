// Serving benchmark: one base model with several LoRA adapters behind the HTTP server, on
// loopback, under a bounded concurrent load. A random llama (hidden 512, 8 layers, 8 heads,
// intermediate 1376) with the brown tokenizer (vocab 4096) and three adapters (r = 8 on
// q/k/v/o, random non-zero A and B) is written to a temporary folder; clients send
// completions (a ~32-token prompt, 32 new tokens, greedy, ignore_eos) with a fixed number in
// flight. Three runs over the same requests:
//   - mixed:      the requests in arrival order, adapters and the base interleaved, so every
//                 decoding step mixes them;
//   - one by one: the same requests grouped by adapter, one adapter's group at a time (each
//                 step carries a single adapter);
//   - serial:     one request in flight (a few requests), the unbatched baseline.
// Mixed and one-by-one runs alternate (3 times each by default). Reports aggregate
// generated tokens/s (the median run, with min and max), that run's request latency
// p50/p90/p99 and its mean batch.
//
//   node dist/bench/serve.js [--quick] [--requests N] [--concurrency C]
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { getBackend } from '../src/backend/index.js';
import { getPeftModel } from '../src/lora/peft-model.js';
import { createModel } from '../src/models/index.js';
import { loadModel, saveModel } from '../src/models/index.node.js';
import { startServer, type LorakitServer } from '../src/serve/index.js';
import { loadTokenizer } from '../src/io/tokenizer.node.js';
import { saveAdapter } from '../src/lora/files.node.js';
import { installNodePlatform } from '../src/platform.node.js';

export interface ServeBenchOptions {
  /** requests per run (default 64; quick 24) */
  requests?: number;
  /** requests in flight (default 16; quick 8) */
  concurrency?: number;
  /** new tokens per request (default 32; quick 16) */
  maxTokens?: number;
  /** alternating mixed / grouped runs; the median is reported (default 3; quick 1) */
  repeats?: number;
  /** a small model (hidden 128, 2 layers) for a smoke run */
  quick?: boolean;
  log?: (line: string) => void;
}

export interface ServeRun {
  name: string;
  requests: number;
  concurrency: number;
  seconds: number;
  tokens: number;
  tokensPerSecond: number;
  latencyMs: { p50: number; p90: number; p99: number };
  meanBatch: number;
}

interface Req {
  model: string;
  prompt: string;
}

const TOKENIZER_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'models', 'brown-tokenizer');
const WORDS = 'the of and to a in that is was he for it with as his on be at by had not are but from or have an they which one you were her all she there would their we him been has when who will more no if out so said what up its about into than them can only other new some could time these two may then do first any my now such like our over man me even most made after also did many before must through back years where much your way well down should because each just those people mr how too little state good very make world still own see men work long get here between both life being under never day same another know while last might us great old year off come since against go came right used take three'.split(' ');

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}

/** Writes the model folder and three adapters; returns their paths. */
async function writeSetup(root: string, quick: boolean): Promise<{ modelDir: string; adapters: Record<string, string> }> {
  const modelDir = path.join(root, 'model');
  fs.mkdirSync(modelDir, { recursive: true });
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) fs.copyFileSync(path.join(TOKENIZER_DIR, f), path.join(modelDir, f));
  const tok = loadTokenizer(modelDir);
  const hidden = quick ? 128 : 512;
  const model = createModel(
    {
      model_type: 'llama',
      vocab_size: tok.vocabSize,
      hidden_size: hidden,
      intermediate_size: quick ? 344 : 1376,
      num_hidden_layers: quick ? 2 : 8,
      num_attention_heads: 8,
      num_key_value_heads: 8,
      max_position_embeddings: 512,
      rms_norm_eps: 1e-6,
      tie_word_embeddings: false,
    },
    { seed: 3 },
  );
  await saveModel(model, modelDir);
  const adapters: Record<string, string> = {};
  for (const [i, name] of ['alpha', 'beta', 'gamma'].entries()) {
    const dir = path.join(root, name);
    const peft = getPeftModel(loadModel(modelDir), { r: 8, lora_alpha: 16, target_modules: ['q_proj', 'k_proj', 'v_proj', 'o_proj'], init_lora_weights: false }, 'default', { seed: 100 + i });
    saveAdapter(peft, dir, { baseModelNameOrPath: modelDir });
    adapters[name] = dir;
  }
  return { modelDir, adapters };
}

function makeRequests(n: number, models: string[]): Req[] {
  let s = 12345;
  const rand = (): number => (s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 4294967296;
  return Array.from({ length: n }, (_, i) => {
    const words = Array.from({ length: 24 + Math.floor(rand() * 12) }, () => WORDS[Math.floor(rand() * WORDS.length)]!);
    return { model: models[i % models.length]!, prompt: words.join(' ') };
  });
}

/** Sends the requests with `concurrency` in flight; returns per-request latency and tokens. */
async function drive(url: string, reqs: readonly Req[], concurrency: number, maxTokens: number): Promise<{ latencies: number[]; tokens: number }> {
  const latencies: number[] = [];
  let tokens = 0;
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < reqs.length) {
      const r = reqs[next++]!;
      const t0 = performance.now();
      const res = await fetch(`${url}/v1/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: r.model, prompt: r.prompt, max_tokens: maxTokens, temperature: 0, ignore_eos: true }),
      });
      const body = (await res.json()) as { usage?: { completion_tokens: number }; error?: { message: string } };
      if (res.status !== 200 || !body.usage) throw new Error(`serve bench: request failed with ${res.status}: ${body.error?.message ?? ''}`);
      tokens += body.usage.completion_tokens;
      latencies.push(performance.now() - t0);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, reqs.length) }, worker));
  return { latencies, tokens };
}

async function measure(srv: LorakitServer, name: string, groups: readonly (readonly Req[])[], concurrency: number, maxTokens: number): Promise<ServeRun> {
  const before = srv.scheduler.stats;
  const t0 = performance.now();
  const latencies: number[] = [];
  let tokens = 0;
  for (const g of groups) {
    const r = await drive(srv.url, g, concurrency, maxTokens);
    latencies.push(...r.latencies);
    tokens += r.tokens;
  }
  const seconds = (performance.now() - t0) / 1000;
  const after = srv.scheduler.stats;
  latencies.sort((a, b) => a - b);
  return {
    name,
    requests: latencies.length,
    concurrency,
    seconds,
    tokens,
    tokensPerSecond: tokens / seconds,
    latencyMs: { p50: percentile(latencies, 0.5), p90: percentile(latencies, 0.9), p99: percentile(latencies, 0.99) },
    meanBatch: (after.decodedRows - before.decodedRows) / Math.max(1, after.steps - before.steps),
  };
}

/** the run with the median throughput */
function median(runs: ServeRun[]): ServeRun {
  const s = [...runs].sort((a, b) => a.tokensPerSecond - b.tokensPerSecond);
  return s[(s.length - 1) >> 1]!;
}

function fmt(r: ServeRun, runs: ServeRun[]): string {
  const l = r.latencyMs;
  const tps = runs.map((x) => x.tokensPerSecond);
  const spread = runs.length > 1 ? ` (min ${Math.min(...tps).toFixed(0)}, max ${Math.max(...tps).toFixed(0)}, ${runs.length} runs)` : '';
  return (
    `${r.name.padEnd(30)} ${r.tokensPerSecond.toFixed(0).padStart(6)} tok/s${spread}  ` +
    `latency p50 ${l.p50.toFixed(0)} / p90 ${l.p90.toFixed(0)} / p99 ${l.p99.toFixed(0)} ms  ` +
    `mean batch ${r.meanBatch.toFixed(1)}  [${r.requests} requests, ${r.concurrency} in flight, ${r.tokens} tokens in ${r.seconds.toFixed(2)} s]`
  );
}

export async function runServeBench(opts: ServeBenchOptions = {}): Promise<ServeRun[]> {
  const quick = opts.quick ?? false;
  const n = opts.requests ?? (quick ? 24 : 48);
  const repeats = opts.repeats ?? (quick ? 1 : 3);
  const concurrency = opts.concurrency ?? (quick ? 8 : 16);
  const maxTokens = opts.maxTokens ?? (quick ? 16 : 32);
  const log = opts.log ?? console.log;
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'lorakit-serve-bench-'));
  let srv: LorakitServer | null = null;
  try {
    const { modelDir, adapters } = await writeSetup(root, quick);
    srv = await startServer({ model: modelDir, servedModelName: 'base', adapters, port: 0, maxBatch: concurrency, maxQueue: 4 * concurrency + 8, maxTokens: maxTokens });
    const models = ['base', ...Object.keys(adapters)];
    const reqs = makeRequests(n, models);
    log(`backend ${getBackend().name}; ${quick ? 'hidden 128, 2 layers' : 'hidden 512, 8 layers'}; base + ${models.length - 1} adapters (r 8, q/k/v/o); ~32-token prompts, ${maxTokens} new tokens, greedy`);
    await drive(srv.url, reqs.slice(0, Math.min(concurrency, n)), concurrency, 4); // warm-up
    // mixed and grouped alternate, so a busy machine slows both alike; medians are reported
    const mixedRuns: ServeRun[] = [];
    const groupedRuns: ServeRun[] = [];
    for (let i = 0; i < repeats; i++) {
      mixedRuns.push(await measure(srv, 'mixed adapters in every batch', [reqs], concurrency, maxTokens));
      groupedRuns.push(await measure(srv, 'one adapter at a time', models.map((m) => reqs.filter((r) => r.model === m)), concurrency, maxTokens));
    }
    const mixed = median(mixedRuns);
    const grouped = median(groupedRuns);
    log(fmt(mixed, mixedRuns));
    log(fmt(grouped, groupedRuns));
    const serial = await measure(srv, 'one request at a time', [reqs.slice(0, Math.max(2, Math.floor(n / 8)))], 1, maxTokens);
    log(fmt(serial, [serial]));
    log(`mixed / one adapter at a time: ${(mixed.tokensPerSecond / grouped.tokensPerSecond).toFixed(2)}x throughput; batching gain over serial: ${(mixed.tokensPerSecond / serial.tokensPerSecond).toFixed(1)}x`);
    return [mixed, grouped, serial];
  } finally {
    await srv?.close(1000);
    fs.rmSync(root, { recursive: true, force: true });
  }
}

function argValue(name: string): number | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : undefined;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  await installNodePlatform(); // its own process (a child, or run directly): the native backend, as bench/index.ts
  const o: ServeBenchOptions = { quick: process.argv.includes('--quick') };
  const r = argValue('--requests');
  const c = argValue('--concurrency');
  if (r !== undefined) o.requests = r;
  if (c !== undefined) o.concurrency = c;
  runServeBench(o).catch((e: unknown) => {
    console.error(e instanceof Error ? e.message : e);
    process.exit(1);
  });
}
