// LoraConfig: PEFT's LoraConfig field names and defaults (so adapter_config.json files
// interoperate), validated once: every problem is collected and thrown together;
// keys lorakit does not know are warnings, listed, so newer files still load.
import { ProblemsError, formatProblems, warn } from '../io/errors.js';
import { patternError } from './regex.js';

export type LoraBias = 'none' | 'all' | 'lora_only';
/** true: Kaiming-uniform A, zero B · false: both random (tests) · 'gaussian': A ~ N(0, 1/r) · 'pissa' / 'pissa_niter_N' */
export type InitLoraWeights = boolean | 'gaussian' | 'pissa' | `pissa_niter_${number}`;

export interface LoraConfig {
  peft_type: 'LORA';
  /** rank (> 0) */
  r: number;
  lora_alpha: number;
  /** list: exact name or `.suffix`; string: full regex match; 'all-linear'; null: the model family's default */
  target_modules: string[] | string | null;
  exclude_modules: string[] | string | null;
  lora_dropout: number;
  /** weights stored [in, out] (GPT-2 Conv1D); forced on for such layers */
  fan_in_fan_out: boolean;
  bias: LoraBias;
  /** scaling alpha/√r instead of alpha/r */
  use_rslora: boolean;
  /** modules trained in full and saved with the adapter (e.g. a classifier head) */
  modules_to_save: string[] | null;
  init_lora_weights: InitLoraWeights;
  layers_to_transform: number[] | number | null;
  layers_pattern: string[] | string | null;
  /** module-name pattern → rank (PEFT get_pattern_key: regex over a dotted suffix of the name) */
  rank_pattern: Record<string, number>;
  alpha_pattern: Record<string, number>;
  use_dora: boolean;
  /** a trainable bias on lora_B */
  lora_bias: boolean;
  base_model_name_or_path: string | null;
  revision: string | null;
  task_type: string | null;
  inference_mode: boolean;
}

export type LoraConfigInput = Partial<Omit<LoraConfig, 'peft_type'>> & { peft_type?: string; [key: string]: unknown };

export const LORA_CONFIG_DEFAULTS: Readonly<LoraConfig> = Object.freeze({
  peft_type: 'LORA',
  r: 8,
  lora_alpha: 8,
  target_modules: null,
  exclude_modules: null,
  lora_dropout: 0,
  fan_in_fan_out: false,
  bias: 'none',
  use_rslora: false,
  modules_to_save: null,
  init_lora_weights: true,
  layers_to_transform: null,
  layers_pattern: null,
  rank_pattern: {},
  alpha_pattern: {},
  use_dora: false,
  lora_bias: false,
  base_model_name_or_path: null,
  revision: null,
  task_type: null,
  inference_mode: false,
});

/**
 * PEFT fields lorakit does not implement, with the values that leave them inert. A file
 * holding one of these values loads; any other value is an error (ignoring it would give
 * a different model).
 */
const INERT_PEFT_FIELDS: Record<string, readonly unknown[]> = {
  auto_mapping: [null],
  peft_version: ['*'],
  megatron_config: [null],
  megatron_core: ['megatron.core', null],
  loftq_config: [{}, null],
  eva_config: [null],
  corda_config: [null],
  lora_ga_config: [null],
  velora_config: [null],
  alora_invocation_tokens: [null],
  use_qalora: [false],
  qalora_group_size: ['*'],
  monteclora_config: [null],
  layer_replication: [null],
  runtime_config: ['*'],
  target_parameters: [null, []],
  trainable_token_indices: [null],
  use_bdlora: [null],
  arrow_config: [null],
  kasa_config: [null],
  ensure_weight_tying: [false],
};

