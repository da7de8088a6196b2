// Pretrains the bundled base model (models/brown-llama): a small llama-family LM trained from
// scratch with lorakit's own train() on the Brown pretraining documents (the held-out ones are
// never seen), written as a Hugging Face folder in bf16 with the Brown tokenizer.
//
// Run after the build (not part of the lorakit command):
//   LORAKIT_THREADS=2 node dist/src/corpus/pretrain.js --out models/brown-llama --steps 1200 --run /tmp/brown-llama-run
// --run <folder> holds checkpoints, metrics.jsonl, loss.svg (default: a folder under the OS temp
// dir, never inside the model folder); --resume <run or checkpoint folder> continues an
// interrupted run exactly.
//
// Data: each document's text is tokenized and followed by EOS (<|endoftext|>, id 0), then cut into
// pieces of at most `seqLen` tokens; the pieces are packed into rows of `seqLen` tokens (first-fit
// decreasing), attention staying within each piece. Deterministic: fixed init seed, fixed data
// seed, and the native kernels give the same results run to run for a fixed thread count.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { getBackend } from '../backend/index.js';
import { nativeBackend } from '../backend/native/select.js';
import { BatchIterator, type Batch } from '../data/batch.js';
import type { Example } from '../data/dataset.js';
import { generate } from '../generate/generate.js';
import { writeFileAtomic } from '../io/atomic.node.js';
import { Tokenizer } from '../io/tokenizer.js';
import type { JsonObject } from '../models/config.js';
import type { DecoderLM } from '../models/decoder.js';
import { createModel } from '../models/load.js';
import { saveModel } from '../models/load.node.js';
import { createOptimizer } from '../train/optimizer.js';
import { causalLmObjective, type TrainResult } from '../train/trainer.js';
import { train } from '../train/trainer.node.js';
import { documentText, readBrownCorpus, splitBrown, type BrownDocument } from './brown.js';
import { commas } from '../io/format.js';
import { loadTokenizer } from '../io/tokenizer.node.js';

/** The bundled model's architecture (vocab_size comes from the tokenizer). */
export const BROWN_LLAMA_CONFIG: Readonly<JsonObject> = Object.freeze({
  model_type: 'llama',
  architectures: ['LlamaForCausalLM'],
  vocab_size: 4096,
  hidden_size: 256,
  intermediate_size: 688,
  num_hidden_layers: 4,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  max_position_embeddings: 512,
  rms_norm_eps: 1e-5,
  rope_theta: 10000,
  hidden_act: 'silu',
  initializer_range: 0.02,
  tie_word_embeddings: true,
  attention_bias: false,
  mlp_bias: false,
  bos_token_id: 0,
  eos_token_id: 0,
  pad_token_id: 0,
});

export const DEFAULT_TOKENIZER_DIR = 'models/brown-tokenizer';

export interface PretrainOptions {
  /** final model folder (HF layout); omit to only train */
  out?: string;
  /** run folder: checkpoints, metrics.jsonl, loss.svg, report.md (default: none) */
  runDir?: string;
  /** continue from a run folder or checkpoint */
  resume?: string;
  /** optimizer steps (default 1000) */
  steps?: number;
  /** rows per step (default 16) */
  batchSize?: number;
  /** row length in tokens (default 256) */
  seqLen?: number;
  /** peak learning rate (default 3e-3), cosine decay to minLrRatio after warmup */
  lr?: number;
  warmupSteps?: number;
  minLrRatio?: number;
  weightDecay?: number;
  /** init seed and data-order seed (default 1234) */
  seed?: number;
  /** overrides of BROWN_LLAMA_CONFIG (tests use a tiny model) */
  config?: JsonObject;
  tokenizerDir?: string;
  /** documents to use (default: the whole Brown corpus); held-out ones are always excluded from training */
  docs?: readonly BrownDocument[];
  /** evaluate on held-out rows every this many steps (default steps / 10) */
  evalEvery?: number;
  /** held-out rows used per evaluation (default 64) */
  evalRows?: number;
  progress?: boolean;
  /** write sample generations into PRETRAINING.md (default true when out is given) */
  samples?: boolean;
  /** the command line recorded in PRETRAINING.md */
  command?: string;
}

