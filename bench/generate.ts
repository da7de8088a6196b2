// Generation next to llama.cpp (issue 24): `npm run bench -- --only generate`.
//
// The GPT-2-small-shaped llama (hidden 768, 12 layers, 12 heads, intermediate 2048, vocab
// 4096: the bundled tokenizer's; random weights, seed 0) written as a model folder and
// exported by lorakit to GGUF at each precision (F32, BF16, F16, Q8_0). lorakit and
// llama.cpp (node-llama-cpp 3.21.1 from tests/llama-cpp, its prebuilt CPU build) run the
// same file, the same token ids, the same thread count, in alternating rounds, each run in
// its own process:
//   - prompt processing: a 512-token prompt into an empty cache, tokens/s, after one prompt of
//     the same length (into a cache thrown away: as llama-bench warms up), so both engines'
//     buffers for that many rows exist (llama.cpp allocates them with the context); the
//     process's first such prompt is printed beside it ("first"): lorakit's after
//     model.prepareGeneration for that prompt and context, where llama.cpp creates its
//     context (both untimed);
//   - single-stream decoding: 128 greedy tokens after a 16-token prompt, tokens/s after
//     the first (the first token's time holds the prompt);
//   - batched decoding: 8 and 16 sequences of 64 greedy tokens each, submitted at once
//     (lorakit: the server's continuous-batching scheduler; llama.cpp: one context with that
//     many sequences, evaluated concurrently, which node-llama-cpp batches into one decode
//     per step): generated tokens over the wall time from submission to the last token;
//   - peak RSS of the process (getrusage), and the greedy tokens of both (they must agree);
//     where they part, an untimed rerun of the greedy decode on each side gives the top two
//     logits of every step: the margins at the first divergence are printed against how far
//     the two engines' margins differ on the agreeing steps, with llama.cpp's agreement when
//     its KV cache is F32 (lorakit's is; llama.cpp's default is F16) (greedyEvidence).
// First a STREAM-like measurement (copy and triad through the native kernels on the
// same threads) gives the machine's bandwidth; each decoding figure is also printed as the
// weight bytes it streams per second (tokens/s × weight bytes, per step for batches) as a
// share of the triad bandwidth. A load average above 0.5 per core prints a warning: the
// figures are then a shared machine's.
//
//   node dist/bench/generate.js [--rounds N] [--threads N] [--types f32,bf16,f16,q8_0] [--quick]
// docs/ARCHITECTURE.md §Decoding.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { BENCH_LLAMA_CONFIG } from './configs.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const NLC = path.join(ROOT, 'tests', 'llama-cpp', 'node_modules', 'node-llama-cpp', 'dist', 'index.js');
const TOKENIZER_FROM = path.join(ROOT, 'models', 'brown-llama');

/** bench/models.ts's llama with the bundled tokenizer's vocabulary (4096) and its BOS/EOS id */
export const GENERATE_BENCH_CONFIG = { ...BENCH_LLAMA_CONFIG, architectures: ['LlamaForCausalLM'], vocab_size: 4096, bos_token_id: 0, eos_token_id: 0 };

type GgufType = 'f32' | 'bf16' | 'f16' | 'q8_0';
const ALL_TYPES: GgufType[] = ['f32', 'bf16', 'f16', 'q8_0'];
type Engine = 'lorakit' | 'llama.cpp';

interface Shape {
  prompt: number;
  decode: number;
  batchTokens: number;
  batches: number[];
}
const FULL: Shape = { prompt: 512, decode: 128, batchTokens: 64, batches: [8, 16] };
const QUICK: Shape = { prompt: 128, decode: 32, batchTokens: 16, batches: [8] };

interface ChildJob {
  engine: Engine;
  file: string;
  type: GgufType;
  threads: number;
  shape: Shape;
}

