// BERT for sequence classification (transformers' BertForSequenceClassification), and the
// machinery RoBERTa shares: word + position + token type embeddings → LayerNorm, post-LayerNorm
// encoder layers with exact gelu, then a head on the first token.
//
// Module tree = checkpoint keys (prefix `bert`; RoBERTa: `roberta`):
//   bert.embeddings.{word_embeddings,position_embeddings,token_type_embeddings}.weight  [V|P|TT, C]
//   bert.embeddings.LayerNorm.{weight,bias}                                            [C]
//   bert.encoder.layer.{i}.attention.self.{query,key,value}.{weight,bias}              [C, C], [C]
//   bert.encoder.layer.{i}.attention.output.dense.{weight,bias}                        [C, C], [C]
//   bert.encoder.layer.{i}.attention.output.LayerNorm.{weight,bias}                    [C]
//   bert.encoder.layer.{i}.intermediate.dense.{weight,bias}                            [H, C], [H]
//   bert.encoder.layer.{i}.output.dense.{weight,bias}                                  [C, H], [C]
//   bert.encoder.layer.{i}.output.LayerNorm.{weight,bias}                              [C]
//   bert.pooler.dense.{weight,bias}                                                    [C, C] (tanh)
//   classifier.{weight,bias}                                                           [L, C], [L]
// A BertModel checkpoint (keys without `bert.`, no classifier) loads too: the classifier is new.
//
// Letters: B batch, T tokens, N = B·T, C hidden, L labels.
import { getBackend, type GeluApprox } from '../backend/index.js';
import { Dropout } from '../nn/dropout.js';
import { Embedding } from '../nn/embedding.js';
import { LayerNorm } from '../nn/layernorm.js';
import { Linear, type RowLayer } from '../nn/linear.js';
import { ModuleList } from '../nn/module.js';
import { childRowLayer } from '../nn/rowlayer.js';
import { ShapeError, type DType } from '../tensor/tensor.js';
import { ConfigReader, warnUnknownKeys, type JsonObject } from './config.js';
import {
  Container,
  EncoderClassifier,
  EncoderLayer,
  keyMask,
  place,
  tanhBackward,
  tanhInPlace,
  type ClassifierInfo,
  type EncoderFamily,
  type EncoderInputs,
  type EncoderLayerNames,
} from './encoder.js';

export interface BertConfig {
  modelType: 'bert' | 'roberta';
  vocabSize: number;
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  intermediateSize: number;
  maxPositions: number;
  typeVocabSize: number;
  layerNormEps: number;
  approx: GeluApprox;
  padTokenId: number;
  /** hidden_dropout_prob (embeddings, after each attention output and MLP output) */
  hiddenDropout: number;
  /** classifier_dropout ?? hidden_dropout_prob (before the head) */
  classifierDropout: number;
  raw: JsonObject;
}

const GELU_ACTS: Record<string, GeluApprox> = { gelu: 'none', gelu_new: 'tanh', gelu_pytorch_tanh: 'tanh' };

/** Reads a bert / roberta config.json object; throws a ConfigError listing every problem. */
export function parseBertConfig(json: JsonObject, where = 'config.json'): BertConfig {
  const r = new ConfigReader(json, where);
  const modelType = r.oneOf('model_type', ['bert', 'roberta'] as const);
  const vocabSize = r.int('vocab_size');
  const hiddenSize = r.int('hidden_size');
  const numLayers = r.int('num_hidden_layers');
  const numHeads = r.int('num_attention_heads');
  if (hiddenSize % numHeads !== 0) r.fail(`"hidden_size" (${hiddenSize}) must be divisible by "num_attention_heads" (${numHeads})`);
  const intermediateSize = r.int('intermediate_size');
  const maxPositions = r.int('max_position_embeddings', 512);
  const typeVocabSize = r.int('type_vocab_size', 2);
  const layerNormEps = r.number('layer_norm_eps', 1e-12);
  const act = r.string('hidden_act', 'gelu');
  const approx = GELU_ACTS[act];
  if (approx === undefined) r.fail(`"hidden_act" must be one of ${Object.keys(GELU_ACTS).map((k) => JSON.stringify(k)).join(', ')}, got ${JSON.stringify(act)}`);
  const pet = r.string('position_embedding_type', 'absolute');
  if (pet !== 'absolute') r.fail(`"position_embedding_type" ${JSON.stringify(pet)} is not supported; expected "absolute"`);
  const padTokenId = r.int('pad_token_id', modelType === 'roberta' ? 1 : 0, 0);
  const hiddenDropout = r.number('hidden_dropout_prob', 0.1, false);
  // dropout on the attention probabilities is not applied (the fused attention kernel has none)
  r.number('attention_probs_dropout_prob', 0.1, false);
  const classifierDropout = r.has('classifier_dropout') ? r.number('classifier_dropout', 0, false) : hiddenDropout;
  for (const [k, v] of [['hidden_dropout_prob', hiddenDropout], ['classifier_dropout', classifierDropout]] as const) if (!(v >= 0 && v < 1)) r.fail(`"${k}" must be in [0, 1), got ${v}`);
  r.known('classifier_dropout', 'gradient_checkpointing', 'num_labels', 'layer_norm_eps', 'type_vocab_size');
  r.done();
  warnUnknownKeys(r);
  return { modelType, vocabSize, hiddenSize, numLayers, numHeads, intermediateSize, maxPositions, typeVocabSize, layerNormEps, approx: approx ?? 'none', padTokenId, hiddenDropout, classifierDropout, raw: json };
}

