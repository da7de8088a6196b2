// Request bodies of /v1/completions and /v1/chat/completions, checked field by field into
// one normalized form. Every problem is an ApiError 400 naming the field (OpenAI's `param`);
// an unknown model is 404. Fields lorakit does not implement are accepted only at their
// inert values (logprobs off, no penalties, echo false), so a client never silently gets
// something other than what it asked for. Unknown fields are ignored, as OpenAI does.
import type { SamplingOptions } from '../generate/sampling.js';
import { CHAT_ROLES, type ChatMessage, type Tokenizer } from '../io/tokenizer.js';
import type { AdapterEntry, AdapterRegistry } from './adapters.js';
import { ApiError, badRequest } from './errors.js';

export interface ValidationContext {
  /** the base model's public name */
  baseName: string;
  adapters: AdapterRegistry;
  tokenizer: Tokenizer;
  vocabSize: number;
  /** max_tokens above this is refused */
  maxTokensCap: number;
  /** prompt + max_tokens must fit */
  maxModelLen: number;
  /** sequences (prompts × n) one request may ask for */
  maxSequences: number;
}

export interface GenerationRequest {
  kind: 'completion' | 'chat';
  /** the name the client used */
  model: string;
  /** null: the base model */
  adapter: AdapterEntry | null;
  /** token ids of each prompt */
  prompts: number[][];
  n: number;
  maxTokens: number;
  sampling: SamplingOptions;
  seed: number | null;
  stop: string[];
  stream: boolean;
  includeUsage: boolean;
  /** vLLM's ignore_eos: keep going past EOS tokens (benchmarks) */
  ignoreEos: boolean;
}

type Body = Record<string, unknown>;

const COMPLETION_DEFAULT_MAX_TOKENS = 16; // OpenAI's (and vLLM's) default for /v1/completions

export function asObject(body: unknown): Body {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw badRequest('the request body must be a JSON object');
  return body as Body;
}

function present(b: Body, k: string): boolean {
  return b[k] !== undefined && b[k] !== null;
}

function num(b: Body, k: string, lo: number, hi: number, def: number, what = `a number in [${lo}, ${hi}]`): number {
  if (!present(b, k)) return def;
  const v = b[k];
  if (typeof v !== 'number' || !Number.isFinite(v) || v < lo || v > hi) throw badRequest(`${k} must be ${what}, got ${JSON.stringify(v)}`, k);
  return v;
}

function int(b: Body, k: string, lo: number, hi: number, def: number): number {
  if (!present(b, k)) return def;
  const v = b[k];
  if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi) throw badRequest(`${k} must be an integer in [${lo}, ${hi}], got ${JSON.stringify(v)}`, k);
  return v;
}

function bool(b: Body, k: string, def: boolean): boolean {
  if (!present(b, k)) return def;
  if (typeof b[k] !== 'boolean') throw badRequest(`${k} must be true or false, got ${JSON.stringify(b[k])}`, k);
  return b[k] as boolean;
}

/** A field lorakit does not implement: only its inert values pass. */
function inert(b: Body, k: string, ok: (v: unknown) => boolean): void {
  if (present(b, k) && !ok(b[k])) throw badRequest(`${k} is not supported by this server (got ${JSON.stringify(b[k])})`, k, 'unsupported_parameter');
}

function resolveModel(b: Body, ctx: ValidationContext): { model: string; adapter: AdapterEntry | null } {
  const m = b['model'];
  if (typeof m !== 'string' || m === '') throw badRequest('model must be a non-empty string (the base model or a loaded LoRA adapter)', 'model');
  if (m === ctx.baseName) return { model: m, adapter: null };
  const a = ctx.adapters.get(m);
  if (!a) {
    const known = [ctx.baseName, ...ctx.adapters.list().map((e) => e.name)].map((x) => JSON.stringify(x)).join(', ');
    throw new ApiError(404, `the model ${JSON.stringify(m)} does not exist (models: ${known})`, { param: 'model', code: 'model_not_found' });
  }
  return { model: m, adapter: a };
}

function parseStop(b: Body): string[] {
  if (!present(b, 'stop')) return [];
  const v = b['stop'];
  const list = typeof v === 'string' ? [v] : v;
  if (!Array.isArray(list) || list.length > 16 || !list.every((s) => typeof s === 'string')) throw badRequest('stop must be a string or an array of at most 16 strings', 'stop');
  return (list as string[]).filter((s) => s !== '');
}

