// LLaMA and the families with its architecture (Mistral, Qwen2): token embedding, blocks of
// RMSNorm → grouped-query attention with rotary embeddings → RMSNorm → SwiGLU MLP, a final
// RMSNorm and the LM head (tied to the embedding when tie_word_embeddings).
//
// Module tree = checkpoint keys:
//   model.embed_tokens.weight                                   [V, C]
//   model.layers.{i}.input_layernorm.weight                     [C]
//   model.layers.{i}.self_attn.{q,k,v,o}_proj.weight (.bias)   [Hq·D, C], [Hkv·D, C], [Hkv·D, C], [C, Hq·D]
//   model.layers.{i}.post_attention_layernorm.weight            [C]
//   model.layers.{i}.mlp.{gate,up,down}_proj.weight             [I, C], [I, C], [C, I]
//   model.norm.weight                                           [C]
//   lm_head.weight                                              [V, C] (absent when tied)
import { MultiHeadAttention, Rope } from '../nn/attention.js';
import { Embedding } from '../nn/embedding.js';
import { Linear } from '../nn/linear.js';
import { GatedMLP } from '../nn/mlp.js';
import { ModuleList } from '../nn/module.js';
import { RMSNorm } from '../nn/rmsnorm.js';
import type { DType } from '../tensor/tensor.js';
import { ConfigReader, readDecoderSizes, warnUnknownKeys, type DecoderSizes, type JsonObject } from './config.js';
import type { CausalLMInfo } from './causal-lm.js';
import { Backbone, DecoderBlock, DecoderLM, TiedLMHead } from './decoder.js';
import { initializerRange, linearShape, otherShape, sanitizeWith, withContainers, type ModelFamily, type ModuleShape } from './family.js';
import { parseRope, ropeInvFreq, type RopeSpec } from './rope.js';

export const LLAMA_LIKE_TYPES = ['llama', 'mistral', 'qwen2'] as const;
export type LlamaLikeType = (typeof LLAMA_LIKE_TYPES)[number];

export interface LlamaConfig extends DecoderSizes {
  /** llama, mistral, qwen2 (this file), qwen3 (qwen3.ts), smollm3 (smollm3.ts) */
  modelType: string;
  maxPositions: number;
  rmsNormEps: number;
  rope: RopeSpec;
  /** biases on q, k, v */
  qkvBias: boolean;
  /** bias on o (llama's attention_bias covers o too; qwen2 has none) */
  oBias: boolean;
  mlpBias: boolean;
  tieWordEmbeddings: boolean;
  /** each layer's sliding window (0: full attention): Mistral's on every layer, Qwen2's from max_window_layers */
  layerWindows: number[];
  /** RMSNorm over each head of q and k before RoPE (Qwen3's q_norm, k_norm) */
  qkNorm: boolean;
  /** whether each layer rotates q and k (SmolLM3's NoPE layers do not) */
  layerRope: boolean[];
  /** the JSON the config came from */
  raw: JsonObject;
}

/** What every family with LLaMA's architecture reads the same way. */
export type LlamaCore = Pick<LlamaConfig, 'vocabSize' | 'hiddenSize' | 'intermediateSize' | 'numLayers' | 'numHeads' | 'numKvHeads' | 'headDim' | 'maxPositions' | 'rmsNormEps' | 'rope'>;

/**
 * Reads the keys LLaMA-architecture configs share (sizes, heads, head_dim, positions, norm
 * eps, rope, hidden_act, attention_dropout). `headDim`: the default head_dim (Qwen3's is 128;
 * absent: hidden_size / num_attention_heads).
 */
