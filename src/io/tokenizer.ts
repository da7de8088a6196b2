// Tokenizer: a thin wrapper over @huggingface/tokenizers (tokenizer.json + tokenizer_config.json,
// all offline) with the special tokens resolved, incremental decoding for generation, and chat
// templates rendered by @huggingface/jinja.
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { Template } from '@huggingface/jinja';
import { FormatError, Problems, describe } from './errors.js';
import type { JsonObject } from './json.js';

/** The tokenizer files of a model folder, parsed. Only tokenizer.json is required. */
export interface TokenizerFiles {
  /** Where they came from (a folder), for error messages. */
  source: string;
  tokenizerJson: JsonObject;
  tokenizerConfig?: JsonObject;
  specialTokensMap?: JsonObject;
  generationConfig?: JsonObject;
  /** Templates from chat_template.jinja / chat_template.json, which take precedence over tokenizer_config. */
  chatTemplateFile?: string | JsonObject;
}

/** The chat roles lorakit knows: the data loader (data/records.ts) and the server (serve/validate.ts) accept these, and only these. */
export const CHAT_ROLES = ['system', 'user', 'assistant', 'tool'] as const;

export interface ChatMessage {
  role: string;
  content?: unknown;
  [key: string]: unknown;
}

export interface EncodeOptions {
  /** Add the special tokens the tokenizer's post-processor adds (e.g. BOS). Default true. */
  addSpecialTokens?: boolean;
}

export interface DecodeOptions {
  skipSpecialTokens?: boolean;
}

export interface ChatTemplateOptions {
  /** Append the opening of an assistant turn. Default false. */
  addGenerationPrompt?: boolean;
  /** Tool (function) definitions, passed to the template as `tools`. */
  tools?: readonly unknown[];
  /** Which named template to use (for tokenizer_config chat_template lists). */
  templateName?: string;
  /** More variables for the template. */
  variables?: Readonly<Record<string, unknown>>;
}

export class ChatTemplateError extends Error {
  override name = 'ChatTemplateError';
}

/** A special token in tokenizer_config / special_tokens_map: a string or an AddedToken object. */
export function specialTokenContent(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (typeof value === 'object' && value !== null && typeof (value as JsonObject)['content'] === 'string') return (value as JsonObject)['content'] as string;
  return undefined;
}

const SPECIAL_KEYS = ['bos_token', 'eos_token', 'unk_token', 'pad_token', 'sep_token', 'cls_token', 'mask_token'] as const;

/**
 * Chat templates from tokenizer_config's `chat_template` (a string, or a list of {name, template})
 * or from chat_template.jinja / chat_template.json. A lone string is named "default".
 */
export function parseChatTemplates(value: unknown, where: string, problems: Problems): Map<string, string> {
  const out = new Map<string, string>();
  if (value === undefined || value === null) return out;
  if (typeof value === 'string') {
    out.set('default', value);
  } else if (Array.isArray(value)) {
    value.forEach((item, i) => {
      const o = item as JsonObject;
      if (typeof item !== 'object' || item === null || typeof o['name'] !== 'string' || typeof o['template'] !== 'string') {
        problems.add(`${where}[${i}] must be {name: string, template: string}, got ${describe(item)}`);
      } else {
        out.set(o['name'] as string, o['template'] as string);
      }
    });
  } else if (typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      if (typeof v === 'string') out.set(k, v);
      else problems.add(`${where}.${k} must be a template string, got ${describe(v)}`);
    }
  } else {
    problems.add(`${where} must be a string or a list of {name, template}, got ${describe(value)}`);
  }
  return out;
}

function idsOf(value: unknown): number[] {
  if (typeof value === 'number' && Number.isInteger(value)) return [value];
  if (Array.isArray(value)) return value.filter((v): v is number => typeof v === 'number' && Number.isInteger(v));
  return [];
}

