import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import {
  BYTE_TO_CHAR,
  CHAR_TO_BYTE,
  byteLevelString,
  countWords,
  fromByteLevelString,
  pretokenize,
  trainBpe,
  trainBpeNaive,
  trainByteLevelTokenizer,
} from '../../src/corpus/bpe-train.js';
import type { BpeModel } from '../../src/corpus/bpe-train.js';
import { documentText, readBrownCorpus, splitBrown } from '../../src/corpus/brown.js';
import type { BrownDocument } from '../../src/corpus/brown.js';
import { measureCompression, trainBrownTokenizer } from '../../src/corpus/make-tokenizer.js';
import { loadTokenizer } from '../../src/io/tokenizer.node.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const COMMITTED = path.join(ROOT, 'models', 'brown-tokenizer');

let corpus: BrownDocument[] | undefined;
function allDocs(): BrownDocument[] {
  return (corpus ??= readBrownCorpus());
}

const UNICODE_TEXTS = [
  'Hello world',
  'plain ASCII, with punctuation: (a) [b] {c}!? "quoted" it\'s',
  'accents: café, naïve, Ångström, déjà vu, Łódź',
  'emoji: 😀👍🏽 and a family 👨‍👩‍👧 ❤️',
  'CJK: 世界你好，日本語のテキスト，한국어',
  '  leading spaces, double  spaces,\ttabs\nand\n\nnewlines  ',
  'control \u0000 \u007f \u00ad bytes, numbers 3.14159 and 1,000,000',
  'mixed 世界 😀 é end',
  '',
];

function tmpDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'lorakit-bpe-'));
  process.on('exit', () => fs.rmSync(d, { recursive: true, force: true }));
  return d;
}

/** Applies merges in order to one pre-tokenized piece: what training did to that word. */
function applyMerges(model: BpeModel, piece: string): string[] {
  let syms = Array.from(byteLevelString(piece));
  for (const [l, r] of model.merges) {
    const out: string[] = [];
    for (let i = 0; i < syms.length; ) {
      if (i + 1 < syms.length && syms[i] === l && syms[i + 1] === r) {
        out.push(l + r);
        i += 2;
      } else {
        out.push(syms[i]!);
        i += 1;
      }
    }
    syms = out;
  }
  return syms;
}

test('bytes-to-unicode table (GPT-2)', () => {
  assert.equal(BYTE_TO_CHAR.length, 256);
  assert.equal(new Set(BYTE_TO_CHAR).size, 256);
  assert.equal(BYTE_TO_CHAR[0x20], 'Ġ');
  assert.equal(BYTE_TO_CHAR[0x0a], 'Ċ');
  assert.equal(BYTE_TO_CHAR[0x09], 'ĉ');
  assert.equal(BYTE_TO_CHAR[0x00], 'Ā');
  assert.equal(BYTE_TO_CHAR[0x41], 'A');
  assert.equal(BYTE_TO_CHAR[0xe9], 'é');
  assert.equal(BYTE_TO_CHAR[0x7f], 'ġ'); // the 34th non-printable byte: U+0100 + 33
  assert.equal(BYTE_TO_CHAR[0xad], 'Ń'); // the last one: U+0100 + 67
  for (let b = 0; b < 256; b++) assert.equal(CHAR_TO_BYTE.get(BYTE_TO_CHAR[b]!), b);
  assert.equal(byteLevelString(' café'), 'ĠcafÃ©');
  for (const t of UNICODE_TEXTS) assert.equal(fromByteLevelString(byteLevelString(t)), t);
});

test('GPT-2 pre-tokenization', () => {
  assert.deepEqual(pretokenize("I'm here  now, it's 2024!"), ['I', "'m", ' here', ' ', ' now', ',', ' it', "'s", ' 2024', '!']);
  // Whitespace before a word leaves its last character to the word's own piece: "\s+(?!\S)".
  assert.deepEqual(pretokenize('a\n\nb  '), ['a', '\n', '\n', 'b', '  ']);
  assert.deepEqual(pretokenize('a   b'), ['a', '  ', ' b']);
  assert.deepEqual(pretokenize('déjà 世界'), ['déjà', ' 世界']);
  assert.deepEqual(pretokenize(''), []);
  assert.deepEqual([...countWords(['the cat', 'the dog'])], [['the', 2], [' cat', 1], [' dog', 1]]);
});