export function readLlamaCore(r: ConfigReader, modelType: string, defaults: { maxPositions: number; theta: number; headDim?: number }): LlamaCore {
  const { vocabSize, hiddenSize, intermediateSize, numLayers, numHeads, numKvHeads, headDim } = readDecoderSizes(r, defaults.headDim === undefined ? {} : { headDim: defaults.headDim });
  if (headDim % 2 !== 0) r.fail(`head size ${headDim} must be even for rotary embeddings ("head_dim" or hidden_size / num_attention_heads)`);
  const maxPositions = r.int('max_position_embeddings', defaults.maxPositions);
  const rmsNormEps = r.number('rms_norm_eps', 1e-6);
  const rope = parseRope(r, headDim, maxPositions, defaults.theta);
  const hiddenAct = r.string('hidden_act', 'silu');
  if (hiddenAct !== 'silu' && hiddenAct !== 'swish') r.fail(`"hidden_act" must be "silu" for ${modelType} (SwiGLU MLP), got ${JSON.stringify(hiddenAct)}`);
  const tp = r.int('pretraining_tp', 1);
  void tp; // tensor-parallel slicing at pretraining time; the math is the same
  const attnDropout = r.number('attention_dropout', 0, false);
  if (attnDropout !== 0) r.fail(`"attention_dropout" = ${attnDropout} is not supported; expected 0`);
  return { vocabSize, hiddenSize, intermediateSize, numLayers, numHeads, numKvHeads, headDim, maxPositions, rmsNormEps, rope };
}

/** Reads and validates a llama / mistral / qwen2 config.json object; throws a ConfigError listing every problem. */
export function parseLlamaConfig(json: JsonObject, where = 'config.json'): LlamaConfig {
  const r = new ConfigReader(json, where);
  const modelType = r.oneOf('model_type', LLAMA_LIKE_TYPES);
  const core = readLlamaCore(r, modelType, { maxPositions: modelType === 'mistral' ? 32768 : 2048, theta: 10000 });
  const numLayers = core.numLayers;
  let qkvBias: boolean;
  let oBias: boolean;
  let mlpBias = false;
  let layerWindows: number[] = new Array<number>(numLayers).fill(0);
  if (modelType === 'qwen2') {
    qkvBias = true;
    oBias = false;
    layerWindows = parseQwenWindows(r, numLayers);
  } else {
    const ab = r.bool('attention_bias', false);
    qkvBias = ab;
    oBias = ab;
    mlpBias = r.bool('mlp_bias', false);
    if (modelType === 'mistral') {
      const sw = r.json['sliding_window'];
      r.known('sliding_window');
      if (sw !== undefined && sw !== null) layerWindows.fill(r.int('sliding_window'));
    }
  }
  const tieWordEmbeddings = r.bool('tie_word_embeddings', false);
  r.done();
  warnUnknownKeys(r);
  return {
    modelType, ...core, qkvBias, oBias, mlpBias, tieWordEmbeddings, layerWindows,
    qkNorm: false, layerRope: new Array<boolean>(numLayers).fill(true), raw: json,
  };
}

/**
 * Qwen2 / Qwen3 sliding layers, as their configs set them: with use_sliding_window, the
 * layers `layer_types` marks "sliding_attention", or without layer_types those from
 * max_window_layers on, attend within sliding_window; without it every layer is full.
 */
export function parseQwenWindows(r: ConfigReader, numLayers: number): number[] {
  const windows = new Array<number>(numLayers).fill(0);
  const use = r.bool('use_sliding_window', false);
  r.known('sliding_window', 'max_window_layers', 'layer_types');
  const types = parseLayerTypes(r, numLayers);
  if (!use) return windows;
  const w = r.int('sliding_window');
  const maxWindowLayers = r.int('max_window_layers', 28, 0);
  for (let i = 0; i < numLayers; i++) {
    const sliding = types ? types[i] === 'sliding_attention' : i >= maxWindowLayers;
    if (sliding) windows[i] = w;
  }
  return windows;
}