export const BERT_LAYER_NAMES: EncoderLayerNames = {
  q: 'attention.self.query',
  k: 'attention.self.key',
  v: 'attention.self.value',
  o: 'attention.output.dense',
  norm1: 'attention.output.LayerNorm',
  fc: 'intermediate.dense',
  proj: 'output.dense',
  norm2: 'output.LayerNorm',
};

/**
 * BERT-style classifier. `prefix` is the backbone's name (bert / roberta); RoBERTa differs in
 * its positions (cumsum of the non-pad mask + padding_idx) and head (classifier.dense → tanh →
 * classifier.out_proj on the first token, no pooler).
 */
export class BertForSequenceClassification extends EncoderClassifier {
  readonly info: ClassifierInfo;
  readonly cfg: BertConfig;
  readonly prefix: string;
  private saved: { B: number; T: number; ids: Int32Array; pooled: Float32Array; cls: Float32Array } | null = null;
  /** RoBERTa's second head dropout (before out_proj); not a registered module, its mode follows classifier.dropout */
  private dropout2: Dropout | null = null;

  constructor(cfg: BertConfig, opts: { dtype?: DType } = {}) {
    super(cfg.raw);
    this.cfg = cfg;
    const dtype = opts.dtype ?? 'f32';
    const C = cfg.hiddenSize;
    this.prefix = cfg.modelType;
    this.info = { modelType: cfg.modelType, task: 'text', hiddenSize: C, numLayers: cfg.numLayers, numLabels: this.labels.length };
    const root = this.registerModule(this.prefix, new Container());
    place(root, 'embeddings.word_embeddings', new Embedding(cfg.vocabSize, C, { dtype }));
    place(root, 'embeddings.position_embeddings', new Embedding(cfg.maxPositions, C, { dtype }));
    place(root, 'embeddings.token_type_embeddings', new Embedding(cfg.typeVocabSize, C, { dtype }));
    place(root, 'embeddings.LayerNorm', new LayerNorm(C, { eps: cfg.layerNormEps, dtype }));
    place(root, 'embeddings.dropout', new Dropout(cfg.hiddenDropout, this.rng));
    const layers = new ModuleList<EncoderLayer>();
    for (let i = 0; i < cfg.numLayers; i++) {
      layers.push(new EncoderLayer({ hiddenSize: C, nHeads: cfg.numHeads, intermediateSize: cfg.intermediateSize, eps: cfg.layerNormEps, prenorm: false, approx: cfg.approx, qkvBias: true, dtype, names: BERT_LAYER_NAMES, dropout: cfg.hiddenDropout, rng: this.rng }));
    }
    place(root, 'encoder.layer', layers);
    const L = this.labels.length;
    if (cfg.modelType === 'roberta') {
      // RobertaClassificationHead: dropout → dense → tanh → dropout → out_proj (one dropout module used twice there; two here)
      const head = this.registerModule('classifier', new Container());
      head.add('dropout', new Dropout(cfg.classifierDropout, this.rng));
      head.add('dense', new Linear(C, C, { bias: true, dtype }));
      head.add('out_proj', new Linear(C, L, { bias: true, dtype }));
      this.dropout2 = new Dropout(cfg.classifierDropout, this.rng);
    } else {
      place(root, 'pooler.dense', new Linear(C, C, { bias: true, dtype }));
      this.registerModule('dropout', new Dropout(cfg.classifierDropout, this.rng));
      this.registerModule('classifier', new Linear(C, L, { bias: true, dtype }));
    }
  }

