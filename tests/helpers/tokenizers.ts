// Builders of small but real-format tokenizer.json files, written by the tests themselves (no
// downloads). Two families:
//  - byte-level BPE, as GPT-2 / Llama 3 / Qwen use: ByteLevel pre-tokenizer and decoder, a vocab
//    holding all 256 byte symbols (id = byte value here) plus merges, special tokens added on top;
//  - SentencePiece-style BPE, as Llama 2 / TinyLlama use: `▁` for spaces (Prepend + Replace
//    normalizers, or a Metaspace pre-tokenizer), byte_fallback with <0xXX> tokens, and the decoder
//    sequence Replace(▁→' ') / ByteFallback / Fuse / Strip(1 leading space).
// Both write tokenizer.json and tokenizer_config.json (and generation_config.json when asked) and
// return the vocabulary so tests can compute expected ids by hand.
import * as fs from 'node:fs';
import * as path from 'node:path';

/** GPT-2's reversible map from bytes to printable characters (the ByteLevel alphabet). */
export function bytesToUnicode(): string[] {
  const printable: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) printable.push(b);
  for (let b = 0xa1; b <= 0xac; b++) printable.push(b);
  for (let b = 0xae; b <= 0xff; b++) printable.push(b);
  const out: string[] = new Array(256);
  let next = 0;
  for (let b = 0; b < 256; b++) {
    if (printable.includes(b)) out[b] = String.fromCharCode(b);
    else out[b] = String.fromCharCode(256 + next++);
  }
  return out;
}

/** The ByteLevel symbol string of a text (its UTF-8 bytes mapped through bytesToUnicode). */
export function byteLevelSymbols(text: string): string {
  const map = bytesToUnicode();
  return [...Buffer.from(text, 'utf8')].map((b) => map[b]).join('');
}

export type ChatTemplateSpec = string | { name: string; template: string }[];

/** ChatML, as Qwen2 / SmolLM use (written for these tests). */
export const CHATML_TEMPLATE =
  "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/** A Llama-2-style template: [INST] blocks, bos/eos tokens, an optional <<SYS>> block, and raise_exception on an unknown role. */
export const LLAMA2_CHAT_TEMPLATE =
  "{% if messages[0]['role'] == 'system' %}{% set system = messages[0]['content'] %}{% set turns = messages[1:] %}{% else %}{% set system = '' %}{% set turns = messages %}{% endif %}" +
  '{% for message in turns %}' +
  "{% if message['role'] == 'user' %}" +
  "{% if loop.first and system %}{% set text = '<<SYS>>\\n' + system + '\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set text = message['content'] %}{% endif %}" +
  "{{ bos_token + '[INST] ' + text | trim + ' [/INST]' }}" +
  "{% elif message['role'] == 'assistant' %}{{ ' ' + message['content'] | trim + ' ' + eos_token }}" +
  "{% else %}{{ raise_exception('Unknown role: ' + message['role']) }}{% endif %}" +
  '{% endfor %}';

export interface WrittenTokenizer {
  dir: string;
  /** Every token (model vocab and added tokens) → id. */
  vocab: Map<string, number>;
  /** The id of a token; throws if absent. */
  id(token: string): number;
  tokenizerJson: Record<string, unknown>;
  tokenizerConfig: Record<string, unknown>;
}

function written(dir: string, vocab: Map<string, number>, tokenizerJson: Record<string, unknown>, tokenizerConfig: Record<string, unknown>, generationConfig?: Record<string, unknown>): WrittenTokenizer {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(tokenizerJson, null, 2));
  fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify(tokenizerConfig, null, 2));
  if (generationConfig) fs.writeFileSync(path.join(dir, 'generation_config.json'), JSON.stringify(generationConfig, null, 2));
  return {
    dir,
    vocab,
    id(token: string): number {
      const id = vocab.get(token);
      if (id === undefined) throw new Error(`test tokenizer has no token ${JSON.stringify(token)}`);
      return id;
    },
    tokenizerJson,
    tokenizerConfig,
  };
}

function addedToken(id: number, content: string, special = true): Record<string, unknown> {
  return { id, content, single_word: false, lstrip: false, rstrip: false, normalized: !special, special };
}

function addedTokensDecoder(tokens: Record<string, unknown>[]): Record<string, unknown> {
  return Object.fromEntries(tokens.map((t) => [String(t['id']), { ...t, id: undefined }]));
}