/** config.json `layer_types`: one of "full_attention" / "sliding_attention" per layer, or null when absent. */
export function parseLayerTypes(r: ConfigReader, numLayers: number): ('full_attention' | 'sliding_attention')[] | null {
  const v = r.json['layer_types'];
  r.known('layer_types');
  if (v === undefined || v === null) return null;
  if (!Array.isArray(v) || v.length !== numLayers || !v.every((t) => t === 'full_attention' || t === 'sliding_attention')) {
    r.fail(`"layer_types" must be an array of ${numLayers} (num_hidden_layers) entries, each "full_attention" or "sliding_attention", got ${JSON.stringify(v)}`);
    return null;
  }
  return v as ('full_attention' | 'sliding_attention')[];
}

export interface BuildOptions {
  /** dtype of the parameters as built (default f32) */
  dtype?: DType;
}

export class LlamaForCausalLM extends DecoderLM {
  readonly info: CausalLMInfo;
  readonly cfg: LlamaConfig;
  private rope: Rope;
  /** dynamic NTK rope: the sequence length the current tables were built for */
  private ropeSeqLen = 0;

  constructor(cfg: LlamaConfig, opts: BuildOptions = {}) {
    super(cfg.raw, { backbone: 'model', embed: 'embed_tokens', layers: 'layers', norm: 'norm', head: 'lm_head' });
    this.cfg = cfg;
    const dtype = opts.dtype ?? 'f32';
    const C = cfg.hiddenSize;
    this.info = { modelType: cfg.modelType, vocabSize: cfg.vocabSize, hiddenSize: C, numLayers: cfg.numLayers, maxPositions: Infinity };
    if (cfg.layerWindows.length !== cfg.numLayers || cfg.layerRope.length !== cfg.numLayers) throw new RangeError(`LlamaForCausalLM: layerWindows and layerRope need one entry per layer (${cfg.numLayers})`);
    this.rope = new Rope(cfg.headDim, { invFreq: ropeInvFreq(cfg.rope), layout: 'half' });
    this.ropeSeqLen = cfg.rope.originalMaxPositions ?? 0;

    const model = this.registerModule('model', new Backbone());
    const embed = new Embedding(cfg.vocabSize, C, { dtype });
    model.add('embed_tokens', embed);
    const layers = new ModuleList<DecoderBlock>();
    for (let i = 0; i < cfg.numLayers; i++) {
      const attn = new MultiHeadAttention(C, {
        nHeads: cfg.numHeads,
        nKvHeads: cfg.numKvHeads,
        headDim: cfg.headDim,
        causal: true,
        bias: cfg.qkvBias,
        oBias: cfg.oBias,
        rope: cfg.layerRope[i] ? this.rope : null,
        window: cfg.layerWindows[i]!,
        ...(cfg.qkNorm ? { qkNorm: { eps: cfg.rmsNormEps } } : {}),
        dtype,
      });
      const block = new DecoderBlock(C, { norm1: 'input_layernorm', attn: 'self_attn', norm2: 'post_attention_layernorm', mlp: 'mlp' }, {
        norm1: new RMSNorm(C, { eps: cfg.rmsNormEps, dtype }),
        attn,
        norm2: new RMSNorm(C, { eps: cfg.rmsNormEps, dtype }),
        mlp: new GatedMLP(C, cfg.intermediateSize, { bias: cfg.mlpBias, dtype }),
      });
      layers.push(block);
    }
    model.add('layers', layers);
    model.add('norm', new RMSNorm(C, { eps: cfg.rmsNormEps, dtype }));
    this.registerModule('lm_head', cfg.tieWordEmbeddings ? new TiedLMHead(embed) : new Linear(C, cfg.vocabSize, { bias: false, dtype }));
  }

  /** dynamic NTK rope: rebuild the tables when a sequence passes the length they were made for */
  protected override prepare(maxPosition: number): void {
    const spec = this.cfg.rope;
    if (spec.type !== 'dynamic') return;
    const seqLen = maxPosition + 1;
    const maxPos = spec.originalMaxPositions ?? 0;
    // transformers grows the tables past max_position_embeddings and resets them below it
    const want = seqLen > maxPos ? Math.max(seqLen, this.ropeSeqLen) : maxPos;
    if (want === this.ropeSeqLen) return;
    this.ropeSeqLen = want;
    this.rope = new Rope(this.cfg.headDim, { invFreq: ropeInvFreq(spec, want), layout: 'half' });
    for (const [i, blk] of [...this.layers].entries()) if (this.cfg.layerRope[i]) blk.attn.core.rope = this.rope;
  }
}