export class Tokenizer {
  /** Where the tokenizer came from, for messages. */
  readonly source: string;
  /** Number of token ids (largest id + 1, added tokens included). */
  readonly vocabSize: number;
  readonly bosToken: string | undefined;
  readonly eosToken: string | undefined;
  readonly padToken: string | undefined;
  readonly unkToken: string | undefined;
  readonly bosTokenId: number | undefined;
  /** The EOS id of the tokenizer plus any generation_config eos_token_id (Llama 3 has several). */
  readonly eosTokenIds: readonly number[];
  readonly padTokenId: number | undefined;
  readonly unkTokenId: number | undefined;
  /** Ids of all special added tokens. */
  readonly specialTokenIds: ReadonlySet<number>;
  /** Named chat templates ("default" for a single one). */
  readonly chatTemplates: ReadonlyMap<string, string>;
  /** Every special token string by its tokenizer_config key (bos_token, …), for templates. */
  readonly specialTokens: Readonly<Record<string, string>>;
  private readonly hf: HfTokenizer;
  private readonly compiled = new Map<string, Template>();
  private specialTexts: readonly string[] | undefined;

  constructor(files: TokenizerFiles) {
    this.source = files.source;
    const p = new Problems('tokenizer', files.source);
    const tj = { ...files.tokenizerJson };
    if (typeof tj['model'] !== 'object' || tj['model'] === null) p.add(`tokenizer.json has no "model" object (got ${describe(tj['model'])})`);
    for (const k of ['normalizer', 'pre_tokenizer', 'post_processor', 'decoder']) if (!(k in tj)) tj[k] = null;
    if (!Array.isArray(tj['added_tokens'])) tj['added_tokens'] = [];
    p.throwIfAny();

    const cfg: JsonObject = { ...(files.tokenizerConfig ?? {}) };
    const stm = files.specialTokensMap ?? {};
    const specials: Record<string, string> = {};
    for (const key of SPECIAL_KEYS) {
      const v = specialTokenContent(cfg[key]) ?? specialTokenContent(stm[key]);
      if (v !== undefined) specials[key] = v;
      if (cfg[key] !== undefined && cfg[key] !== null && specialTokenContent(cfg[key]) === undefined) {
        p.add(`tokenizer_config.json ${key} must be a string or {content: string}, got ${describe(cfg[key])}`);
      }
      if (v !== undefined) cfg[key] = v;
      else delete cfg[key];
    }
    const extra = cfg['additional_special_tokens'] ?? stm['additional_special_tokens'];
    if (Array.isArray(extra)) cfg['additional_special_tokens'] = extra.map(specialTokenContent).filter((s): s is string => s !== undefined);
    else delete cfg['additional_special_tokens'];
    // Decoding is faithful unless the model asks for the old "clean up" of spaces before punctuation.
    cfg['clean_up_tokenization_spaces'] = cfg['clean_up_tokenization_spaces'] === true;

    const templateProblems = new Problems('tokenizer', files.source);
    let templates = new Map<string, string>();
    if (typeof files.chatTemplateFile === 'string') templates.set('default', files.chatTemplateFile);
    else if (files.chatTemplateFile !== undefined) templates = parseChatTemplates(files.chatTemplateFile['chat_template'], 'chat_template.json chat_template', templateProblems);
    if (templates.size === 0) templates = parseChatTemplates(cfg['chat_template'], 'tokenizer_config.json chat_template', templateProblems);
    for (const q of templateProblems.list) p.add(q);
    this.chatTemplates = templates;

    try {
      this.hf = new HfTokenizer(tj, cfg);
    } catch (err) {
      throw new FormatError('tokenizer', files.source, [...p.list, `tokenizer.json could not be loaded: ${(err as Error).message}`]);
    }
    this.vocabSize = this.hf.model?.vocab.length ?? 0;
    const special = new Set<number>();
    for (const [id, tok] of this.hf.get_added_tokens_decoder()) if (tok.special) special.add(id);
    this.specialTokenIds = special;
    this.specialTokens = Object.freeze(specials);

    const lookup = (key: string): number | undefined => {
      const tok = specials[key];
      if (tok === undefined) return undefined;
      const id = this.hf.token_to_id(tok);
      if (id === undefined) p.add(`${key} ${JSON.stringify(tok)} is not in the vocabulary of tokenizer.json`);
      return id;
    };
    this.bosToken = specials['bos_token'];
    this.eosToken = specials['eos_token'];
    this.padToken = specials['pad_token'];
    this.unkToken = specials['unk_token'];
    this.bosTokenId = lookup('bos_token');
    this.unkTokenId = lookup('unk_token');
    const gen = files.generationConfig ?? {};
    const eos = lookup('eos_token');
    const eosIds: number[] = [];
    for (const id of [...(eos === undefined ? [] : [eos]), ...idsOf(gen['eos_token_id'])]) if (!eosIds.includes(id)) eosIds.push(id);
    this.eosTokenIds = Object.freeze(eosIds);
    this.padTokenId = lookup('pad_token') ?? idsOf(gen['pad_token_id'])[0];
    p.throwIfAny();
  }

