// Adapter files, parsed and checked (files.node.ts reads and writes the folders).
//
// PEFT layout (written and read):
//   adapter_config.json        PEFT's LoraConfig keys, sorted, indent 2 (json.dumps(sort_keys=True))
//   adapter_model.safetensors  base_model.model.<module path>.lora_A.weight [r, in]
//                              base_model.model.<module path>.lora_B.weight [out, r]
//                              …lora_B.bias [out] (lora_bias), …lora_magnitude_vector [out] (DoRA)
//                              base_model.model.<module path>.<param> for modules_to_save copies
//                              bias = 'all' / 'lora_only': the biases, adapted layers' as
//                              base_model.model.<module path>.base_layer.bias
// (the adapter name is not in the keys). PEFT saves the adapter "default" in the folder
// itself and any other adapter in <folder>/<name>/; so does saveAdapter.
//
// mlx-lm layout (read, converted): adapter_config.json with lora_parameters {rank, scale,
// dropout, keys?} and fine_tune_type, adapters.safetensors with <module path>.lora_a [in, r],
// .lora_b [r, out] (and .m for DoRA). A = lora_aᵀ, B = lora_bᵀ, lora_alpha = scale·rank
// (mlx-lm's scale is the absolute factor s).
//
// Loading checks every key and shape against the model before changing anything and reports
// all problems in one error.
import { hostTensors } from '../backend/transfer.js';
import { ProblemsError, formatProblems, warn as emitWarning } from '../io/errors.js';
import { deserializeSafetensors, serializeSafetensors } from '../io/safetensors.js';
import { Linear } from '../nn/linear.js';
import type { Module } from '../nn/module.js';
import { Tensor, formatShape } from '../tensor/tensor.js';
import type { LoraConfig } from './config.js';
import { adapterConfigJson, parseLoraConfig } from './config.js';
import { LoraLinear } from './lora-linear.js';
import { planTargets, rankAndAlpha } from './match.js';
import type { PeftModel } from './peft-model.js';

export const ADAPTER_CONFIG_FILE = 'adapter_config.json';
export const ADAPTER_WEIGHTS_FILE = 'adapter_model.safetensors';
export const MLX_ADAPTER_WEIGHTS_FILE = 'adapters.safetensors';
export const PEFT_PREFIX = 'base_model.model.';

function warn(msg: string): void {
  emitWarning(msg, 'LORAKIT_ADAPTER');
}

/** JSON as Python's json.dumps(obj, indent=2, sort_keys=True) writes it (floats listed in floatKeys keep a ".0"). */
export function pythonJson(value: unknown, floatKeys: ReadonlySet<string> = new Set(), indent = ''): string {
  const next = `${indent}  `;
  if (value === null || value === undefined) return 'null';
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) return Number.isNaN(value) ? 'NaN' : value > 0 ? 'Infinity' : '-Infinity';
    return String(value);
  }
  if (typeof value === 'string') return JSON.stringify(value).replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  if (Array.isArray(value)) {
    if (value.length === 0) return '[]';
    return `[\n${value.map((v) => next + pythonJson(v, floatKeys, next)).join(',\n')}\n${indent}]`;
  }
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj).sort();
  if (keys.length === 0) return '{}';
  const item = (k: string): string => {
    const v = obj[k];
    const s = typeof v === 'number' && floatKeys.has(k) && Number.isInteger(v) ? `${v}.0` : pythonJson(v, floatKeys, next);
    return `${next}${JSON.stringify(k)}: ${s}`;
  };
  return `{\n${keys.map(item).join(',\n')}\n${indent}}`;
}

const FLOAT_KEYS = new Set(['lora_dropout']);