/**
 * The key a llama-family checkpoint tensor loads into, or null to drop it: rotary inv_freq
 * buffers (old checkpoints), and lm_head.weight when the weights are tied (some tools save both).
 */
export function sanitizeLlamaKey(cfg: LlamaConfig, key: string): string | null {
  if (/(^|\.)rotary_emb\.inv_freq$/.test(key)) return null;
  if (cfg.tieWordEmbeddings && key === 'lm_head.weight') return null;
  return key;
}

/** The module tree of build() as shapes (ModelFamily.moduleShapes). */
export function llamaModuleShapes(cfg: LlamaConfig): ModuleShape[] {
  const { hiddenSize: C, vocabSize: V, numHeads: H, numKvHeads: KV, headDim: D, intermediateSize: F } = cfg;
  const mods: ModuleShape[] = [otherShape('model.embed_tokens', [['weight', V * C]])];
  for (let i = 0; i < cfg.numLayers; i++) {
    const p = `model.layers.${i}`;
    mods.push(
      otherShape(`${p}.input_layernorm`, [['weight', C]]),
      linearShape(`${p}.self_attn.q_proj`, C, H * D, cfg.qkvBias),
      linearShape(`${p}.self_attn.k_proj`, C, KV * D, cfg.qkvBias),
      linearShape(`${p}.self_attn.v_proj`, C, KV * D, cfg.qkvBias),
      linearShape(`${p}.self_attn.o_proj`, H * D, C, cfg.oBias),
      ...(cfg.qkNorm ? [otherShape(`${p}.self_attn.q_norm`, [['weight', D]]), otherShape(`${p}.self_attn.k_norm`, [['weight', D]])] : []),
      otherShape(`${p}.post_attention_layernorm`, [['weight', C]]),
      linearShape(`${p}.mlp.gate_proj`, C, F, cfg.mlpBias),
      linearShape(`${p}.mlp.up_proj`, C, F, cfg.mlpBias),
      linearShape(`${p}.mlp.down_proj`, F, C, cfg.mlpBias),
    );
  }
  mods.push(otherShape('model.norm', [['weight', C]]));
  mods.push(cfg.tieWordEmbeddings ? otherShape('lm_head') : linearShape('lm_head', C, V, false));
  return withContainers(mods);
}

/** A family with LLaMA's architecture for one model_type, its config read by `parse` (default parseLlamaConfig). */
export function llamaLike(name: string, architecture: string, defaultTargets: readonly string[] | null, parse: (json: JsonObject, where?: string) => LlamaConfig = parseLlamaConfig): ModelFamily<LlamaConfig> {
  return {
    name,
    parseConfig: (json, where) => {
      const cfg = parse(json, where);
      if (cfg.modelType !== name) throw new Error(`${where ?? 'config.json'}: "model_type" is ${JSON.stringify(cfg.modelType)}, expected ${JSON.stringify(name)}`);
      return cfg;
    },
    build: (cfg, opts) => new LlamaForCausalLM(cfg, opts),
    moduleShapes: llamaModuleShapes,
    defaultTargets,
    sanitizeKey: sanitizeLlamaKey,
    sanitize: sanitizeWith(sanitizeLlamaKey),
    initStd: (cfg) => initializerRange(cfg.raw),
    architecture,
  };
}

// default targets: PEFT's TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING
export const llamaFamily = llamaLike('llama', 'LlamaForCausalLM', ['q_proj', 'v_proj']);
export const mistralFamily = llamaLike('mistral', 'MistralForCausalLM', ['q_proj', 'v_proj']);
export const qwen2Family = llamaLike('qwen2', 'Qwen2ForCausalLM', ['q_proj', 'v_proj']);
