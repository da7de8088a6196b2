// A byte-level BPE tokenizer trainer (GPT-2 style) that writes Hugging Face tokenizer files.
//
// Pre-tokenization is GPT-2's: the text is split by the GPT-2 regex (contractions, runs of
// letters, runs of digits, runs of other symbols, each optionally after one space; whitespace),
// and each piece becomes its UTF-8 bytes, written with the GPT-2 bytes-to-unicode table (every
// byte one printable character: space is "Ġ", newline "Ċ"). This is exactly what the ByteLevel
// pre-tokenizer of tokenizer.json does with use_regex true and add_prefix_space false, so the
// trained merges apply to the same pieces at encoding time, and every string round-trips.
//
// Training: the pieces of the training text are counted once into a word-frequency table; every
// distinct word is a sequence of symbol ids. Each step merges the most frequent adjacent pair of
// symbols (overlapping occurrences counted: "aaa" has the pair (a, a) twice) into a new symbol in
// every word, left to right. Pair counts are kept up to date incrementally: an index from each
// pair to the words that contain it names the only words a merge can change, and only their
// pairs are recounted. A max-heap with lazy deletion finds the best pair.
//
// Ties: among pairs of equal count the one whose left symbol has the smaller id wins, then the
// smaller right id. Ids: special tokens first (0…k-1), then the 256 bytes in byte order (k + b),
// then merged symbols in the order they were made. So ties go to bytes before merged symbols,
// to lower byte values first, and to older merged symbols before newer ones.
//
// Layout of the files follows GPT-2 / SmolLM2's tokenizer.json (BPE model with vocab and merges
// as "left right" strings, ByteLevel pre-tokenizer, post-processor and decoder, special tokens
// in added_tokens and at the start of the vocabulary) and tokenizer_config.json.

const TEXT_ENCODER = new TextEncoder();

/**
 * GPT-2's pre-tokenization pattern (the one the ByteLevel pre-tokenizer uses with use_regex true).
 * Global and stateful (lastIndex): use it only through `pretokenize` or String.prototype.match.
 */
export const GPT2_SPLIT_PATTERN = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

/**
 * GPT-2's bytes-to-unicode table: BYTE_TO_CHAR[b] is the character that stands for byte b.
 * Printable Latin-1 bytes (! … ~, ¡ … ¬, ® … ÿ) stand for themselves; the other 68 bytes, in
 * byte order, get U+0100, U+0101, … (so space 0x20 is U+0120 "Ġ", newline 0x0A is U+010A "Ċ").
 */
export const BYTE_TO_CHAR: readonly string[] = (() => {
  const printable = (b: number): boolean => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const out: string[] = [];
  let n = 0;
  for (let b = 0; b < 256; b++) out.push(String.fromCharCode(printable(b) ? b : 256 + n++));
  return Object.freeze(out);
})();

/** The inverse of BYTE_TO_CHAR. */
export const CHAR_TO_BYTE: ReadonlyMap<string, number> = new Map(BYTE_TO_CHAR.map((c, b) => [c, b]));

/** Splits text into GPT-2 pre-tokenization pieces (raw text, not yet byte-mapped). */
export function pretokenize(text: string): string[] {
  return text.match(GPT2_SPLIT_PATTERN) ?? [];
}

/** A string's UTF-8 bytes written with the bytes-to-unicode table ("é" → "Ã©"). */
export function byteLevelString(text: string): string {
  let out = '';
  for (const b of TEXT_ENCODER.encode(text)) out += BYTE_TO_CHAR[b]!;
  return out;
}

/** The inverse of byteLevelString (decodes with U+FFFD for invalid UTF-8). */
export function fromByteLevelString(s: string): string {
  const bytes = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) {
    const b = CHAR_TO_BYTE.get(s[i]!);
    if (b === undefined) throw new Error(`fromByteLevelString: ${JSON.stringify(s[i])} is not a byte-level character`);
    bytes[i] = b;
  }
  return new TextDecoder().decode(bytes);
}

