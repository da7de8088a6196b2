// Gemma 3 text (model_type "gemma3_text", Gemma3ForCausalLM), as transformers' modeling_gemma3.py
// computes it (docs/ARCHITECTURE.md §Model families):
//   h = embed_tokens[ids] · √C            the scale cast to the embedding dtype, the product in it
//   per block:  h += post_attention_layernorm(attn(input_layernorm(h)))
//               h += post_feedforward_layernorm(mlp(pre_feedforward_layernorm(h)))
//   logits = c · tanh(lm_head(norm(h)) / c)   with c = final_logit_softcapping (when set)
// Every norm is RMSNorm scaling by (1 + w) in f32. Attention: q_norm / k_norm over each head's
// D channels before rope, scores scaled by query_pre_attn_scalar^−½, grouped-query heads with
// head_dim from the config. Layers are sliding ("sliding_attention": a query sees the last
// sliding_window slots, the window computed by the attention kernel) or full, as `layer_types`
// lists them or, without it, every sliding_window_pattern-th layer full; sliding layers rotate
// with the default rope of base rope_local_base_freq, full layers with rope_theta and
// rope_scaling. MLP: down(gelu_tanh(gate(x)) · up(x)). The head is tied to the embedding unless
// tie_word_embeddings is false.
//
// Module tree = checkpoint keys:
//   model.embed_tokens.weight                                          [V, C]
//   model.layers.{i}.input_layernorm.weight                            [C]
//   model.layers.{i}.self_attn.{q,k,v,o}_proj.weight (.bias)          [Hq·D, C], [Hkv·D, C], [Hkv·D, C], [C, Hq·D]
//   model.layers.{i}.self_attn.{q,k}_norm.weight                       [D]
//   model.layers.{i}.post_attention_layernorm.weight                   [C]
//   model.layers.{i}.pre_feedforward_layernorm.weight                  [C]
//   model.layers.{i}.mlp.{gate,up,down}_proj.weight                    [I, C], [I, C], [C, I]
//   model.layers.{i}.post_feedforward_layernorm.weight                 [C]
//   model.norm.weight                                                  [C]
//   lm_head.weight                                                     [V, C] (absent when tied)
import { MultiHeadAttention, Rope, ropeInvFreq as defaultInvFreq } from '../nn/attention.js';
import { Embedding } from '../nn/embedding.js';
import { Linear } from '../nn/linear.js';
import { GatedMLP } from '../nn/mlp.js';
import { ModuleList } from '../nn/module.js';
import { RMSNorm } from '../nn/rmsnorm.js';
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from '../tensor/half.js';
import type { DType } from '../tensor/tensor.js';
import type { CausalLMInfo } from './causal-lm.js';
import { ConfigReader, readDecoderSizes, warnUnknownKeys, type DecoderSizes, type JsonObject } from './config.js';
import { Backbone, DecoderBlock, DecoderLM, TiedLMHead } from './decoder.js';
import { initializerRange, linearShape, otherShape, sanitizeWith, withContainers, type ModelFamily, type ModuleShape } from './family.js';
import { parseLayerTypes } from './llama.js';
import { parseRope, ropeInvFreq, type RopeSpec } from './rope.js';

export interface Gemma3Config extends DecoderSizes {
  modelType: 'gemma3_text';
  rmsNormEps: number;
  /** the full-attention layers' rope (rope_theta, rope_scaling) */
  rope: RopeSpec;
  /** the sliding layers' rope base (rope_local_base_freq) */
  localRopeTheta: number;
  /** scores are scaled by queryPreAttnScalar^−½ */
  queryPreAttnScalar: number;
  attentionBias: boolean;
  /** each layer's sliding window (0: full attention) */
  layerWindows: number[];
  /** final_logit_softcapping (0: none) */
  finalLogitSoftcap: number;
  tieWordEmbeddings: boolean;
  raw: JsonObject;
}

