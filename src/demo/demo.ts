// The main job (`lorakit demo`, `npm start`): two LoRA adapters trained on the bundled base model
// (models/brown-llama) from Brown documents it never saw in pretraining, scored before and after,
// saved as PEFT folders, loaded back onto one base model and switched between.
//
//   (a) pos:   part-of-speech tagging. prompt = "Sentence: <words>\nTags:", completion = each word
//              with one code for its coarse tag (TAG_CODES), " word/DE>D": by default (posFormat
//              'next') each word is shown with the most-frequent-tag baseline's tag for it and for
//              the word after it before the ">" (" to/TV>T"; "?" for a word the baseline never saw;
//              'hint' shows the word's own tag only, " to/T>T"), and the adapter learns where the
//              sentence overrides that dictionary tag. Trained on the tagged sentences of one half
//              of the held-out documents, scored by constrained decoding (by default among the
//              word's tags in the baseline's training data; posDecode 'tags': among all 12) on
//              sentences of the other half (tag accuracy per word) against that same baseline,
//              trained on the pretraining documents.
//   (b) genre: causal LM on the held-out documents of one genre (default H, government documents): the
//              first 60% of each document trained on, perplexity scored on the last 40%.
//
// For (a) the held-out documents (HELD_OUT_IDS) are split in two within each genre, alternating
// by id: "train" and "test". Nothing here reads the pretraining documents except the baseline tagger.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { BatchIterator, type Batch } from '../data/batch.js';
import type { Example } from '../data/dataset.js';
import { generate } from '../generate/generate.js';
import { Tokenizer } from '../io/tokenizer.js';
import { loadPeftModel } from '../lora/files.node.js';
import { getPeftModel, type PeftModel } from '../lora/peft-model.js';
import type { LoraConfigInput } from '../lora/config.js';
import type { DecoderLM } from '../models/decoder.js';
import { loadModel } from '../models/load.node.js';
import { createOptimizer } from '../train/optimizer.js';
import { train } from '../train/trainer.node.js';
import { COARSE_TAGS, brownGenre, coarseTag, readBrownCorpus, splitBrown, tagAccuracy, trainMostFrequentTag, type BrownDocument, type BrownSentence, type CoarseTag } from '../corpus/brown.js';
import { documentPieces, heldOutBatches, meanLoss } from '../corpus/pretrain.js';
import { loadTokenizer } from '../io/tokenizer.node.js';
import { saveAdapter, loadAdapter } from '../lora/files.node.js';

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

/** The tag names a generated completion spells, one per word (unknown or missing codes become "?"). */
export function decodeTags(completion: string): string[] {
  return completion
    .trim()
    .split(/\s+/)
    .filter((s) => s !== '')
    .map((item) => {
      const slash = item.lastIndexOf('/');
      return slash < 0 ? '?' : (CODE_TO_TAG.get(item.slice(slash + 1)) ?? '?');
    });
}

export interface PosPair {
  prompt: string;
  completion: string;
  words: string[];
  tags: CoarseTag[];
}

/**
 * The prompt/completion pair of a tagged sentence: the prompt is the sentence, the completion
 * its coarse tags, each written after its word ("word/CODE"), so that the model tags the word it
 * has just seen instead of counting positions. (A tags-only completion reached 13% word accuracy
 * in the demo's training budget; see models/brown-llama/PRETRAINING.md.)
 */
export function posPair(s: BrownSentence): PosPair {
  const words = s.tokens.map(([w]) => w);
  const tags = s.tokens.map(([, t]) => coarseTag(t));
  return { prompt: `Sentence: ${words.join(' ')}\nTags:`, completion: ' ' + words.map((w, k) => `${w}/${TAG_CODES[tags[k]!]}`).join(' '), words, tags };
}

/** The hint code of a word the dictionary never saw (the tagger has to read the word and its context). */
export const UNKNOWN_HINT = '?';

