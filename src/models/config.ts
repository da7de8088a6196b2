// Reading a model's config.json with validation. Every problem (a missing key, a value of
// the wrong type or range) is collected and thrown together; each names the key and what
// was expected. Keys no family reads are reported once as a warning, so configs written
// by newer versions of transformers still load.

import { ProblemsError, formatProblems, warn } from '../io/errors.js';
import type { JsonObject } from '../io/json.js';

export type { JsonObject };

export class ConfigError extends ProblemsError {
  override name = 'ConfigError';
  constructor(where: string, problems: readonly string[]) {
    super(formatProblems(where, problems), problems);
  }
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return `the string ${JSON.stringify(v)}`;
  if (typeof v === 'object') return 'an object';
  return `${typeof v} ${String(v)}`;
}

/**
 * Typed access to a JSON object. Each getter records a problem (and returns a placeholder)
 * instead of throwing; call done() to throw them all at once.
 */
export class ConfigReader {
  readonly problems: string[] = [];
  private readonly read = new Set<string>();

  /** `where` names the file (e.g. "config.json of /models/tiny") for error messages. */
  constructor(
    readonly json: JsonObject,
    readonly where: string,
    private readonly prefix = '',
  ) {}

  private key(k: string): string {
    return this.prefix ? `${this.prefix}.${k}` : k;
  }

  has(k: string): boolean {
    return this.json[k] !== undefined && this.json[k] !== null;
  }

  /** Marks keys as known without reading them (they are not reported as unknown). */
  known(...keys: string[]): void {
    for (const k of keys) this.read.add(k);
  }

  private get(k: string): unknown {
    this.read.add(k);
    return this.json[k];
  }

  /** A positive (or, with min 0, non-negative) integer; required unless a default is given. */
  int(k: string, dflt?: number, min = 1): number {
    const v = this.get(k);
    if (v === undefined || v === null) {
      if (dflt !== undefined) return dflt;
      this.problems.push(`"${this.key(k)}" is missing (expected an integer ≥ ${min})`);
      return min;
    }
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min) {
      this.problems.push(`"${this.key(k)}" must be an integer ≥ ${min}, got ${describe(v)}`);
      return min;
    }
    return v;
  }

  /** A finite number (> 0 when positive is set). */
  number(k: string, dflt?: number, positive = true): number {
    const v = this.get(k);
    if (v === undefined || v === null) {
      if (dflt !== undefined) return dflt;
      this.problems.push(`"${this.key(k)}" is missing (expected a ${positive ? 'positive ' : ''}number)`);
      return 1;
    }
    if (typeof v !== 'number' || !Number.isFinite(v) || (positive && v <= 0)) {
      this.problems.push(`"${this.key(k)}" must be a ${positive ? 'positive ' : ''}finite number, got ${describe(v)}`);
      return 1;
    }
    return v;
  }

  bool(k: string, dflt: boolean): boolean {
    const v = this.get(k);
    if (v === undefined || v === null) return dflt;
    if (typeof v !== 'boolean') {
      this.problems.push(`"${this.key(k)}" must be a boolean, got ${describe(v)}`);
      return dflt;
    }
    return v;
  }

  string(k: string, dflt?: string): string {
    const v = this.get(k);
    if (v === undefined || v === null) {
      if (dflt !== undefined) return dflt;
      this.problems.push(`"${this.key(k)}" is missing (expected a string)`);
      return '';
    }
    if (typeof v !== 'string') {
      this.problems.push(`"${this.key(k)}" must be a string, got ${describe(v)}`);
      return '';
    }
    return v;
  }

  /** One of the given strings. */
  oneOf<S extends string>(k: string, choices: readonly S[], dflt?: S): S {
    const v = this.string(k, dflt);
    if (!(choices as readonly string[]).includes(v)) {
      if (v !== '' || !this.problems.length) this.problems.push(`"${this.key(k)}" must be one of ${choices.map((c) => JSON.stringify(c)).join(', ')}, got ${JSON.stringify(v)}`);
      return choices[0]!;
    }
    return v as S;
  }

  /** A nested object (or null/absent → undefined), read with its own reader sharing this one's problems. */
  object(k: string): ConfigReader | undefined {
    const v = this.get(k);
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'object' || Array.isArray(v)) {
      this.problems.push(`"${this.key(k)}" must be an object or null, got ${describe(v)}`);
      return undefined;
    }
    const r = new ConfigReader(v as JsonObject, this.where, this.key(k));
    (r as { problems: string[] }).problems = this.problems;
    return r;
  }

  /** Records a problem of its own. */
  fail(problem: string): void {
    this.problems.push(problem);
  }

  /** Keys present in the JSON that nothing read or marked known. */
  unknownKeys(): string[] {
    return Object.keys(this.json).filter((k) => !this.read.has(k));
  }

  /** Throws a ConfigError with every problem recorded, if any. */
  done(): void {
    if (this.problems.length) throw new ConfigError(this.where, this.problems);
  }
}