/** Adds the pre-tokenization pieces of each text to a word-frequency table (raw pieces as keys). */
export function countWords(texts: Iterable<string>, into: Map<string, number> = new Map()): Map<string, number> {
  for (const text of texts) {
    for (const piece of pretokenize(text)) into.set(piece, (into.get(piece) ?? 0) + 1);
  }
  return into;
}

export interface BpeTrainOptions {
  /** Size of the whole vocabulary: special tokens + 256 bytes + merged symbols. */
  vocabSize: number;
  /** Added special tokens, given ids 0, 1, … in this order. Default none. */
  specialTokens?: readonly string[];
  /** Stop early when the best pair occurs fewer times than this. Default 2. */
  minFrequency?: number;
}

export interface BpeModel {
  /** Token strings by id (byte-level characters; special tokens verbatim). */
  readonly tokens: readonly string[];
  /** The merges in order, as pairs of token strings. */
  readonly merges: readonly (readonly [string, string])[];
  /** How many ids at the start are special tokens. */
  readonly specialCount: number;
  /** Counts of each merge's pair when it was made (for inspection). */
  readonly mergeCounts: readonly number[];
}

// Pair keys: left * KEY_BASE + right, exact in a double for ids below 2^21.
const KEY_BASE = 2 ** 21;

/** A binary max-heap of (count, key): higher count first, then smaller key. */
class PairHeap {
  private readonly counts: number[] = [];
  private readonly keys: number[] = [];

  get size(): number {
    return this.counts.length;
  }

  private above(i: number, j: number): boolean {
    const ci = this.counts[i]!;
    const cj = this.counts[j]!;
    return ci > cj || (ci === cj && this.keys[i]! < this.keys[j]!);
  }

  private swap(i: number, j: number): void {
    const c = this.counts[i]!;
    this.counts[i] = this.counts[j]!;
    this.counts[j] = c;
    const k = this.keys[i]!;
    this.keys[i] = this.keys[j]!;
    this.keys[j] = k;
  }

  push(count: number, key: number): void {
    this.counts.push(count);
    this.keys.push(key);
    let i = this.counts.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.above(i, parent)) break;
      this.swap(i, parent);
      i = parent;
    }
  }

  /** Removes the top; returns [count, key]. The heap must not be empty. */
  pop(): [number, number] {
    const top: [number, number] = [this.counts[0]!, this.keys[0]!];
    const lastC = this.counts.pop()!;
    const lastK = this.keys.pop()!;
    const n = this.counts.length;
    if (n > 0) {
      this.counts[0] = lastC;
      this.keys[0] = lastK;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < n && this.above(l, m)) m = l;
        if (r < n && this.above(r, m)) m = r;
        if (m === i) break;
        this.swap(i, m);
        i = m;
      }
    }
    return top;
  }
}

/**
 * Learns byte-level BPE merges from a word-frequency table (raw pieces → counts, as countWords
 * makes) until the vocabulary has `vocabSize` tokens or no pair occurs `minFrequency` times.
 * Deterministic: the result depends only on the table's contents, not on its order.
 */