/**
 * How each word of a sentence is posed in the completion, before its tag:
 * - hint: the dictionary tag of the word (the most-frequent-tag baseline's), " word/D>", or
 *   UNKNOWN_HINT for a word the dictionary does not know (hint returns undefined);
 * - nextHint: the dictionary tag of the word after it too, " to/TV>" (the tag of "to" depends on
 *   what follows, and the model writes tags left to right; the last word has none).
 */
export interface PosView {
  hint?: TagHint;
  nextHint?: boolean;
}

function viewOf(v: PosView | TagHint | undefined): PosView {
  return typeof v === 'function' ? { hint: v } : (v ?? {});
}

/** The text of word k before its tag: " word", "/", and with a hint the hint (and the next word's) and ">". */
function posItem(words: readonly string[], k: number, view: PosView): string {
  const code = (j: number): string => {
    const h = view.hint!(words[j]!);
    return h === undefined ? UNKNOWN_HINT : TAG_CODES[h];
  };
  const nh = view.hint && view.nextHint && k + 1 < words.length ? code(k + 1) : '';
  return ` ${words[k]}/${view.hint ? code(k) + nh + '>' : ''}`;
}

/** The completion as text in a format: " word/CODE", with a dictionary hint " word/HINT>CODE", with the next word's " word/HINTNEXT>CODE". */
export function posCompletion(p: PosPair, view: PosView | TagHint = null): string {
  const v = viewOf(view);
  return p.words.map((_, k) => posItem(p.words, k, v) + TAG_CODES[p.tags[k]!]).join('');
}

/** Token ids of the pieces of a POS sequence, encoded piece by piece so that training and scoring agree. */
export interface PosTokens {
  prompt: number[];
  /** ids of each word's text before its tag (" word/", " word/D>", ...) */
  words: number[][];
  /** the id of each tag code (the letter after the slash), by tag */
  codes: Readonly<Record<CoarseTag, number>>;
}

export function posCodeIds(tokenizer: Tokenizer): Record<CoarseTag, number> {
  const out = {} as Record<CoarseTag, number>;
  for (const t of COARSE_TAGS) {
    const ids = tokenizer.encode(TAG_CODES[t], { addSpecialTokens: false });
    if (ids.length !== 1) throw new Error(`demo: tag code ${TAG_CODES[t]} is ${ids.length} tokens, expected 1`);
    out[t] = ids[0]!;
  }
  return out;
}

/** A dictionary tag per word shown to the model before it tags the word (the baseline's guess; undefined: not in the dictionary), or none. */
export type TagHint = ((word: string) => CoarseTag | undefined) | null;