/** Tensors of one adapter under PEFT's file keys. */
export function adapterStateDict(peft: PeftModel, adapterName: string): Map<string, Tensor> {
  const cfg = peft.config(adapterName);
  const out = new Map<string, Tensor>();
  for (const [p, l] of peft.loraLayers) {
    if (!l.hasAdapter(adapterName)) continue;
    const a = l.adapter(adapterName);
    out.set(`${PEFT_PREFIX}${p}.lora_A.weight`, a.A.value);
    out.set(`${PEFT_PREFIX}${p}.lora_B.weight`, a.B.value);
    if (a.bias) out.set(`${PEFT_PREFIX}${p}.lora_B.bias`, a.bias.value);
    if (a.magnitude) out.set(`${PEFT_PREFIX}${p}.lora_magnitude_vector`, a.magnitude.value);
  }
  for (const [p, e] of peft.modulesToSave) {
    if (!e.has(adapterName)) continue;
    for (const [n, param] of e.copy(adapterName)) out.set(`${PEFT_PREFIX}${p}.${n}`, param.value);
  }
  for (const [key, t] of biasEntries(peft, cfg, adapterName)) out.set(key, t.value);
  return out;
}

/** The bias tensors an adapter with bias 'all' / 'lora_only' carries: [file key, parameter]. */
function biasEntries(peft: PeftModel, cfg: LoraConfig, adapterName: string): [string, { value: Tensor; assign: (t: Tensor) => void; shape: readonly number[] }][] {
  if (cfg.bias === 'none') return [];
  const out: [string, { value: Tensor; assign: (t: Tensor) => void; shape: readonly number[] }][] = [];
  const saved = new Set<string>(peft.modulesToSave.keys());
  for (const [modPath, m] of peft.model.namedModules()) {
    if ([...saved].some((s) => modPath === s || modPath.startsWith(`${s}.`))) continue;
    const isLora = m instanceof LoraLinear;
    if (cfg.bias === 'lora_only' && !(isLora && m.hasAdapter(adapterName))) continue;
    const bias = isLora ? m.bias : m.ownParameters().find(([n]) => n === 'bias')?.[1];
    if (!bias) continue;
    const key = `${PEFT_PREFIX}${modPath ? `${modPath}.` : ''}${isLora ? 'base_layer.' : ''}bias`;
    out.push([key, { value: bias.value, shape: bias.shape, assign: (t) => (bias.value = bias.requiresGrad ? t.toF32() : t.to(bias.value.floatDtype)) }]);
  }
  return out;
}

export interface SaveAdapterOptions {
  /** adapters to save (default: all); "default" goes to dir, others to dir/<name> */
  adapterNames?: readonly string[];
  /** written as base_model_name_or_path (default: the adapter config's value) */
  baseModelNameOrPath?: string;
  /**
   * A PiSSA adapter saved as a plain LoRA on the original base weights (PEFT's
   * path_initial_model_for_weight_conversion): ΔW = s·(B·A − B₀·A₀) as lora_A = [A; A₀],
   * lora_B = [B, −B₀], rank 2r and alpha scaled to keep s, init_lora_weights true. Portable:
   * loading it re-runs no SVD. Other adapters are saved as they are.
   */
  pissaAsLora?: boolean;
}

/** ΔW = s·(B·A − B₀·A₀) of a PiSSA adapter as a rank-2r LoRA: its config and tensors (see SaveAdapterOptions.pissaAsLora). */
function pissaAsLora(peft: PeftModel, name: string, cfg: LoraConfig, tensors: Map<string, Tensor>): LoraConfig {
  if (cfg.use_dora) throw new Error(`saveAdapter: adapter "${name}" is PiSSA with DoRA; it cannot be saved as a plain LoRA`);
  for (const [p, l] of peft.loraLayers) {
    if (!l.hasAdapter(name)) continue;
    const a = l.adapter(name);
    if (!a.pissaInitial) throw new Error(`saveAdapter: module ${p} of adapter "${name}" has no PiSSA starting factors (it was not initialised by PiSSA in this process)`);
    const [r, I] = a.A.shape as [number, number];
    const O = a.B.shape[0]!;
    const A2 = new Float32Array(2 * r * I);
    A2.set(a.A.data);
    A2.set(a.pissaInitial.A, r * I);
    const B2 = new Float32Array(O * 2 * r);
    for (let o = 0; o < O; o++) {
      for (let k = 0; k < r; k++) {
        B2[o * 2 * r + k] = a.B.data[o * r + k]!;
        B2[o * 2 * r + r + k] = -a.pissaInitial.B[o * r + k]!;
      }
    }
    tensors.set(`${PEFT_PREFIX}${p}.lora_A.weight`, Tensor.fromF32(A2, [2 * r, I]));
    tensors.set(`${PEFT_PREFIX}${p}.lora_B.weight`, Tensor.fromF32(B2, [O, 2 * r]));
  }
  // rank 2r: alpha/r (rsLoRA alpha/√r) must stay the same
  const f = cfg.use_rslora ? Math.SQRT2 : 2;
  const double = (m: Record<string, number>, g: number): Record<string, number> => Object.fromEntries(Object.entries(m).map(([k, v]) => [k, v * g]));
  return { ...cfg, r: 2 * cfg.r, lora_alpha: cfg.lora_alpha * f, rank_pattern: double(cfg.rank_pattern, 2), alpha_pattern: double(cfg.alpha_pattern, f), init_lora_weights: true };
}

