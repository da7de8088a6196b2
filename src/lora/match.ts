// Which modules get an adapter: PEFT's check_target_module_exists semantics.
// - exclusions first (a string is a full regex match, a list an exact name or `.suffix`);
// - modules named in modules_to_save (or inside them) are never targets;
// - target_modules as a string: full regex match; as a list: exact name or `.suffix`,
//   then layers_to_transform / layers_pattern pick layer indices;
// - 'all-linear': every Linear but the output head (`lm_head`; for SEQ_CLS also the
//   classifier head).
// Per-module rank and alpha: rank_pattern / alpha_pattern keys match a dotted suffix of the
// name (PEFT's get_pattern_key: the first key in order that matches wins).
import { ProblemsError, formatProblems } from '../io/errors.js';
import { ENCODER_FAMILIES, MODEL_FAMILIES, defaultTargetModules } from '../models/registry.js';
import type { LoraConfig } from './config.js';
import { fullMatch, suffixPatternMatch } from './regex.js';

/** A module the matcher can consider. */
export interface ModuleInfo {
  name: string;
  /** a Linear (or Conv1D Linear, or a LoraLinear already wrapping one) */
  linear: boolean;
  /** class name, for error messages */
  type?: string;
}

export type MatchResult = 'target' | 'excluded' | 'none';