interface ChildResult {
  /** why this engine cannot run this file (then nothing else is set) */
  unsupported?: string;
  pp: number;
  /** the process's first prompt of that length, its buffers not yet allocated */
  ppFirst: number;
  decode: number;
  batched: Record<string, number>;
  rssMB: number;
  tokens: number[];
  /** the greedy decode's top two logits at each step (untimed pass; llama.cpp: its own KV cache, F16) */
  steps: Step2[];
  /** llama.cpp only: the same greedy decode with an F32 KV cache (lorakit keeps f32), tokens and top two */
  stepsKvF32?: Step2[];
}

/** one decoding step: the top two token ids and the logit margin between them (≥ 0) */
interface Step2 {
  top: [number, number];
  margin: number;
}

function top2(row: Float32Array): Step2 {
  let a = 0, b = -1;
  for (let i = 1; i < row.length; i++) {
    if (row[i]! > row[a]!) {
      b = a;
      a = i;
    } else if (b < 0 || row[i]! > row[b]!) b = i;
  }
  return { top: [a, b], margin: row[a]! - row[b]! };
}

/** deterministic token ids in [1, V) */
function ids(n: number, salt: number, V = GENERATE_BENCH_CONFIG.vocab_size): number[] {
  return Array.from({ length: n }, (_, i) => 1 + ((i * 104729 + salt * 7919 + 13) % (V - 1)));
}

const secs = (t0: number): number => (performance.now() - t0) / 1000;

// ---------------------------------------------------------------------------------------
// children

async function runLorakit(job: ChildJob): Promise<ChildResult> {
  const { installNodePlatform } = await import('../src/platform.node.js');
  await installNodePlatform();
  const { loadModel } = await import('../src/models/index.node.js');
  const { loadTokenizer } = await import('../src/io/index.node.js');
  const { generate } = await import('../src/generate/index.js');
  const { Scheduler } = await import('../src/serve/index.js');
  const { withInferenceProducts } = await import('../src/backend/index.js');
  // bf16, f16 kept as stored; Q8_0 kept as blocks (the backend's quantTypes: gemv.cc dequantizes a few rows at a time)
  const model = loadModel(job.file, { dtype: job.type === 'f32' ? 'f32' : 'keep' });
  const tok = loadTokenizer(job.file);
  const { shape } = job;
  // warm-up: a short generation (the step buffers, the pool's threads)
  generate(model, [ids(8, 99)], { maxNewTokens: 4, stopTokenIds: [] });
  // what llama.cpp's createContext below does for its batch size and context (buffers for
  // them), untimed there too: the step buffers, kernel scratch and a cache's arrays
  model.prepareGeneration(1, shape.prompt, shape.prompt + 64);

  // as generate() runs a prompt (its cache released after, as generate() does); the first
  // (other tokens) into a fresh cache (ppFirst), then the timed one
  const runPrompt = (seed: number): number => {
    const prompt = Int32Array.from(ids(shape.prompt, seed));
    const cache = model.createCache();
    const t0 = performance.now();
    withInferenceProducts(() => model.forward(prompt, 1, prompt.length, { cache, lastTokenOnly: true }));
    const r = shape.prompt / secs(t0);
    cache.release();
    return r;
  };
  const ppFirst = runPrompt(3);
  const pp = runPrompt(1);
  let t0: number;

  let tFirst = 0;
  t0 = performance.now();
  const [res] = generate(model, [ids(16, 2)], {
    maxNewTokens: shape.decode,
    stopTokenIds: [],
    onToken: () => {
      if (tFirst === 0) tFirst = performance.now();
    },
  });
  const decode = (shape.decode - 1) / ((performance.now() - tFirst) / 1000);

  const batched: Record<string, number> = {};
  for (const B of shape.batches) {
    const sched = new Scheduler(model, { tokenizer: tok, maxBatch: B });
    t0 = performance.now();
    const jobs = Array.from({ length: B }, (_, b) =>
      sched.submit([{ prompt: ids(16, 10 + b), adapter: null, maxTokens: shape.batchTokens, sampling: { temperature: 0 }, seed: 0, stopTokenIds: [] }]),
    );
    const results = await Promise.all(jobs.map((j) => j.results));
    const n = results.reduce((s, r) => s + r[0]!.tokens.length, 0);
    batched[String(B)] = n / secs(t0);
    await sched.shutdown();
  }
  const rssMB = process.resourceUsage().maxRSS / 1024;
  // untimed: the same greedy decode step by step (generate's calls: the prompt, then one token
  // at a time on the cache), keeping the top two logits of each step
  const steps: Step2[] = [];
  const kv = model.createCache();
  let ids1 = Int32Array.from(ids(16, 2));
  for (let s = 0; s < shape.decode; s++) {
    const st = top2(withInferenceProducts(() => model.forward(ids1, 1, ids1.length, { cache: kv, lastTokenOnly: true })));
    steps.push(st);
    ids1 = Int32Array.of(st.top[0]);
  }
  return { pp, ppFirst, decode, batched, rssMB, tokens: res!.tokens, steps };
}