  get layers(): ModuleList<EncoderLayer> {
    return this.getModule(`${this.prefix}.encoder.layer`) as ModuleList<EncoderLayer>;
  }
  protected get headPath(): string {
    return this.cfg.modelType === 'roberta' ? 'classifier.out_proj' : 'classifier';
  }
  private emb(name: string): Embedding {
    return this.getModule(`${this.prefix}.embeddings.${name}`) as Embedding;
  }
  private get embNorm(): LayerNorm {
    return this.getModule(`${this.prefix}.embeddings.LayerNorm`) as LayerNorm;
  }
  private get embDropout(): Dropout {
    return this.getModule(`${this.prefix}.embeddings.dropout`) as Dropout;
  }
  /** the dropout before the first head layer (BERT: before classifier; RoBERTa: before classifier.dense) */
  private get headDropout(): Dropout {
    return this.getModule(this.cfg.modelType === 'roberta' ? 'classifier.dropout' : 'dropout') as Dropout;
  }
  /** the first-token transform: bert.pooler.dense, or RoBERTa's classifier.dense */
  private get poolDense(): RowLayer {
    return childRowLayer(this, this.cfg.modelType === 'roberta' ? 'classifier.dense' : `${this.prefix}.pooler.dense`, this.info.modelType);
  }
  private get outProj(): RowLayer {
    return childRowLayer(this, this.headPath, this.info.modelType);
  }

  /** position ids [B, T]: 0..T−1 (BERT) or cumsum(ids ≠ pad)·(ids ≠ pad) + pad (RoBERTa) */
  positionIds(ids: Int32Array, B: number, T: number): Int32Array {
    const pos = new Int32Array(B * T);
    const pad = this.cfg.padTokenId;
    for (let b = 0; b < B; b++) {
      let c = 0;
      for (let t = 0; t < T; t++) {
        const i = b * T + t;
        if (this.cfg.modelType === 'roberta') {
          if (ids[i] !== pad) c++;
          pos[i] = ids[i] !== pad ? c + pad : pad;
        } else pos[i] = t;
      }
    }
    return pos;
  }

  protected embed(inputs: EncoderInputs): { h: Float32Array; B: number; T: number; mask: Float32Array | null } {
    const what = `${this.info.modelType}.forward`;
    if (!('ids' in inputs)) throw new Error(`${what}: this is a text model; pass token ids ({ ids, B, T, attentionMask?, tokenTypeIds? })`);
    const { ids, B, T } = inputs;
    if (!(Number.isInteger(B) && B > 0 && Number.isInteger(T) && T > 0)) throw new ShapeError(`${what}: B and T must be positive integers, got B=${B}, T=${T}`);
    if (ids.length !== B * T) throw new ShapeError(`${what}: ids has ${ids.length} elements, expected [${B}, ${T}] = ${B * T}`);
    const pos = this.positionIds(ids, B, T);
    let maxPos = 0;
    for (let i = 0; i < pos.length; i++) maxPos = Math.max(maxPos, pos[i]!);
    if (maxPos >= this.cfg.maxPositions) throw new RangeError(`${what}: position ${maxPos} is beyond the model's ${this.cfg.maxPositions} positions (max_position_embeddings); truncate the inputs`);
    let tt = inputs.tokenTypeIds ?? null;
    if (tt) {
      if (tt.length !== B * T) throw new ShapeError(`${what}: tokenTypeIds has ${tt.length} elements, expected [${B}, ${T}] = ${B * T}`);
      for (let i = 0; i < tt.length; i++) {
        const v = tt[i]!;
        if (v < 0 || v >= this.cfg.typeVocabSize) {
          throw new RangeError(`${what}: token type id ${v} at row ${Math.floor(i / T)}, token ${i % T}; the model has type_vocab_size ${this.cfg.typeVocabSize}${this.cfg.typeVocabSize < 2 ? ' (no sentence pairs)' : ''}`);
        }
      }
    } else tt = new Int32Array(B * T);
    const mask = keyMask(inputs.attentionMask, B, T, what);
    const C = this.cfg.hiddenSize;
    const be = getBackend();
    const sum = this.buffers.get('emb', B * T * C);
    be.add(sum, this.emb('word_embeddings').forward(ids), this.emb('position_embeddings').forward(pos));
    be.add(sum, sum, this.emb('token_type_embeddings').forward(tt));
    const h = this.embDropout.forward(this.embNorm.forward(sum, B * T));
    this.saved = { B, T, ids, pooled: new Float32Array(0), cls: new Float32Array(0) };
    return { h, B, T, mask };
  }