/**
 * The files of adapter `name` as PEFT's save_pretrained writes them: adapter_model.safetensors
 * and adapter_config.json. Its tensors must be readable on the host (`tensors`: the adapter's
 * state dict, by default read in place); on a device backend use readAdapterFiles.
 */
export function adapterFiles(peft: PeftModel, name: string, opts: SaveAdapterOptions = {}, tensors = adapterStateDict(peft, name)): Map<string, Uint8Array | string> {
  let cfg = peft.config(name);
  if (opts.pissaAsLora && typeof cfg.init_lora_weights === 'string' && cfg.init_lora_weights.startsWith('pissa')) cfg = pissaAsLora(peft, name, cfg, tensors);
  // PEFT's save_pretrained writes inference_mode = true
  const json = adapterConfigJson({ ...cfg, inference_mode: true, base_model_name_or_path: opts.baseModelNameOrPath ?? cfg.base_model_name_or_path });
  return new Map<string, Uint8Array | string>([
    [ADAPTER_WEIGHTS_FILE, serializeSafetensors(tensors, { metadata: { format: 'pt' } })],
    [ADAPTER_CONFIG_FILE, pythonJson(json, FLOAT_KEYS)],
  ]);
}

/** adapterFiles on any backend: the tensors read back first where they live on a device (docs/ARCHITECTURE.md §Backend memory). */
export async function readAdapterFiles(peft: PeftModel, name: string, opts: SaveAdapterOptions = {}): Promise<Map<string, Uint8Array | string>> {
  return adapterFiles(peft, name, opts, await hostTensors(adapterStateDict(peft, name)));
}

/** What lands where when an adapter is loaded: expected shape and how to assign. */
interface Slot {
  shape: readonly number[];
  /** optional slots (biases) may be absent from the file */
  optional: boolean;
  assign: (t: Tensor) => void;
}

export interface LoadAdapterOptions {
  /** the adapter can be trained further (default false: inference_mode) */
  isTrainable?: boolean;
}

interface ReadAdapter {
  config: LoraConfig;
  /** module path → tensors in lorakit's orientation (A [r, in], B [out, r], …) by kind */
  tensors: Map<string, Tensor>;
  format: 'peft' | 'mlx';
  /** file key for each entry of `tensors`, for messages */
  fileKey: Map<string, string>;
  /** explicit target paths (mlx) */
  targets: string[] | null;
  /** entries stored transposed in the file (mlx lora_a / lora_b): messages give the file's layout */
  transposed: Set<string>;
}

/** An adapter's files, read: the config's text and the weights' bytes, and the names messages give them. */
export interface AdapterSource {
  /** the folder (or other place) the files came from */
  dir: string;
  /** 'peft': adapter_model.safetensors; 'mlx': mlx-lm's adapters.safetensors */
  format: 'peft' | 'mlx';
  configFile: string;
  configText: string;
  weightsFile: string;
  weights: Uint8Array;
}

function parseJson(text: string, file: string): Record<string, unknown> {
  try {
    const v = JSON.parse(text.replace(/\bNaN\b/g, 'null')) as unknown;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not a JSON object');
    return v as Record<string, unknown>;
  } catch (e) {
    throw new Error(`loadAdapter: ${file} is not valid JSON: ${(e as Error).message}`);
  }
}