interface NlcSequence {
  evaluate(tokens: number[], opts: { temperature: number }): AsyncGenerator<number, void, void>;
  evaluateWithMetadata(tokens: number[], meta: { probabilities: true }, opts: { temperature: number }): AsyncGenerator<{ token: number; probabilities: Map<number, number> }, void, void>;
  evaluateWithoutGeneratingNewTokens(tokens: number[]): Promise<void>;
  dispose(): void;
}
interface NlcContext {
  getSequence(): NlcSequence;
  dispose(): Promise<void>;
}
interface NodeLlamaCpp {
  getLlama(opts: { gpu: false; build: 'never'; logLevel: 'error'; maxThreads: number }): Promise<{
    loadModel(opts: { modelPath: string }): Promise<{
      createContext(opts: { contextSize: number; threads: number; sequences?: number; batchSize?: number; experimentalKvCacheKeyType?: string; experimentalKvCacheValueType?: string }): Promise<NlcContext>;
      dispose(): Promise<void>;
    }>;
    dispose(): Promise<void>;
  }>;
}

async function greedyLlama(seq: NlcSequence, prompt: number[], n: number, onFirst?: () => void): Promise<number[]> {
  const out: number[] = [];
  for await (const t of seq.evaluate(prompt, { temperature: 0 })) {
    if (out.length === 0) onFirst?.();
    out.push(t);
    if (out.length >= n) break;
  }
  return out;
}

/** llama.cpp's greedy decode with the top two of each step (ln p1 − ln p2 is the logit margin) */
async function llamaSteps(seq: NlcSequence, prompt: number[], n: number): Promise<Step2[]> {
  const steps: Step2[] = [];
  for await (const r of seq.evaluateWithMetadata(prompt, { probabilities: true }, { temperature: 0 })) {
    const best = [...r.probabilities.entries()].sort((x, y) => y[1] - x[1]).slice(0, 2);
    steps.push({ top: [r.token, best.find(([t]) => t !== r.token)![0]], margin: Math.log(r.probabilities.get(r.token)!) - Math.log(best.find(([t]) => t !== r.token)![1]) });
    if (steps.length >= n) break;
  }
  return steps;
}