export function trainBpe(words: ReadonlyMap<string, number>, options: BpeTrainOptions): BpeModel {
  const specials = [...(options.specialTokens ?? [])];
  const minFrequency = options.minFrequency ?? 2;
  const base = specials.length;
  if (new Set(specials).size !== specials.length) throw new Error(`trainBpe: duplicate special tokens in ${JSON.stringify(specials)}`);
  if (!Number.isInteger(options.vocabSize) || options.vocabSize < base + 256 || options.vocabSize > KEY_BASE) {
    throw new RangeError(`trainBpe: vocabSize must be an integer from ${base + 256} (special tokens + 256 bytes) to ${KEY_BASE}, got ${options.vocabSize}`);
  }

  const tokens: string[] = [...specials, ...BYTE_TO_CHAR];
  const idOf = new Map<string, number>();
  tokens.forEach((t, i) => {
    if (idOf.has(t)) throw new Error(`trainBpe: special token ${JSON.stringify(t)} is also a byte-level character`);
    idOf.set(t, i);
  });

  // Words as symbol sequences, in a fixed order (sorted) so ids and ties never depend on input order.
  const entries = [...words.entries()].filter(([w, n]) => w !== '' && n > 0).sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0));
  const seqs: number[][] = [];
  const freq: number[] = [];
  for (const [w, n] of entries) {
    seqs.push(Array.from(TEXT_ENCODER.encode(w), (b) => base + b));
    freq.push(n);
  }

  const pairCount = new Map<number, number>();
  const where = new Map<number, Set<number>>();
  const index = (key: number, w: number): void => {
    let s = where.get(key);
    if (s === undefined) where.set(key, (s = new Set()));
    s.add(w);
  };
  for (let w = 0; w < seqs.length; w++) {
    const s = seqs[w]!;
    const n = freq[w]!;
    for (let i = 0; i + 1 < s.length; i++) {
      const key = s[i]! * KEY_BASE + s[i + 1]!;
      pairCount.set(key, (pairCount.get(key) ?? 0) + n);
      index(key, w);
    }
  }
  const heap = new PairHeap();
  for (const [key, n] of pairCount) heap.push(n, key);

  const merges: [string, string][] = [];
  const mergeCounts: number[] = [];
  while (tokens.length < options.vocabSize) {
    // Pop until an entry is current. Every pair with a positive count has an entry whose count is
    // at least the current one (a rise pushes a new entry; a fall leaves the old, larger one),
    // so the first current entry is the true best, ties included.
    let best = -1;
    let bestCount = 0;
    while (heap.size > 0) {
      const [c, key] = heap.pop();
      const cur = pairCount.get(key) ?? 0;
      if (cur === c) {
        best = key;
        bestCount = c;
        break;
      }
      if (cur > 0 && cur < c) heap.push(cur, key);
    }
    if (best < 0 || bestCount < minFrequency) break;

    const a = Math.floor(best / KEY_BASE);
    const b = best - a * KEY_BASE;
    const merged = tokens[a]! + tokens[b]!;
    let id = idOf.get(merged);
    if (id === undefined) {
      // A string can be reached by two merge orders ("ab c" and "a bc"): it keeps one id.
      id = tokens.length;
      tokens.push(merged);
      idOf.set(merged, id);
    }
    merges.push([tokens[a]!, tokens[b]!]);
    mergeCounts.push(bestCount);
    pairCount.delete(best);

    const delta = new Map<number, number>();
    const add = (key: number, d: number): void => {
      delta.set(key, (delta.get(key) ?? 0) + d);
    };
    for (const w of where.get(best) ?? []) {
      const s = seqs[w]!;
      let found = false;
      for (let i = 0; i + 1 < s.length; i++) {
        if (s[i] === a && s[i + 1] === b) {
          found = true;
          break;
        }
      }
      if (!found) continue; // the index is lazy: an earlier merge took the pair out of this word
      const n = freq[w]!;
      const out: number[] = [];
      for (let i = 0; i < s.length; ) {
        if (i + 1 < s.length && s[i] === a && s[i + 1] === b) {
          out.push(id);
          i += 2;
        } else {
          out.push(s[i]!);
          i += 1;
        }
      }
      for (let i = 0; i + 1 < s.length; i++) add(s[i]! * KEY_BASE + s[i + 1]!, -n);
      for (let i = 0; i + 1 < out.length; i++) {
        const key = out[i]! * KEY_BASE + out[i + 1]!;
        add(key, n);
        // Pairs without the new symbol were in this word before and are indexed already.
        if (out[i] === id || out[i + 1] === id) index(key, w);
      }
      seqs[w] = out;
    }
    where.delete(best);
    for (const [key, d] of delta) {
      if (d === 0 || key === best) continue;
      const c = (pairCount.get(key) ?? 0) + d;
      if (c > 0) pairCount.set(key, c);
      else pairCount.delete(key);
      if (d > 0) heap.push(c, key);
    }
  }
  return { tokens, merges, specialCount: base, mergeCounts };
}

/**
 * The naive twin of trainBpe, for tests: the same merges by recounting every pair of every word
 * at each step. Slow (each step costs a pass over the whole table); use it on small tables only.
 */