/** Reads and validates a gemma3_text config.json object; throws a ConfigError listing every problem. */
export function parseGemma3Config(json: JsonObject, where = 'config.json'): Gemma3Config {
  const r = new ConfigReader(json, where);
  r.oneOf('model_type', ['gemma3_text'] as const);
  const { vocabSize, hiddenSize, intermediateSize, numLayers, numHeads, numKvHeads, headDim } = readDecoderSizes(r, {
    vocabSize: 262208, hiddenSize: 2304, intermediateSize: 9216, numLayers: 26, numHeads: 8, headDim: 256,
  });
  if (headDim % 2 !== 0) r.fail(`"head_dim" (${headDim}) must be even for rotary embeddings`);
  const maxPositions = r.int('max_position_embeddings', 131072);
  const rmsNormEps = r.number('rms_norm_eps', 1e-6);
  const rope = parseRope(r, headDim, maxPositions, 1000000);
  if (rope.type !== 'default' && rope.type !== 'linear' && rope.type !== 'llama3') {
    r.fail(`"rope_scaling" of type ${JSON.stringify(rope.type)} is not supported for gemma3_text; expected default, linear or llama3`);
  }
  const localRopeTheta = r.number('rope_local_base_freq', 10000);
  const act = r.string('hidden_activation', r.has('hidden_act') ? r.string('hidden_act') : 'gelu_pytorch_tanh');
  if (act !== 'gelu_pytorch_tanh' && act !== 'gelu_new' && act !== 'gelu_fast') {
    r.fail(`"hidden_activation" must be "gelu_pytorch_tanh" (GeGLU with the tanh gelu) for gemma3_text, got ${JSON.stringify(act)}`);
  }
  const queryPreAttnScalar = r.number('query_pre_attn_scalar', 256);
  const attentionBias = r.bool('attention_bias', false);
  const attnDropout = r.number('attention_dropout', 0, false);
  if (attnDropout !== 0) r.fail(`"attention_dropout" = ${attnDropout} is not supported; expected 0`);
  if (r.has('attn_logit_softcapping')) {
    r.fail(`"attn_logit_softcapping" = ${JSON.stringify(json['attn_logit_softcapping'])} (softcapped attention scores) is not supported; expected null (Gemma 3 checkpoints have none)`);
  }
  r.known('attn_logit_softcapping');
  if (r.bool('use_bidirectional_attention', false)) r.fail('"use_bidirectional_attention" = true (an embedding model) is not supported; expected false');
  const finalLogitSoftcap = r.has('final_logit_softcapping') ? r.number('final_logit_softcapping') : 0;
  r.known('final_logit_softcapping', 'cache_implementation', 'query_pre_attn_scalar');
  const window = r.int('sliding_window', 4096);
  const types = parseLayerTypes(r, numLayers);
  const pattern = r.int('sliding_window_pattern', 6);
  const layerWindows: number[] = [];
  for (let i = 0; i < numLayers; i++) {
    const sliding = types ? types[i] === 'sliding_attention' : (i + 1) % pattern !== 0;
    layerWindows.push(sliding ? window : 0);
  }
  const tieWordEmbeddings = r.bool('tie_word_embeddings', true);
  r.done();
  warnUnknownKeys(r);
  return {
    modelType: 'gemma3_text', vocabSize, hiddenSize, intermediateSize, numLayers, numHeads, numKvHeads, headDim, rmsNormEps,
    rope, localRopeTheta, queryPreAttnScalar, attentionBias, layerWindows, finalLogitSoftcap, tieWordEmbeddings, raw: json,
  };
}

export class Gemma3ForCausalLM extends DecoderLM {
  readonly info: CausalLMInfo;
  readonly cfg: Gemma3Config;
  /** the embedding scale in the embedding's dtype */
  private embedScale = 1;

  constructor(cfg: Gemma3Config, opts: { dtype?: DType } = {}) {
    super(cfg.raw, { backbone: 'model', embed: 'embed_tokens', layers: 'layers', norm: 'norm', head: 'lm_head' });
    this.cfg = cfg;
    const dtype = opts.dtype ?? 'f32';
    const C = cfg.hiddenSize;
    const D = cfg.headDim;
    this.info = { modelType: cfg.modelType, vocabSize: cfg.vocabSize, hiddenSize: C, numLayers: cfg.numLayers, maxPositions: Infinity };
    this.logitSoftcap = cfg.finalLogitSoftcap;
    const globalRope = new Rope(D, { invFreq: ropeInvFreq(cfg.rope), layout: 'half' });
    const localRope = new Rope(D, { invFreq: defaultInvFreq(D, cfg.localRopeTheta), layout: 'half' });

    const model = this.registerModule('model', new Backbone());
    const embed = new Embedding(cfg.vocabSize, C, { dtype });
    model.add('embed_tokens', embed);
    const norm = (dim: number): RMSNorm => new RMSNorm(dim, { eps: cfg.rmsNormEps, unitOffset: true, dtype });
    const layers = new ModuleList<DecoderBlock>();
    for (let i = 0; i < cfg.numLayers; i++) {
      const window = cfg.layerWindows[i]!;
      const attn = new MultiHeadAttention(C, {
        nHeads: cfg.numHeads,
        nKvHeads: cfg.numKvHeads,
        headDim: D,
        causal: true,
        bias: cfg.attentionBias,
        scale: Math.pow(cfg.queryPreAttnScalar, -0.5),
        rope: window > 0 ? localRope : globalRope,
        window,
        qkNorm: { eps: cfg.rmsNormEps, unitOffset: true },
        dtype,
      });
      const names = { norm1: 'input_layernorm', attn: 'self_attn', post1: 'post_attention_layernorm', norm2: 'pre_feedforward_layernorm', mlp: 'mlp', post2: 'post_feedforward_layernorm' };
      layers.push(
        new DecoderBlock(C, names, {
          norm1: norm(C),
          attn,
          post1: norm(C),
          norm2: norm(C),
          mlp: new GatedMLP(C, cfg.intermediateSize, { activation: 'gelu_tanh', dtype }),
          post2: norm(C),
        }),
      );
    }
    model.add('layers', layers);
    model.add('norm', norm(C));
    this.registerModule('lm_head', cfg.tieWordEmbeddings ? new TiedLMHead(embed) : new Linear(C, cfg.vocabSize, { bias: false, dtype }));
  }