export interface PretrainReport {
  config: JsonObject;
  parameters: number;
  trainDocuments: number;
  heldOutDocuments: number;
  trainTokens: number;
  heldOutTokens: number;
  trainRows: number;
  steps: number;
  batchSize: number;
  seqLen: number;
  tokensSeen: number;
  epochs: number;
  seconds: number;
  tokensPerSecond: number;
  finalTrainLoss: number;
  /** mean training loss of the last 20 steps */
  finalTrainLossAvg: number;
  /** loss on the evaluation rows (the first `evalRows` held-out rows) at the last step */
  heldOutLoss: number | null;
  heldOutPerplexity: number | null;
  heldOutEvalTargets: number;
  /** loss over every held-out token (computed at the end when writing a folder) */
  heldOutLossAll: number | null;
  heldOutTargetsAll: number;
  threads: string;
  kernels: string;
  losses: number[];
  samples: { prompt: string; mode: string; text: string }[];
  result: TrainResult;
}

/** Tokenizes each document (plain text + EOS) and cuts it into pieces of at most seqLen tokens. */
export function documentPieces(docs: readonly BrownDocument[], tokenizer: Tokenizer, seqLen: number): Example[] {
  const eos = tokenizer.eosTokenIds[0] ?? 0;
  const out: Example[] = [];
  for (const d of docs) {
    const ids = tokenizer.encode(documentText(d), { addSpecialTokens: false });
    ids.push(eos);
    for (let s = 0; s < ids.length; s += seqLen) {
      const piece = Int32Array.from(ids.slice(s, s + seqLen));
      if (piece.length < 2) continue; // nothing to predict
      out.push({ ids: piece, targetMask: new Uint8Array(piece.length).fill(1), file: d.id, line: s / seqLen + 1, fullLength: piece.length });
    }
  }
  return out;
}

/** Held-out evaluation batches: the held-out pieces packed the same way, in a fixed order. */
export function heldOutBatches(examples: readonly Example[], seqLen: number, rows: number, batchSize = 8): Batch[] {
  const it = new BatchIterator(examples, { batchSize, order: 'sequential', pack: true, maxLength: seqLen });
  const out: Batch[] = [];
  for (const b of it.epochIterator(0)) {
    if (out.length * batchSize >= rows) break;
    out.push(b);
  }
  return out;
}

/** Mean next-token loss (nats) of a model over batches. */
export function meanLoss(model: DecoderLM, batches: readonly Batch[]): { loss: number; targets: number } {
  const obj = causalLmObjective(model);
  const was = model.training;
  model.eval();
  let sum = 0;
  let n = 0;
  for (const b of batches) {
    const r = obj.evaluate(b);
    sum += r.lossSum;
    n += r.count;
  }
  model.train(was);
  return { loss: sum / n, targets: n };
}

/** Which kernels run: "native avx2+fma, N threads" or "ref (TypeScript)". */
export function kernelDescription(): string {
  const be = getBackend();
  const n = nativeBackend();
  if (n && be === n) return `native ${n.isa} kernels, ${n.threads} threads`;
  return 'ref (plain TypeScript) backend';
}

export const SAMPLE_PROMPTS: readonly string[] = [
  'The city council voted',
  'She looked at him and said',
  'In the first place, the',
  'The results of the experiment',
];

function sampleGenerations(model: DecoderLM, tokenizer: Tokenizer, maxNewTokens: number): PretrainReport['samples'] {
  const out: PretrainReport['samples'] = [];
  for (const prompt of SAMPLE_PROMPTS) {
    const ids = tokenizer.encode(prompt, { addSpecialTokens: false });
    const greedy = generate(model, [ids], { maxNewTokens, tokenizer })[0]!;
    out.push({ prompt, mode: 'greedy', text: greedy.text });
    const sampled = generate(model, [ids], { maxNewTokens, tokenizer, temperature: 0.8, topP: 0.95, seed: 7 })[0]!;
    out.push({ prompt, mode: 'sampled (T 0.8, top-p 0.95, seed 7)', text: sampled.text });
  }
  return out;
}