export function trainBpeNaive(words: ReadonlyMap<string, number>, options: BpeTrainOptions): BpeModel {
  const specials = [...(options.specialTokens ?? [])];
  const minFrequency = options.minFrequency ?? 2;
  const base = specials.length;
  const tokens: string[] = [...specials, ...BYTE_TO_CHAR];
  const idOf = new Map(tokens.map((t, i) => [t, i]));
  const table = [...words.entries()].filter(([w, n]) => w !== '' && n > 0);
  const seqs = table.map(([w]) => Array.from(TEXT_ENCODER.encode(w), (b) => base + b));
  const merges: [string, string][] = [];
  const mergeCounts: number[] = [];
  while (tokens.length < options.vocabSize) {
    const counts = new Map<number, number>();
    seqs.forEach((s, w) => {
      for (let i = 0; i + 1 < s.length; i++) {
        const k = s[i]! * KEY_BASE + s[i + 1]!;
        counts.set(k, (counts.get(k) ?? 0) + table[w]![1]);
      }
    });
    let best: [number, number] | undefined;
    let bestCount = 0;
    for (const [k, c] of counts) {
      const l = Math.floor(k / KEY_BASE);
      const r = k - l * KEY_BASE;
      if (best === undefined || c > bestCount || (c === bestCount && (l < best[0] || (l === best[0] && r < best[1])))) {
        best = [l, r];
        bestCount = c;
      }
    }
    if (best === undefined || bestCount < minFrequency) break;
    const [a, b] = best;
    const merged = tokens[a]! + tokens[b]!;
    let id = idOf.get(merged);
    if (id === undefined) {
      id = tokens.length;
      tokens.push(merged);
      idOf.set(merged, id);
    }
    merges.push([tokens[a]!, tokens[b]!]);
    mergeCounts.push(bestCount);
    for (let w = 0; w < seqs.length; w++) {
      const s = seqs[w]!;
      const out: number[] = [];
      for (let i = 0; i < s.length; ) {
        if (i + 1 < s.length && s[i] === a && s[i + 1] === b) {
          out.push(id);
          i += 2;
        } else {
          out.push(s[i]!);
          i += 1;
        }
      }
      seqs[w] = out;
    }
  }
  return { tokens, merges, specialCount: base, mergeCounts };
}

// ---------------------------------------------------------------------------------------------
// Hugging Face files

/** ChatML: `<|im_start|>role\ncontent<|im_end|>\n` per message, then `<|im_start|>assistant\n` to generate. */
export const CHATML_TEMPLATE =
  "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

export interface TokenizerConfigOptions {
  bosToken?: string;
  eosToken?: string;
  padToken?: string;
  unkToken?: string;
  /** Special tokens besides bos/eos/pad/unk, listed as additional_special_tokens. */
  additionalSpecialTokens?: readonly string[];
  chatTemplate?: string;
  modelMaxLength: number;
}

function addedToken(id: number, content: string): Record<string, unknown> {
  return { id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true };
}

const BYTE_LEVEL = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };

/**
 * tokenizer.json text for a trained model: BPE with the vocabulary in id order and merges as
 * "left right" strings (byte-level tokens never contain a space), ByteLevel pre-tokenizer,
 * post-processor (trim_offsets) and decoder, the special tokens as added tokens.
 */
export function tokenizerJsonText(model: BpeModel): string {
  const specials = model.tokens.slice(0, model.specialCount);
  const doc = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: specials.map((t, i) => addedToken(i, t)),
    normalizer: null,
    pre_tokenizer: BYTE_LEVEL,
    post_processor: BYTE_LEVEL,
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      vocab: '\u0000VOCAB\u0000',
      merges: model.merges.map(([l, r]) => `${l} ${r}`),
    },
  };
  // JSON objects put integer-like keys ("0", "10") first, so the vocabulary is written by hand,
  // in id order, as Hugging Face writes it.
  const vocab = model.tokens.map((t, i) => `      ${JSON.stringify(t)}: ${i}`).join(',\n');
  // (A replacer function: the vocabulary holds "$" tokens, special in a replacement string.)
  const text = JSON.stringify(doc, null, 2).replace('"\\u0000VOCAB\\u0000"', () => `{\n${vocab}\n    }`);
  return text + '\n';
}

