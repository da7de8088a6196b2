// Classification data: JSONL of {"text", "label"} or sentence pairs {"text", "text_pair", "label"},
// label sets, tokenization with token type ids ([CLS] a [SEP] b [SEP], as the tokenizer.json
// post-processor (TemplateProcessing / BertProcessing / RobertaProcessing) lays them out), and
// batches of examples (text or images) in a seeded, resumable order.
//
// Every problem names the file and line (`train.jsonl:7: …`) and all of them are thrown
// together in one DataError.
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { specialTokenContent, type TokenizerFiles } from '../io/tokenizer.js';
import { DataError, describeValue, type DataIssue } from './errors.js';
import { jsonlObjects } from './jsonl.js';
import { Rng } from '../tensor/rng.js';

export interface TextExample {
  /** 1-based line in the file */
  line: number;
  text: string;
  /** the second sentence of a pair */
  textPair?: string;
  /** the label as written (numbers become their decimal string) */
  label: string;
}

export interface TextDataset {
  file: string;
  examples: TextExample[];
  /** whether the lines are sentence pairs */
  pairs: boolean;
}

/**
 * Parses a classification JSONL file (`content` of `file`): each non-blank line an object with "text" (string),
 * optional "text_pair" (string) and "label" (string or integer). Other keys are ignored.
 * All problems are thrown together, each with file:line.
 */
export function parseTextClassification(content: string, file: string): TextDataset {
  const issues: DataIssue[] = [];
  const examples: TextExample[] = [];
  let pairs: boolean | null = null;
  let pairsLine = 0;
  for (const { line, value: o } of jsonlObjects(content, file, (issue) => void issues.push(issue))) {
    const bad: string[] = [];
    if (typeof o['text'] !== 'string') bad.push(o['text'] === undefined ? 'no "text" field' : `"text" must be a string, got ${describeValue(o['text'])}`);
    const pair = o['text_pair'];
    if (pair !== undefined && pair !== null && typeof pair !== 'string') bad.push(`"text_pair" must be a string, got ${describeValue(pair)}`);
    const label = o['label'];
    let labelStr = '';
    if (typeof label === 'string' && label !== '') labelStr = label;
    else if (typeof label === 'number' && Number.isInteger(label)) labelStr = String(label);
    else bad.push(label === undefined ? 'no "label" field' : `"label" must be a non-empty string or an integer, got ${describeValue(label)}`);
    const isPair = typeof pair === 'string';
    if (!bad.length) {
      if (pairs === null) {
        pairs = isPair;
        pairsLine = line;
      } else if (pairs !== isPair) {
        bad.push(`${isPair ? 'a sentence pair ("text_pair")' : 'a single text (no "text_pair")'} in a file of ${pairs ? 'sentence pairs' : 'single texts'} (set by line ${pairsLine})`);
      }
    }
    if (bad.length) {
      for (const message of bad) issues.push({ file, line, message });
      continue;
    }
    examples.push({ line, text: o['text'] as string, ...(isPair ? { textPair: pair as string } : {}), label: labelStr });
  }
  if (issues.length) throw new DataError(issues);
  if (examples.length === 0) throw new DataError([{ file, line: 0, message: 'no examples (the file is empty)' }]);
  return { file, examples, pairs: pairs ?? false };
}

/** The sorted distinct labels (numerically when every label is an integer). */
export function labelSet(labels: Iterable<string>): string[] {
  const set = [...new Set(labels)];
  const numeric = set.every((l) => /^-?\d+$/.test(l));
  return numeric ? set.sort((a, b) => Number(a) - Number(b)) : set.sort();
}

/** Encodes a text or a pair with the tokenizer's special tokens; typeIds are the token type ids. */
export interface PairTokenizer {
  encodePair(text: string, pair?: string): { ids: number[]; typeIds: number[] };
  readonly padTokenId: number;
  readonly source: string;
}

/**
 * A PairTokenizer over a tokenizer.json (and tokenizer_config.json), using the post-processor
 * it declares for pairs. (src/io/tokenizer.ts's Tokenizer encodes single texts.)
 */
