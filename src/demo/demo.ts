// The main job (`lorakit demo`, `npm start`): two LoRA adapters trained on the bundled base model
// (models/brown-llama) from Brown documents it never saw in pretraining, scored before and after,
// saved as PEFT folders, loaded back onto one base model and switched between.
//
//   (a) pos:   part-of-speech tagging. prompt = "Sentence: <words>\nTags:", completion = one code
//              per word for its coarse tag (TAG_CODES). Trained on the tagged sentences of one half
//              of the held-out documents, scored by greedy generation on sentences of the other
//              half (tag accuracy per word) against the most-frequent-tag baseline trained on the
//              pretraining documents.
//   (b) genre: causal LM on the training-half held-out documents of one genre (default J,
//              "learned"), scored by perplexity on the other half's documents of that genre.
//
// The held-out documents (HELD_OUT_IDS) are split in two within each genre, alternating by id:
// "train" and "test". Nothing here reads the pretraining documents except the baseline tagger.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { BatchIterator, type Batch } from '../data/batch.js';
import type { Example } from '../data/dataset.js';
import { tokenizeRecord } from '../data/tokenize.js';
import { generate } from '../generate/generate.js';
import { Tokenizer } from '../io/tokenizer.js';
import { loadPeftModel } from '../lora/files.js';
import { getPeftModel, type PeftModel } from '../lora/peft-model.js';
import type { LoraConfigInput } from '../lora/config.js';
import type { DecoderLM } from '../models/decoder.js';
import { loadModel } from '../models/load.js';
import { createOptimizer } from '../train/optimizer.js';
import { train } from '../train/trainer.js';
import { COARSE_TAGS, coarseTag, readBrownCorpus, splitBrown, tagAccuracy, trainMostFrequentTag, type BrownDocument, type BrownSentence, type CoarseTag } from '../corpus/brown.js';
import { documentPieces, heldOutBatches, meanLoss } from '../corpus/pretrain.js';

/** The bundled base model, found from this file (dist/src/demo → the package root). */
export const BUNDLED_MODEL_DIR = fileURLToPath(new URL('../../../models/brown-llama', import.meta.url));

/**
 * One single-token code per coarse tag. The Brown tokenizer splits upper-case tag names into
 * 3–4 byte tokens ("NOUN" is N|O|U|N) but " N" is one token, so the completion writes each
 * word's coarse tag as one letter; the demo prints the tag names.
 */
export const TAG_CODES: Readonly<Record<CoarseTag, string>> = Object.freeze({
  NOUN: 'N',
  VERB: 'V',
  ADJ: 'A',
  ADV: 'R',
  PRON: 'P',
  DET: 'D',
  ADP: 'I',
  NUM: 'M',
  CONJ: 'C',
  PRT: 'T',
  '.': 'S',
  X: 'O',
});
const CODE_TO_TAG: ReadonlyMap<string, CoarseTag> = new Map(COARSE_TAGS.map((t) => [TAG_CODES[t], t]));

/** The tag names a generated completion spells (unknown codes become "?"). */
export function decodeTags(completion: string): string[] {
  return completion
    .trim()
    .split(/\s+/)
    .filter((s) => s !== '')
    .map((c) => CODE_TO_TAG.get(c) ?? '?');
}

export interface PosPair {
  prompt: string;
  completion: string;
  words: string[];
  tags: CoarseTag[];
}

/** The prompt/completion pair of a tagged sentence. */
export function posPair(s: BrownSentence): PosPair {
  const words = s.tokens.map(([w]) => w);
  const tags = s.tokens.map(([, t]) => coarseTag(t));
  return { prompt: `Sentence: ${words.join(' ')}\nTags:`, completion: ' ' + tags.map((t) => TAG_CODES[t]).join(' '), words, tags };
}

/** Splits the held-out documents in two halves within each genre, alternating by id. */
export function splitHeldOut<T extends { readonly id: string; readonly genre: string }>(docs: readonly T[]): { train: T[]; test: T[] } {
  const { heldOut } = splitBrown(docs);
  const train: T[] = [];
  const test: T[] = [];
  const byGenre = new Map<string, T[]>();
  for (const d of [...heldOut].sort((a, b) => (a.id < b.id ? -1 : 1))) {
    const g = byGenre.get(d.genre) ?? [];
    g.push(d);
    byGenre.set(d.genre, g);
  }
  for (const list of byGenre.values()) list.forEach((d, i) => (i % 2 === 0 ? train : test).push(d));
  const order = (a: T, b: T): number => (a.id < b.id ? -1 : 1);
  return { train: train.sort(order), test: test.sort(order) };
}