  encode(text: string, options: EncodeOptions = {}): number[] {
    return this.hf.encode(text, { add_special_tokens: options.addSpecialTokens ?? true }).ids;
  }

  /** Token strings (as in the vocabulary) for a text, without special tokens unless asked. */
  tokenize(text: string, options: EncodeOptions = {}): string[] {
    return this.hf.tokenize(text, { add_special_tokens: options.addSpecialTokens ?? false });
  }

  decode(ids: readonly number[], options: DecodeOptions = {}): string {
    if (ids.length === 0) return '';
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize || this.hf.id_to_token(id) === undefined) {
        throw new RangeError(`tokenizer ${this.source}: decode got token id ${id}, which is not in the vocabulary (ids run 0..${this.vocabSize - 1})`);
      }
    }
    return this.hf.decode([...ids], { skip_special_tokens: options.skipSpecialTokens ?? false });
  }

  tokenToId(token: string): number | undefined {
    return this.hf.token_to_id(token);
  }

  idToToken(id: number): string | undefined {
    return this.hf.id_to_token(id);
  }

  /** A decoder for generation: push ids one at a time, get back only complete text. */
  streamDecoder(options: DecodeOptions = {}): StreamDecoder {
    return new StreamDecoder(this, options);
  }

  /** The text of every special added token (turn markers, BOS, EOS…), longest first. */
  get specialTokenTexts(): readonly string[] {
    if (this.specialTexts === undefined) {
      const texts: string[] = [];
      for (const id of this.specialTokenIds) {
        const t = this.hf.id_to_token(id);
        if (t !== undefined && t !== '') texts.push(t);
      }
      this.specialTexts = Object.freeze(texts.sort((a, b) => b.length - a.length));
    }
    return this.specialTexts;
  }

  get hasChatTemplate(): boolean {
    return this.chatTemplates.size > 0;
  }

  /** The chat template source to use: by name, or "tool_use" when tools are given and it exists, or "default". */
  chatTemplate(name?: string, withTools = false): string {
    if (this.chatTemplates.size === 0) {
      throw new ChatTemplateError(
        `tokenizer ${this.source} has no chat template (looked for chat_template in tokenizer_config.json, chat_template.jinja and chat_template.json); ` +
          'a base model needs a template supplied before chat data can be formatted',
      );
    }
    const names = [...this.chatTemplates.keys()];
    if (name !== undefined) {
      const t = this.chatTemplates.get(name);
      if (t === undefined) throw new ChatTemplateError(`tokenizer ${this.source} has no chat template named ${JSON.stringify(name)} (it has ${names.map((n) => JSON.stringify(n)).join(', ')})`);
      return t;
    }
    if (withTools && this.chatTemplates.has('tool_use')) return this.chatTemplates.get('tool_use')!;
    const t = this.chatTemplates.get('default') ?? (names.length === 1 ? this.chatTemplates.get(names[0]!) : undefined);
    if (t === undefined) throw new ChatTemplateError(`tokenizer ${this.source} has several chat templates and none is named "default": pass templateName (one of ${names.map((n) => JSON.stringify(n)).join(', ')})`);
    return t;
  }

  /** Renders messages with the model's chat template. */
  applyChatTemplate(messages: readonly ChatMessage[], options?: ChatTemplateOptions & { tokenize?: false }): string;
  /** Renders and encodes (without adding special tokens again: the template places them). */
  applyChatTemplate(messages: readonly ChatMessage[], options: ChatTemplateOptions & { tokenize: true }): { text: string; ids: number[] };
  applyChatTemplate(messages: readonly ChatMessage[], options: ChatTemplateOptions & { tokenize?: boolean } = {}): string | { text: string; ids: number[] } {
    const source = this.chatTemplate(options.templateName, options.tools !== undefined);
    let template = this.compiled.get(source);
    if (template === undefined) {
      try {
        template = new Template(source);
      } catch (err) {
        throw new ChatTemplateError(`tokenizer ${this.source}: chat template does not parse: ${(err as Error).message}`);
      }
      this.compiled.set(source, template);
    }
    const context: Record<string, unknown> = {
      ...this.specialTokens,
      ...options.variables,
      messages,
      add_generation_prompt: options.addGenerationPrompt ?? false,
    };
    if (options.tools !== undefined) context['tools'] = options.tools;
    let text: string;
    try {
      text = template.render(context);
    } catch (err) {
      // raise_exception(msg) in a template (a jinja global) throws an Error with msg as its message.
      throw new ChatTemplateError(`tokenizer ${this.source}: the chat template failed: ${(err as Error).message}`);
    }
    if (options.tokenize === true) return { text, ids: this.encode(text, { addSpecialTokens: false }) };
    return text;
  }
}