/** tokenizer_config.json contents (GPT2Tokenizer class; added_tokens_decoder for the specials). */
export function tokenizerConfig(model: BpeModel, options: TokenizerConfigOptions): Record<string, unknown> {
  const specials = model.tokens.slice(0, model.specialCount);
  const check = (what: string, t: string | undefined): void => {
    if (t !== undefined && !specials.includes(t)) throw new Error(`tokenizerConfig: ${what} ${JSON.stringify(t)} is not one of the special tokens ${JSON.stringify(specials)}`);
  };
  check('bos_token', options.bosToken);
  check('eos_token', options.eosToken);
  check('pad_token', options.padToken);
  check('unk_token', options.unkToken);
  for (const t of options.additionalSpecialTokens ?? []) check('additional special token', t);
  const decoder: Record<string, unknown> = {};
  specials.forEach((t, i) => {
    const entry = addedToken(i, t);
    delete entry['id'];
    decoder[String(i)] = entry;
  });
  const cfg: Record<string, unknown> = {
    add_prefix_space: false,
    added_tokens_decoder: decoder,
    additional_special_tokens: [...(options.additionalSpecialTokens ?? [])],
  };
  if (options.bosToken !== undefined) cfg['bos_token'] = options.bosToken;
  if (options.chatTemplate !== undefined) cfg['chat_template'] = options.chatTemplate;
  cfg['clean_up_tokenization_spaces'] = false;
  if (options.eosToken !== undefined) cfg['eos_token'] = options.eosToken;
  cfg['model_max_length'] = options.modelMaxLength;
  if (options.padToken !== undefined) cfg['pad_token'] = options.padToken;
  cfg['tokenizer_class'] = 'GPT2Tokenizer';
  if (options.unkToken !== undefined) cfg['unk_token'] = options.unkToken;
  cfg['vocab_size'] = model.tokens.length;
  return cfg;
}

export const ENDOFTEXT = '<|endoftext|>';
export const IM_START = '<|im_start|>';
export const IM_END = '<|im_end|>';

export interface ByteLevelTokenizerOptions {
  vocabSize: number;
  modelMaxLength: number;
  minFrequency?: number;
}

export interface TrainedTokenizer {
  model: BpeModel;
  /** tokenizer.json, as written. */
  tokenizerJson: string;
  /** tokenizer_config.json, as written. */
  tokenizerConfigJson: string;
  /** Distinct pre-tokenization pieces in the training text. */
  distinctWords: number;
  /** Seconds spent counting words and merging. */
  seconds: number;
}

/**
 * Trains the lorakit base-model tokenizer on texts: `<|endoftext|>` (id 0: BOS, EOS, PAD and
 * UNK), `<|im_start|>` (1) and `<|im_end|>` (2) for ChatML, the 256 bytes, then merges.
 */
export function trainByteLevelTokenizer(texts: Iterable<string>, options: ByteLevelTokenizerOptions): TrainedTokenizer {
  const t0 = performance.now();
  const words = countWords(texts);
  const trainOptions: BpeTrainOptions = { vocabSize: options.vocabSize, specialTokens: [ENDOFTEXT, IM_START, IM_END] };
  if (options.minFrequency !== undefined) trainOptions.minFrequency = options.minFrequency;
  const model = trainBpe(words, trainOptions);
  const seconds = (performance.now() - t0) / 1000;
  const config = tokenizerConfig(model, {
    bosToken: ENDOFTEXT,
    eosToken: ENDOFTEXT,
    padToken: ENDOFTEXT,
    unkToken: ENDOFTEXT,
    additionalSpecialTokens: [IM_START, IM_END],
    chatTemplate: CHATML_TEMPLATE,
    modelMaxLength: options.modelMaxLength,
  });
  return {
    model,
    tokenizerJson: tokenizerJsonText(model),
    tokenizerConfigJson: JSON.stringify(config, null, 2) + '\n',
    distinctWords: words.size,
    seconds,
  };
}