function listOrSuffix(list: readonly string[], name: string): boolean {
  return list.some((t) => name === t || name.endsWith(`.${t}`));
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** True when `name` is one of modules_to_save or lies inside one (PEFT: never an adapter target). */
export function insideModulesToSave(modulesToSave: readonly string[] | null, name: string): boolean {
  if (!modulesToSave) return false;
  return modulesToSave.some((m) => new RegExp(`(^|.*\\.)${escapeRegExp(m)}($|\\..*)`).test(name));
}

/** The layer index PEFT reads from a module name (the first numbered segment after a layers container). */
export function layerIndexOf(name: string, layersPattern: string[] | string | null): number | null {
  const patterns = layersPattern === null || layersPattern.length === 0 ? null : typeof layersPattern === 'string' ? [layersPattern] : layersPattern;
  if (!patterns) {
    const m = /^.*?\.[^.]*\.(\d+)\./.exec(name);
    return m ? Number(m[1]) : null;
  }
  for (const p of patterns) {
    const m = new RegExp(`^.*?\\.${p}\\.(\\d+)\\.`).exec(name);
    if (m) return Number(m[1]);
  }
  return null;
}

/** Whether `name` is an adapter target under `targets` (already resolved, never null or 'all-linear'). */
export function matchModule(config: LoraConfig, targets: string[] | string, name: string): MatchResult {
  const ex = config.exclude_modules;
  if (ex !== null) {
    if (typeof ex === 'string' ? fullMatch(ex, name) : listOrSuffix(ex, name)) return 'excluded';
  }
  if (insideModulesToSave(config.modules_to_save, name)) return 'excluded';
  if (typeof targets === 'string') return fullMatch(targets, name) ? 'target' : 'none';
  if (targets.includes(name)) return 'target';
  if (!targets.some((t) => name.endsWith(`.${t}`))) return 'none';
  const idx = config.layers_to_transform;
  const usingIdx = idx !== null && (Array.isArray(idx) ? idx.length > 0 : true);
  if (!usingIdx) return 'target';
  const layer = layerIndexOf(name, config.layers_pattern);
  if (layer === null) return 'none';
  return (Array.isArray(idx) ? idx.includes(layer) : layer === idx) ? 'target' : 'none';
}

/** PEFT's get_pattern_key: the first pattern matching a dotted suffix of `name`, or null. */
export function patternKey(patterns: Record<string, number>, name: string): string | null {
  for (const key of Object.keys(patterns)) if (suffixPatternMatch(key, name)) return key;
  return null;
}

/** Rank and alpha for one module, after rank_pattern / alpha_pattern. */
export function rankAndAlpha(config: LoraConfig, name: string): { r: number; alpha: number } {
  const rk = patternKey(config.rank_pattern, name);
  const ak = patternKey(config.alpha_pattern, name);
  return { r: rk === null ? config.r : config.rank_pattern[rk]!, alpha: ak === null ? config.lora_alpha : config.alpha_pattern[ak]! };
}

/**
 * Default target_modules by model_type (PEFT's TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING,
 * for the families lorakit loads), as the families declare them (ModelFamily.defaultTargets).
 */
export const DEFAULT_TARGET_MODULES: Readonly<Record<string, readonly string[]>> = Object.fromEntries(
  [...MODEL_FAMILIES.keys(), ...ENCODER_FAMILIES.keys()].flatMap((t) => {
    const d = defaultTargetModules(t);
    return d ? [[t, d] as const] : [];
  }),
);

const SEQ_CLS_HEADS = ['classifier', 'score'];

function isOutputHead(name: string, taskType: string | null): boolean {
  const leaf = name.slice(name.lastIndexOf('.') + 1);
  if (leaf === 'lm_head') return true;
  return taskType === 'SEQ_CLS' && SEQ_CLS_HEADS.includes(name);
}

/** Module names collapsed over layer indices (`model.layers.<i>.mlp.up_proj`), for error messages. */
export function describeModules(names: readonly string[], limit = 60): string {
  const collapsed = [...new Set(names.filter((n) => n !== '').map((n) => n.replace(/\.\d+(?=\.|$)/g, '.<i>')))];
  const shown = collapsed.slice(0, limit).join(', ');
  return collapsed.length > limit ? `${shown}, … (${collapsed.length - limit} more)` : shown || '(none)';
}

export interface TargetPlan {
  /** names of the modules to wrap, in model order */
  targets: string[];
  /** the target_modules value actually used (all-linear and defaults resolved) */
  resolved: string[] | string;
  warnings: string[];
}

/**
 * Resolves target_modules against a model's modules. Throws when nothing matches (listing
 * the modules that exist) or when a matched module cannot carry LoRA; warns for list
 * entries that match nothing while others do.
 */
export function planTargets(config: LoraConfig, modules: readonly ModuleInfo[], modelType?: string): TargetPlan {
  const warnings: string[] = [];
  let targets = config.target_modules;
  let fromAllLinear = false;
  if (targets === null) {
    const d = defaultTargetModules(modelType);
    if (!d) {
      throw new Error(`target_modules is not set and PEFT has no default for model type ${JSON.stringify(modelType ?? null)}; name the modules to adapt (target_modules in the adapter config, --targets on the command line), e.g. "all-linear" or a list of these Linear modules: ${describeModules(modules.filter((m) => m.linear).map((m) => m.name))}`);
    }
    targets = [...d];
  } else if (typeof targets === 'string' && targets.toLowerCase() === 'all-linear') {
    targets = modules.filter((m) => m.linear && m.name !== '' && !isOutputHead(m.name, config.task_type)).map((m) => m.name);
    fromAllLinear = true;
  }
  const resolved = targets;
  const matched: string[] = [];
  const problems: string[] = [];
  for (const m of modules) {
    if (m.name === '') continue;
    if (matchModule(config, resolved, m.name) !== 'target') continue;
    if (!m.linear) {
      problems.push(`module ${m.name} (${m.type ?? 'unknown type'}) matches target_modules but only Linear layers (incl. Conv1D) can carry LoRA`);
      continue;
    }
    matched.push(m.name);
  }
  if (problems.length) throw new ProblemsError(formatProblems('getPeftModel', problems, 'problem(s)'), problems);
  if (matched.length === 0) {
    throw new Error(`target_modules ${JSON.stringify(config.target_modules)} matches no module of the model${config.exclude_modules !== null ? ` (after exclude_modules ${JSON.stringify(config.exclude_modules)})` : ''}${config.layers_to_transform !== null ? ` (layers_to_transform ${JSON.stringify(config.layers_to_transform)})` : ''}. Modules that exist: ${describeModules(modules.map((m) => m.name))}`);
  }
  if (Array.isArray(resolved) && !fromAllLinear) {
    for (const t of resolved) {
      if (!matched.some((n) => n === t || n.endsWith(`.${t}`))) warnings.push(`target_modules entry ${JSON.stringify(t)} matches no module`);
    }
  }
  return { targets: matched, resolved, warnings };
}