test('trainer on "aaab aaab aab": merges by hand, with the documented tie-break', () => {
  // Words: "aaab", "Ġaaab", "Ġaab" (Ġ = space, byte 0x20 < a 0x61), once each.
  // (a,a) occurs 2 + 2 + 1 = 5 times (overlapping pairs count): merge 1.
  // Then [aa a b], [Ġ aa a b], [Ġ aa b]: (aa,a) 2, (a,b) 2, (Ġ,aa) 2, (aa,b) 1. The tie goes to
  // the smaller left id: Ġ (32) < a (97) < aa (256), so (Ġ,aa); then (a,b) at 2; then
  // [aa ab], [Ġaa ab], [Ġaa b] are all 1: (aa,ab) has the smaller left id; then (Ġaa,b) beats
  // (Ġaa,ab) on the right id (b 98 < ab 258).
  const model = trainBpe(countWords(['aaab aaab aab']), { vocabSize: 256 + 5, minFrequency: 1 });
  assert.deepEqual(model.merges, [
    ['a', 'a'],
    ['Ġ', 'aa'],
    ['a', 'b'],
    ['aa', 'ab'],
    ['Ġaa', 'b'],
  ]);
  assert.deepEqual(model.mergeCounts, [5, 2, 2, 1, 1]);
  assert.deepEqual(model.tokens.slice(256), ['aa', 'Ġaa', 'ab', 'aaab', 'Ġaab']);
  // With the default minFrequency 2 it stops after the merges that occur twice.
  const stopped = trainBpe(countWords(['aaab aaab aab']), { vocabSize: 1000 });
  assert.equal(stopped.merges.length, 3);
  assert.equal(stopped.tokens.length, 259);
  // Special tokens come first and shift the byte ids; the merges are the same.
  const withSpecials = trainBpe(countWords(['aaab aaab aab']), { vocabSize: 2 + 256 + 5, minFrequency: 1, specialTokens: ['<s>', '</s>'] });
  assert.deepEqual(withSpecials.merges, model.merges);
  assert.deepEqual(withSpecials.tokens.slice(0, 3), ['<s>', '</s>', 'Ā']);
  assert.throws(() => trainBpe(new Map(), { vocabSize: 255 }), /vocabSize must be an integer from 256/);
  assert.throws(() => trainBpe(new Map(), { vocabSize: 300, specialTokens: ['x', 'x'] }), /duplicate special tokens/);
});

test('incremental trainer equals the naive recount, whatever the order of the table', () => {
  const docs = allDocs().slice(0, 6);
  const words = countWords(docs.map((d) => documentText(d)));
  const options = { vocabSize: 3 + 256 + 150, specialTokens: ['<|endoftext|>', '<|im_start|>', '<|im_end|>'] };
  const fast = trainBpe(words, options);
  const naive = trainBpeNaive(words, options);
  assert.equal(fast.merges.length, 150);
  assert.deepEqual(fast.merges, naive.merges);
  assert.deepEqual(fast.mergeCounts, naive.mergeCounts);
  assert.deepEqual(fast.tokens, naive.tokens);
  // Counts never rise from one merge to the next.
  for (let i = 1; i < fast.mergeCounts.length; i++) assert.ok(fast.mergeCounts[i]! <= fast.mergeCounts[i - 1]!);
  const reversed = new Map([...words.entries()].reverse());
  assert.deepEqual(trainBpe(reversed, options).merges, fast.merges);
});