export function posTokens(p: PosPair, tokenizer: Tokenizer, codes: Readonly<Record<CoarseTag, number>> = posCodeIds(tokenizer), view: PosView | TagHint = null): PosTokens {
  const v = viewOf(view);
  const enc = (s: string): number[] => tokenizer.encode(s, { addSpecialTokens: false });
  const slash = enc('/');
  const arrow = enc('>');
  const unknown = enc(UNKNOWN_HINT);
  return {
    prompt: tokenizer.encode(p.prompt, { addSpecialTokens: true }),
    words: p.words.map((w, k) => {
      const code = (x: string): number[] => {
        const h = v.hint!(x);
        return h === undefined ? unknown : [codes[h]];
      };
      const nh = v.hint && v.nextHint && k + 1 < p.words.length ? code(p.words[k + 1]!) : [];
      const hint = v.hint ? [...code(w), ...nh, ...arrow] : [];
      return [...enc(' ' + w), ...slash, ...hint];
    }),
    codes,
  };
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

/**
 * The genre adapter's text: every held-out document of the genre, its first `fraction` of
 * sentences to train on and the rest to test on (unseen text of the same documents and genre).
 */
export function genreSplit(docs: readonly BrownDocument[], genre: string, fraction = 0.6): { docs: BrownDocument[]; train: BrownDocument[]; test: BrownDocument[] } {
  const held = splitBrown(docs).heldOut.filter((d) => d.genre === genre);
  const cut = (d: BrownDocument, a: number, b: number): BrownDocument => ({ ...d, sentences: d.sentences.slice(Math.floor(a * d.sentences.length), Math.floor(b * d.sentences.length)) });
  return { docs: held, train: held.map((d) => cut(d, 0, fraction)), test: held.map((d) => cut(d, fraction, 1)) };
}

/** Tagged sentences of documents with minWords..maxWords words. */
export function posSentences(docs: readonly BrownDocument[], minWords = 3, maxWords = 40): BrownSentence[] {
  return docs.flatMap((d) => d.sentences.filter((s) => s.tokens.length >= minWords && s.tokens.length <= maxWords));
}

/**
 * Training examples of the POS task: prompt, then " word/" and the tag code for each word, then
 * EOS. The targets are the tag codes and EOS; the prompt and the repeated words are masked.
 */
export function posExamples(sentences: readonly BrownSentence[], tokenizer: Tokenizer, view: PosView | TagHint = null): Example[] {
  const codes = posCodeIds(tokenizer);
  const eos = tokenizer.eosTokenIds[0] ?? 0;
  return sentences.map((s, i) => {
    const p = posPair(s);
    const t = posTokens(p, tokenizer, codes, view);
    const ids = [...t.prompt];
    const mask = t.prompt.map(() => 0);
    t.words.forEach((w, k) => {
      for (const id of w) {
        ids.push(id);
        mask.push(0);
      }
      ids.push(codes[p.tags[k]!]);
      mask.push(1);
    });
    ids.push(eos);
    mask.push(1);
    return { ids: Int32Array.from(ids), targetMask: Uint8Array.from(mask), file: 'pos', line: i + 1, fullLength: ids.length };
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
  sentences: number;
}

/**
 * Tags each sentence with the model and scores word by word. Decoding is constrained: the words
 * come from the sentence (the prompt), so after each " word/" the model chooses only the tag,
 * the most likely of the 12 codes, and its own choice (never the gold tag) is fed back.
 *
 * Rows of a batch advance word by word together through a KV cache: each step feeds only the
 * new tokens (the previous pick and the next " word/"), left-padded within the step to the
 * longest row under the attention mask (padding is never attended to and does not advance
 * positions), so every row's last column is its " word/" and one lastTokenOnly forward scores
 * the whole batch. Sentences are sorted by length so that finished rows leave the batch.
 * `useCache: false` recomputes every row from its start at each word (the slow reference the
 * tests compare against).
 */
/** The tags decoding may choose for a word (undefined: any of the 12). */
export type AllowedTags = (word: string) => readonly CoarseTag[] | undefined;

export function scorePos(
  model: DecoderLM,
  tokenizer: Tokenizer,
  sentences: readonly BrownSentence[],
  opts: { batchSize?: number; useCache?: boolean; view?: PosView; hint?: TagHint; allowed?: AllowedTags } = {},
): { score: PosScore; predictions: CoarseTag[][] } {
  const batchSize = opts.batchSize ?? 32;
  const view: PosView = opts.view ?? { hint: opts.hint ?? null };
  const codes = posCodeIds(tokenizer);
  const pad = tokenizer.padTokenId ?? 0;
  const pairs = sentences.map(posPair);
  const order = pairs.map((_, i) => i).sort((a, b) => pairs[a]!.words.length - pairs[b]!.words.length || a - b);
  const predictions: CoarseTag[][] = pairs.map(() => []);
  const V = model.info.vocabSize;
  const wasTraining = model.training;
  model.eval();
  try {
    for (let s = 0; s < order.length; s += batchSize) {
      const idx = order.slice(s, s + batchSize);
      const toks = idx.map((i) => posTokens(pairs[i]!, tokenizer, codes, view));
      const maxWords = Math.max(...idx.map((i) => pairs[i]!.words.length));
      const pick = (r: number, at: number, logits: Float32Array): void => {
        const p = predictions[idx[r]!]!;
        const choices = opts.allowed?.(pairs[idx[r]!]!.words[p.length]!) ?? COARSE_TAGS;
        let best: CoarseTag = choices[0]!;
        for (const t of choices) if (logits[at + codes[t]]! > logits[at + codes[best]]!) best = t;
        p.push(best);
      };
      if (opts.useCache === false) {
        const seqs = toks.map((t) => [...t.prompt]);
        for (let k = 0; k < maxWords; k++) {
          const live = idx.map((_, r) => r).filter((r) => k < toks[r]!.words.length);
          for (const r of live) seqs[r]!.push(...toks[r]!.words[k]!);
          const B = live.length;
          const T = Math.max(...live.map((r) => seqs[r]!.length));
          const ids = new Int32Array(B * T);
          live.forEach((r, b) => ids.set(seqs[r]!, b * T));
          const logits = model.forward(ids, B, T);
          live.forEach((r, b) => {
            pick(r, (b * T + seqs[r]!.length - 1) * V, logits);
            seqs[r]!.push(codes[predictions[idx[r]!]!.at(-1)!]);
          });
        }
        continue;
      }
      const cache = model.createCache();
      // live[b] = row of batch slot b; mask[b] = 0/1 over every key so far
      let live = idx.map((_, r) => r);
      let mask: number[][] = live.map(() => []);
      for (let k = 0; k < maxWords; k++) {
        // rows whose sentence has ended leave the batch (rows are sorted by length)
        const keep = live.map((r, b) => (k < toks[r]!.words.length ? b : -1)).filter((b) => b >= 0);
        if (keep.length < live.length) {
          cache.select(keep);
          live = keep.map((b) => live[b]!);
          mask = keep.map((b) => mask[b]!);
        }
        const chunks = live.map((r) => {
          const before = k === 0 ? toks[r]!.prompt : [codes[predictions[idx[r]!]!.at(-1)!]];
          return [...before, ...toks[r]!.words[k]!];
        });
        const B = live.length;
        const T = Math.max(...chunks.map((c) => c.length));
        const ids = new Int32Array(B * T).fill(pad);
        chunks.forEach((c, b) => {
          ids.set(c, b * T + T - c.length);
          for (let t = 0; t < T; t++) mask[b]!.push(t >= T - c.length ? 1 : 0);
        });
        const S = mask[0]!.length;
        const m = new Uint8Array(B * S);
        mask.forEach((row, b) => m.set(row, b * S));
        const logits = model.forward(ids, B, T, { attentionMask: m, cache, lastTokenOnly: true });
        live.forEach((r, b) => pick(r, b * V, logits));
      }
    }
  } finally {
    if (wasTraining) model.train();
  }
  let correct = 0;
  let total = 0;
  pairs.forEach((p, i) => {
    p.tags.forEach((t, k) => {
      total++;
      if (predictions[i]![k] === t) correct++;
    });
  });
  return { score: { correct, total, accuracy: correct / total, sentences: pairs.length }, predictions };
}

export type PosFormat = 'next' | 'hint' | 'plain';
export type PosDecode = 'dictionary' | 'tags';

/** The tags each word has in tagged sentences (the most-frequent-tag baseline's training data), for constrained decoding. */
export function wordTags(sentences: Iterable<BrownSentence>): Map<string, CoarseTag[]> {
  const sets = new Map<string, Set<CoarseTag>>();
  for (const s of sentences) for (const [w, t] of s.tokens) {
    let set = sets.get(w);
    if (set === undefined) sets.set(w, (set = new Set()));
    set.add(coarseTag(t));
  }
  return new Map([...sets].map(([w, set]) => [w, COARSE_TAGS.filter((t) => set.has(t))]));
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
  posLr?: number;
  /** rows of 256 tokens per step of the POS adapter (default 4) */
  posBatchSize?: number;
  genreLr?: number;
  /** test sentences the POS adapter is scored on (default 160) */
  posTestSentences?: number;
  /**
   * 'next' (default): each word is shown with the most-frequent-tag baseline's tag for it and for
   * the word after it, "?" for a word the baseline never saw (" to/TV>"), and the adapter writes
   * the tag after ">"; 'hint': the word's own tag only, NOUN for a word the baseline never saw
   * (" to/T>"); 'plain': " word/" and the tag, no dictionary. (bench/RESULTS.md, issue 21.)
   */
  posFormat?: PosFormat;
  /**
   * 'dictionary' (default): decoding picks among the tags the word has in the baseline's training
   * data (any of the 12 for a word it never saw); 'tags': among all 12.
   */
  posDecode?: PosDecode;
  /** genre letter of the style adapter (default H: its 3 held-out documents gain the most from 30 steps, J (learned, 8 documents) 4%) */
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
    format: PosFormat;
    decode: PosDecode;
    /** the adapter's tags against the baseline's, word by word */
    versusBaseline: VersusBaseline;
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
    /** held-out documents of the genre: first 60% trained on, last 40% scored */
    documents: string[];
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
  /** loss.svg of each adapter's training run */
  lossCurves: Record<string, string>;
  /** the closing table, as printed */
  table: string[];
  seconds: number;
}

/** Steps of the POS adapter (rows of 256 tokens, 4 per step) in a full run. */
export const POS_STEPS = 800;

/** The plain prompt each adapter and the base continue in the switching part. */
export const CONTINUATION_PROMPT = 'In addition, the program';

export interface VersusBaseline {
  /** words the baseline tags wrong, and how many of them the adapter tags right */
  baselineWrong: number;
  fixed: number;
  /** words the baseline tags right, and how many of them the adapter tags wrong */
  baselineRight: number;
  broken: number;
}

/** Word by word: where the adapter's tags and the baseline's differ in being right. */
export function versusBaseline(sentences: readonly BrownSentence[], predictions: readonly (readonly CoarseTag[])[], baseline: (word: string) => string): VersusBaseline {
  const r: VersusBaseline = { baselineWrong: 0, fixed: 0, baselineRight: 0, broken: 0 };
  sentences.forEach((s, i) =>
    s.tokens.forEach(([w, t], k) => {
      const gold = coarseTag(t);
      const mine = predictions[i]![k] === gold;
      if (baseline(w) === gold) {
        r.baselineRight++;
        if (!mine) r.broken++;
      } else {
        r.baselineWrong++;
        if (mine) r.fixed++;
      }
    }),
  );
  return r;
}

const LORA: LoraConfigInput = { r: 16, lora_alpha: 32, lora_dropout: 0, target_modules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] };

function pct(x: number): string {
  return `${(100 * x).toFixed(1)}%`;
}

/** Trains one adapter; its run folder (metrics.jsonl, loss.svg, report.md, the last checkpoint) goes to runDir. */
async function trainAdapter(peft: PeftModel<DecoderLM>, name: string, examples: Example[], a: { steps: number; lr: number; batchSize: number; seed: number; progress: boolean; runDir: string }): Promise<number> {
  peft.setAdapter(name);
  const data = new BatchIterator(examples, { batchSize: a.batchSize, order: 'shuffle', seed: a.seed, pack: true, maxLength: 256 });
  const optimizer = createOptimizer(peft.trainableParameters(), { lr: a.lr, weightDecay: 0 });
  const r = await train({
    model: peft.model,
    optimizer,
    data: { train: data },
    args: { steps: a.steps, lr: a.lr, schedule: 'cosine', warmupSteps: Math.min(10, Math.floor(a.steps / 10)), minLrRatio: 0.1, progress: a.progress, outDir: a.runDir, keepCheckpoints: 1 },
  });
  peft.model.eval();
  return r.seconds;
}

/** The closing table: one row per adapter, columns padded to their widest cell. */
export function summaryTable(rows: readonly (readonly string[])[]): string[] {
  const head = ['task', 'metric', 'base', 'baseline', 'adapter', 'training'];
  const all = [head, ...rows];
  const w = head.map((_, c) => Math.max(...all.map((r) => (r[c] ?? '').length)));
  const line = (r: readonly string[]): string => r.map((x, c) => (c >= 2 ? x.padStart(w[c]!) : x.padEnd(w[c]!))).join('  ').trimEnd();
  return [line(head), w.map((n) => '-'.repeat(n)).join('  '), ...rows.map(line)];
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
  const posSteps = opts.posSteps ?? (quick ? 24 : POS_STEPS);
  const posFormat = opts.posFormat ?? 'next';
  const posDecode = opts.posDecode ?? 'dictionary';
  const genreSteps = opts.genreSteps ?? (quick ? 4 : 30);
  const posBatch = opts.posBatchSize ?? 4;
  const nTest = opts.posTestSentences ?? (quick ? 8 : 160);
  const genre = (opts.genre ?? 'H').toUpperCase();

  log(`lorakit demo: two LoRA adapters on ${path.relative(process.cwd(), modelDir) || modelDir}${quick ? ' (quick run)' : ''}`);
  const tokenizer = loadTokenizer(modelDir);
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
  const pretrainSentences = splitBrown(docs).train.flatMap((d) => d.sentences);
  const view: PosView =
    posFormat === 'next' ? { hint: (w) => baselineTagger.byWord.get(w) as CoarseTag | undefined, nextHint: true }
    : posFormat === 'hint' ? { hint: (w) => baselineTagger.predict(w) as CoarseTag }
    : {};
  const hint = view.hint ?? null;
  const dictionary = wordTags(pretrainSentences);
  const allowed: AllowedTags | undefined = posDecode === 'dictionary' ? (w) => dictionary.get(w) : undefined;
  const scoreOpts = { view, ...(allowed ? { allowed } : {}) };
  // a sentence whose sequence does not fit a 256-token row is left out of training (hint format: about 5%)
  const posEx = posExamples(posTrain, tokenizer, view).filter((e) => e.ids.length <= 256);
  const example = posPair(posTest[Math.min(3, posTest.length - 1)]!);
  log('');
  log(`(a) part-of-speech adapter: ${posEx.length} tagged sentences to train on${posEx.length < posTrain.length ? ` (${posTrain.length - posEx.length} longer than a 256-token row left out)` : ''}, ${posTest.length} to score`);
  log(`    prompt:     ${JSON.stringify(example.prompt)}`);
  log(`    completion: ${JSON.stringify(posCompletion(example, view))}  (one code per word: ${COARSE_TAGS.map((t) => `${TAG_CODES[t]}=${t}`).join(' ')})`);
  if (view.nextHint) log(`    each word comes with the most-frequent-tag baseline's tags for it and for the next word ("to/TV>": "to" is PRT or ADP, the next word a VERB; "${UNKNOWN_HINT}" for a word the baseline never saw), the adapter writes the tag after ">": it learns where the sentence overrides the dictionary`);
  else if (hint) log(`    each word comes with the most-frequent-tag baseline's tag for it ("word/D>"), the adapter writes the tag after ">": it learns where the sentence overrides the dictionary`);

  const peft = getPeftModel(base, LORA, 'pos', { seed });
  peft.addAdapter('genre', LORA);
  const before = peft.disableAdapter(() => scorePos(base, tokenizer, posTest, scoreOpts)).score;
  log(`    scoring: after each " word/${hint ? (view.nextHint ? 'DE>' : 'D>') : ''}" the model picks the likeliest ${allowed ? 'of the tags the word has in the baseline\'s training data (any of the 12 codes for a word it never saw)' : 'of the 12 codes'} (its own picks fed back; the words${hint ? ' and their dictionary tags' : ''} come from the sentence)`);
  log(`    before (base model): ${pct(before.accuracy)} of ${before.total} words; most-frequent-tag baseline: ${pct(baseline)}`);
  const runs = { pos: path.join(out, 'runs', 'pos'), genre: path.join(out, 'runs', 'genre') };
  const posSeconds = await trainAdapter(peft, 'pos', posEx, { steps: posSteps, lr: opts.posLr ?? 3e-3, batchSize: posBatch, seed, progress, runDir: runs.pos });
  const scored = scorePos(base, tokenizer, posTest, scoreOpts);
  const after = scored.score;
  const beats = after.accuracy > baseline;
  const vs = versusBaseline(posTest, scored.predictions, (w) => baselineTagger.predict(w));
  log(`    after ${posSteps} steps (${posSeconds.toFixed(0)} s): ${pct(after.accuracy)} of ${after.total} words`);
  log(`    most-frequent-tag baseline (trained on the ${splitBrown(docs).train.length} pretraining documents): ${pct(baseline)} on these sentences, ${pct(baselineAllTest)} on the whole test half`);
  const margin = 100 * (after.accuracy - baseline);
  log(beats ? `    the adapter beats the baseline by ${margin.toFixed(1)} points (the goal is at least 1 point: ${margin >= 1 ? 'met' : 'NOT met'})` : `    the adapter does NOT beat the baseline (${(-margin).toFixed(1)} points below) in this training budget`);
  log(`    of the baseline's ${vs.baselineWrong} wrong tags the adapter gets ${vs.fixed} right; of its ${vs.baselineRight} right tags the adapter gets ${vs.broken} wrong`);
  for (const i of [0, Math.floor(posTest.length / 2), posTest.length - 1].filter((v, k, a) => a.indexOf(v) === k)) {
    const p = posPair(posTest[i]!);
    log(`    ${p.words.join(' ')}`);
    log(`      gold: ${p.tags.join(' ')}`);
    log(`      pred: ${scored.predictions[i]!.join(' ')}`);
  }

  // ------------------------------------------------------------------ (b) genre style
  const g = genreSplit(docs, genre);
  if (g.docs.length === 0) throw new Error(`demo: genre ${genre} has no held-out documents`);
  const gEx = documentPieces(g.train, tokenizer, 256);
  const gTestEx = documentPieces(g.test, tokenizer, 256);
  const gValid: Batch[] = heldOutBatches(gTestEx, 256, quick ? 8 : 1000);
  const gTrainTokens = gEx.reduce((n, e) => n + e.ids.length, 0);
  log('');
  log(`(b) genre adapter (${genre}, ${g.docs[0]!.genreName}): the held-out ${genre} documents ${g.docs.map((d) => d.id).join(', ')}; trained on the first 60% of each (${gTrainTokens} tokens), perplexity on the last 40% (${gTestEx.reduce((n, e) => n + e.ids.length, 0)} tokens)`);
  const baseLoss = peft.disableAdapter(() => meanLoss(base, gValid)).loss;
  const genreSeconds = await trainAdapter(peft, 'genre', gEx, { steps: genreSteps, lr: opts.genreLr ?? 1e-3, batchSize: 8, seed, progress, runDir: runs.genre });
  const adapterLoss = meanLoss(base, gValid).loss;
  log(`    perplexity on held-out ${genre} text: base ${Math.exp(baseLoss).toFixed(1)} → adapter ${Math.exp(adapterLoss).toFixed(1)} (${genreSteps} steps, ${genreSeconds.toFixed(0)} s)`);

  // ------------------------------------------------------------------ save, load back, switch
  fs.mkdirSync(out, { recursive: true });
  const written = saveAdapter(peft, out, { adapterNames: ['pos', 'genre'], baseModelNameOrPath: modelDir });
  const adapters = { pos: path.join(out, 'pos'), genre: path.join(out, 'genre') };
  log('');
  log(`saved PEFT adapters: ${written.map((w) => path.relative(process.cwd(), w) || w).join(', ')}`);

  const served = loadPeftModel(loadModel(modelDir), adapters.pos, { adapterName: 'pos' });
  loadAdapter(served, adapters.genre, 'genre');
  const switching: DemoResult['switching'] = [];
  log('one base model, both adapters loaded back from those folders, the same input through each:');
  const runEach = (fn: () => string): Record<string, string> => {
    const outputs: Record<string, string> = {};
    served.setAdapter('pos');
    outputs['pos'] = fn();
    served.setAdapter('genre');
    outputs['genre'] = fn();
    outputs['base'] = served.disableAdapter(fn);
    return outputs;
  };
  // the tagging task (constrained decoding, as scored above) ...
  const sent = posTest[Math.min(1, posTest.length - 1)]!;
  const sentPrompt = posPair(sent).prompt;
  const tagged = runEach(() => scorePos(served.model, tokenizer, [sent], scoreOpts).predictions[0]!.join(' '));
  switching.push({ prompt: sentPrompt, outputs: tagged });
  log(`  tags of ${JSON.stringify(sentPrompt)}`);
  log(`    gold  → ${posPair(sent).tags.join(' ')}`);
  if (hint) log(`    dict. → ${posPair(sent).words.map((w) => hint(w) ?? UNKNOWN_HINT).join(' ')}  (the baseline's tags, shown to the model)`);
  for (const [k, v] of Object.entries(tagged)) log(`    ${k.padEnd(5)} → ${v}`);
  // ... and free greedy continuation of a plain prompt (a repetition penalty keeps the small
  // model out of loops such as "the United States, the United States, ...")
  const textPrompt = CONTINUATION_PROMPT;
  const ids = tokenizer.encode(textPrompt, { addSpecialTokens: true });
  const continued = runEach(() => generate(served.model, [ids], { maxNewTokens: 30, tokenizer, repetitionPenalty: 1.3 })[0]!.text);
  switching.push({ prompt: textPrompt, outputs: continued });
  log(`  greedy continuation (repetition penalty 1.3) of ${JSON.stringify(textPrompt)}`);
  for (const [k, v] of Object.entries(continued)) log(`    ${k.padEnd(5)} → ${JSON.stringify(v)}`);
  const distinct = switching.every((sw) => new Set(Object.values(sw.outputs)).size === 3);
  log(distinct ? '  (each adapter, and the base, gives a different output)' : '  (note: some of these outputs coincide)');
  const rel = (p: string): string => path.relative(process.cwd(), p) || p;
  const table = summaryTable([
    [`part-of-speech tagging${hint ? ` (dictionary tag${view.nextHint ? 's of the word and the next' : ''} + context)` : ''}`, `word accuracy, ${after.total} held-out words`, pct(before.accuracy), pct(baseline), pct(after.accuracy), `${posSteps} steps, ${posSeconds.toFixed(0)} s`],
    [`${genre} style (${brownGenre(genre).category})`, `perplexity, held-out ${genre} text`, Math.exp(baseLoss).toFixed(1), '', Math.exp(adapterLoss).toFixed(1), `${genreSteps} steps, ${genreSeconds.toFixed(0)} s`],
  ]);
  const seconds = (Date.now() - t0) / 1000;
  log('');
  for (const l of table) log(l);
  log(`adapters (PEFT): ${rel(adapters.pos)}, ${rel(adapters.genre)}`);
  log(`loss curves: ${rel(path.join(runs.pos, 'loss.svg'))}, ${rel(path.join(runs.genre, 'loss.svg'))}`);
  log(`done in ${seconds.toFixed(0)} s`);
  return {
    model: modelDir,
    out,
    pos: { format: posFormat, decode: posDecode, trainSentences: posEx.length, versusBaseline: vs, testSentences: posTest.length, steps: posSteps, trainSeconds: posSeconds, baseline, baselineAllTest, before, after, beatsBaseline: beats },
    genre: {
      genre,
      documents: g.docs.map((d) => d.id),
      trainTokens: gTrainTokens,
      steps: genreSteps,
      trainSeconds: genreSeconds,
      baseLoss,
      adapterLoss,
      basePerplexity: Math.exp(baseLoss),
      adapterPerplexity: Math.exp(adapterLoss),
    },
    switching,
    adapters,
    lossCurves: { pos: path.join(runs.pos, 'loss.svg'), genre: path.join(runs.genre, 'loss.svg') },
    table,
    seconds,
  };
}