/**
 * Incremental decoding for generation. Decoding token by token is wrong for byte-level and
 * byte-fallback tokenizers: one character may be split over several tokens, and a SentencePiece
 * decoder strips the leading space of the first token only. This keeps a window of ids: it decodes
 * the window with and without the new ids from the same starting point and emits the difference,
 * holding back a tail that ends in an incomplete UTF-8 character (U+FFFD) until it completes.
 */
export class StreamDecoder {
  private readonly ids: number[] = [];
  /** Start of the window decoded for context. */
  private prefixOffset = 0;
  /** End of what has been emitted. */
  private readOffset = 0;

  constructor(
    private readonly tokenizer: Tokenizer,
    private readonly options: DecodeOptions = {},
  ) {}

  /** Adds one or more ids; returns the newly completed text (possibly ''). */
  push(ids: number | readonly number[]): string {
    if (typeof ids === 'number') this.ids.push(ids);
    else this.ids.push(...ids);
    const before = this.tokenizer.decode(this.ids.slice(this.prefixOffset, this.readOffset), this.options);
    // Try the whole window first, then shorter ones: an incomplete character is at most 4 bytes.
    for (let end = this.ids.length; end > this.readOffset && end >= this.ids.length - 4; end--) {
      const text = this.tokenizer.decode(this.ids.slice(this.prefixOffset, end), this.options);
      if (text.length > before.length && !text.endsWith('\uFFFD') && text.startsWith(before)) {
        this.prefixOffset = this.readOffset;
        this.readOffset = end;
        return text.slice(before.length);
      }
    }
    return '';
  }

  /** Emits whatever is held back (an incomplete character becomes U+FFFD). Call at the end. */
  flush(): string {
    const before = this.tokenizer.decode(this.ids.slice(this.prefixOffset, this.readOffset), this.options);
    const text = this.tokenizer.decode(this.ids.slice(this.prefixOffset), this.options);
    this.prefixOffset = this.readOffset = this.ids.length;
    return text.startsWith(before) ? text.slice(before.length) : text;
  }

  /** Every id pushed so far. */
  get tokens(): readonly number[] {
    return this.ids;
  }
}