function parseTokens(v: unknown, V: number): number[] | null {
  if (!Array.isArray(v) || v.length === 0 || !v.every((x) => typeof x === 'number')) return null;
  for (const id of v as number[]) if (!(Number.isInteger(id) && id >= 0 && id < V)) throw badRequest(`prompt token ${id} is outside the vocabulary 0..${V - 1}`, 'prompt');
  return v as number[];
}

function parsePrompt(b: Body, ctx: ValidationContext): number[][] {
  const v = b['prompt'];
  const bad = (): ApiError => badRequest('prompt must be a string, an array of strings, an array of token ids or an array of arrays of token ids (none empty)', 'prompt');
  const encode = (s: string): number[] => {
    const ids = ctx.tokenizer.encode(s);
    if (ids.length === 0) throw badRequest('the prompt encodes to no tokens', 'prompt');
    return ids;
  };
  if (typeof v === 'string') return [encode(v)];
  if (!Array.isArray(v) || v.length === 0) throw bad();
  // the cheap check first: a long array of prompts is refused before any is tokenized
  if (v.length > ctx.maxSequences && !v.every((x) => typeof x === 'number')) {
    throw badRequest(`${v.length} prompts is more than the ${ctx.maxSequences} sequences one request may ask for`, 'prompt');
  }
  const single = parseTokens(v, ctx.vocabSize);
  if (single) return [single];
  if (v.every((x) => typeof x === 'string')) return (v as string[]).map(encode);
  if (v.every((x) => Array.isArray(x))) {
    return v.map((x) => {
      const t = parseTokens(x, ctx.vocabSize);
      if (!t) throw bad();
      return t;
    });
  }
  throw bad();
}

function messageText(m: Body, i: number): string {
  const c = m['content'];
  if (c === undefined || c === null) return '';
  if (typeof c === 'string') return c;
  if (Array.isArray(c)) {
    return c
      .map((part, j) => {
        const p = part as Body;
        if (typeof p !== 'object' || p === null || p['type'] !== 'text' || typeof p['text'] !== 'string') {
          throw badRequest(`messages[${i}].content[${j}]: only text parts ({"type": "text", "text": …}) are supported`, `messages[${i}].content`);
        }
        return p['text'] as string;
      })
      .join('');
  }
  throw badRequest(`messages[${i}].content must be a string or an array of text parts`, `messages[${i}].content`);
}

function parseMessages(b: Body, ctx: ValidationContext): number[] {
  const v = b['messages'];
  if (!Array.isArray(v) || v.length === 0) throw badRequest('messages must be a non-empty array of {role, content}', 'messages');
  const messages: ChatMessage[] = v.map((x, i) => {
    if (typeof x !== 'object' || x === null || Array.isArray(x)) throw badRequest(`messages[${i}] must be an object {role, content}`, `messages[${i}]`);
    const m = x as Body;
    if (typeof m['role'] !== 'string' || !(CHAT_ROLES as readonly string[]).includes(m['role'])) {
      throw badRequest(`messages[${i}].role must be one of ${CHAT_ROLES.join(', ')}, got ${JSON.stringify(m['role'])}`, `messages[${i}].role`);
    }
    return { role: m['role'], content: messageText(m, i) };
  });
  if (!ctx.tokenizer.hasChatTemplate) throw badRequest('this model\'s tokenizer has no chat template; use /v1/completions', 'messages', 'no_chat_template');
  let ids: number[];
  try {
    ids = ctx.tokenizer.applyChatTemplate(messages, { addGenerationPrompt: true, tokenize: true }).ids;
  } catch (e) {
    throw badRequest((e as Error).message, 'messages');
  }
  if (ids.length === 0) throw badRequest('the messages render to no tokens', 'messages');
  return ids;
}