async function runLlama(job: ChildJob): Promise<ChildResult> {
  const { getLlama } = (await import(pathToFileURL(NLC).href)) as NodeLlamaCpp;
  const llama = await getLlama({ gpu: false, build: 'never', logLevel: 'error', maxThreads: job.threads });
  let lm;
  try {
    lm = await llama.loadModel({ modelPath: job.file });
  } catch (e) {
    await llama.dispose();
    return { unsupported: `llama.cpp does not load it: ${e instanceof Error ? e.message : String(e)}` } as ChildResult;
  }
  const { shape } = job;
  const threads = job.threads;
  let ctx = await lm.createContext({ contextSize: shape.prompt + 64, threads, batchSize: shape.prompt });
  {
    const w = ctx.getSequence(); // warm-up
    await greedyLlama(w, ids(8, 99), 4);
    w.dispose();
  }
  // the first prompt (other tokens, so nothing of it can be reused) then the timed one
  const runPrompt = async (seed: number): Promise<number> => {
    const seq = ctx.getSequence();
    const t0 = performance.now();
    await seq.evaluateWithoutGeneratingNewTokens(ids(shape.prompt, seed));
    const r = shape.prompt / secs(t0);
    seq.dispose();
    return r;
  };
  const ppFirst = await runPrompt(3);
  const pp = await runPrompt(1);
  let seq: NlcSequence;
  let t0: number;

  seq = ctx.getSequence();
  let tFirst = 0;
  const tokens = await greedyLlama(seq, ids(16, 2), shape.decode, () => (tFirst = performance.now()));
  const decode = (shape.decode - 1) / ((performance.now() - tFirst) / 1000);
  seq.dispose();
  await ctx.dispose();

  const batched: Record<string, number> = {};
  for (const B of shape.batches) {
    ctx = await lm.createContext({ contextSize: B * (16 + shape.batchTokens + 16), threads, sequences: B });
    const seqs = Array.from({ length: B }, () => ctx.getSequence());
    t0 = performance.now();
    const outs = await Promise.all(seqs.map((s, b) => greedyLlama(s, ids(16, 10 + b), shape.batchTokens)));
    batched[String(B)] = outs.reduce((s, o) => s + o.length, 0) / secs(t0);
    for (const s of seqs) s.dispose();
    await ctx.dispose();
  }
  const rssMB = process.resourceUsage().maxRSS / 1024;
  // untimed: the greedy decode again with the top two of each step, with llama.cpp's default
  // F16 KV cache and with an F32 one
  const evidence = async (kvType?: string): Promise<Step2[]> => {
    const c = await lm.createContext({ contextSize: shape.decode + 32, threads, ...(kvType ? { experimentalKvCacheKeyType: kvType, experimentalKvCacheValueType: kvType } : {}) });
    const s = c.getSequence();
    const out = await llamaSteps(s, ids(16, 2), shape.decode);
    s.dispose();
    await c.dispose();
    return out;
  };
  const steps = await evidence();
  const stepsKvF32 = await evidence('F32');
  await lm.dispose();
  await llama.dispose();
  return { pp, ppFirst, decode, batched, rssMB, tokens, steps, stepsKvF32 };
}

// ---------------------------------------------------------------------------------------
// the parent

interface BenchArgs {
  rounds: number;
  threads: number;
  types: GgufType[];
  quick: boolean;
}