  protected embedTrainable(): boolean {
    return ['word_embeddings', 'position_embeddings', 'token_type_embeddings'].some((n) => this.emb(n).weight.requiresGrad) || this.embNorm.parameters().some((p) => p.requiresGrad);
  }

  protected embedBackward(dh: Float32Array, inputGrad: boolean): Float32Array | null {
    const norm = this.embNorm;
    norm.computeInputGrad = true;
    const dsum = norm.backward(this.embDropout.backward(dh))!;
    for (const n of ['word_embeddings', 'position_embeddings', 'token_type_embeddings']) {
      const e = this.emb(n);
      if (e.weight.requiresGrad) e.backward(dsum);
    }
    return inputGrad ? dsum : null;
  }

  protected head(h: Float32Array, B: number, T: number): Float32Array {
    const C = this.cfg.hiddenSize;
    const cls = this.buffers.get('cls', B * C);
    getBackend().copy2d(cls, h, { rows: B, cols: C, srcStride: T * C });
    const roberta = this.cfg.modelType === 'roberta';
    const pooled = this.buffers.get('pooled', B * C);
    // BERT: classifier(dropout(tanh(pooler(cls)))); RoBERTa: out_proj(dropout(tanh(dense(dropout(cls)))))
    pooled.set(this.poolDense.forward(roberta ? this.headDropout.forward(cls) : cls, B));
    tanhInPlace(pooled);
    this.saved = { ...this.saved!, B, T, pooled, cls };
    const d2 = roberta ? this.dropout2! : this.headDropout;
    d2.training = this.headDropout.training;
    return this.outProj.forward(d2.forward(pooled), B);
  }

  protected headBackward(dlogits: Float32Array, needDh: boolean): Float32Array | null {
    const s = this.saved;
    if (!s) throw new Error(`${this.info.modelType}.backward called before forward`);
    const { B, T } = s;
    const C = this.cfg.hiddenSize;
    const out = this.outProj;
    const pool = this.poolDense;
    const roberta = this.cfg.modelType === 'roberta';
    out.computeInputGrad = true;
    const dpooled = (roberta ? this.dropout2! : this.headDropout).backward(out.backward(dlogits)!);
    const dpre = this.buffers.get('dpre', B * C);
    tanhBackward(dpre, s.pooled, dpooled);
    pool.computeInputGrad = needDh;
    const dclsIn = pool.backward(dpre);
    if (!needDh || !dclsIn) return null;
    const dcls = roberta ? this.headDropout.backward(dclsIn) : dclsIn;
    const dh = this.buffers.zeros('dh', B * T * C);
    getBackend().copy2d(dh, dcls, { rows: B, cols: C, dstStride: T * C });
    return dh;
  }
}

/** The key a bert checkpoint tensor loads into (BertModel keys gain `bert.`), or null to drop it (pretraining heads, buffers). */
export function sanitizeBertKey(prefix: string, rawKey: string): string | null {
  if (rawKey.startsWith('cls.') || rawKey.startsWith('lm_head.') || rawKey.endsWith('.position_ids') || rawKey.endsWith('.token_type_ids')) return null;
  // old (TensorFlow-converted) checkpoints name LayerNorm parameters gamma / beta; transformers renames them on load
  const key = rawKey.replace(/(LayerNorm)\.gamma$/, '$1.weight').replace(/(LayerNorm)\.beta$/, '$1.bias');
  if (key.startsWith(`${prefix}.`) || key.startsWith('classifier.')) return key;
  if (/^(embeddings|encoder|pooler)\./.test(key)) return `${prefix}.${key}`;
  return key;
}

export const bertFamily: EncoderFamily<BertConfig> = {
  name: 'bert',
  task: 'text',
  parseConfig: parseBertConfig,
  build: (cfg, opts) => new BertForSequenceClassification(cfg, opts),
  sanitizeKey: (_cfg, key) => sanitizeBertKey('bert', key),
  optionalPrefixes: ['classifier.', 'bert.pooler.'],
  architecture: 'BertForSequenceClassification',
  defaultTargets: ['query', 'value'],
  headModules: ['classifier'],
};