/** Trains the model and (with `out`) writes the model folder and PRETRAINING.md. */
export async function pretrain(opts: PretrainOptions = {}): Promise<{ model: DecoderLM; report: PretrainReport }> {
  const seqLen = opts.seqLen ?? 256;
  const steps = opts.steps ?? 1000;
  const batchSize = opts.batchSize ?? 16;
  const lr = opts.lr ?? 3e-3;
  const seed = opts.seed ?? 1234;
  const tokenizerDir = opts.tokenizerDir ?? DEFAULT_TOKENIZER_DIR;
  const tokenizer = loadTokenizer(tokenizerDir);
  const config: JsonObject = { ...BROWN_LLAMA_CONFIG, ...(opts.config ?? {}) };
  const docs = opts.docs ?? readBrownCorpus();
  const { train: trainDocs, heldOut } = splitBrown(docs);
  const trainEx = documentPieces(trainDocs, tokenizer, seqLen);
  const heldEx = documentPieces(heldOut, tokenizer, seqLen);
  if (trainEx.length === 0) throw new Error('pretrain: no training documents (all given documents are held out)');
  const data = new BatchIterator(trainEx, { batchSize, order: 'shuffle', seed, pack: true, maxLength: seqLen, dropLast: true });
  const valid = heldEx.length > 0 ? heldOutBatches(heldEx, seqLen, opts.evalRows ?? 64) : null;

  const model = createModel(config, { seed });
  model.requiresGrad(true);
  model.train(true);
  const optimizer = createOptimizer(model.trainableParameters(), { lr, weightDecay: opts.weightDecay ?? 0.1, betas: [0.9, 0.95] });
  const parameters = model.parameters().reduce((n, p) => n + p.value.size, 0);
  const threads = process.env['LORAKIT_THREADS'] ?? '(unset: all cores)';
  const kernels = kernelDescription();
  const result = await train({
    model,
    optimizer,
    data: { train: data, valid },
    args: {
      steps,
      lr,
      schedule: 'cosine',
      warmupSteps: opts.warmupSteps ?? Math.max(1, Math.round(steps * 0.05)),
      minLrRatio: opts.minLrRatio ?? 0.1,
      maxGradNorm: 1,
      evalEvery: opts.evalEvery ?? Math.max(1, Math.round(steps / 10)),
      saveEvery: Math.max(1, Math.round(steps / 10)),
      keepCheckpoints: 1,
      ...(opts.runDir ? { outDir: opts.runDir } : {}),
      ...(opts.resume ? { resume: opts.resume } : {}),
      progress: opts.progress ?? true,
      config: { model: config, batchSize, seqLen, seed, threads, kernels, tokenizer: tokenizerDir },
    },
  });
  model.eval();
  const trainRows = result.history.filter((h) => h.type === 'train');
  const losses = trainRows.map((h) => h.loss);
  const tail = losses.slice(-20);
  const tokensSeen = trainRows.reduce((n, h) => n + h.tokens, 0);
  const trainTokens = trainEx.reduce((n, e) => n + e.ids.length, 0);
  const report: PretrainReport = {
    config,
    parameters,
    trainDocuments: trainDocs.length,
    heldOutDocuments: heldOut.length,
    trainTokens,
    heldOutTokens: heldEx.reduce((n, e) => n + e.ids.length, 0),
    trainRows: data.units.length,
    steps: result.steps,
    batchSize,
    seqLen,
    tokensSeen,
    epochs: tokensSeen / trainTokens,
    seconds: result.seconds,
    tokensPerSecond: result.tokensPerSecond,
    finalTrainLoss: result.finalLoss,
    finalTrainLossAvg: tail.reduce((a, b) => a + b, 0) / Math.max(1, tail.length),
    heldOutLoss: result.finalValidLoss,
    heldOutPerplexity: result.finalValidLoss === null ? null : Math.exp(result.finalValidLoss),
    heldOutEvalTargets: valid ? valid.reduce((n, b) => n + b.targets, 0) : 0,
    heldOutLossAll: null,
    heldOutTargetsAll: 0,
    threads,
    kernels,
    losses,
    samples: [],
    result,
  };
  if (opts.out) {
    if (heldEx.length > 0) {
      const all = meanLoss(model, heldOutBatches(heldEx, seqLen, Infinity));
      report.heldOutLossAll = all.loss;
      report.heldOutTargetsAll = all.targets;
    }
    if (opts.samples ?? true) report.samples = sampleGenerations(model, tokenizer, 40);
    await writeModelFolder(model, opts.out, tokenizerDir, Number(config['max_position_embeddings']));
    const md = pretrainingMarkdown(report, opts);
    await writeFileAtomic(path.join(opts.out, 'PRETRAINING.md'), md);
    if (opts.runDir) {
      for (const f of ['loss.svg', 'metrics.jsonl']) {
        const src = path.join(opts.runDir, f);
        if (fs.existsSync(src) && fs.statSync(src).size < 2 * 2 ** 20) await writeFileAtomic(path.join(opts.out, f), fs.readFileSync(src));
      }
    }
  }
  return { model, report };
}