/** Reads an adapter's files (PEFT or mlx-lm) into a config and tensors keyed `<module path>.<kind>`. */
function readAdapter(src: AdapterSource): ReadAdapter {
  if (src.format === 'mlx') return readMlxAdapter(src);
  const cfgFile = src.configFile;
  const json = parseJson(src.configText, cfgFile);
  const { config, warnings } = parseLoraConfig(json, `loadAdapter ${cfgFile}`);
  for (const w of warnings) warn(`loadAdapter ${cfgFile}: ${w}`);
  const st = deserializeSafetensors(src.weights, src.weightsFile);
  const tensors = new Map<string, Tensor>();
  const fileKey = new Map<string, string>();
  for (const [k, t] of st.tensors) {
    const key = k.startsWith(PEFT_PREFIX) ? k.slice(PEFT_PREFIX.length) : k;
    const norm = key.endsWith('.lora_magnitude_vector.weight') ? key.slice(0, -'.weight'.length) : key;
    tensors.set(norm, t);
    fileKey.set(norm, k);
  }
  for (const k of st.others.keys()) {
    tensors.set(`\0${k}`, Tensor.zeros([0]));
    fileKey.set(`\0${k}`, k);
  }
  return { config, tensors, format: 'peft', fileKey, targets: null, transposed: new Set() };
}

function readMlxAdapter(src: AdapterSource): ReadAdapter {
  const { dir, configFile: cfgFile } = src;
  const json = parseJson(src.configText, cfgFile);
  const problems: string[] = [];
  const type = json.fine_tune_type ?? 'lora';
  if (type !== 'lora' && type !== 'dora') problems.push(`fine_tune_type ${JSON.stringify(type)} is not an adapter (lora or dora)`);
  const lp = json.lora_parameters as Record<string, unknown> | undefined;
  if (typeof lp !== 'object' || lp === null) problems.push('lora_parameters is missing');
  const rank = lp?.rank;
  const scale = lp?.scale;
  const dropout = lp?.dropout ?? 0;
  if (typeof rank !== 'number' || !Number.isInteger(rank) || rank <= 0) problems.push(`lora_parameters.rank must be a positive integer, got ${JSON.stringify(rank)}`);
  if (typeof scale !== 'number' || !Number.isFinite(scale)) problems.push(`lora_parameters.scale must be a number, got ${JSON.stringify(scale)}`);
  if (problems.length) throw new Error(`loadAdapter ${dir} (mlx-lm adapter_config.json): ${problems.join("; ")}`);
  const st = deserializeSafetensors(src.weights, src.weightsFile);
  const tensors = new Map<string, Tensor>();
  const fileKey = new Map<string, string>();
  const targets = new Set<string>();
  const transposed = new Set<string>();
  for (const [k, t] of st.tensors) {
    const m = /^(.*)\.(lora_a|lora_b|m)$/.exec(k);
    if (!m) {
      tensors.set(`\0${k}`, t);
      fileKey.set(`\0${k}`, k);
      continue;
    }
    const [, mod, kind] = m as unknown as [string, string, string];
    targets.add(mod);
    let key: string;
    let v = t.toF32();
    if (kind === 'lora_a' || kind === 'lora_b') {
      if (v.ndim !== 2) {
        tensors.set(`\0${k}`, t);
        fileKey.set(`\0${k}`, k);
        continue;
      }
      const [rows, cols] = v.shape as [number, number];
      const d = v.f32;
      const tr = new Float32Array(rows * cols);
      for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) tr[j * rows + i] = d[i * cols + j]!;
      v = Tensor.fromF32(tr, [cols, rows]);
      key = `${mod}.${kind === 'lora_a' ? 'lora_A.weight' : 'lora_B.weight'}`;
      transposed.add(key);
    } else {
      key = `${mod}.lora_magnitude_vector`;
    }
    tensors.set(key, v);
    fileKey.set(key, k);
  }
  const { config, warnings } = parseLoraConfig(
    {
      r: rank as number,
      lora_alpha: (scale as number) * (rank as number),
      lora_dropout: dropout,
      use_dora: type === 'dora',
      target_modules: [...targets].sort(),
    },
    `loadAdapter ${cfgFile} (mlx-lm)`,
  );
  for (const w of warnings) warn(w);
  return { config, tensors, format: 'mlx', fileKey, targets: [...targets], transposed };
}