export function parseGenerateArgs(argv: string[]): BenchArgs {
  const val = (name: string): string | undefined => {
    const i = argv.indexOf(name);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const num = (name: string, d: number): number => {
    const v = val(name);
    if (v === undefined) return d;
    const n = Number(v);
    if (!(Number.isInteger(n) && n >= 1)) throw new Error(`${name} must be an integer ≥ 1, got "${v}"`);
    return n;
  };
  const types = (val('--types') ?? ALL_TYPES.join(',')).split(',') as GgufType[];
  for (const t of types) if (!ALL_TYPES.includes(t)) throw new Error(`--types: "${t}" is not one of ${ALL_TYPES.join(', ')}`);
  const quick = argv.includes('--quick');
  return { rounds: num('--rounds', quick ? 1 : 3), threads: num('--threads', 2), types, quick };
}

interface Bandwidth {
  copy: number;
  triad: number;
  threads: number;
}

/** STREAM-like copy and triad (y += a·x) through the native kernels, best of 5, GB/s (in a child: LORAKIT_THREADS) */
async function streamBandwidth(): Promise<Bandwidth> {
  const { installNodePlatform } = await import('../src/platform.node.js');
  await installNodePlatform();
  const { getBackend } = await import('../src/backend/index.js');
  const be = getBackend();
  const n = 1 << 24; // 64 MiB per array: far beyond the caches
  const a = be.memory.alloc(n), b = be.memory.alloc(n);
  be.memory.view(a).fill(1);
  be.memory.view(b).fill(2);
  const cols = 4096, rows = n / cols;
  let copy = 0, triad = 0;
  for (let r = 0; r < 5; r++) {
    let t0 = performance.now();
    be.copy2d(b, a, { rows, cols, dstOffset: 0, dstStride: cols, srcOffset: 0, srcStride: cols });
    copy = Math.max(copy, (2 * 4 * n) / secs(t0) / 1e9);
    t0 = performance.now();
    be.axpy(b, a, 0.5);
    triad = Math.max(triad, (3 * 4 * n) / secs(t0) / 1e9);
  }
  return { copy, triad, threads: be.threads };
}

function median(xs: number[]): number {
  const s = [...xs].sort((p, q) => p - q);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function runChild<R>(job: ChildJob | { engine: 'stream'; threads: number }): R {
  const env = { ...process.env, LORAKIT_THREADS: String(job.threads) };
  const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--child', JSON.stringify(job)], { env, encoding: 'utf8', maxBuffer: 1 << 24 });
  const line = r.stdout.split('\n').find((l) => l.startsWith('RESULT '));
  const what = 'file' in job ? `the ${job.engine} run on ${path.basename(job.file)}` : 'the bandwidth run';
  if (r.status !== 0 || !line) throw new Error(`generate bench: ${what} failed (status ${r.status ?? r.signal}):\n${r.stderr.slice(-2000)}`);
  return JSON.parse(line.slice(7)) as R;
}

/** bytes of the weights a decoding step streams (every matrix, the head included; the embedding rows read are negligible) */
function weightBytes(type: GgufType): number {
  const c = GENERATE_BENCH_CONFIG;
  const perLayer = 4 * c.hidden_size * c.hidden_size + 3 * c.hidden_size * c.intermediate_size;
  const n = c.num_hidden_layers * perLayer + c.vocab_size * c.hidden_size;
  const bytesPer = type === 'f32' ? 4 : type === 'q8_0' ? 34 / 32 : 2;
  return n * bytesPer;
}

async function makeFiles(dir: string, types: GgufType[], log: (l: string) => void): Promise<Record<string, string>> {
  const { createModel } = await import('../src/models/index.js');
  const { saveModel } = await import('../src/models/index.node.js');
  const folder = path.join(dir, 'model');
  const model = createModel(GENERATE_BENCH_CONFIG, { seed: 0, dtype: 'f32' });
  await saveModel(model, folder);
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) fs.copyFileSync(path.join(TOKENIZER_FROM, f), path.join(folder, f));
  const files: Record<string, string> = {};
  for (const t of types) {
    const out = path.join(dir, `bench-${t}.gguf`);
    const r = spawnSync(process.execPath, [path.join(ROOT, 'bin', 'lorakit.js'), 'export', '--format', 'gguf', '--model', folder, '--type', t, '--out', out], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`generate bench: lorakit export --type ${t} failed:\n${r.stderr}`);
    files[t] = out;
  }
  log(`generate: model folder and GGUF exports (${types.join(', ')}) in ${dir}`);
  return files;
}

/**
 * The greedy tokens of both engines side by side and, where they part, why: the top two
 * logits of each at the first divergence, against how far the two engines' margins differ
 * where they agree (the precision's rounding: llama.cpp's F16 KV cache, its accumulation
 * order), and llama.cpp's agreement with an F32 KV cache (lorakit's is f32).
 */
export function greedyEvidence(lk: Pick<ChildResult, 'tokens' | 'steps'>, lc: Pick<ChildResult, 'tokens' | 'steps' | 'stepsKvF32'>): string[] {
  const agree = (x: number[], y: number[]): number => {
    let n = 0;
    while (n < Math.min(x.length, y.length) && x[n] === y[n]) n++;
    return n;
  };
  const a = lk.tokens, b = lc.tokens, n = a.length;
  const same = agree(a, b);
  const out: string[] = [];
  const kv32 = lc.stepsKvF32 ? agree(a, lc.stepsKvF32.map((s) => s.top[0])) : -1;
  const kvNote = kv32 >= 0 ? `; llama.cpp with an F32 KV cache: ${kv32 === n ? `all ${n} agree` : `the first ${kv32}`}` : '';
  if (same === n && b.length === n) {
    out.push(`greedy tokens: all ${n} agree${kvNote}`);
    return out;
  }
  out.push(`greedy tokens: agree for the first ${same} of ${n} (lorakit ${a.slice(same, same + 4).join(',')}… llama.cpp ${b.slice(same, same + 4).join(',')}…)${kvNote}`);
  const sl = lk.steps[same], sc = lc.steps[same];
  if (!sl || !sc) return out;
  // where both chose the same token, how much the two margins differ: the engines' rounding
  const diffs = lk.steps.slice(0, same).map((s, i) => Math.abs(s.margin - lc.steps[i]!.margin)).sort((p, q) => p - q);
  const worst = diffs.length ? diffs[diffs.length - 1]! : 0, med = diffs.length ? diffs[diffs.length >> 1]! : 0;
  const samePair = sl.top[0] === sc.top[1] && sl.top[1] === sc.top[0];
  // each engine's margin at the split, seen from the other's order: lorakit's (its token − llama.cpp's), llama.cpp's likewise
  const tie = samePair && sl.margin + sc.margin <= 2 * worst;
  const g = (x: number): string => x.toExponential(1);
  out.push(
    `  at step ${same + 1}: lorakit's top two ${sl.top.join('/')} (logit margin ${g(sl.margin)}), llama.cpp's ${sc.top.join('/')} (margin ${g(sc.margin)}); ` +
      `over the ${same} agreeing steps the engines' margins differ by ${g(med)} (median), up to ${g(worst)}: ` +
      (tie ? 'a near-tie, the same two tokens swapped within the engines\' rounding' : samePair ? 'the same two tokens swapped, but by more than the engines\' rounding elsewhere: look for a real difference' : 'NOT the same pair of tokens: look for a real difference'),
  );
  return out;
}

export async function runGenerateBench(args: BenchArgs, log: (l: string) => void = (l) => console.log(l)): Promise<void> {
  const cores = os.availableParallelism();
  const load = os.loadavg()[0]!;
  if (load > 0.5 * cores) log(`WARNING: load average ${load.toFixed(1)} on ${cores} cores: the machine is busy, llama.cpp's ${args.threads}-thread decoding collapses when a core is taken; figures are a shared machine's`);
  const shape = args.quick ? QUICK : FULL;
  const bw = runChild<Bandwidth>({ engine: 'stream', threads: args.threads });
  log(`bandwidth (STREAM-like, ${bw.threads} threads, 64 MiB arrays, best of 5): copy ${bw.copy.toFixed(1)} GB/s, triad ${bw.triad.toFixed(1)} GB/s`);
  if (!fs.existsSync(NLC)) log(`node-llama-cpp is not installed (npm ci --prefix tests/llama-cpp --ignore-scripts): lorakit alone`);
  const engines: Engine[] = fs.existsSync(NLC) ? ['lorakit', 'llama.cpp'] : ['lorakit'];
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lorakit-genbench-'));
  try {
    const files = await makeFiles(dir, args.types, log);
    const c = GENERATE_BENCH_CONFIG;
    log(`llama hidden ${c.hidden_size}, ${c.num_hidden_layers} layers, ${c.num_attention_heads} heads, intermediate ${c.intermediate_size}, vocab ${c.vocab_size}; ${args.threads} threads each; ${args.rounds} rounds, engines alternating, each run in its own process`);
    log(`prompt ${shape.prompt} tokens; decode ${shape.decode} tokens after a 16-token prompt; batches of ${shape.batches.join(' and ')} sequences × ${shape.batchTokens} tokens`);
    const got = new Map<string, ChildResult[]>();
    for (let r = 0; r < args.rounds; r++) {
      for (const type of args.types) {
        const order = r % 2 ? [...engines].reverse() : engines;
        for (const engine of order) {
          const res = runChild<ChildResult>({ engine, file: files[type]!, type, threads: args.threads, shape });
          const key = `${engine}|${type}`;
          got.set(key, [...(got.get(key) ?? []), res]);
        }
      }
      log(`  round ${r + 1}/${args.rounds} done`);
    }
    const f = (x: number): string => (x >= 100 ? x.toFixed(0) : x.toFixed(1));
    const cell = (rs: ChildResult[], pick: (r: ChildResult) => number): string => {
      const xs = rs.map(pick);
      return `${f(median(xs))} (${f(Math.min(...xs))}–${f(Math.max(...xs))})`;
    };
    for (const type of args.types) {
      log(`\n${type.toUpperCase()} (weights ${(weightBytes(type) / 1e6).toFixed(0)} MB):`);
      const per = engines.map((e) => [e, got.get(`${e}|${type}`)!] as const);
      for (const [e, rs] of per) {
        if (rs[0]!.unsupported) {
          log(`  ${e.padEnd(10)} not yet supported: ${rs[0]!.unsupported}`);
          continue;
        }
        const share = (tps: number, rows: number): string => `${((100 * tps * weightBytes(type)) / rows / 1e9 / bw.triad).toFixed(0)}%`;
        const dec = median(rs.map((x) => x.decode));
        const parts = [`pp${shape.prompt} ${cell(rs, (x) => x.pp)} tok/s (first ${cell(rs, (x) => x.ppFirst)})`, `decode ${cell(rs, (x) => x.decode)} tok/s [${share(dec, 1)} of triad]`];
        for (const B of shape.batches) {
          const b = median(rs.map((x) => x.batched[String(B)]!));
          parts.push(`batch ${B}: ${cell(rs, (x) => x.batched[String(B)]!)} tok/s [${share(b, B)}]`);
        }
        parts.push(`peak RSS ${f(median(rs.map((x) => x.rssMB)))} MB`);
        log(`  ${e.padEnd(10)} ${parts.join('; ')}`);
      }
      const lk = got.get(`lorakit|${type}`)!;
      const lc = got.get(`llama.cpp|${type}`);
      if (!lc || lk[0]!.unsupported || lc[0]!.unsupported) continue;
      const ratio = (pick: (r: ChildResult) => number): string => (median(lk.map(pick)) / median(lc.map(pick))).toFixed(2) + '×';
      const ratios = [`pp ${ratio((x) => x.pp)}`, `decode ${ratio((x) => x.decode)}`, ...shape.batches.map((B) => `batch ${B} ${ratio((x) => x.batched[String(B)]!)}`), `peak RSS ${ratio((x) => x.rssMB)}`];
      log(`  lorakit / llama.cpp: ${ratios.join(', ')}${load > 0.5 * cores ? ' (shared machine)' : ''}`);
      for (const l of greedyEvidence(lk[0]!, lc[0]!)) log(`  ${l}`);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const isMain = import.meta.url === pathToFileURL(process.argv[1] ?? '').href;
if (isMain && process.argv[2] === '--child') {
  const job = JSON.parse(process.argv[3]!) as ChildJob | { engine: 'stream' };
  const res = job.engine === 'stream' ? await streamBandwidth() : job.engine === 'lorakit' ? await runLorakit(job) : await runLlama(job);
  console.log(`RESULT ${JSON.stringify(res)}`);
  process.exit(0);
} else if (isMain) {
  await runGenerateBench(parseGenerateArgs(process.argv.slice(2)));
}
