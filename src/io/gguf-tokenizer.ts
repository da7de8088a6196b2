// A GGUF file's tokenizer (tokenizer.ggml.*) as Hugging Face tokenizer files, so that the one
// tokenizer implementation (@huggingface/tokenizers, io/tokenizer.ts) runs it. docs/ARCHITECTURE.md §GGUF.
//
// tokenizer.ggml.model "gpt2" is byte-level BPE: tokens by id, merges "a b", token types
// (1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte). Control and user-defined
// tokens become added tokens (special for control). tokenizer.ggml.pre names llama.cpp's
// pre-tokenizer; each one lorakit knows maps to the tokenizer.json pre_tokenizer that splits
// the same way.
import { FormatError } from './errors.js';
import type { GgufMetadata } from './gguf.js';
import type { JsonObject } from './json.js';
import type { TokenizerFiles } from './tokenizer.js';

const BYTE_LEVEL = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
const BYTE_LEVEL_NO_REGEX = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false };

function splitThenBytes(pattern: string): JsonObject {
  return {
    type: 'Sequence',
    pretokenizers: [{ type: 'Split', pattern: { Regex: pattern }, behavior: 'Isolated', invert: false }, BYTE_LEVEL_NO_REGEX],
  };
}

/** tokenizer.ggml.pre → the tokenizer.json pre_tokenizer that splits as llama.cpp does. */
const PRE_TOKENIZERS: Record<string, () => JsonObject> = {
  'gpt-2': () => BYTE_LEVEL,
  'llama-bpe': () => splitThenBytes("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"),
  'qwen2': () => splitThenBytes("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"),
};

/** The tokenizer files (tokenizer.json and tokenizer_config.json as objects) of a GGUF file's metadata. */
export function ggufTokenizerFiles(meta: GgufMetadata, source: string): TokenizerFiles {
  const fail = (p: string): never => {
    throw new FormatError('GGUF file', source, [p]);
  };
  const model = meta.string('tokenizer.ggml.model', true);
  if (model === undefined) fail('has no tokenizer (metadata key "tokenizer.ggml.model" is missing)');
  if (model !== 'gpt2') fail(`tokenizer.ggml.model "${model}" is not supported yet (lorakit reads byte-level BPE, "gpt2")`);
  const pre = meta.string('tokenizer.ggml.pre', true) ?? 'gpt-2';
  const preTokenizer = PRE_TOKENIZERS[pre === 'default' ? 'gpt-2' : pre];
  if (!preTokenizer) fail(`tokenizer.ggml.pre "${pre}" is not supported yet (lorakit reads ${Object.keys(PRE_TOKENIZERS).join(', ')})`);
  const tokens = meta.strings('tokenizer.ggml.tokens');
  const types = meta.numbers('tokenizer.ggml.token_type') ?? [];
  if (types.length && types.length !== tokens.length) fail(`tokenizer.ggml.token_type has ${types.length} entries, tokenizer.ggml.tokens ${tokens.length}`);
  const merges = meta.strings('tokenizer.ggml.merges', true) ?? [];
  const vocab: Record<string, number> = {};
  const added: JsonObject[] = [];
  tokens.forEach((t, id) => {
    if (!Object.prototype.hasOwnProperty.call(vocab, t)) vocab[t] = id;
    const type = types[id] ?? 1;
    if (type === 3 || type === 4) added.push({ id, content: t, single_word: false, lstrip: false, rstrip: false, normalized: type === 4, special: type === 3 });
  });
  const idOf = (key: string): number | undefined => {
    const v = meta.number(key, true);
    if (v === undefined) return undefined;
    if (!Number.isInteger(v) || v < 0 || v >= tokens.length) fail(`metadata key "${key}" is ${v}, not a token id (0..${tokens.length - 1})`);
    return v;
  };
  const bos = idOf('tokenizer.ggml.bos_token_id');
  const eos = idOf('tokenizer.ggml.eos_token_id');
  const eot = idOf('tokenizer.ggml.eot_token_id');
  const unk = idOf('tokenizer.ggml.unknown_token_id');
  const pad = idOf('tokenizer.ggml.padding_token_id');
  const addBos = meta.bool('tokenizer.ggml.add_bos_token') ?? false;
  const addEos = meta.bool('tokenizer.ggml.add_eos_token') ?? false;
  let postProcessor: JsonObject = BYTE_LEVEL;
  if ((addBos && bos !== undefined) || (addEos && eos !== undefined)) {
    const single: JsonObject[] = [];
    const specials: JsonObject = {};
    if (addBos && bos !== undefined) {
      single.push({ SpecialToken: { id: tokens[bos]!, type_id: 0 } });
      specials[tokens[bos]!] = { id: tokens[bos]!, ids: [bos], tokens: [tokens[bos]!] };
    }
    single.push({ Sequence: { id: 'A', type_id: 0 } });
    if (addEos && eos !== undefined) {
      single.push({ SpecialToken: { id: tokens[eos]!, type_id: 0 } });
      specials[tokens[eos]!] = { id: tokens[eos]!, ids: [eos], tokens: [tokens[eos]!] };
    }
    postProcessor = { type: 'TemplateProcessing', single, pair: [...single, { Sequence: { id: 'B', type_id: 1 } }], special_tokens: specials };
  }
  const tokenizerJson: JsonObject = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: null,
    pre_tokenizer: preTokenizer!(),
    post_processor: postProcessor,
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab, merges },
  };
  const tokenizerConfig: JsonObject = { add_prefix_space: false, clean_up_tokenization_spaces: false };
  if (bos !== undefined) tokenizerConfig['bos_token'] = tokens[bos]!;
  if (eos !== undefined) tokenizerConfig['eos_token'] = tokens[eos]!;
  if (unk !== undefined) tokenizerConfig['unk_token'] = tokens[unk]!;
  if (pad !== undefined) tokenizerConfig['pad_token'] = tokens[pad]!;
  const template = meta.string('tokenizer.chat_template', true);
  if (template !== undefined) tokenizerConfig['chat_template'] = template;
  const files: TokenizerFiles = { source, tokenizerJson, tokenizerConfig };
  const ends = [...new Set([eos, eot].filter((x): x is number => x !== undefined))];
  if (ends.length) files.generationConfig = { eos_token_id: ends.length === 1 ? ends[0]! : ends };
  return files;
}
