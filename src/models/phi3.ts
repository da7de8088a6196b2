// Phi-3 and Phi-4-mini (model_type "phi3", Phi3ForCausalLM), as transformers' modeling_phi3.py
// computes it (docs/ARCHITECTURE.md §Model families): LLaMA's pre-norm block with two fused
// projections,
//   qkv = qkv_proj(x)            [N, (Hq + 2·Hkv)·D]: q | k | v side by side
//   mlp = down_proj(up · silu(gate)),  gate | up = gate_up_proj(x)   [N, 2·I]: gate first
// LoRA on a fused projection is one lora_A / lora_B over its whole output, as PEFT adapts it.
// RoPE turns only the first head_dim · partial_rotary_factor channels of each head (Phi-4-mini:
// 0.75); rope_scaling "longrope" takes its short_factor while the sequence (largest position + 1)
// stays within original_max_position_embeddings and its long_factor past it, with cos and sin
// scaled by the attention factor (models/rope.ts). sliding_window, when set, applies to every
// layer. transformers drops the KV cache when a generation crosses original_max_position_embeddings
// (the cached keys were turned with the short factors); a cached generation here keeps them, so
// past that point it matches a recompute only approximately.
//
// Module tree = checkpoint keys:
//   model.embed_tokens.weight                        [V, C]
//   model.layers.{i}.input_layernorm.weight          [C]
//   model.layers.{i}.self_attn.qkv_proj.weight       [(Hq + 2·Hkv)·D, C]
//   model.layers.{i}.self_attn.o_proj.weight         [C, Hq·D]
//   model.layers.{i}.post_attention_layernorm.weight [C]
//   model.layers.{i}.mlp.gate_up_proj.weight         [2·I, C]
//   model.layers.{i}.mlp.down_proj.weight            [C, I]
//   model.norm.weight                                [C]
//   lm_head.weight                                   [V, C] (absent when tied, as in Phi-4-mini)
import { MultiHeadAttention, Rope } from '../nn/attention.js';
import { Embedding } from '../nn/embedding.js';
import { Linear } from '../nn/linear.js';
import { GatedMLP } from '../nn/mlp.js';
import { ModuleList } from '../nn/module.js';
import { RMSNorm } from '../nn/rmsnorm.js';
import type { DType } from '../tensor/tensor.js';
import type { CausalLMInfo } from './causal-lm.js';
import { ConfigReader, readDecoderSizes, warnUnknownKeys, type DecoderSizes, type JsonObject } from './config.js';
import { Backbone, DecoderBlock, DecoderLM, TiedLMHead } from './decoder.js';
import { initializerRange, linearShape, otherShape, sanitizeWith, withContainers, type ModelFamily, type ModuleShape } from './family.js';
import { parseRope, ropeInvFreq, type RopeSpec } from './rope.js';

export interface Phi3Config extends DecoderSizes {
  modelType: 'phi3';
  rmsNormEps: number;
  /** rope.dim: the rotated channels of a head (head_dim · partial_rotary_factor) */
  rope: RopeSpec;
  /** every layer's sliding window (0: full attention) */
  window: number;
  tieWordEmbeddings: boolean;
  raw: JsonObject;
}

/** Reads and validates a phi3 config.json object; throws a ConfigError listing every problem. */
export function parsePhi3Config(json: JsonObject, where = 'config.json'): Phi3Config {
  const r = new ConfigReader(json, where);
  r.oneOf('model_type', ['phi3'] as const);
  const { vocabSize, hiddenSize, intermediateSize, numLayers, numHeads, numKvHeads, headDim } = readDecoderSizes(r, {
    vocabSize: 32064, hiddenSize: 3072, intermediateSize: 8192, numLayers: 32, numHeads: 32,
  });
  const maxPositions = r.int('max_position_embeddings', 4096);
  const rmsNormEps = r.number('rms_norm_eps', 1e-5);
  const rope = parseRope(r, headDim, maxPositions, 10000, { partialRotary: true });
  if (rope.type !== 'default' && rope.type !== 'linear' && rope.type !== 'longrope') {
    r.fail(`"rope_scaling" of type ${JSON.stringify(rope.type)} is not supported for phi3; expected default, linear or longrope`);
  }
  r.known('original_max_position_embeddings');
  const act = r.string('hidden_act', 'silu');
  if (act !== 'silu' && act !== 'swish') r.fail(`"hidden_act" must be "silu" for phi3 (gate_up_proj with SiLU), got ${JSON.stringify(act)}`);
  for (const k of ['attention_dropout', 'resid_pdrop', 'embd_pdrop']) {
    const p = r.number(k, 0, false);
    if (p !== 0) r.fail(`"${k}" = ${p} is not supported (no dropout in the base model); expected 0`);
  }
  if (r.bool('attention_bias', false)) r.fail('"attention_bias" = true is not supported: Phi3ForCausalLM has no attention biases');
  const window = r.has('sliding_window') ? r.int('sliding_window') : 0;
  r.known('sliding_window');
  const tieWordEmbeddings = r.bool('tie_word_embeddings', false);
  r.done();
  warnUnknownKeys(r);
  return { modelType: 'phi3', vocabSize, hiddenSize, intermediateSize, numLayers, numHeads, numKvHeads, headDim, rmsNormEps, rope, window, tieWordEmbeddings, raw: json };
}