export function pairTokenizer(files: TokenizerFiles): PairTokenizer {
  const tj: Record<string, unknown> = { ...files.tokenizerJson };
  for (const k of ['normalizer', 'pre_tokenizer', 'post_processor', 'decoder']) if (!(k in tj)) tj[k] = null;
  if (!Array.isArray(tj['added_tokens'])) tj['added_tokens'] = [];
  const cfg: Record<string, unknown> = { ...(files.tokenizerConfig ?? {}) };
  for (const [k, v] of Object.entries(cfg)) if (k.endsWith('_token') && specialTokenContent(v) !== undefined) cfg[k] = specialTokenContent(v);
  const hf = new HfTokenizer(tj as never, cfg as never);
  const padTok = typeof cfg['pad_token'] === 'string' ? cfg['pad_token'] : undefined;
  const padTokenId = (padTok !== undefined ? hf.token_to_id(padTok) : undefined) ?? 0;
  return {
    source: files.source,
    padTokenId,
    encodePair(text: string, pair?: string) {
      const enc = hf.encode(text, { text_pair: pair ?? null, add_special_tokens: true, return_token_type_ids: true });
      return { ids: enc.ids, typeIds: enc.token_type_ids ?? new Array<number>(enc.ids.length).fill(0) };
    },
  };
}

/** One example ready for batching: token ids and types, or preprocessed pixels; the class index. */
export interface ClassifyExample {
  label: number;
  /** where it came from, for messages (file:line or the image file) */
  where: string;
  ids?: Int32Array;
  typeIds?: Int32Array;
  /** [Ch, H, W] */
  pixels?: Float32Array;
}

export interface EncodeTextOptions {
  /** the model's labels: class index = position here */
  labels: readonly string[];
  /** the model's type_vocab_size (a pair needs ≥ 2) */
  typeVocabSize: number;
  /** longest sequence (longer ones keep their first maxLength − 1 tokens and the final special token); default 512 */
  maxLength?: number;
}

/**
 * Tokenizes examples and maps labels to class indices. Collects every problem (a label not in
 * the label set; a text pair when the model has no token types) and throws them together.
 */
export function encodeTextExamples(ds: TextDataset, tok: PairTokenizer, opts: EncodeTextOptions): ClassifyExample[] {
  const index = new Map(opts.labels.map((l, i) => [l, i]));
  const issues: DataIssue[] = [];
  const out: ClassifyExample[] = [];
  const maxLength = opts.maxLength ?? 512;
  const shownLabels = opts.labels.length > 20 ? `${opts.labels.slice(0, 20).join(', ')}, …` : opts.labels.join(', ');
  for (const ex of ds.examples) {
    const label = index.get(ex.label);
    if (label === undefined) issues.push({ file: ds.file, line: ex.line, message: `label ${JSON.stringify(ex.label)} is not in the label set (${shownLabels})` });
    if (ex.textPair !== undefined && opts.typeVocabSize < 2) {
      issues.push({ file: ds.file, line: ex.line, message: `a text pair ("text_pair"), but the model has no token types (type_vocab_size ${opts.typeVocabSize}); give single texts` });
    }
    if (issues.length) continue;
    let { ids, typeIds } = tok.encodePair(ex.text, ex.textPair);
    if (ids.length > maxLength) {
      ids = [...ids.slice(0, maxLength - 1), ids[ids.length - 1]!];
      typeIds = [...typeIds.slice(0, maxLength - 1), typeIds[typeIds.length - 1]!];
    }
    out.push({ label: label!, where: `${ds.file}:${ex.line}`, ids: Int32Array.from(ids), typeIds: Int32Array.from(typeIds) });
  }
  if (issues.length) throw new DataError(issues);
  return out;
}

/** A batch for a classifier: the inputs, the class indices, and the counts the trainer reads. */
export interface ClassifyBatch {
  B: number;
  /** text: token ids [B, T] (right padded), types, 0/1 mask */
  ids?: Int32Array;
  typeIds?: Int32Array;
  attentionMask?: Uint8Array;
  T?: number;
  /** image: pixels [B, Ch, H, W] */
  pixels?: Float32Array;
  labels: Int32Array;
  /** input tokens (text: real tokens; image: B) */
  tokens: number;
  /** counted examples (B) */
  targets: number;
}