/** Tagged sentences of documents with minWords..maxWords words. */
export function posSentences(docs: readonly BrownDocument[], minWords = 3, maxWords = 40): BrownSentence[] {
  return docs.flatMap((d) => d.sentences.filter((s) => s.tokens.length >= minWords && s.tokens.length <= maxWords));
}

/** Training examples of the POS task (prompt masked: only the codes and EOS are targets). */
export function posExamples(sentences: readonly BrownSentence[], tokenizer: Tokenizer): Example[] {
  return sentences.map((s, i) => {
    const p = posPair(s);
    const t = tokenizeRecord({ format: 'completion', line: i + 1, prompt: p.prompt, completion: p.completion }, tokenizer, { maskPrompt: true });
    return { ids: Int32Array.from(t.ids), targetMask: t.targetMask, file: 'pos', line: i + 1, fullLength: t.ids.length };
  });
}

/** `n` items spread evenly over a list (all when n ≥ length). */
export function spread<T>(items: readonly T[], n: number): T[] {
  if (n >= items.length) return [...items];
  return Array.from({ length: n }, (_, k) => items[Math.floor((k * items.length) / n)]!);
}

export interface PosScore {
  correct: number;
  total: number;
  accuracy: number;
  /** sentences whose predicted tag count equals the word count */
  aligned: number;
  sentences: number;
}

/** Greedy-generates the tags of each sentence and scores them word by word (missing tags count as wrong). */
export function scorePos(model: DecoderLM, tokenizer: Tokenizer, sentences: readonly BrownSentence[], batchSize = 32): { score: PosScore; predictions: string[][] } {
  const pairs = sentences.map(posPair);
  const order = pairs.map((_, i) => i).sort((a, b) => pairs[a]!.words.length - pairs[b]!.words.length || a - b);
  const predictions: string[][] = new Array<string[]>(pairs.length);
  for (let s = 0; s < order.length; s += batchSize) {
    const idx = order.slice(s, s + batchSize);
    const prompts = idx.map((i) => tokenizer.encode(pairs[i]!.prompt, { addSpecialTokens: true }));
    const maxWords = Math.max(...idx.map((i) => pairs[i]!.words.length));
    const res = generate(model, prompts, { maxNewTokens: maxWords + 2, tokenizer });
    idx.forEach((i, k) => (predictions[i] = decodeTags(res[k]!.text)));
  }
  let correct = 0;
  let total = 0;
  let aligned = 0;
  pairs.forEach((p, i) => {
    const pred = predictions[i]!;
    if (pred.length === p.tags.length) aligned++;
    p.tags.forEach((t, k) => {
      total++;
      if (pred[k] === t) correct++;
    });
  });
  return { score: { correct, total, accuracy: correct / total, aligned, sentences: pairs.length }, predictions };
}

export interface DemoOptions {
  /** base model folder (default: the bundled models/brown-llama) */
  model?: string;
  /** where the adapters go (default ./lorakit-demo) */
  out?: string;
  /** a few steps and a few test sentences (tests, smoke runs) */
  quick?: boolean;
  posSteps?: number;
  genreSteps?: number;
  /** test sentences the POS adapter is scored on (default 160) */
  posTestSentences?: number;
  /** genre letter of the style adapter (default J) */
  genre?: string;
  /** progress bars during training (default true) */
  progress?: boolean;
  /** where lines go (default stdout) */
  log?: (line: string) => void;
  seed?: number;
}

export interface DemoResult {
  model: string;
  out: string;
  pos: {
    trainSentences: number;
    testSentences: number;
    steps: number;
    trainSeconds: number;
    /** most-frequent-tag baseline (trained on the pretraining documents) on the same test sentences */
    baseline: number;
    /** the same baseline on every sentence of the test half */
    baselineAllTest: number;
    before: PosScore;
    after: PosScore;
    beatsBaseline: boolean;
  };
  genre: {
    genre: string;
    trainDocuments: string[];
    testDocuments: string[];
    trainTokens: number;
    steps: number;
    trainSeconds: number;
    baseLoss: number;
    adapterLoss: number;
    basePerplexity: number;
    adapterPerplexity: number;
  };
  /** the same prompt through each adapter and the base */
  switching: { prompt: string; outputs: Record<string, string> }[];
  adapters: Record<string, string>;
  seconds: number;
}

