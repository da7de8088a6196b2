// GPT-2: token and learned position embeddings, blocks of LayerNorm → attention with one fused
// q/k/v projection → LayerNorm → GELU MLP, a final LayerNorm, and the LM head tied to the
// token embedding. Projections are Conv1D layers: weights stored [in, out].
//
// Module tree = checkpoint keys:
//   transformer.wte.weight [V, C], transformer.wpe.weight [P, C]
//   transformer.h.{i}.ln_1.{weight,bias} [C]
//   transformer.h.{i}.attn.c_attn.{weight [C, 3C], bias [3C]}   (q, k, v side by side)
//   transformer.h.{i}.attn.c_proj.{weight [C, C], bias [C]}
//   transformer.h.{i}.ln_2.{weight,bias} [C]
//   transformer.h.{i}.mlp.c_fc.{weight [C, I], bias [I]}, mlp.c_proj.{weight [I, C], bias [C]}
//   transformer.ln_f.{weight,bias} [C]
//   (lm_head.weight is transformer.wte.weight)
import { getBackend, type GeluApprox } from '../backend/index.js';
import { MultiHeadAttention } from '../nn/attention.js';
import { Embedding } from '../nn/embedding.js';
import { LayerNorm } from '../nn/layernorm.js';
import { GeluMLP } from '../nn/mlp.js';
import { ModuleList } from '../nn/module.js';
import type { DType } from '../tensor/tensor.js';
import { ConfigReader, warnUnknownKeys, type JsonObject } from './config.js';
import type { CausalLMInfo } from './causal-lm.js';
import { Backbone, DecoderBlock, DecoderLM, TiedLMHead } from './decoder.js';
import { initializerRange, linearShape, otherShape, sanitizeWith, withContainers, type ModelFamily, type ModuleShape } from './family.js';

export interface GPT2Config {
  modelType: 'gpt2';
  vocabSize: number;
  hiddenSize: number;
  /** MLP width (n_inner, default 4·n_embd) */
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  /** n_positions */
  maxPositions: number;
  layerNormEps: number;
  gelu: GeluApprox;
  raw: JsonObject;
}

const GELU_KINDS: Record<string, GeluApprox> = { gelu_new: 'tanh', gelu_pytorch_tanh: 'tanh', gelu_fast: 'tanh', gelu: 'none' };

/** Reads and validates a gpt2 config.json object; throws a ConfigError listing every problem. */
export function parseGPT2Config(json: JsonObject, where = 'config.json'): GPT2Config {
  const r = new ConfigReader(json, where);
  r.oneOf('model_type', ['gpt2'] as const);
  const vocabSize = r.int('vocab_size');
  const hiddenSize = r.int('n_embd');
  const numLayers = r.int('n_layer');
  const numHeads = r.int('n_head');
  const maxPositions = r.int('n_positions');
  r.known('n_ctx');
  const intermediateSize = r.int('n_inner', 4 * hiddenSize);
  const layerNormEps = r.number('layer_norm_epsilon', 1e-5);
  const act = r.string('activation_function', 'gelu_new');
  const gelu = GELU_KINDS[act];
  if (gelu === undefined) r.fail(`"activation_function" must be one of ${Object.keys(GELU_KINDS).map((k) => JSON.stringify(k)).join(', ')}, got ${JSON.stringify(act)}`);
  if (hiddenSize % numHeads !== 0) r.fail(`"n_embd" (${hiddenSize}) must be divisible by "n_head" (${numHeads})`);
  if (!r.bool('scale_attn_weights', true)) r.fail('"scale_attn_weights": false is not supported; expected true');
  if (r.bool('scale_attn_by_inverse_layer_idx', false)) r.fail('"scale_attn_by_inverse_layer_idx": true is not supported; expected false');
  r.bool('reorder_and_upcast_attn', false); // numerics only: attention already runs in f32
  if (!r.bool('tie_word_embeddings', true)) r.fail('"tie_word_embeddings": false is not supported for gpt2 (its LM head is the token embedding); expected true');
  if (r.bool('add_cross_attention', false)) r.fail('"add_cross_attention": true (encoder-decoder GPT-2) is not supported; expected false');
  // dropout probabilities: the model runs without dropout (LoRA has its own)
  r.known('resid_pdrop', 'embd_pdrop', 'attn_pdrop', 'summary_type', 'summary_use_proj', 'summary_activation', 'summary_proj_to_labels', 'summary_first_dropout', 'n_ctx');
  r.done();
  warnUnknownKeys(r);
  return { modelType: 'gpt2', vocabSize, hiddenSize, intermediateSize, numLayers, numHeads, maxPositions, layerNormEps, gelu: gelu ?? 'tanh', raw: json };
}

export class GPT2LMHeadModel extends DecoderLM {
  readonly info: CausalLMInfo;
  readonly cfg: GPT2Config;
  private positions: Int32Array | null = null;