export interface ByteLevelBpeOptions {
  /** Special tokens added after the merges, in order (default ['<|endoftext|>']). */
  specialTokens?: string[];
  /** Added by the post-processor at the start of every encoding (Llama 3 style), if set. */
  bosToken?: string;
  /** Default: the first special token. */
  eosToken?: string;
  padToken?: string;
  chatTemplate?: ChatTemplateSpec;
  /** "strings" ("a b", GPT-2's files) or "pairs" (["a", "b"], newer files). Default "strings". */
  mergesFormat?: 'strings' | 'pairs';
  /** Merges on top of the built-in ones, as texts to merge into one token (in rank order). */
  extraWords?: string[];
  generationConfig?: Record<string, unknown>;
}

/**
 * Words the byte-level test vocabulary can merge fully (each gets one token). Merges are built
 * left to right: for "Hello": "H e", "He l", "Hel l", "Hell o". Ranks follow this list's order.
 */
export const BYTE_LEVEL_WORDS = ['Hello', ' world', ' the', 'é', ' café', '世界'];

function leftToRightMerges(symbols: string[], merges: [string, string][], vocab: Map<string, number>): void {
  let acc = symbols[0]!;
  for (let i = 1; i < symbols.length; i++) {
    const next = symbols[i]!;
    const merged = acc + next;
    if (!vocab.has(merged)) {
      merges.push([acc, next]);
      vocab.set(merged, vocab.size);
    }
    acc = merged;
  }
}

/**
 * A GPT-2 / Llama-3-style byte-level BPE. Vocabulary: id b is the symbol of byte b (0..255), then
 * one token per merge (BYTE_LEVEL_WORDS, then extraWords, each merged left to right), then the
 * special tokens.
 */