export class Phi3ForCausalLM extends DecoderLM {
  readonly info: CausalLMInfo;
  readonly cfg: Phi3Config;
  private rope: Rope;
  /** longrope: whether the current tables use the long factors */
  private longRope = false;

  constructor(cfg: Phi3Config, opts: { dtype?: DType } = {}) {
    super(cfg.raw, { backbone: 'model', embed: 'embed_tokens', layers: 'layers', norm: 'norm', head: 'lm_head' });
    this.cfg = cfg;
    const dtype = opts.dtype ?? 'f32';
    const C = cfg.hiddenSize;
    this.info = { modelType: cfg.modelType, vocabSize: cfg.vocabSize, hiddenSize: C, numLayers: cfg.numLayers, maxPositions: Infinity };
    this.rope = this.makeRope(0);

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
        rope: this.rope,
        window: cfg.window,
        names: { qkv: 'qkv_proj', o: 'o_proj' },
        dtype,
      });
      layers.push(
        new DecoderBlock(C, { norm1: 'input_layernorm', attn: 'self_attn', norm2: 'post_attention_layernorm', mlp: 'mlp' }, {
          norm1: new RMSNorm(C, { eps: cfg.rmsNormEps, dtype }),
          attn,
          norm2: new RMSNorm(C, { eps: cfg.rmsNormEps, dtype }),
          mlp: new GatedMLP(C, cfg.intermediateSize, { names: { gateUp: 'gate_up_proj', down: 'down_proj' }, dtype }),
        }),
      );
    }
    model.add('layers', layers);
    model.add('norm', new RMSNorm(C, { eps: cfg.rmsNormEps, dtype }));
    this.registerModule('lm_head', cfg.tieWordEmbeddings ? new TiedLMHead(embed) : new Linear(C, cfg.vocabSize, { bias: false, dtype }));
  }

  /** The rope for a sequence of seqLen positions (longrope: short or long factors). */
  private makeRope(seqLen: number): Rope {
    const spec = this.cfg.rope;
    return new Rope(spec.dim, { invFreq: ropeInvFreq(spec, seqLen), layout: 'half', attentionScaling: Math.fround(spec.attentionScaling ?? 1), headSize: this.cfg.headDim });
  }

  /** longrope: switch to the long factors when a sequence passes original_max_position_embeddings, and back */
  protected override prepare(maxPosition: number): void {
    const spec = this.cfg.rope;
    if (spec.type !== 'longrope') return;
    const long = maxPosition + 1 > (spec.originalMaxPositions ?? 0);
    if (long === this.longRope) return;
    this.longRope = long;
    this.rope = this.makeRope(maxPosition + 1);
    for (const blk of this.layers) blk.attn.core.rope = this.rope;
  }
}

/** The key a phi3 checkpoint tensor loads into, or null to drop it (rotary buffers, a tied lm_head). */
export function sanitizePhi3Key(cfg: Phi3Config, key: string): string | null {
  if (/(^|\.)rotary_emb\.\w*inv_freq$/.test(key)) return null;
  if (cfg.tieWordEmbeddings && key === 'lm_head.weight') return null;
  return key;
}

/** The module tree of build() as shapes (ModelFamily.moduleShapes). */
export function phi3ModuleShapes(cfg: Phi3Config): ModuleShape[] {
  const { hiddenSize: C, vocabSize: V, numHeads: H, numKvHeads: KV, headDim: D, intermediateSize: F } = cfg;
  const mods: ModuleShape[] = [otherShape('model.embed_tokens', [['weight', V * C]])];
  for (let i = 0; i < cfg.numLayers; i++) {
    const p = `model.layers.${i}`;
    mods.push(
      otherShape(`${p}.input_layernorm`, [['weight', C]]),
      linearShape(`${p}.self_attn.qkv_proj`, C, (H + 2 * KV) * D, false),
      linearShape(`${p}.self_attn.o_proj`, H * D, C, false),
      otherShape(`${p}.post_attention_layernorm`, [['weight', C]]),
      linearShape(`${p}.mlp.gate_up_proj`, C, 2 * F, false),
      linearShape(`${p}.mlp.down_proj`, F, C, false),
    );
  }
  mods.push(otherShape('model.norm', [['weight', C]]));
  mods.push(cfg.tieWordEmbeddings ? otherShape('lm_head') : linearShape('lm_head', C, V, false));
  return withContainers(mods);
}

export const phi3Family: ModelFamily<Phi3Config> = {
  name: 'phi3',
  parseConfig: parsePhi3Config,
  build: (cfg, opts) => new Phi3ForCausalLM(cfg, opts),
  moduleShapes: phi3ModuleShapes,
  defaultTargets: null, // PEFT's table has no phi3 entry: target_modules (--targets) must be given
  sanitizeKey: sanitizePhi3Key,
  sanitize: sanitizeWith(sanitizePhi3Key),
  initStd: (cfg) => initializerRange(cfg.raw),
  architecture: 'Phi3ForCausalLM',
};
