// What a model family declares (docs/ARCHITECTURE.md §Model families): its config parsing,
// its module tree (built, and as shapes from the config alone), its checkpoint key fixes, the
// default LoRA targets PEFT has for it. A family is one file exporting a ModelFamily; the
// registry (registry.ts) maps config.json `model_type` to it in one line.
import type { DType, Tensor } from '../tensor/tensor.js';
import type { JsonObject } from './config.js';
import type { DecoderLM } from './decoder.js';

/** A module of a model as config.json describes it: its path, whether it is a Linear, its parameters. */
export interface ModuleShape {
  /** the module path (`model.layers.0.self_attn.q_proj`) */
  name: string;
  /** a Linear (LoRA can wrap it) */
  linear: boolean;
  /** in and out features of a Linear */
  in?: number;
  out?: number;
  /** its own parameters (not its children's): full names and element counts */
  params: { name: string; size: number }[];
}

export interface ModelFamily<Cfg = unknown> {
  /** the config.json model_type it serves, e.g. 'llama' */
  readonly name: string;
  /** Validates config.json; throws a ConfigError naming every bad key. */
  parseConfig(json: JsonObject, where?: string): Cfg;
  /** The module tree with zero (or unit, for norms) parameters of the given dtype. */
  build(cfg: Cfg, opts?: { dtype?: DType }): DecoderLM;
  /**
   * The same tree as shapes, allocating nothing (lorakit inspect, countLoraParameters): every
   * module build() makes, in the same order, with the same parameters. A test holds the two
   * equal for every family (tests/unit/families.test.ts).
   */
  moduleShapes(cfg: Cfg): ModuleShape[];
  /**
   * PEFT's default LoRA target_modules for this model_type
   * (TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING), or null where PEFT has none: then
   * target_modules (the CLI's --targets) must be given.
   */
  readonly defaultTargets: readonly string[] | null;
  /** The key a checkpoint tensor loads into, or null for a known buffer to drop. */
  sanitizeKey(cfg: Cfg, key: string): string | null;
  /** Applies sanitizeKey to a whole state dict (dropping known buffers). */
  sanitize(cfg: Cfg, stateDict: ReadonlyMap<string, Tensor>): Map<string, Tensor>;
  /** std of the normal init of projection and embedding weights (config initializer_range) */
  initStd(cfg: Cfg): number;
  /** config.json `architectures` (written by saveModel when the config has none) */
  readonly architecture: string;
  /** the longest sequence the model can run where learned positions end (GPT-2's n_positions); absent: no limit (RoPE) */
  positionLimit?(cfg: Cfg): number;
}

/** The sanitize of a family from its sanitizeKey. */
export function sanitizeWith<Cfg>(sanitizeKey: (cfg: Cfg, key: string) => string | null) {
  return (cfg: Cfg, stateDict: ReadonlyMap<string, Tensor>): Map<string, Tensor> => {
    const out = new Map<string, Tensor>();
    for (const [k, t] of stateDict) {
      const key = sanitizeKey(cfg, k);
      if (key !== null) out.set(key, t);
    }
    return out;
  };
}

/** config.json initializer_range (default 0.02). */
export function initializerRange(raw: JsonObject): number {
  const v = raw['initializer_range'];
  return typeof v === 'number' && v > 0 ? v : 0.02;
}

// ---- building shapes ----

/** A Linear [out, in] (+ bias [out]). */
export function linearShape(name: string, inF: number, outF: number, bias: boolean): ModuleShape {
  const params = [{ name: `${name}.weight`, size: inF * outF }];
  if (bias) params.push({ name: `${name}.bias`, size: outF });
  return { name, linear: true, in: inF, out: outF, params };
}

/** A module that is not a Linear, with its own parameters (an embedding, a norm) or none (a tied head). */
export function otherShape(name: string, params: [string, number][] = []): ModuleShape {
  return { name, linear: false, params: params.map(([n, size]) => ({ name: `${name}.${n}`, size })) };
}

/**
 * The full module list from the modules that hold parameters (or are heads), in build order:
 * each container on a path (`model`, `model.layers`, `model.layers.0`, …) is inserted, with
 * no parameters, before its first child, as namedModules() lists them.
 */
export function withContainers(leaves: readonly ModuleShape[]): ModuleShape[] {
  const out: ModuleShape[] = [];
  const seen = new Set<string>();
  for (const m of leaves) {
    const parts = m.name.split('.');
    for (let i = 1; i < parts.length; i++) {
      const p = parts.slice(0, i).join('.');
      if (seen.has(p)) continue;
      seen.add(p);
      out.push({ name: p, linear: false, params: [] });
    }
    seen.add(m.name);
    out.push(m);
  }
  return out;
}