export function writeByteLevelBpeTokenizer(dir: string, opts: ByteLevelBpeOptions = {}): WrittenTokenizer {
  const alphabet = bytesToUnicode();
  const vocab = new Map<string, number>();
  alphabet.forEach((ch, b) => vocab.set(ch, b));
  const merges: [string, string][] = [];
  for (const word of [...BYTE_LEVEL_WORDS, ...(opts.extraWords ?? [])]) {
    // A word is merged as a sequence of whole characters' byte symbols: first each character's
    // bytes together, then the characters left to right.
    const chars = [...word].map((c) => byteLevelSymbols(c));
    for (const c of chars) if (c.length > 1) leftToRightMerges([...c], merges, vocab);
    if (chars.length > 1) leftToRightMerges(chars, merges, vocab);
  }
  const modelVocab = new Map(vocab);
  const specials = opts.specialTokens ?? ['<|endoftext|>'];
  const added = specials.map((s) => {
    const id = vocab.size;
    vocab.set(s, id);
    return addedToken(id, s);
  });
  const byteLevelPost = { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true };
  const post =
    opts.bosToken === undefined
      ? byteLevelPost
      : {
          type: 'Sequence',
          processors: [
            byteLevelPost,
            {
              type: 'TemplateProcessing',
              single: [{ SpecialToken: { id: opts.bosToken, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
              pair: [
                { SpecialToken: { id: opts.bosToken, type_id: 0 } },
                { Sequence: { id: 'A', type_id: 0 } },
                { SpecialToken: { id: opts.bosToken, type_id: 1 } },
                { Sequence: { id: 'B', type_id: 1 } },
              ],
              special_tokens: { [opts.bosToken]: { id: opts.bosToken, ids: [vocab.get(opts.bosToken)], tokens: [opts.bosToken] } },
            },
          ],
        };
  const tokenizerJson = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: post,
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: '',
      end_of_word_suffix: '',
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab: Object.fromEntries(modelVocab),
      merges: opts.mergesFormat === 'pairs' ? merges : merges.map(([a, b]) => `${a} ${b}`),
    },
  };
  const tokenizerConfig: Record<string, unknown> = {
    add_bos_token: false,
    add_prefix_space: false,
    added_tokens_decoder: addedTokensDecoder(added),
    bos_token: opts.bosToken ?? specials[0],
    eos_token: opts.eosToken ?? specials[0],
    clean_up_tokenization_spaces: false,
    model_max_length: 1024,
    tokenizer_class: 'GPT2Tokenizer',
  };
  if (opts.padToken !== undefined) tokenizerConfig['pad_token'] = opts.padToken;
  if (opts.chatTemplate !== undefined) tokenizerConfig['chat_template'] = opts.chatTemplate;
  return written(dir, vocab, tokenizerJson, tokenizerConfig, opts.generationConfig);
}

export interface SentencePieceBpeOptions {
  /**
   * "normalizer": Prepend("▁") + Replace(" " → "▁") normalizers and no pre-tokenizer (Llama 2,
   * TinyLlama). "metaspace": a Metaspace pre-tokenizer with prepend_scheme "first" (newer
   * conversions, e.g. Mistral). Default "normalizer".
   */
  spaces?: 'normalizer' | 'metaspace';
  chatTemplate?: ChatTemplateSpec;
  /** Write bos_token / eos_token in tokenizer_config as {content: …} objects (as older files do). Default true. */
  tokenObjects?: boolean;
  /** Extra special tokens after </s>. */
  specialTokens?: string[];
  generationConfig?: Record<string, unknown>;
}

/** Single characters of the SentencePiece test vocabulary (besides the byte tokens). */
export const SENTENCEPIECE_CHARS = [...'▁etaoinshrdlucmfwygpbvkxjqzETAOINSHRDLUCMFWYGPBVKXJQZ0123456789.,!?\'"-:;()[]/<>é世'];

/**
 * Merges, in rank order, chosen so that "▁Hello▁world" becomes [▁Hello, ▁world]:
 * l+l, H+e, o+r, l+d, ▁+w, ll+o, He+llo, ▁+Hello, ▁w+or, ▁wor+ld, plus a few others.
 */
export const SENTENCEPIECE_MERGES: [string, string][] = [
  ['l', 'l'],
  ['H', 'e'],
  ['o', 'r'],
  ['l', 'd'],
  ['▁', 'w'],
  ['ll', 'o'],
  ['He', 'llo'],
  ['▁', 'Hello'],
  ['▁w', 'or'],
  ['▁wor', 'ld'],
  ['▁', 't'],
  ['h', 'e'],
  ['▁t', 'he'],
  ['▁', 'é'],
];

/**
 * A Llama-2-style SentencePiece BPE: ids 0 <unk>, 1 <s>, 2 </s>, 3..258 the byte tokens <0x00>..<0xFF>,
 * then SENTENCEPIECE_CHARS, then one token per merge in SENTENCEPIECE_MERGES.
 */
export function writeSentencePieceBpeTokenizer(dir: string, opts: SentencePieceBpeOptions = {}): WrittenTokenizer {
  const vocab = new Map<string, number>([
    ['<unk>', 0],
    ['<s>', 1],
    ['</s>', 2],
  ]);
  for (let b = 0; b < 256; b++) vocab.set(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`, vocab.size);
  for (const c of SENTENCEPIECE_CHARS) if (!vocab.has(c)) vocab.set(c, vocab.size);
  for (const [a, b] of SENTENCEPIECE_MERGES) if (!vocab.has(a + b)) vocab.set(a + b, vocab.size);
  const modelVocab = new Map(vocab);
  const added = [addedToken(0, '<unk>'), addedToken(1, '<s>'), addedToken(2, '</s>')];
  for (const s of opts.specialTokens ?? []) {
    vocab.set(s, vocab.size);
    added.push(addedToken(vocab.get(s)!, s));
  }
  const metaspace = opts.spaces === 'metaspace';
  const tokenizerJson = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: metaspace
      ? null
      : {
          type: 'Sequence',
          normalizers: [
            { type: 'Prepend', prepend: '▁' },
            { type: 'Replace', pattern: { String: ' ' }, content: '▁' },
          ],
        },
    pre_tokenizer: metaspace ? { type: 'Metaspace', replacement: '▁', prepend_scheme: 'first', split: false } : null,
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [
        { SpecialToken: { id: '<s>', type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: '<s>', type_id: 1 } },
        { Sequence: { id: 'B', type_id: 1 } },
      ],
      special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
    },
    decoder: {
      type: 'Sequence',
      decoders: [
        { type: 'Replace', pattern: { String: '▁' }, content: ' ' },
        { type: 'ByteFallback' },
        { type: 'Fuse' },
        { type: 'Strip', content: ' ', start: 1, stop: 0 },
      ],
    },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: '<unk>',
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: true,
      ignore_merges: false,
      vocab: Object.fromEntries(modelVocab),
      merges: SENTENCEPIECE_MERGES.map(([a, b]) => `${a} ${b}`),
    },
  };
  const tokenObject = (content: string): unknown =>
    opts.tokenObjects === false ? content : { __type: 'AddedToken', content, lstrip: false, normalized: false, rstrip: false, single_word: false };
  const tokenizerConfig: Record<string, unknown> = {
    add_bos_token: true,
    add_eos_token: false,
    added_tokens_decoder: addedTokensDecoder(added),
    bos_token: tokenObject('<s>'),
    eos_token: tokenObject('</s>'),
    unk_token: tokenObject('<unk>'),
    pad_token: null,
    clean_up_tokenization_spaces: false,
    legacy: false,
    model_max_length: 2048,
    tokenizer_class: 'LlamaTokenizer',
  };
  if (opts.chatTemplate !== undefined) tokenizerConfig['chat_template'] = opts.chatTemplate;
  return written(dir, vocab, tokenizerJson, tokenizerConfig, opts.generationConfig);
}
