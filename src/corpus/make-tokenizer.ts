// Trains the tokenizer of the bundled base model on the Brown pretraining documents (the
// held-out ones excluded) and writes tokenizer.json + tokenizer_config.json.
//
// Run after the build (not part of the lorakit command):
//   node dist/src/corpus/make-tokenizer.js --out models/brown-tokenizer --vocab 4096
// It prints a JSON report: sizes, training time, compression and round-trip on held-out text.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { writeFileAtomic } from '../io/atomic.node.js';
import { Tokenizer } from '../io/tokenizer.js';
import { documentText, readBrownCorpus, splitBrown } from './brown.js';
import type { BrownDocument } from './brown.js';
import { trainByteLevelTokenizer } from './bpe-train.js';
import type { TrainedTokenizer } from './bpe-train.js';
import { loadTokenizer } from '../io/tokenizer.node.js';

export interface BrownTokenizerOptions {
  /** Whole vocabulary size (3 special tokens + 256 bytes + merges). Default 4096. */
  vocabSize?: number;
  /** tokenizer_config.json model_max_length. Default 2048. */
  modelMaxLength?: number;
}

/** Trains on the pretraining documents of the split (never the held-out ones). */
export function trainBrownTokenizer(docs: readonly BrownDocument[], options: BrownTokenizerOptions = {}): TrainedTokenizer {
  const { train } = splitBrown(docs);
  return trainByteLevelTokenizer(
    train.map((d) => documentText(d)),
    { vocabSize: options.vocabSize ?? 4096, modelMaxLength: options.modelMaxLength ?? 2048 },
  );
}

export interface CompressionReport {
  documents: number;
  /** UTF-8 bytes of the texts. */
  bytes: number;
  /** Whitespace-separated words of the plain text (punctuation stays on its word). */
  words: number;
  /** Tokens of the corpus (words and punctuation marks as the corpus tags them). */
  corpusTokens: number;
  /** Tokenizer tokens (no special tokens added). */
  tokens: number;
  bytesPerToken: number;
  tokensPerWord: number;
  tokensPerCorpusToken: number;
  /** Every text decoded back to itself. */
  roundTrip: boolean;
  /** Ids of the documents that did not round-trip. */
  failed: string[];
}

/** Encodes each document's plain text, decodes it again, and counts. */
export function measureCompression(tokenizer: Tokenizer, docs: readonly BrownDocument[]): CompressionReport {
  let bytes = 0;
  let words = 0;
  let corpusTokens = 0;
  let tokens = 0;
  const failed: string[] = [];
  for (const d of docs) {
    const text = documentText(d);
    const ids = tokenizer.encode(text, { addSpecialTokens: false });
    if (tokenizer.decode(ids) !== text) failed.push(d.id);
    bytes += Buffer.byteLength(text, 'utf8');
    words += text.split(/\s+/).filter((w) => w !== '').length;
    for (const s of d.sentences) corpusTokens += s.tokens.length;
    tokens += ids.length;
  }
  return {
    documents: docs.length,
    bytes,
    words,
    corpusTokens,
    tokens,
    bytesPerToken: bytes / tokens,
    tokensPerWord: tokens / words,
    tokensPerCorpusToken: tokens / corpusTokens,
    roundTrip: failed.length === 0,
    failed,
  };
}

export interface MakeTokenizerReport {
  out: string;
  vocabSize: number;
  merges: number;
  trainDocuments: number;
  heldOutDocuments: number;
  distinctWords: number;
  trainSeconds: number;
  tokenizerJsonBytes: number;
  heldOut: CompressionReport;
}

/** Trains, writes the two files atomically into `out` (created if missing), loads them back and measures. */
export async function makeBrownTokenizer(out: string, options: BrownTokenizerOptions = {}): Promise<MakeTokenizerReport> {
  const docs = readBrownCorpus();
  const { train, heldOut } = splitBrown(docs);
  const trained = trainBrownTokenizer(docs, options);
  fs.mkdirSync(out, { recursive: true });
  await writeFileAtomic(path.join(out, 'tokenizer.json'), trained.tokenizerJson);
  await writeFileAtomic(path.join(out, 'tokenizer_config.json'), trained.tokenizerConfigJson);
  const tokenizer = loadTokenizer(out);
  return {
    out,
    vocabSize: trained.model.tokens.length,
    merges: trained.model.merges.length,
    trainDocuments: train.length,
    heldOutDocuments: heldOut.length,
    distinctWords: trained.distinctWords,
    trainSeconds: Math.round(trained.seconds * 100) / 100,
    tokenizerJsonBytes: Buffer.byteLength(trained.tokenizerJson, 'utf8'),
    heldOut: measureCompression(tokenizer, heldOut),
  };
}

function positiveInt(flag: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`make-tokenizer: ${flag} must be a positive integer, got ${JSON.stringify(value)}`);
  return n;
}

async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      out: { type: 'string' },
      vocab: { type: 'string' },
      'max-length': { type: 'string' },
    },
    strict: true,
  });
  if (values.out === undefined) throw new Error('make-tokenizer: --out <folder> is required (e.g. --out models/brown-tokenizer --vocab 4096)');
  const report = await makeBrownTokenizer(values.out, {
    vocabSize: positiveInt('--vocab', values.vocab, 4096),
    modelMaxLength: positiveInt('--max-length', values['max-length'], 2048),
  });
  process.stdout.write(JSON.stringify(report, null, 2) + '\n');
  if (!report.heldOut.roundTrip) throw new Error(`make-tokenizer: held-out documents did not round-trip: ${report.heldOut.failed.join(', ')}`);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  });
}