function parseCommon(b: Body, ctx: ValidationContext, kind: 'completion' | 'chat', prompts: number[][], maxTokensDefault: number | null, resolved: { model: string; adapter: AdapterEntry | null }): GenerationRequest {
  inert(b, 'logprobs', (v) => v === false || v === 0);
  inert(b, 'top_logprobs', (v) => v === 0);
  inert(b, 'echo', (v) => v === false);
  inert(b, 'suffix', (v) => v === '');
  inert(b, 'presence_penalty', (v) => v === 0);
  inert(b, 'frequency_penalty', (v) => v === 0);
  inert(b, 'logit_bias', (v) => typeof v === 'object' && v !== null && Object.keys(v).length === 0);
  inert(b, 'tools', (v) => Array.isArray(v) && v.length === 0);
  inert(b, 'response_format', (v) => typeof v === 'object' && v !== null && (v as Body)['type'] === 'text');
  const n = int(b, 'n', 1, ctx.maxSequences, 1);
  if (present(b, 'best_of') && b['best_of'] !== n) throw badRequest('best_of other than n is not supported', 'best_of', 'unsupported_parameter');
  if (prompts.length * n > ctx.maxSequences) throw badRequest(`${prompts.length} prompts × n = ${n} is more than the ${ctx.maxSequences} sequences one request may ask for`, 'n');
  const temperature = num(b, 'temperature', 0, 2, 1);
  const topP = num(b, 'top_p', Number.MIN_VALUE, 1, 1, 'a number in (0, 1]');
  let topK = int(b, 'top_k', -1, 1 << 30, 0);
  if (topK === -1) topK = 0; // vLLM's "off"
  const repetitionPenalty = num(b, 'repetition_penalty', Number.MIN_VALUE, 1e6, 1, 'a positive number');
  const seed = present(b, 'seed') ? int(b, 'seed', Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER, 0) : null;
  const stop = parseStop(b);
  const stream = bool(b, 'stream', false);
  const ignoreEos = bool(b, 'ignore_eos', false);
  let includeUsage = false;
  if (present(b, 'stream_options')) {
    const so = b['stream_options'];
    if (!stream) throw badRequest('stream_options is only allowed with stream: true', 'stream_options');
    if (typeof so !== 'object' || so === null || Array.isArray(so)) throw badRequest('stream_options must be an object', 'stream_options');
    includeUsage = bool(so as Body, 'include_usage', false);
  }
  const longest = Math.max(...prompts.map((p) => p.length));
  const tooLong = (asked: number): ApiError =>
    badRequest(`this model's maximum context length is ${ctx.maxModelLen} tokens; the request needs ${longest + asked} (${longest} in the prompt, ${asked} to generate)`, longest >= ctx.maxModelLen ? (kind === 'chat' ? 'messages' : 'prompt') : 'max_tokens', 'context_length_exceeded');
  if (longest >= ctx.maxModelLen) throw tooLong(1);
  const key = kind === 'chat' && present(b, 'max_completion_tokens') ? 'max_completion_tokens' : 'max_tokens';
  let maxTokens: number;
  if (present(b, key)) {
    const v = b[key];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw badRequest(`${key} must be an integer ≥ 1, got ${JSON.stringify(v)}`, key);
    if (v > ctx.maxTokensCap) throw badRequest(`${key} is ${v}; this server generates at most ${ctx.maxTokensCap} tokens per request`, key);
    if (longest + v > ctx.maxModelLen) throw tooLong(v);
    maxTokens = v;
  } else {
    maxTokens = Math.min(maxTokensDefault ?? Infinity, ctx.maxTokensCap, ctx.maxModelLen - longest);
  }
  return {
    kind,
    model: resolved.model,
    adapter: resolved.adapter,
    prompts,
    n,
    maxTokens,
    sampling: { temperature, topP, topK, repetitionPenalty },
    seed,
    stop,
    stream,
    includeUsage,
    ignoreEos,
  };
}

/** A /v1/completions body. */
export function parseCompletionRequest(body: unknown, ctx: ValidationContext): GenerationRequest {
  const b = asObject(body);
  const resolved = resolveModel(b, ctx);
  const prompts = parsePrompt(b, ctx);
  return parseCommon(b, ctx, 'completion', prompts, COMPLETION_DEFAULT_MAX_TOKENS, resolved);
}

/** A /v1/chat/completions body: the messages rendered with the tokenizer's chat template. */
export function parseChatRequest(body: unknown, ctx: ValidationContext): GenerationRequest {
  const b = asObject(body);
  const resolved = resolveModel(b, ctx);
  const prompt = parseMessages(b, ctx);
  return parseCommon(b, ctx, 'chat', [prompt], null, resolved);
}