/** config.json + model.safetensors (bf16), the tokenizer files (model_max_length = context) and generation_config.json. */
export async function writeModelFolder(model: DecoderLM, out: string, tokenizerDir: string, contextLength: number): Promise<void> {
  await saveModel(model, out, { dtype: 'bf16' });
  await writeFileAtomic(path.join(out, 'tokenizer.json'), fs.readFileSync(path.join(tokenizerDir, 'tokenizer.json')));
  const tc = JSON.parse(fs.readFileSync(path.join(tokenizerDir, 'tokenizer_config.json'), 'utf8')) as JsonObject;
  tc['model_max_length'] = contextLength;
  await writeFileAtomic(path.join(out, 'tokenizer_config.json'), JSON.stringify(tc, null, 2) + '\n');
  const gen = { bos_token_id: 0, eos_token_id: [0, 2], pad_token_id: 0, max_length: contextLength };
  await writeFileAtomic(path.join(out, 'generation_config.json'), JSON.stringify(gen, null, 2) + '\n');
}

function fmt(x: number | null, d = 3): string {
  return x === null || !Number.isFinite(x) ? '–' : x.toFixed(d);
}

/** PRETRAINING.md for a finished run. */
export function pretrainingMarkdown(r: Omit<PretrainReport, 'result' | 'losses'>, opts: PretrainOptions): string {
  const c = r.config;
  const cmd = opts.command ?? `LORAKIT_THREADS=${process.env['LORAKIT_THREADS'] ?? 2} node dist/src/corpus/pretrain.js --out ${opts.out} --steps ${r.steps}`;
  const lines = [
    '# brown-llama: how it was pretrained',
    '',
    'A small llama-family language model trained from scratch by `src/corpus/pretrain.ts` with',
    "lorakit's own `train()` on the Brown corpus pretraining documents. The held-out documents",
    '(`HELD_OUT_IDS` in src/corpus/brown.ts) were never trained on; they are the held-out set below',
    'and the material of `lorakit demo`.',
    '',
    '## Model',
    '',
    '| | |',
    '|---|---|',
    `| family | llama (RMSNorm, rotary, SwiGLU, grouped-query attention) |`,
    `| hidden / intermediate | ${c['hidden_size']} / ${c['intermediate_size']} |`,
    `| layers / heads / kv heads | ${c['num_hidden_layers']} / ${c['num_attention_heads']} / ${c['num_key_value_heads']} |`,
    `| vocabulary | ${c['vocab_size']} (byte-level BPE, models/brown-tokenizer) |`,
    `| tied embeddings | ${String(c['tie_word_embeddings'])} |`,
    `| max_position_embeddings | ${c['max_position_embeddings']} (trained on rows of ${r.seqLen} tokens) |`,
    `| parameters | ${commas(r.parameters)} |`,
    `| stored | model.safetensors in bf16 |`,
    '',
    '## Data',
    '',
    `- ${r.trainDocuments} pretraining documents, ${commas(r.trainTokens)} tokens (each document's text + EOS, cut into pieces of ≤ ${r.seqLen} tokens, packed into ${r.trainRows} rows of ${r.seqLen}; attention stays within each piece).`,
    `- Held out: ${r.heldOutDocuments} documents, ${commas(r.heldOutTokens)} tokens; the loss below is over the first rows of them (packed the same way, fixed order).`,
    '',
    '## Training',
    '',
    '| | |',
    '|---|---|',
    `| steps | ${r.steps} × ${r.batchSize} rows × ${r.seqLen} tokens |`,
    `| tokens seen | ${commas(r.tokensSeen)} (${r.epochs.toFixed(2)} epochs) |`,
    `| optimizer | AdamW (β 0.9, 0.95; weight decay ${opts.weightDecay ?? 0.1}, none on norms), peak lr ${opts.lr ?? 3e-3}, cosine to ${(opts.minLrRatio ?? 0.1)}× after ${opts.warmupSteps ?? Math.max(1, Math.round(r.steps * 0.05))} warmup steps, grad clip 1 |`,
    `| seed | ${opts.seed ?? 1234} (init and data order) |`,
    `| kernels | ${r.kernels}; LORAKIT_THREADS=${r.threads} |`,
    `| wall time | ${(r.seconds / 60).toFixed(1)} min (on a shared 2-core machine with other jobs running) |`,
    `| throughput | ${r.tokensPerSecond.toFixed(0)} tokens/s |`,
    `| final training loss | ${fmt(r.finalTrainLoss)} (mean of the last 20 steps ${fmt(r.finalTrainLossAvg)}) |`,
    `| held-out loss, evaluation rows | ${fmt(r.heldOutLoss)} nats/token, perplexity ${fmt(r.heldOutPerplexity, 1)} (the first ${commas(r.heldOutEvalTargets)} held-out targets, evaluated during training) |`,
    `| held-out loss, all held-out text | ${fmt(r.heldOutLossAll)} nats/token, perplexity ${fmt(r.heldOutLossAll === null ? null : Math.exp(r.heldOutLossAll), 1)} (${commas(r.heldOutTargetsAll)} targets, final model in f32 before the bf16 save) |`,
    '',
    'The run is deterministic: the init and the data order are seeded, nothing else is random,',
    'and the native kernels give the same results run to run for a fixed thread count, so',
    'rerunning the command gives the same loss curve (within float noise if the thread count or',
    'kernel path differs). tests/unit/pretrain.test.ts checks this on a short run (two runs, equal',
    'losses); the full run above was made once, not repeated.',
    '',
    '![loss](loss.svg)',
    '',
    'Reproduce (after `npm install`, which builds the addon, and `npx tsc -p .`):',
    '',
    '```sh',
    cmd,
    '```',
    '',
    '## Samples',
    '',
    'Continuations of 40 tokens from the final model (the prompt in bold).',
    '',
    ...r.samples.flatMap((s) => [`- ${s.mode}: **${s.prompt}**${s.text.replace(/\n/g, ' ')}`]),
    '',
  ];
  return lines.join('\n');
}