/**
 * Loads an adapter (PEFT or mlx-lm files, read) as adapter `name` of `peft` (not activated).
 * Every key and shape is checked first; all problems are thrown together. loadAdapter
 * (files.node.ts) reads a folder and calls this.
 */
export function loadAdapterFiles(peft: PeftModel, src: AdapterSource, name: string, opts: LoadAdapterOptions = {}): LoraConfig {
  const dir = src.dir;
  const read = readAdapter(src);
  const config: LoraConfig = { ...read.config, inference_mode: !(opts.isTrainable ?? false) };
  const model = peft.model;
  const problems: string[] = [];

  // Where the adapter goes.
  let targets: string[];
  if (read.targets) {
    targets = [];
    const has = new Set(model.namedModules().map(([n]) => n));
    for (const t of read.targets) {
      const alt = t.startsWith('model.') ? `transformer.${t.slice('model.'.length)}` : t;
      const p = has.has(t) ? t : has.has(alt) ? alt : null;
      if (p === null) {
        problems.push(`tensors ${t}.lora_a/lora_b: the model has no module ${t}`);
        continue;
      }
      const m = model.getModule(p);
      if (!(m instanceof LoraLinear) && !(m instanceof Linear)) problems.push(`module ${p} is a ${m.constructor.name}, not a Linear`);
      if (p !== t) {
        for (const kind of ['lora_A.weight', 'lora_B.weight', 'lora_magnitude_vector']) {
          const v = read.tensors.get(`${t}.${kind}`);
          if (v) {
            read.tensors.set(`${p}.${kind}`, v);
            read.fileKey.set(`${p}.${kind}`, read.fileKey.get(`${t}.${kind}`)!);
            read.tensors.delete(`${t}.${kind}`);
            if (read.transposed.has(`${t}.${kind}`)) read.transposed.add(`${p}.${kind}`);
          }
        }
      }
      targets.push(p);
    }
    config.target_modules = [...targets].sort();
  } else {
    try {
      targets = planTargets(config, peft.model.namedModules().map(([n, m]) => ({ name: n, linear: m instanceof LoraLinear || m instanceof Linear, type: m.constructor.name })), modelTypeOf(model)).targets;
    } catch (e) {
      throw new Error(`loadAdapter ${dir}: ${(e as Error).message}`);
    }
  }

  // Expected tensors.
  const slots = new Map<string, Slot>();
  const pending: (() => void)[] = [];
  for (const p of targets) {
    const m = model.getModule(p) as LoraLinear | { inFeatures: number; outFeatures: number };
    const { r } = rankAndAlpha(config, p);
    const I = m.inFeatures;
    const O = m.outFeatures;
    const slot = (kind: string, shape: number[], optional = false): void => {
      slots.set(`${p}.${kind}`, { shape, optional, assign: (t) => pending.push(() => assignAdapterTensor(peft, p, name, kind, t)) });
    };
    slot('lora_A.weight', [r, I]);
    slot('lora_B.weight', [O, r]);
    if (config.lora_bias) slot('lora_B.bias', [O]);
    if (config.use_dora) slot('lora_magnitude_vector', [O]);
  }
  // modules_to_save copies
  for (const target of config.modules_to_save ?? []) {
    for (const [p, m] of model.namedModules()) {
      if (p === '' || !p.endsWith(target) || m instanceof LoraLinear) continue;
      for (const [n, param] of m.namedParameters()) {
        const key = `${p}.${n}`;
        slots.set(key, { shape: param.shape, optional: false, assign: (t) => pending.push(() => peft.modulesToSave.get(p)!.copy(name).get(n)!.assign(t.toF32(), key)) });
      }
    }
  }
  // biases (bias = 'all' / 'lora_only'); they replace the model's biases
  if (config.bias !== 'none') {
    for (const [p, m] of model.namedModules()) {
      const isLora = m instanceof LoraLinear || targets.includes(p);
      if (config.bias === 'lora_only' && !isLora) continue;
      const bias = m.ownParameters().find(([n]) => n === 'bias')?.[1] ?? (m instanceof LoraLinear ? m.bias : null);
      if (!bias) continue;
      const key = `${p ? `${p}.` : ''}${isLora ? 'base_layer.' : ''}bias`;
      if (!slots.has(key)) slots.set(key, { shape: bias.shape, optional: true, assign: (t) => pending.push(() => (bias.value = bias.requiresGrad ? t.toF32() : t.to(bias.value.floatDtype))) });
    }
  }

  // Check every file tensor, then every expected one.
  const seen = new Set<string>();
  const modules = new Set(model.namedModules().map(([n]) => n));
  for (const [key, t] of read.tensors) {
    const fileKey = read.fileKey.get(key) ?? key;
    if (key.startsWith('\0')) {
      problems.push(`tensor ${fileKey} is not an adapter tensor (unexpected key or dtype)`);
      continue;
    }
    const slot = slots.get(key);
    if (!slot) {
      const mod = key.replace(/\.(lora_A\.weight|lora_B\.weight|lora_B\.bias|lora_magnitude_vector|base_layer\.bias|[^.]+)$/, '');
      if (/\.lora_embedding_[AB]$/.test(key)) problems.push(`tensor ${fileKey}: LoRA on embeddings is not supported`);
      else if (!modules.has(mod)) problems.push(`tensor ${fileKey}: the model has no module ${mod}`);
      else problems.push(`tensor ${fileKey} is unexpected (module ${mod} is not a target of this adapter's config)`);
      continue;
    }
    seen.add(key);
    if (t.shape.length !== slot.shape.length || t.shape.some((d, i) => d !== slot.shape[i])) {
      const flip = read.transposed.has(key) ? (sh: readonly number[]): number[] => [...sh].reverse() : (sh: readonly number[]): number[] => [...sh];
      problems.push(`tensor ${fileKey} has shape ${formatShape(flip(t.shape))}, the model expects ${formatShape(flip(slot.shape))}`);
      continue;
    }
    let bad = 0;
    const vals = t.toF32Array();
    for (let i = 0; i < vals.length; i++) if (!Number.isFinite(vals[i]!)) bad++;
    if (bad) {
      problems.push(`tensor ${fileKey} has ${bad} NaN/Inf value(s)`);
      continue;
    }
    slot.assign(t);
  }
  for (const [key, slot] of slots) {
    if (!seen.has(key) && !slot.optional) problems.push(`missing tensor ${read.format === 'peft' ? PEFT_PREFIX : ''}${key} (expected shape ${formatShape(slot.shape)})`);
  }
  if (problems.length) throw new ProblemsError(formatProblems(`loadAdapter ${dir}`, problems, 'problem(s)'), problems);

  // Inject (cheap init unless PiSSA, which PEFT reproduces on the base weights), then assign.
  const injectCfg: LoraConfig = config.init_lora_weights === true || config.init_lora_weights === false || config.init_lora_weights === 'gaussian' ? { ...config, init_lora_weights: true } : config;
  peft.injectAdapter(name, injectCfg, { targets });
  peft.peftConfig.set(name, config);
  for (const f of pending) f();
  return config;
}

function assignAdapterTensor(peft: PeftModel, modulePath: string, name: string, kind: string, t: Tensor): void {
  const l = peft.loraLayers.get(modulePath)!;
  const a = l.adapter(name);
  const target = kind === 'lora_A.weight' ? a.A : kind === 'lora_B.weight' ? a.B : kind === 'lora_B.bias' ? a.bias : a.magnitude;
  target!.value.f32.set(t.toF32Array());
}

function modelTypeOf(model: Module): string | undefined {
  const cfg = (model as unknown as { config?: { model_type?: unknown } }).config;
  return typeof cfg?.model_type === 'string' ? cfg.model_type : undefined;
}