  /** h[N, C] = embed_tokens[ids] · √C, rounded to the embedding's dtype as Gemma does; given embeddings are used as they are */
  protected override embed(ids: Int32Array | null, inputsEmbeds: Float32Array | null): Float32Array {
    this.embeddedFromIds = inputsEmbeds === null;
    if (inputsEmbeds) return inputsEmbeds;
    const e = this.embedTokens.forward(ids!);
    const dtype = this.embedTokens.weight.value.dtype;
    const round = dtype === 'bf16' ? (x: number): number => bf16ToF32(f32ToBf16(x)) : dtype === 'f16' ? (x: number): number => f16ToF32(f32ToF16(x)) : Math.fround;
    const scale = round(Math.fround(Math.sqrt(this.cfg.hiddenSize)));
    const h = this.buffers.get('embed', e.length);
    for (let i = 0; i < e.length; i++) h[i] = round(e[i]! * scale);
    this.embedScale = scale;
    return h;
  }

  protected override embedBackward(dh: Float32Array): void {
    if (!this.embeddedFromIds || !this.embedTokens.weight.requiresGrad) return;
    const d = this.buffers.get('dembed', dh.length);
    for (let i = 0; i < dh.length; i++) d[i] = dh[i]! * this.embedScale;
    this.embedTokens.backward(d);
  }

  protected override embedTrainable(): boolean {
    return this.embedTokens.weight.requiresGrad;
  }
}

/** The key a gemma3_text checkpoint tensor loads into, or null to drop it (rotary buffers, a tied lm_head). */
export function sanitizeGemma3Key(cfg: Gemma3Config, key: string): string | null {
  if (/(^|\.)rotary_emb\.\w*inv_freq$/.test(key)) return null;
  if (cfg.tieWordEmbeddings && key === 'lm_head.weight') return null;
  return key;
}

/** The module tree of build() as shapes (ModelFamily.moduleShapes). */
export function gemma3ModuleShapes(cfg: Gemma3Config): ModuleShape[] {
  const { hiddenSize: C, vocabSize: V, numHeads: H, numKvHeads: KV, headDim: D, intermediateSize: F, attentionBias: b } = cfg;
  const mods: ModuleShape[] = [otherShape('model.embed_tokens', [['weight', V * C]])];
  for (let i = 0; i < cfg.numLayers; i++) {
    const p = `model.layers.${i}`;
    mods.push(
      otherShape(`${p}.input_layernorm`, [['weight', C]]),
      linearShape(`${p}.self_attn.q_proj`, C, H * D, b),
      linearShape(`${p}.self_attn.k_proj`, C, KV * D, b),
      linearShape(`${p}.self_attn.v_proj`, C, KV * D, b),
      linearShape(`${p}.self_attn.o_proj`, H * D, C, b),
      otherShape(`${p}.self_attn.q_norm`, [['weight', D]]),
      otherShape(`${p}.self_attn.k_norm`, [['weight', D]]),
      otherShape(`${p}.post_attention_layernorm`, [['weight', C]]),
      otherShape(`${p}.pre_feedforward_layernorm`, [['weight', C]]),
      linearShape(`${p}.mlp.gate_proj`, C, F, false),
      linearShape(`${p}.mlp.up_proj`, C, F, false),
      linearShape(`${p}.mlp.down_proj`, F, C, false),
      otherShape(`${p}.post_feedforward_layernorm`, [['weight', C]]),
    );
  }
  mods.push(otherShape('model.norm', [['weight', C]]));
  mods.push(cfg.tieWordEmbeddings ? otherShape('lm_head') : linearShape('lm_head', C, V, false));
  return withContainers(mods);
}

export const gemma3Family: ModelFamily<Gemma3Config> = {
  name: 'gemma3_text',
  parseConfig: parseGemma3Config,
  build: (cfg, opts) => new Gemma3ForCausalLM(cfg, opts),
  moduleShapes: gemma3ModuleShapes,
  defaultTargets: ['q_proj', 'v_proj'], // PEFT's table
  sanitizeKey: sanitizeGemma3Key,
  sanitize: sanitizeWith(sanitizeGemma3Key),
  initStd: (cfg) => initializerRange(cfg.raw),
  architecture: 'Gemma3ForCausalLM',
};