/** Keys any transformers config may carry that no model here needs (not warned about). */
export const GENERIC_CONFIG_KEYS = [
  'model_type', 'architectures', 'torch_dtype', 'dtype', 'transformers_version', 'bos_token_id', 'eos_token_id',
  'pad_token_id', 'use_cache', 'initializer_range', 'max_position_embeddings', '_name_or_path', 'auto_map',
  'return_dict', 'output_hidden_states', 'output_attentions', 'torchscript', 'tie_encoder_decoder',
  'is_encoder_decoder', 'is_decoder', 'add_cross_attention', 'chunk_size_feed_forward', 'problem_type',
  'id2label', 'label2id', 'task_specific_params', 'quantization_config', 'pruned_heads', 'finetuning_task',
  'tokenizer_class', 'prefix', 'sep_token_id', 'decoder_start_token_id', 'attn_implementation',
  '_attn_implementation_autoset', 'pretraining_tp', 'hidden_act',
];

/** Emits one warning listing keys of the config that were not recognised. */
export function warnUnknownKeys(r: ConfigReader): void {
  const unknown = r.unknownKeys().filter((k) => !GENERIC_CONFIG_KEYS.includes(k));
  if (unknown.length) {
    warn(`${r.where}: ignoring unrecognised key(s) ${unknown.map((k) => JSON.stringify(k)).join(', ')}`, 'LORAKIT_CONFIG_UNKNOWN_KEYS');
  }
}

/** The sizes every decoder-only family's config.json gives (docs/ARCHITECTURE.md §Model families). */
export interface DecoderSizes {
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
}

/**
 * Reads vocab_size, hidden_size, intermediate_size, num_hidden_layers, num_attention_heads,
 * num_key_value_heads (default: num_attention_heads) and head_dim, with the checks that tie
 * them together. `defaults` holds a family's value for each key it may omit (a key without
 * one is required). head_dim without a default is hidden_size / num_attention_heads, which
 * must then divide evenly.
 */
export function readDecoderSizes(r: ConfigReader, defaults: Partial<Omit<DecoderSizes, 'numKvHeads'>> = {}): DecoderSizes {
  const vocabSize = r.int('vocab_size', defaults.vocabSize);
  const hiddenSize = r.int('hidden_size', defaults.hiddenSize);
  const intermediateSize = r.int('intermediate_size', defaults.intermediateSize);
  const numLayers = r.int('num_hidden_layers', defaults.numLayers);
  const numHeads = r.int('num_attention_heads', defaults.numHeads);
  const numKvHeads = r.int('num_key_value_heads', numHeads);
  let headDim: number;
  if (r.has('head_dim') || defaults.headDim !== undefined) headDim = r.int('head_dim', defaults.headDim);
  else {
    headDim = hiddenSize / numHeads;
    if (!Number.isInteger(headDim)) r.fail(`"hidden_size" (${hiddenSize}) must be divisible by "num_attention_heads" (${numHeads}) when "head_dim" is not given`);
  }
  if (numHeads % numKvHeads !== 0) r.fail(`"num_attention_heads" (${numHeads}) must be a multiple of "num_key_value_heads" (${numKvHeads})`);
  return { vocabSize, hiddenSize, intermediateSize, numLayers, numHeads, numKvHeads, headDim };
}