const LORA: LoraConfigInput = { r: 16, lora_alpha: 32, lora_dropout: 0, target_modules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] };

function pct(x: number): string {
  return `${(100 * x).toFixed(1)}%`;
}

async function trainAdapter(peft: PeftModel<DecoderLM>, name: string, examples: Example[], steps: number, lr: number, seed: number, progress: boolean): Promise<number> {
  peft.setAdapter(name);
  const data = new BatchIterator(examples, { batchSize: 8, order: 'shuffle', seed, pack: true, maxLength: 256 });
  const optimizer = createOptimizer(peft.trainableParameters(), { lr, weightDecay: 0 });
  const r = await train({ model: peft.model, optimizer, data: { train: data }, args: { steps, lr, schedule: 'cosine', warmupSteps: Math.min(10, Math.floor(steps / 10)), minLrRatio: 0.1, progress } });
  peft.model.eval();
  return r.seconds;
}

/** Runs the demo; returns every figure it printed. */
export async function runDemo(opts: DemoOptions = {}): Promise<DemoResult> {
  const t0 = Date.now();
  const log = opts.log ?? ((l: string) => process.stdout.write(l + '\n'));
  const quick = opts.quick ?? false;
  const modelDir = opts.model ?? BUNDLED_MODEL_DIR;
  const out = path.resolve(opts.out ?? 'lorakit-demo');
  const seed = opts.seed ?? 0;
  const progress = opts.progress ?? true;
  const posSteps = opts.posSteps ?? (quick ? 3 : 150);
  const genreSteps = opts.genreSteps ?? (quick ? 2 : 40);
  const nTest = opts.posTestSentences ?? (quick ? 8 : 160);
  const genre = (opts.genre ?? 'J').toUpperCase();

  log(`lorakit demo: two LoRA adapters on ${path.relative(process.cwd(), modelDir) || modelDir}${quick ? ' (quick run)' : ''}`);
  const tokenizer = Tokenizer.fromFolder(modelDir);
  const base = loadModel(modelDir);
  const docs = readBrownCorpus();
  const halves = splitHeldOut(docs);
  log(`held-out Brown documents (never seen in pretraining): ${halves.train.length} to train on, ${halves.test.length} to test on`);

  // ------------------------------------------------------------------ (a) part of speech
  const posTrain = posSentences(halves.train);
  const testAll = posSentences(halves.test, 1, Infinity);
  const posTest = spread(posSentences(halves.test), nTest);
  const baselineTagger = trainMostFrequentTag(splitBrown(docs).train.flatMap((d) => d.sentences));
  const baseline = tagAccuracy(baselineTagger, posTest).accuracy;
  const baselineAllTest = tagAccuracy(baselineTagger, testAll).accuracy;
  const example = posPair(posTest[Math.min(3, posTest.length - 1)]!);
  log('');
  log(`(a) part-of-speech adapter: ${posTrain.length} tagged sentences to train on, ${posTest.length} to score`);
  log(`    prompt:     ${JSON.stringify(example.prompt)}`);
  log(`    completion: ${JSON.stringify(example.completion)}  (one code per word: ${COARSE_TAGS.map((t) => `${TAG_CODES[t]}=${t}`).join(' ')})`);

  const peft = getPeftModel(base, LORA, 'pos', { seed });
  peft.addAdapter('genre', LORA);
  const before = peft.disableAdapter(() => scorePos(base, tokenizer, posTest)).score;
  log(`    before (base model): ${pct(before.accuracy)} of ${before.total} words; most-frequent-tag baseline: ${pct(baseline)}`);
  const posSeconds = await trainAdapter(peft, 'pos', posExamples(posTrain, tokenizer), posSteps, 2e-3, seed, progress);
  const scored = scorePos(base, tokenizer, posTest);
  const after = scored.score;
  const beats = after.accuracy > baseline;
  log(`    after ${posSteps} steps (${posSeconds.toFixed(0)} s): ${pct(after.accuracy)} of ${after.total} words (${after.aligned}/${after.sentences} sentences with one tag per word)`);
  log(`    most-frequent-tag baseline (trained on the ${splitBrown(docs).train.length} pretraining documents): ${pct(baseline)} on these sentences, ${pct(baselineAllTest)} on the whole test half`);
  log(beats ? `    the adapter beats the baseline by ${(100 * (after.accuracy - baseline)).toFixed(1)} points` : `    the adapter does NOT beat the baseline (${(100 * (baseline - after.accuracy)).toFixed(1)} points below) in this training budget`);
  for (const i of [0, Math.floor(posTest.length / 2), posTest.length - 1].filter((v, k, a) => a.indexOf(v) === k)) {
    const p = posPair(posTest[i]!);
    log(`    ${p.words.join(' ')}`);
    log(`      gold: ${p.tags.join(' ')}`);
    log(`      pred: ${scored.predictions[i]!.join(' ')}`);
  }

  // ------------------------------------------------------------------ (b) genre style
  const gTrain = halves.train.filter((d) => d.genre === genre);
  const gTest = halves.test.filter((d) => d.genre === genre);
  if (gTrain.length === 0 || gTest.length === 0) throw new Error(`demo: genre ${genre} has no held-out documents on both sides (${gTrain.length} train, ${gTest.length} test)`);
  const gEx = documentPieces(gTrain, tokenizer, 256);
  const gValid: Batch[] = heldOutBatches(documentPieces(gTest, tokenizer, 256), 256, quick ? 8 : 1000);
  log('');
  log(`(b) genre adapter (${genre}, ${gTrain[0]!.genreName}): trained on ${gTrain.map((d) => d.id).join(', ')} (${gEx.reduce((n, e) => n + e.ids.length, 0)} tokens), perplexity on ${gTest.map((d) => d.id).join(', ')}`);
  const baseLoss = peft.disableAdapter(() => meanLoss(base, gValid)).loss;
  const genreSeconds = await trainAdapter(peft, 'genre', gEx, genreSteps, 1e-3, seed, progress);
  const adapterLoss = meanLoss(base, gValid).loss;
  log(`    perplexity on held-out ${genre} text: base ${Math.exp(baseLoss).toFixed(1)} → adapter ${Math.exp(adapterLoss).toFixed(1)} (${genreSteps} steps, ${genreSeconds.toFixed(0)} s)`);

  // ------------------------------------------------------------------ save, load back, switch
  fs.mkdirSync(out, { recursive: true });
  const written = peft.saveAdapter(out, { adapterNames: ['pos', 'genre'], baseModelNameOrPath: modelDir });
  const adapters = { pos: path.join(out, 'pos'), genre: path.join(out, 'genre') };
  log('');
  log(`saved PEFT adapters: ${written.map((w) => path.relative(process.cwd(), w) || w).join(', ')}`);

  const served = loadPeftModel(loadModel(modelDir), adapters.pos, { adapterName: 'pos' });
  served.loadAdapter(adapters.genre, 'genre');
  const prompts = [posPair(posTest[Math.min(1, posTest.length - 1)]!).prompt, 'The purpose of this study'];
  const switching: DemoResult['switching'] = [];
  log('one base model, adapters loaded back from those folders, the same prompt through each (greedy):');
  for (const prompt of prompts) {
    const ids = tokenizer.encode(prompt, { addSpecialTokens: true });
    const gen = (): string => generate(served.model, [ids], { maxNewTokens: 24, tokenizer })[0]!.text;
    const outputs: Record<string, string> = {};
    served.setAdapter('pos');
    outputs['pos'] = gen();
    served.setAdapter('genre');
    outputs['genre'] = gen();
    outputs['base'] = served.disableAdapter(gen);
    switching.push({ prompt, outputs });
    log(`  prompt ${JSON.stringify(prompt)}`);
    for (const [k, v] of Object.entries(outputs)) log(`    ${k.padEnd(5)} → ${JSON.stringify(v)}`);
  }
  const seconds = (Date.now() - t0) / 1000;
  log('');
  log(`done in ${seconds.toFixed(0)} s`);
  return {
    model: modelDir,
    out,
    pos: { trainSentences: posTrain.length, testSentences: posTest.length, steps: posSteps, trainSeconds: posSeconds, baseline, baselineAllTest, before, after, beatsBaseline: beats },
    genre: {
      genre,
      trainDocuments: gTrain.map((d) => d.id),
      testDocuments: gTest.map((d) => d.id),
      trainTokens: gEx.reduce((n, e) => n + e.ids.length, 0),
      steps: genreSteps,
      trainSeconds: genreSeconds,
      baseLoss,
      adapterLoss,
      basePerplexity: Math.exp(baseLoss),
      adapterPerplexity: Math.exp(adapterLoss),
    },
    switching,
    adapters,
    seconds,
  };
}