test('a trained tokenizer.json loads in @huggingface/tokenizers and round-trips unicode', () => {
  const texts = allDocs().slice(20, 40).map((d) => documentText(d));
  const trained = trainByteLevelTokenizer(texts, { vocabSize: 600, modelMaxLength: 512 });
  assert.equal(trained.model.tokens.length, 600);
  interface TokenizerJson {
    model: { type: string; vocab: Record<string, number>; merges: string[] };
    pre_tokenizer: unknown;
    post_processor: { type: string };
    decoder: { type: string };
    added_tokens: { id: number; content: string; special: boolean }[];
  }
  const json = JSON.parse(trained.tokenizerJson) as TokenizerJson;
  assert.equal(json.model.type, 'BPE');
  assert.equal(Object.keys(json.model.vocab).length, 600);
  assert.equal(json.model.merges.length, 600 - 259);
  assert.equal(json.model.merges[0], trained.model.merges[0]!.join(' '));
  assert.deepEqual(json.pre_tokenizer, { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true });
  assert.equal(json.decoder.type, 'ByteLevel');
  assert.equal(json.post_processor.type, 'ByteLevel');
  assert.deepEqual(
    json.added_tokens.map((t) => [t.id, t.content, t.special]),
    [
      [0, '<|endoftext|>', true],
      [1, '<|im_start|>', true],
      [2, '<|im_end|>', true],
    ],
  );
  // The file lists the vocabulary in id order (integer-like tokens such as "0" included).
  const vocabText = /"vocab": \{\n([\s\S]*?)\n {4}\}/.exec(trained.tokenizerJson)![1]!;
  assert.deepEqual(
    vocabText.split(',\n').map((l) => Number(/: (\d+)$/.exec(l)![1])),
    [...Array(600).keys()],
  );
  assert.equal(json.model.vocab['0'], 3 + 0x30);

  // The library itself, directly.
  const hf = new HfTokenizer(json, JSON.parse(trained.tokenizerConfigJson));
  for (const t of UNICODE_TEXTS.filter((x) => x !== '')) assert.equal(hf.decode(hf.encode(t, { add_special_tokens: false }).ids), t, JSON.stringify(t));

  // And through lorakit's wrapper, from a folder.
  const dir = tmpDir();
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), trained.tokenizerJson);
  fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), trained.tokenizerConfigJson);
  const tok = loadTokenizer(dir);
  assert.equal(tok.vocabSize, 600);
  assert.equal(tok.bosTokenId, 0);
  assert.deepEqual(tok.eosTokenIds, [0]);
  assert.equal(tok.padTokenId, 0);
  assert.deepEqual([...tok.specialTokenIds].sort(), [0, 1, 2]);
  for (const t of UNICODE_TEXTS) assert.equal(tok.decode(tok.encode(t)), t, JSON.stringify(t));
  // No BOS is added (GPT-2 style): encode with special tokens equals encode without.
  assert.deepEqual(tok.encode('The jury said.'), tok.encode('The jury said.', { addSpecialTokens: false }));
  const chat = tok.applyChatTemplate([{ role: 'user', content: 'Hi there' }], { addGenerationPrompt: true, tokenize: true });
  assert.equal(chat.text, '<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n');
  assert.equal(chat.ids[0], 1);
  assert.ok(chat.ids.includes(2));
  assert.equal(tok.decode(chat.ids), chat.text);
  assert.equal(tok.decode(chat.ids, { skipSpecialTokens: true }), 'user\nHi there\nassistant\n');

  // The library splits each training word exactly as the merges did during training.
  const words = [...countWords(texts).keys()].slice(0, 400);
  for (const w of words) assert.deepEqual(tok.tokenize(w), applyMerges(trained.model, w), JSON.stringify(w));
});

test('the committed models/brown-tokenizer: reproducible, and round-trips held-out text', () => {
  const { heldOut } = splitBrown(allDocs());
  const tok = loadTokenizer(COMMITTED);
  assert.equal(tok.vocabSize, 4096);
  assert.equal(tok.tokenToId('<|endoftext|>'), 0);
  assert.equal(tok.tokenToId('<|im_start|>'), 1);
  assert.equal(tok.tokenToId('<|im_end|>'), 2);
  assert.ok(tok.hasChatTemplate);
  for (const t of UNICODE_TEXTS) assert.equal(tok.decode(tok.encode(t)), t, JSON.stringify(t));
  const report = measureCompression(tok, heldOut);
  assert.deepEqual(report.failed, []);
  assert.equal(report.documents, 52);
  // A 4k byte-level vocabulary on edited English: well above 1 token per word, well below 2.
  assert.ok(report.tokensPerWord > 1.2 && report.tokensPerWord < 2, `tokens per word ${report.tokensPerWord}`);
  assert.ok(report.bytesPerToken > 3 && report.bytesPerToken < 5, `bytes per token ${report.bytesPerToken}`);

  // Retraining from the corpus gives the committed files byte for byte.
  const again = trainBrownTokenizer(allDocs(), { vocabSize: 4096, modelMaxLength: 2048 });
  assert.equal(again.tokenizerJson, fs.readFileSync(path.join(COMMITTED, 'tokenizer.json'), 'utf8'));
  assert.equal(again.tokenizerConfigJson, fs.readFileSync(path.join(COMMITTED, 'tokenizer_config.json'), 'utf8'));
});
