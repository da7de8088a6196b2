// lorakit inspect: what a model folder, an adapter folder or a bare config.json holds, and
// (with --r/--targets) the LoRA trainable count and a training-memory estimate computed
// from config.json alone, without loading weights.
import { existsSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { Command } from 'commander';
import { Problems, formatProblems } from '../../io/errors.js';
import { weightProblems } from '../../models/load.js';
import { MODEL_FAMILIES } from '../../models/registry.js';
import { readJsonObject } from '../../io/json.node.js';
import { findWeights, openWeights } from '../../io/model-folder.node.js';
import { GgufFile, isGgufPath } from '../../io/gguf.node.js';
import { dtypeByteSize } from '../../io/safetensors.js';
import { ggufConfig } from '../../models/gguf.js';
import { SafetensorsFile } from '../../io/safetensors.node.js';
import { countLoraParameters, modulesFromConfig, parseLoraConfig } from '../../lora/index.js';
import { defaultLogitsBlock } from '../../models/decoder.js';
import { getModelFamily } from '../../models/registry.js';
import { UsageError, bytes, commas, parseNumber, parsePositiveInt, parseTargets, warnLine } from '../common.js';

interface InspectFlags {
  config?: string;
  r?: number;
  targets?: string;
  alpha?: number;
  dora: boolean;
  batchSize: number;
  maxLength: number;
  gradCheckpoint: boolean;
  modules: boolean;
}

export function inspectCommand(): Command {
  return new Command('inspect')
    .description('describe a model folder, an adapter folder, or a bare config.json (--config); with --r and --targets, the LoRA trainable count and a training-memory estimate from config.json alone')
    .argument('[path]', 'model folder or adapter folder')
    .option('--config <file>', 'a bare Hugging Face config.json to describe instead of a folder')
    .option('--r <n>', 'LoRA rank for the trainable count', parsePositiveInt)
    .option('--targets <list>', 'modules to adapt: comma list, a regex, or all-linear (default: the family default)')
    .option('--alpha <a>', 'LoRA alpha (default 2 × r)', parseNumber)
    .option('--dora', 'count DoRA magnitudes too', false)
    .option('--batch-size <n>', 'batch size for the memory estimate', parsePositiveInt, 1)
    .option('--max-length <n>', 'tokens per example for the memory estimate', parsePositiveInt, 512)
    .option('--grad-checkpoint', 'memory estimate with gradient checkpointing', false)
    .option('--modules', 'list every adapted module with its rank and shapes (adapter folders)', false)
    .action(function (this: Command, path: string | undefined) {
      runInspect(path, this.opts<InspectFlags>());
    });
}

function readConfig(file: string): Record<string, unknown> {
  const p = new Problems('config', file);
  const cfg = readJsonObject(file, p, true);
  p.throwIfAny();
  return cfg!;
}

function runInspect(path: string | undefined, o: InspectFlags): void {
  if (path !== undefined && o.config !== undefined) throw new UsageError('give a folder or --config FILE, not both');
  if ((o.targets !== undefined || o.alpha !== undefined || o.dora) && o.r === undefined) throw new UsageError('--targets/--alpha/--dora need --r N');
  if (o.config !== undefined) {
    if (!existsSync(o.config)) throw new UsageError(`config file ${o.config} does not exist`);
    if (!statSync(o.config).isFile()) throw new UsageError(`config file ${o.config} is not a file`);
    describeConfig(readConfig(o.config), o.config, o, null);
    return;
  }
  if (path === undefined) throw new UsageError('give a model folder, an adapter folder, or --config FILE');
  if (!existsSync(path)) throw new UsageError(`${path} does not exist`);
  if (statSync(path).isFile()) {
    if (path.endsWith('.json')) {
      describeConfig(readConfig(path), path, o, null);
      return;
    }
    if (isGgufPath(path)) {
      const g = GgufFile.open(path);
      let cfg: Record<string, unknown>;
      const dtypes = new Map<string, number>();
      let params = 0;
      try {
        cfg = ggufConfig(g);
        for (const t of g.tensors) {
          const n = t.shape.reduce((a, b) => a * b, 1);
          params += n;
          dtypes.set(t.spec.name, (dtypes.get(t.spec.name) ?? 0) + n);
        }
      } finally {
        g.close();
      }
      describeConfig(cfg, path, o, { params, dtypes, files: [basename(path)], bytes: statSync(path).size, gguf: true });
      return;
    }
    throw new UsageError(`not a model folder: ${path} is a file`);
  }
  if (existsSync(join(path, 'adapter_config.json'))) {
    if (o.r !== undefined) throw new UsageError('--r/--targets count a LoRA on a model; this is an adapter folder');
    describeAdapter(path, o.modules);
    return;
  }
  if (!existsSync(join(path, 'config.json'))) throw new UsageError(`not a model folder: ${path} has no config.json (nor adapter_config.json)`);
  const cfg = readConfig(join(path, 'config.json'));
  describeConfig(cfg, path, o, weightsOf(path));
  // the description comes from headers; say so (exit 1) when the folder would not load
  if (MODEL_FAMILIES.has(String(cfg['model_type']))) {
    const src = openWeights(path);
    let problems: string[];
    try {
      problems = weightProblems(cfg, src, join(path, 'config.json'));
    } finally {
      src.close();
    }
    if (problems.length) throw new Error(formatProblems(`${path} does not load`, problems));
  }
}

interface WeightsSummary {
  params: number;
  dtypes: Map<string, number>;
  files: string[];
  bytes: number;
  /** a GGUF file: dtypes are GGML types; quantized matrices stay blocks when loaded (docs/ARCHITECTURE.md §Quantized weights) */
  gguf?: boolean;
}

/** Bytes per parameter of each weight format (blocks with their scales), for the memory estimate. */
const FORMAT_BYTES: [string, number][] = [['f32', 4], ['bf16', 2], ['q8_0', 34 / 32], ['q6_k', 210 / 256], ['q4_k', 144 / 256], ['q4_0', 18 / 32]];
/** Bytes per value of the GGML block types a model holds as blocks (tensor/quant.ts). */
const GGML_BLOCK_BYTES: Record<string, number> = { Q8_0: 34 / 32, Q4_0: 18 / 32, Q4_K: 144 / 256, Q6_K: 210 / 256 };

function weightsOf(dir: string): WeightsSummary {
  const src = openWeights(dir);
  try {
    const dtypes = new Map<string, number>();
    const files = new Set<string>();
    let params = 0;
    for (const name of src.names()) {
      const info = src.info(name);
      const n = info.shape.reduce((a, b) => a * b, 1);
      params += n;
      dtypes.set(info.dtype, (dtypes.get(info.dtype) ?? 0) + n);
      files.add(info.file);
    }
    const w = findWeights(dir)!;
    if (w.kind === 'sharded') files.add(w.path);
    let size = 0;
    for (const f of files) size += statSync(f).size;
    return { params, dtypes, files: [...files].map((f) => basename(f)).sort(), bytes: size };
  } finally {
    src.close();
  }
}

const TORCH_BYTES: Record<string, number> = { float32: 4, float16: 2, bfloat16: 2, float64: 8 };

function num(cfg: Record<string, unknown>, ...keys: string[]): number | undefined {
  for (const k of keys) if (typeof cfg[k] === 'number') return cfg[k] as number;
  return undefined;
}

function line(key: string, value: string): void {
  console.log(`${(key + ':').padEnd(22)}${value}`);
}

function describeConfig(cfg: Record<string, unknown>, where: string, o: InspectFlags, weights: WeightsSummary | null): void {
  const type = cfg.model_type;
  if (typeof type !== 'string') throw new Error(`${where}: config.json has no "model_type"`);
  const gpt2 = type === 'gpt2';
  const C = num(cfg, 'hidden_size', 'n_embd');
  const L = num(cfg, 'num_hidden_layers', 'n_layer');
  const H = num(cfg, 'num_attention_heads', 'n_head');
  const KV = gpt2 ? H : (num(cfg, 'num_key_value_heads') ?? H);
  const V = num(cfg, 'vocab_size');
  const F = gpt2 ? (num(cfg, 'n_inner') ?? (C !== undefined ? 4 * C : undefined)) : num(cfg, 'intermediate_size');
  const P = num(cfg, 'max_position_embeddings', 'n_positions');
  const arch = Array.isArray(cfg.architectures) ? cfg.architectures.join(', ') : '–';
  const s = (x: number | undefined): string => (x === undefined ? '–' : commas(x));
  line(weights?.gguf ? 'GGUF model' : weights ? 'model folder' : 'config', where);
  line('architecture', arch);
  line('model_type', type);
  line('layers', s(L));
  line('hidden size', s(C));
  line('attention heads', `${s(H)}${KV !== H ? ` (${s(KV)} key/value heads)` : ''}`);
  line('intermediate size', s(F));
  line('vocab size', s(V));
  line('max positions', s(P));
  line('tied embeddings', cfg.tie_word_embeddings === true || (gpt2 && cfg.tie_word_embeddings !== false) ? 'yes' : 'no');
  let counted: number | null = null;
  try {
    counted = modulesFromConfig(cfg).reduce((n, m) => n + m.params.reduce((k, p) => k + p.size, 0), 0);
  } catch {
    counted = null; // a model_type the counter does not know: the weights still give the count
  }
  let weightBytesPerParam = TORCH_BYTES[String(cfg.torch_dtype)] ?? 4;
  if (weights) {
    line('parameters', commas(weights.params));
    const dt = [...weights.dtypes].sort((a, b) => b[1] - a[1]);
    line('dtype', dt.map(([d, n]) => (dt.length > 1 ? `${d} (${commas(n)})` : d)).join(', '));
    line('size on disk', `${bytes(weights.bytes)} (${weights.files.join(', ')})`);
    if (weights.gguf) {
      // quantized blocks stay blocks (on the native and reference backends; the wasm backend
      // dequantizes them to f32); F16/BF16 files load as stored; any other mix loads as f32
      const quant = dt.some(([d]) => GGML_BLOCK_BYTES[d] !== undefined);
      const only = dt.length === 1 || dt.every(([d]) => d === 'F32' || d === dt[0]![0]) ? dt[0]![0] : 'F32';
      const floatBytes = !quant && (only === 'F16' || only === 'BF16') ? 2 : 4;
      weightBytesPerParam = dt.reduce((n, [d, k]) => n + k * (GGML_BLOCK_BYTES[d] ?? floatBytes), 0) / weights.params;
    } else weightBytesPerParam = dtypeByteSize(dt[0]![0] as Parameters<typeof dtypeByteSize>[0]);
  } else {
    line('parameters', counted === null ? '–' : `${commas(counted)} (from config.json)`);
    line('dtype', typeof cfg.torch_dtype === 'string' ? `${cfg.torch_dtype} (torch_dtype)` : '–');
    if (counted !== null) line('size (weights)', `${bytes(counted * weightBytesPerParam)} at ${weightBytesPerParam} bytes/param`);
  }
  if (o.r === undefined) return;

  const r = o.r;
  const alpha = o.alpha ?? 2 * r;
  const targets = o.targets === undefined ? null : parseTargets(o.targets);
  const c = countLoraParameters(cfg, { r, lora_alpha: alpha, target_modules: targets, use_dora: o.dora });
  const base = weights?.params ?? c.base;
  const leaves = [...new Set(c.targets.map((t) => t.slice(t.lastIndexOf('.') + 1)))].sort();
  console.log('');
  line('LoRA', `r=${r}, alpha=${alpha}${o.dora ? ', DoRA' : ''} on ${c.targets.length} modules (${leaves.join(', ')})`);
  line('trainable params', `${commas(c.trainable)} (${((100 * c.trainable) / (base + c.trainable)).toFixed(4)}% of ${commas(base + c.trainable)})`);

  // Memory for training (a rough estimate of how lorakit holds it): frozen weights as stored;
  // adapter values, gradients and AdamW's two moments in f32; per token per layer what the
  // backward reads (the block's input and mid-point, rotated q and k, v, the attention output,
  // the MLP's pre-activation(s); attention is fused, so no T×T scores, and norm outputs are
  // recomputed), for one layer plus each layer's input with checkpointing; one layer's scratch,
  // shared by all layers; the logits in blocks of 8M floats or 512 rows, whichever is more
  // (the loss is fused).
  if (C === undefined || L === undefined || V === undefined || H === undefined || F === undefined) return;
  const B = o.batchSize;
  const T = o.maxLength;
  // the family's reading of the config where it has one: head_dim (Qwen3's default is 128, not
  // C / H) and per-head q/k norms (their outputs are kept besides the projections')
  let parsed: { headDim?: unknown; qkNorm?: unknown } | null = null;
  try {
    const fam = getModelFamily(type);
    parsed = fam.parseConfig(cfg) as { headDim?: unknown; qkNorm?: unknown };
  } catch {
    parsed = null;
  }
  const D = typeof parsed?.headDim === 'number' ? parsed.headDim : (num(cfg, 'head_dim') ?? C / H);
  const qkNorm = parsed?.qkNorm === true ? (H + (KV ?? H)) * D : 0;
  // Gemma 3 also keeps the inputs of its post-norms and q/k norms; Phi-3 the copies split off
  // its fused q|k|v and gate|up outputs
  const familyExtra = type === 'gemma3_text' ? 2 * C + (H + (KV ?? H)) * D : type === 'phi3' ? (H + 2 * (KV ?? H)) * D + 2 * F : 0;
  const perTokenLayer = 2 * C + 2 * H * D + 2 * (KV ?? H) * D + (gpt2 ? 1 : 2) * F + H + qkNorm + familyExtra;
  const layersKept = o.gradCheckpoint ? 1 : L;
  const scratchPerToken = 3 * F + 8 * C;
  const activations = 4 * B * T * (perTokenLayer * layersKept + scratchPerToken + (o.gradCheckpoint ? L * C : 0));
  const logits = 4 * Math.min(B * T * V, defaultLogitsBlock(V));
  const weightMem = base * weightBytesPerParam;
  const optimizer = 16 * c.trainable;
  const total = weightMem + optimizer + activations + logits;
  line('training memory', `~${bytes(total)} (estimate, batch ${B} × ${T} tokens${o.gradCheckpoint ? ', gradient checkpointing' : ''})`);
  line('  base weights', `${bytes(weightMem)}${weights?.gguf ? ' (GGUF: quantized matrices held as blocks)' : ''}`);
  line('  by weight format', FORMAT_BYTES.map(([f, b]) => `${f} ${bytes(base * b)}`).join(', '));
  line('  adapter + AdamW', `${bytes(optimizer)} (value, gradient, 2 moments in f32)`);
  line('  activations', bytes(activations));
  line('  logits', bytes(logits));
}

function describeAdapter(dir: string, listModules: boolean): void {
  const cfgFile = join(dir, 'adapter_config.json');
  const json = readConfig(cfgFile);
  const { config, warnings } = parseLoraConfig(json, `adapter config ${cfgFile}`);
  for (const w of warnings) warnLine(`${cfgFile}: ${w}`);
  const wfile = join(dir, 'adapter_model.safetensors');
  if (!existsSync(wfile)) throw new Error(`adapter folder ${dir} has no adapter_model.safetensors`);
  const st = SafetensorsFile.open(wfile);
  const ranks = new Map<number, number>();
  const modules: string[] = [];
  const shapes = new Map<string, { r: number; A: readonly number[]; B?: readonly number[] }>();
  let params = 0;
  let dora = false;
  const dtypes = new Set<string>();
  try {
    for (const name of st.names()) {
      const info = st.info(name);
      params += info.shape.reduce((a, b) => a * b, 1);
      dtypes.add(info.dtype);
      if (name.includes('lora_magnitude_vector')) dora = true;
      const m = /^(?:base_model\.model\.)?(.*)\.lora_A\.weight$/.exec(name);
      if (m) {
        modules.push(m[1]!);
        ranks.set(info.shape[0]!, (ranks.get(info.shape[0]!) ?? 0) + 1);
        shapes.set(m[1]!, { ...shapes.get(m[1]!), r: info.shape[0]!, A: info.shape });
      }
      const b = /^(?:base_model\.model\.)?(.*)\.lora_B\.weight$/.exec(name);
      if (b) shapes.set(b[1]!, { r: 0, A: [], ...shapes.get(b[1]!), B: info.shape });
    }
  } finally {
    st.close();
  }
  const leaves = [...new Set(modules.map((t) => t.slice(t.lastIndexOf('.') + 1)))].sort();
  const targetSpec = Array.isArray(config.target_modules) ? config.target_modules.join(', ') : String(config.target_modules);
  const rankText = [...ranks].sort((a, b) => a[0] - b[0]).map(([r, n]) => `r=${r} on ${n} module${n === 1 ? '' : 's'}`).join(', ');
  const scale = config.use_rslora ? config.lora_alpha / Math.sqrt(config.r) : config.lora_alpha / config.r;
  line('adapter folder', dir);
  line('peft_type', config.peft_type);
  line('base model', config.base_model_name_or_path ?? '–');
  line('target_modules', targetSpec);
  line('adapted modules', `${modules.length} (${leaves.join(', ')})`);
  line('ranks', rankText || '–');
  line('lora_alpha', `${config.lora_alpha} (scaling ${Number(scale.toPrecision(6))}${config.use_rslora ? ', rsLoRA' : ''})`);
  line('lora_dropout', String(config.lora_dropout));
  line('DoRA', config.use_dora || dora ? 'yes' : 'no');
  if (config.modules_to_save) line('modules_to_save', config.modules_to_save.join(', '));
  line('parameters', commas(params));
  line('dtype', [...dtypes].join(', '));
  line('size on disk', bytes(statSync(wfile).size + statSync(cfgFile).size));
  // with several ranks (rank_pattern), or on request, every module
  if (listModules || ranks.size > 1) {
    console.log('');
    for (const mod of modules) {
      const sh = shapes.get(mod)!;
      console.log(`  ${mod}: r=${sh.r}${listModules ? `, A [${sh.A.join(', ')}], B [${(sh.B ?? []).join(', ')}]` : ''}`);
    }
  }
}