  constructor(cfg: GPT2Config, opts: { dtype?: DType } = {}) {
    super(cfg.raw, { backbone: 'transformer', embed: 'wte', layers: 'h', norm: 'ln_f', head: 'lm_head' });
    this.cfg = cfg;
    const dtype = opts.dtype ?? 'f32';
    const C = cfg.hiddenSize;
    this.info = { modelType: 'gpt2', vocabSize: cfg.vocabSize, hiddenSize: C, numLayers: cfg.numLayers, maxPositions: cfg.maxPositions };
    const tr = this.registerModule('transformer', new Backbone());
    const wte = tr.add('wte', new Embedding(cfg.vocabSize, C, { dtype }));
    tr.add('wpe', new Embedding(cfg.maxPositions, C, { dtype }));
    const h = tr.add('h', new ModuleList<DecoderBlock>());
    for (let i = 0; i < cfg.numLayers; i++) {
      const attn = new MultiHeadAttention(C, { nHeads: cfg.numHeads, causal: true, bias: true, transposed: true, dtype, names: { qkv: 'c_attn', o: 'c_proj' } });
      h.push(new DecoderBlock(C, { norm1: 'ln_1', attn: 'attn', norm2: 'ln_2', mlp: 'mlp' }, {
        norm1: new LayerNorm(C, { eps: cfg.layerNormEps, dtype }),
        attn,
        norm2: new LayerNorm(C, { eps: cfg.layerNormEps, dtype }),
        mlp: new GeluMLP(C, cfg.intermediateSize, { bias: true, transposed: true, approx: cfg.gelu, dtype, names: { fc: 'c_fc', proj: 'c_proj' } }),
      }));
    }
    tr.add('ln_f', new LayerNorm(C, { eps: cfg.layerNormEps, dtype }));
    this.registerModule('lm_head', new TiedLMHead(wte));
  }

  get wpe(): Embedding {
    return this.backbone.getModule('wpe') as Embedding;
  }

  /** h[N, C] = wte[ids] (or the given embeddings) + wpe[positions] */
  protected override embed(ids: Int32Array | null, inputsEmbeds: Float32Array | null, positions: Int32Array, B: number, T: number): Float32Array {
    const C = this.cfg.hiddenSize;
    this.embeddedFromIds = inputsEmbeds === null;
    const tok = inputsEmbeds ?? this.embedTokens.forward(ids!);
    const pos = this.wpe.forward(positions);
    const h = this.buffers.get('embed', B * T * C);
    getBackend().add(h, tok, pos);
    this.positions = positions;
    return h;
  }

  protected override embedBackward(dh: Float32Array): void {
    if (this.embeddedFromIds) this.embedTokens.backward(dh);
    if (this.positions) this.wpe.backward(dh);
  }

  protected override embedTrainable(): boolean {
    return this.embedTokens.weight.requiresGrad || this.wpe.weight.requiresGrad;
  }
}

/**
 * The key a GPT-2 checkpoint tensor loads into, or null to drop it: adds the `transformer.`
 * prefix that the original OpenAI-converted checkpoints lack, drops the causal-mask buffers
 * (`attn.bias`, `attn.masked_bias`) and a duplicate `lm_head.weight` (tied to wte).
 */
export function sanitizeGPT2Key(key: string): string | null {
  const k = key.startsWith('transformer.') || key.startsWith('lm_head.') ? key : `transformer.${key}`;
  if (/^transformer\.h\.\d+\.attn\.(bias|masked_bias)$/.test(k)) return null;
  if (k === 'lm_head.weight') return null;
  return k;
}

/** The module tree of build() as shapes (ModelFamily.moduleShapes); Conv1D projections count as Linear. */
export function gpt2ModuleShapes(cfg: GPT2Config): ModuleShape[] {
  const { hiddenSize: C, vocabSize: V, intermediateSize: F } = cfg;
  const mods: ModuleShape[] = [otherShape('transformer.wte', [['weight', V * C]]), otherShape('transformer.wpe', [['weight', cfg.maxPositions * C]])];
  for (let i = 0; i < cfg.numLayers; i++) {
    const p = `transformer.h.${i}`;
    mods.push(
      otherShape(`${p}.ln_1`, [['weight', C], ['bias', C]]),
      linearShape(`${p}.attn.c_attn`, C, 3 * C, true),
      linearShape(`${p}.attn.c_proj`, C, C, true),
      otherShape(`${p}.ln_2`, [['weight', C], ['bias', C]]),
      linearShape(`${p}.mlp.c_fc`, C, F, true),
      linearShape(`${p}.mlp.c_proj`, F, C, true),
    );
  }
  mods.push(otherShape('transformer.ln_f', [['weight', C], ['bias', C]]));
  mods.push(otherShape('lm_head')); // tied to wte: no parameters of its own
  return withContainers(mods);
}

export const gpt2Family: ModelFamily<GPT2Config> = {
  name: 'gpt2',
  parseConfig: parseGPT2Config,
  build: (cfg, opts) => new GPT2LMHeadModel(cfg, opts),
  moduleShapes: gpt2ModuleShapes,
  defaultTargets: ['c_attn'], // PEFT's table
  sanitizeKey: (_cfg, key) => sanitizeGPT2Key(key),
  sanitize: sanitizeWith((_cfg: GPT2Config, key: string) => sanitizeGPT2Key(key)),
  initStd: (cfg) => initializerRange(cfg.raw),
  architecture: 'GPT2LMHeadModel',
  positionLimit: (cfg) => cfg.maxPositions,
};