export class LoraConfigError extends ProblemsError {
  override name = 'LoraConfigError';
  constructor(problems: readonly string[], what = 'LoraConfig') {
    super(formatProblems(what, problems, 'problem(s)'), problems);
  }
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

const UNSUPPORTED_INITS = ['eva', 'olora', 'corda', 'loftq', 'orthogonal', 'mica', 'lora_ga'];

export interface ParsedLoraConfig {
  config: LoraConfig;
  /** unknown keys (ignored) and other non-fatal notes */
  warnings: string[];
}

/**
 * Validates a config object (PEFT names) and fills in PEFT's defaults. Collects every
 * problem and throws one LoraConfigError; unknown keys become warnings.
 */
export function parseLoraConfig(input: Record<string, unknown>, what = 'LoraConfig'): ParsedLoraConfig {
  const problems: string[] = [];
  const warnings: string[] = [];
  const c: LoraConfig = { ...LORA_CONFIG_DEFAULTS, rank_pattern: {}, alpha_pattern: {} };
  const known = new Set(Object.keys(LORA_CONFIG_DEFAULTS));
  const unknown: string[] = [];

  for (const [key, value] of Object.entries(input)) {
    if (value === undefined) continue;
    if (known.has(key)) continue;
    const inert = INERT_PEFT_FIELDS[key];
    if (inert) {
      if (!inert.includes('*') && !inert.some((v) => sameJson(v, value))) {
        problems.push(`${key} = ${JSON.stringify(value)} is a PEFT feature lorakit does not support (only ${inert.map((v) => JSON.stringify(v)).join(' or ')})`);
      }
      continue;
    }
    unknown.push(key);
  }
  if (unknown.length) warnings.push(`unknown key(s) ignored: ${unknown.join(', ')}`);

  const get = (k: keyof LoraConfig): unknown => input[k];
  const has = (k: keyof LoraConfig): boolean => input[k] !== undefined;

  if (has('peft_type') && get('peft_type') !== 'LORA') problems.push(`peft_type must be "LORA", got ${JSON.stringify(get('peft_type'))}`);

  if (has('r')) {
    const r = get('r');
    if (typeof r !== 'number' || !Number.isInteger(r) || r <= 0) problems.push(`r must be a positive integer, got ${JSON.stringify(r)}`);
    else c.r = r;
  }
  if (has('lora_alpha')) {
    const a = get('lora_alpha');
    if (typeof a !== 'number' || !Number.isFinite(a)) problems.push(`lora_alpha must be a finite number, got ${JSON.stringify(a)}`);
    else c.lora_alpha = a;
  }
  if (has('lora_dropout')) {
    const p = get('lora_dropout');
    if (typeof p !== 'number' || !(p >= 0 && p < 1)) problems.push(`lora_dropout must be a number in [0, 1), got ${JSON.stringify(p)}`);
    else c.lora_dropout = p;
  }
  if (has('bias')) {
    const b = get('bias');
    if (b !== 'none' && b !== 'all' && b !== 'lora_only') problems.push(`bias must be "none", "all" or "lora_only", got ${JSON.stringify(b)}`);
    else c.bias = b;
  }
  for (const k of ['fan_in_fan_out', 'use_rslora', 'use_dora', 'lora_bias', 'inference_mode'] as const) {
    if (!has(k)) continue;
    const v = get(k);
    if (typeof v !== 'boolean') problems.push(`${k} must be true or false, got ${JSON.stringify(v)}`);
    else c[k] = v;
  }
  for (const k of ['base_model_name_or_path', 'revision', 'task_type'] as const) {
    if (!has(k)) continue;
    const v = get(k);
    if (v !== null && typeof v !== 'string') problems.push(`${k} must be a string or null, got ${JSON.stringify(v)}`);
    else c[k] = v;
  }

  const modulesSpec = (k: 'target_modules' | 'exclude_modules' | 'layers_pattern'): void => {
    if (!has(k)) return;
    const v = get(k);
    if (v === null) return;
    if (typeof v === 'string') {
      if (k !== 'layers_pattern') {
        const err = v.toLowerCase() === 'all-linear' ? null : patternError(v);
        if (err) problems.push(`${k} ${JSON.stringify(v)} is not a valid regular expression: ${err}`);
      }
      c[k] = v;
    } else if (Array.isArray(v) && v.every((s) => typeof s === 'string')) {
      c[k] = [...new Set(v as string[])];
    } else {
      problems.push(`${k} must be a list of strings, a string or null, got ${JSON.stringify(v)}`);
    }
  };
  modulesSpec('target_modules');
  modulesSpec('exclude_modules');
  modulesSpec('layers_pattern');
  if (Array.isArray(c.target_modules) && c.target_modules.length === 0) problems.push('target_modules is an empty list: nothing would be adapted');

  if (has('modules_to_save')) {
    const v = get('modules_to_save');
    if (v === null) c.modules_to_save = null;
    else if (Array.isArray(v) && v.every((s) => typeof s === 'string' && s.length > 0)) c.modules_to_save = [...new Set(v as string[])];
    else problems.push(`modules_to_save must be a list of module names or null, got ${JSON.stringify(v)}`);
  }

  if (has('layers_to_transform')) {
    const v = get('layers_to_transform');
    const isIdx = (x: unknown): boolean => typeof x === 'number' && Number.isInteger(x) && x >= 0;
    if (v === null) c.layers_to_transform = null;
    else if (isIdx(v)) c.layers_to_transform = v as number;
    else if (Array.isArray(v) && v.every(isIdx)) c.layers_to_transform = [...(v as number[])];
    else problems.push(`layers_to_transform must be a layer index, a list of indices or null, got ${JSON.stringify(v)}`);
  }

  for (const k of ['rank_pattern', 'alpha_pattern'] as const) {
    if (!has(k)) continue;
    const v = get(k);
    if (v === null) continue;
    if (!isPlainObject(v)) {
      problems.push(`${k} must be an object mapping module-name patterns to numbers, got ${JSON.stringify(v)}`);
      continue;
    }
    const out: Record<string, number> = {};
    for (const [pat, n] of Object.entries(v)) {
      const err = patternError(pat);
      if (err) problems.push(`${k} key ${JSON.stringify(pat)} is not a valid regular expression: ${err}`);
      const ok = typeof n === 'number' && (k === 'rank_pattern' ? Number.isInteger(n) && n > 0 : Number.isFinite(n));
      if (!ok) problems.push(`${k}[${JSON.stringify(pat)}] must be ${k === 'rank_pattern' ? 'a positive integer' : 'a finite number'}, got ${JSON.stringify(n)}`);
      else out[pat] = n as number;
    }
    c[k] = out;
  }

  if (has('init_lora_weights')) {
    const v = get('init_lora_weights');
    if (typeof v === 'boolean' || v === 'gaussian' || v === 'pissa') c.init_lora_weights = v;
    else if (typeof v === 'string' && /^pissa_niter_\d+$/.test(v)) c.init_lora_weights = v as InitLoraWeights;
    else if (typeof v === 'string' && UNSUPPORTED_INITS.some((u) => v.toLowerCase().startsWith(u))) problems.push(`init_lora_weights ${JSON.stringify(v)} is a PEFT initialisation lorakit does not support (true, false, "gaussian", "pissa", "pissa_niter_<n>")`);
    else problems.push(`init_lora_weights must be true, false, "gaussian", "pissa" or "pissa_niter_<n>", got ${JSON.stringify(v)}`);
  }

  // Cross-field rules (PEFT's __post_init__).
  if (typeof c.target_modules === 'string' && c.layers_to_transform !== null) problems.push('layers_to_transform cannot be used when target_modules is a regular expression (a string)');
  if (typeof c.target_modules === 'string' && c.layers_pattern !== null) problems.push('layers_pattern cannot be used when target_modules is a regular expression (a string)');
  if (c.layers_pattern !== null && c.layers_to_transform === null) problems.push('layers_pattern needs layers_to_transform as well');
  if (c.lora_bias && c.init_lora_weights !== true && c.init_lora_weights !== false) problems.push(`lora_bias needs init_lora_weights true or false, got ${JSON.stringify(c.init_lora_weights)}`);
  if (c.lora_bias && c.use_dora) problems.push('lora_bias is not supported with use_dora');

  if (problems.length) throw new LoraConfigError(problems, what);
  return { config: c, warnings };
}

/** Builds a validated LoraConfig from PEFT-named options; warnings (unknown keys) are emitted. */
export function loraConfig(input: LoraConfigInput = {}): LoraConfig {
  const { config, warnings } = parseLoraConfig(input);
  for (const w of warnings) warn(`LoraConfig: ${w}`, 'LORAKIT_CONFIG');
  return config;
}

/** s = alpha / r, or alpha / √r with rsLoRA. */
export function loraScaling(alpha: number, r: number, useRslora: boolean): number {
  return useRslora ? alpha / Math.sqrt(r) : alpha / r;
}

/**
 * The adapter_config.json object: PEFT's keys, sorted. Fields that are at their defaults
 * and that older PEFT releases do not know (exclude_modules, lora_bias) are left out so
 * those releases load the file too.
 */
export function adapterConfigJson(c: LoraConfig): Record<string, unknown> {
  const out: Record<string, unknown> = {
    alpha_pattern: c.alpha_pattern,
    auto_mapping: null,
    base_model_name_or_path: c.base_model_name_or_path,
    bias: c.bias,
    fan_in_fan_out: c.fan_in_fan_out,
    inference_mode: c.inference_mode,
    init_lora_weights: c.init_lora_weights,
    layer_replication: null,
    layers_pattern: c.layers_pattern,
    layers_to_transform: c.layers_to_transform,
    loftq_config: {},
    lora_alpha: c.lora_alpha,
    lora_dropout: c.lora_dropout,
    megatron_config: null,
    megatron_core: 'megatron.core',
    modules_to_save: c.modules_to_save,
    peft_type: 'LORA',
    r: c.r,
    rank_pattern: c.rank_pattern,
    revision: c.revision,
    target_modules: Array.isArray(c.target_modules) ? [...c.target_modules].sort() : c.target_modules,
    task_type: c.task_type,
    use_dora: c.use_dora,
    use_rslora: c.use_rslora,
  };
  if (c.exclude_modules !== null) out.exclude_modules = Array.isArray(c.exclude_modules) ? [...c.exclude_modules].sort() : c.exclude_modules;
  if (c.lora_bias) out.lora_bias = true;
  const sorted: Record<string, unknown> = {};
  for (const k of Object.keys(out).sort()) sorted[k] = out[k];
  return sorted;
}