function positiveInt(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`pretrain: ${flag} must be a positive integer, got ${JSON.stringify(value)}`);
  return n;
}

async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      out: { type: 'string' },
      run: { type: 'string' },
      resume: { type: 'string' },
      steps: { type: 'string' },
      'batch-size': { type: 'string' },
      lr: { type: 'string' },
      'no-progress': { type: 'boolean' },
    },
    strict: true,
  });
  if (values.out === undefined) throw new Error('pretrain: --out <folder> is required (e.g. --out models/brown-llama --steps 1000 --run /tmp/brown-llama-run)');
  const opts: PretrainOptions = { out: values.out, runDir: values.run ?? values.resume ?? path.join(os.tmpdir(), `lorakit-pretrain-${path.basename(path.resolve(values.out))}`), progress: values['no-progress'] !== true };
  // the default run folder is this script's scratch: a fresh run starts it empty (a run folder refuses another run's files)
  if (values.run === undefined && values.resume === undefined) fs.rmSync(opts.runDir!, { recursive: true, force: true });
  const steps = positiveInt('--steps', values.steps);
  const bs = positiveInt('--batch-size', values['batch-size']);
  if (steps !== undefined) opts.steps = steps;
  if (bs !== undefined) opts.batchSize = bs;
  if (values.lr !== undefined) opts.lr = Number(values.lr);
  if (values.resume !== undefined) opts.resume = values.resume;
  opts.command = `LORAKIT_THREADS=${process.env['LORAKIT_THREADS'] ?? 2} node dist/src/corpus/pretrain.js ${argv.filter((a) => a !== '--no-progress').join(' ')}`;
  const { report } = await pretrain(opts);
  const { result: _r, losses: _l, ...summary } = report;
  void _r;
  void _l;
  process.stdout.write(JSON.stringify(summary, null, 2) + '\n');
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  });
}