/** Lays out examples as one batch (text rows right-padded with padId). */
export function collateClassify(examples: readonly ClassifyExample[], padId = 0): ClassifyBatch {
  const B = examples.length;
  if (B === 0) throw new RangeError('collateClassify: a batch needs at least one example');
  const labels = Int32Array.from(examples.map((e) => e.label));
  if (examples[0]!.pixels) {
    const n = examples[0]!.pixels.length;
    const pixels = new Float32Array(B * n);
    examples.forEach((e, b) => {
      if (!e.pixels || e.pixels.length !== n) throw new RangeError(`collateClassify: ${e.where} has ${e.pixels?.length ?? 0} pixel values, the batch ${n}`);
      pixels.set(e.pixels, b * n);
    });
    return { B, pixels, labels, tokens: B, targets: B };
  }
  const T = Math.max(...examples.map((e) => e.ids!.length));
  const ids = new Int32Array(B * T).fill(padId);
  const typeIds = new Int32Array(B * T);
  const attentionMask = new Uint8Array(B * T);
  let tokens = 0;
  examples.forEach((e, b) => {
    ids.set(e.ids!, b * T);
    typeIds.set(e.typeIds!, b * T);
    attentionMask.fill(1, b * T, b * T + e.ids!.length);
    tokens += e.ids!.length;
  });
  return { B, T, ids, typeIds, attentionMask, labels, tokens, targets: B };
}

export interface ClassifyBatchState {
  seed: number;
  epoch: number;
  batch: number;
  examples: number;
}

/**
 * Batches of examples in a seeded order: shuffled per epoch (a pure function of seed and
 * epoch), or in file order. Resumable through state()/setState() (the trainer's checkpoints).
 */
export class ClassifyBatches {
  readonly batchesPerEpoch: number;
  private epoch = 0;
  private batch = 0;
  private order: number[] = [];
  private orderEpoch = -1;

  constructor(
    readonly examples: readonly ClassifyExample[],
    readonly opts: { batchSize: number; seed?: number; shuffle?: boolean; padId?: number },
  ) {
    if (!Number.isInteger(opts.batchSize) || opts.batchSize < 1) throw new RangeError(`ClassifyBatches: batchSize must be a positive integer, got ${opts.batchSize}`);
    if (examples.length === 0) throw new RangeError('ClassifyBatches: no examples');
    this.batchesPerEpoch = Math.ceil(examples.length / opts.batchSize);
  }

  private orderOf(epoch: number): number[] {
    if (epoch !== this.orderEpoch) {
      const n = this.examples.length;
      this.order = this.opts.shuffle === false ? Array.from({ length: n }, (_, i) => i) : new Rng((this.opts.seed ?? 0) * 7919 + epoch).permutation(n);
      this.orderEpoch = epoch;
    }
    return this.order;
  }

  next(): ClassifyBatch {
    const order = this.orderOf(this.epoch);
    const bs = this.opts.batchSize;
    const idx = order.slice(this.batch * bs, (this.batch + 1) * bs);
    this.batch++;
    if (this.batch >= this.batchesPerEpoch) {
      this.batch = 0;
      this.epoch++;
    }
    return collateClassify(idx.map((i) => this.examples[i]!), this.opts.padId ?? 0);
  }

  /** Every example once, in file order, as batches (evaluation). */
  all(): ClassifyBatch[] {
    const out: ClassifyBatch[] = [];
    const bs = this.opts.batchSize;
    for (let i = 0; i < this.examples.length; i += bs) out.push(collateClassify(this.examples.slice(i, i + bs), this.opts.padId ?? 0));
    return out;
  }

  state(): ClassifyBatchState {
    return { seed: this.opts.seed ?? 0, epoch: this.epoch, batch: this.batch, examples: this.examples.length };
  }

  setState(s: ClassifyBatchState): void {
    if (s.examples !== this.examples.length) throw new Error(`ClassifyBatches.setState: the state is for ${s.examples} examples, this data has ${this.examples.length}`);
    this.epoch = s.epoch;
    this.batch = s.batch;
  }
}
