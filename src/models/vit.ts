// ViT for image classification (transformers' ViTForImageClassification): patches embedded by a
// Conv2d with stride = kernel = patch size (computed as im2col + GEMM), a learned [CLS] token and
// position embeddings, pre-LayerNorm encoder layers, a final LayerNorm and the classifier on
// the [CLS] token.
//
// Module tree = checkpoint keys:
//   vit.embeddings.cls_token                                          [1, 1, C]
//   vit.embeddings.position_embeddings                                [1, P + 1, C], P = (S/p)²
//   vit.embeddings.patch_embeddings.projection.{weight,bias}          [C, Ch, p, p], [C]
//   vit.encoder.layer.{i}.layernorm_before.{weight,bias}              [C]
//   vit.encoder.layer.{i}.attention.attention.{query,key,value}.*     [C, C], [C] (bias: qkv_bias)
//   vit.encoder.layer.{i}.attention.output.dense.{weight,bias}        [C, C], [C]
//   vit.encoder.layer.{i}.layernorm_after.{weight,bias}               [C]
//   vit.encoder.layer.{i}.intermediate.dense.{weight,bias}            [H, C], [H]
//   vit.encoder.layer.{i}.output.dense.{weight,bias}                  [C, H], [C]
//   vit.layernorm.{weight,bias}                                       [C]
//   classifier.{weight,bias}                                          [L, C], [L]
// A ViTModel checkpoint (keys without `vit.`, a pooler, no classifier) loads too: the pooler is
// dropped and the classifier is new.
//
// Letters: B batch, Ch channels, S image size, p patch size, P patches, T = P + 1, C hidden, L labels.
import { getBackend, type GeluApprox } from '../backend/index.js';
import { patchGrid } from '../backend/ref/conv.js';
import type { PatchArgs } from '../backend/types.js';
import { LayerNorm } from '../nn/layernorm.js';
import { Linear, type RowLayer } from '../nn/linear.js';
import { Dropout } from '../nn/dropout.js';
import { Module, ModuleList, Parameter } from '../nn/module.js';
import { Rng } from '../tensor/rng.js';
import { childRowLayer } from '../nn/rowlayer.js';
import { ShapeError, Tensor, type DType } from '../tensor/tensor.js';
import { ConfigReader, warnUnknownKeys, type JsonObject } from './config.js';
import { Container, EncoderClassifier, EncoderLayer, place, type ClassifierInfo, type EncoderFamily, type EncoderInputs, type EncoderLayerNames } from './encoder.js';

export interface ViTConfig {
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  intermediateSize: number;
  imageSize: number;
  patchSize: number;
  numChannels: number;
  qkvBias: boolean;
  layerNormEps: number;
  approx: GeluApprox;
  /** hidden_dropout_prob (embeddings, after each attention output and MLP output) */
  hiddenDropout: number;
  raw: JsonObject;
}

const GELU_ACTS: Record<string, GeluApprox> = { gelu: 'none', gelu_new: 'tanh', gelu_pytorch_tanh: 'tanh' };

/** A size that is a number or [h, w] with h = w (square images only). */
function squareSize(r: ConfigReader, key: string, dflt: number): number {
  const v = r.json[key];
  if (Array.isArray(v)) {
    r.known(key);
    if (v.length === 2 && v[0] === v[1] && Number.isInteger(v[0]) && (v[0] as number) > 0) return v[0] as number;
    r.fail(`"${key}" must be an integer or [n, n] (square), got ${JSON.stringify(v)}`);
    return dflt;
  }
  return r.int(key, dflt);
}

/** Reads a vit config.json object; throws a ConfigError listing every problem. */
export function parseViTConfig(json: JsonObject, where = 'config.json'): ViTConfig {
  const r = new ConfigReader(json, where);
  r.oneOf('model_type', ['vit'] as const);
  const hiddenSize = r.int('hidden_size', 768);
  const numLayers = r.int('num_hidden_layers', 12);
  const numHeads = r.int('num_attention_heads', 12);
  if (hiddenSize % numHeads !== 0) r.fail(`"hidden_size" (${hiddenSize}) must be divisible by "num_attention_heads" (${numHeads})`);
  const intermediateSize = r.int('intermediate_size', 3072);
  const imageSize = squareSize(r, 'image_size', 224);
  const patchSize = squareSize(r, 'patch_size', 16);
  if (imageSize % patchSize !== 0) r.fail(`"image_size" (${imageSize}) must be a multiple of "patch_size" (${patchSize})`);
  const numChannels = r.int('num_channels', 3);
  const qkvBias = r.bool('qkv_bias', true);
  const layerNormEps = r.number('layer_norm_eps', 1e-12);
  const act = r.string('hidden_act', 'gelu');
  const approx = GELU_ACTS[act];
  if (approx === undefined) r.fail(`"hidden_act" must be one of ${Object.keys(GELU_ACTS).map((k) => JSON.stringify(k)).join(', ')}, got ${JSON.stringify(act)}`);
  const hiddenDropout = r.number('hidden_dropout_prob', 0, false);
  if (!(hiddenDropout >= 0 && hiddenDropout < 1)) r.fail(`"hidden_dropout_prob" must be in [0, 1), got ${hiddenDropout}`);
  // dropout on the attention probabilities is not applied (the fused attention kernel has none)
  r.number('attention_probs_dropout_prob', 0, false);
  r.known('encoder_stride', 'pooler_output_size', 'pooler_act', 'num_labels');
  r.done();
  warnUnknownKeys(r);
  return { hiddenSize, numLayers, numHeads, intermediateSize, imageSize, patchSize, numChannels, qkvBias, layerNormEps, approx: approx ?? 'none', hiddenDropout, raw: json };
}

export const VIT_LAYER_NAMES: EncoderLayerNames = {
  q: 'attention.attention.query',
  k: 'attention.attention.key',
  v: 'attention.attention.value',
  o: 'attention.output.dense',
  norm1: 'layernorm_before',
  fc: 'intermediate.dense',
  proj: 'output.dense',
  norm2: 'layernorm_after',
};

/**
 * Conv2d with stride = kernel (torch.nn.Conv2d(Ch, O, p, stride=p)): y[B·OH·OW, O] =
 * im2col(x)[B·OH·OW, Ch·p·p] · Wᵀ + b, W [O, Ch, p, p]. Rows come out in (b, oh, ow) order,
 * which is transformers' flatten(2).transpose(1, 2).
 */
export class PatchConv extends Module {
  readonly weight: Parameter;
  readonly bias: Parameter;
  readonly inChannels: number;
  readonly outChannels: number;
  readonly kernel: number;
  private saved: { cols: Float32Array; args: PatchArgs; rows: number } | null = null;

  constructor(inChannels: number, outChannels: number, kernel: number, dtype: DType = 'f32') {
    super();
    this.inChannels = inChannels;
    this.outChannels = outChannels;
    this.kernel = kernel;
    this.weight = this.registerParameter('weight', new Parameter(Tensor.zeros([outChannels, inChannels, kernel, kernel], dtype)));
    this.bias = this.registerParameter('bias', new Parameter(Tensor.zeros([outChannels], dtype)));
  }

  /** y[B·OH·OW, O] from x[B, Ch, H, W]; owned by the layer */
  forward(x: Float32Array, B: number, H: number, W: number): Float32Array {
    const Ch = this.inChannels;
    const p = this.kernel;
    if (x.length !== B * Ch * H * W) throw new ShapeError(`PatchConv.forward: x has ${x.length} elements, expected [${B}, ${Ch}, ${H}, ${W}] = ${B * Ch * H * W}`);
    const args: PatchArgs = { B, C: Ch, H, W, KH: p, KW: p, SH: p, SW: p };
    const { OH, OW } = patchGrid(args);
    const rows = B * OH * OW;
    const K = Ch * p * p;
    const be = getBackend();
    const cols = this.buffers.get('cols', rows * K);
    be.im2col(cols, x, args);
    const out = this.buffers.get('out', rows * this.outChannels);
    const Wt = this.weight.value;
    be.gemm(out, cols, Wt.data, { M: rows, N: this.outChannels, K, transB: true, bDtype: Wt.dtype });
    be.biasAdd(out, this.bias.value.floatData, rows, this.outChannels, this.bias.value.floatDtype);
    this.saved = { cols, args, rows };
    return out;
  }

  /** dW, db += …; returns dx[B, Ch, H, W] when inputGrad, else null */
  backward(dy: Float32Array, inputGrad: boolean): Float32Array | null {
    const s = this.saved;
    if (!s) throw new Error('PatchConv.backward called before forward');
    const O = this.outChannels;
    const K = this.inChannels * this.kernel * this.kernel;
    if (dy.length !== s.rows * O) throw new ShapeError(`PatchConv.backward: dy has ${dy.length} elements, expected [${s.rows}, ${O}]`);
    const be = getBackend();
    if (this.weight.grad) be.gemm(this.weight.grad, dy, s.cols, { M: O, N: K, K: s.rows, transA: true, accumulate: true });
    if (this.bias.grad) be.biasBackward(this.bias.grad, dy, s.rows, O);
    if (!inputGrad) return null;
    const dcols = this.buffers.get('dcols', s.rows * K);
    const Wt = this.weight.value;
    be.gemm(dcols, dy, Wt.data, { M: s.rows, N: K, K: O, bDtype: Wt.dtype });
    const { B, C, H, W } = s.args;
    const dx = this.buffers.zeros('dx', B * C * H * W);
    be.col2im(dx, dcols, s.args);
    return dx;
  }
}

/** cls_token, position_embeddings and the patch projection */
export class ViTEmbeddings extends Container {
  readonly cls: Parameter;
  readonly pos: Parameter;

  constructor(cfg: ViTConfig, dtype: DType, rng: Rng) {
    super();
    const C = cfg.hiddenSize;
    const P = (cfg.imageSize / cfg.patchSize) ** 2;
    this.cls = this.registerParameter('cls_token', new Parameter(Tensor.zeros([1, 1, C], dtype)));
    this.pos = this.registerParameter('position_embeddings', new Parameter(Tensor.zeros([1, P + 1, C], dtype)));
    place(this, 'patch_embeddings.projection', new PatchConv(cfg.numChannels, C, cfg.patchSize, dtype));
    this.add('dropout', new Dropout(cfg.hiddenDropout, rng));
  }

  get dropout(): Dropout {
    return this.getModule('dropout') as Dropout;
  }

  get projection(): PatchConv {
    return this.getModule('patch_embeddings.projection') as PatchConv;
  }
}

export class ViTForImageClassification extends EncoderClassifier {
  readonly info: ClassifierInfo;
  readonly cfg: ViTConfig;
  private saved: { B: number; T: number } | null = null;

  constructor(cfg: ViTConfig, opts: { dtype?: DType } = {}) {
    super(cfg.raw);
    this.cfg = cfg;
    const dtype = opts.dtype ?? 'f32';
    const C = cfg.hiddenSize;
    this.info = { modelType: 'vit', task: 'image', hiddenSize: C, numLayers: cfg.numLayers, numLabels: this.labels.length };
    const root = this.registerModule('vit', new Container());
    root.add('embeddings', new ViTEmbeddings(cfg, dtype, this.rng));
    const layers = new ModuleList<EncoderLayer>();
    for (let i = 0; i < cfg.numLayers; i++) {
      layers.push(new EncoderLayer({ hiddenSize: C, nHeads: cfg.numHeads, intermediateSize: cfg.intermediateSize, eps: cfg.layerNormEps, prenorm: true, approx: cfg.approx, qkvBias: cfg.qkvBias, dtype, names: VIT_LAYER_NAMES, dropout: cfg.hiddenDropout, rng: this.rng }));
    }
    place(root, 'encoder.layer', layers);
    root.add('layernorm', new LayerNorm(C, { eps: cfg.layerNormEps, dtype }));
    this.registerModule('classifier', new Linear(C, this.labels.length, { bias: true, dtype }));
  }

  get layers(): ModuleList<EncoderLayer> {
    return this.getModule('vit.encoder.layer') as ModuleList<EncoderLayer>;
  }
  protected get headPath(): string {
    return 'classifier';
  }
  private get embeddings(): ViTEmbeddings {
    return this.getModule('vit.embeddings') as ViTEmbeddings;
  }
  private get finalNorm(): LayerNorm {
    return this.getModule('vit.layernorm') as LayerNorm;
  }
  private get classifier(): RowLayer {
    return childRowLayer(this, 'classifier', 'vit');
  }

  protected embed(inputs: EncoderInputs): { h: Float32Array; B: number; T: number; mask: Float32Array | null } {
    if (!('pixels' in inputs)) throw new Error('vit.forward: this is an image model; pass pixels ({ pixels [B, channels, height, width], B })');
    const { pixels, B } = inputs;
    const { numChannels: Ch, imageSize: S, hiddenSize: C } = this.cfg;
    if (!(Number.isInteger(B) && B > 0)) throw new ShapeError(`vit.forward: B must be a positive integer, got ${B}`);
    if (pixels.length !== B * Ch * S * S) {
      throw new ShapeError(`vit.forward: pixels has ${pixels.length} elements, expected [${B}, ${Ch}, ${S}, ${S}] = ${B * Ch * S * S} (image_size ${S}; other sizes would need position embedding interpolation, which is not supported)`);
    }
    const emb = this.embeddings;
    const patches = emb.projection.forward(pixels, B, S, S); // [B·P, C]
    const P = patches.length / (B * C);
    const T = P + 1;
    const cls = emb.cls.value.toF32Array();
    const pos = emb.pos.value.toF32Array();
    const h = this.buffers.get('h0', B * T * C);
    // h[b] = [cls; patches of b] + pos
    const be = getBackend();
    be.copy2d(h, cls, { rows: B, cols: C, srcStride: 0, dstStride: T * C });
    be.copy2d(h, patches, { rows: B, cols: P * C, dstOffset: C, dstStride: T * C });
    be.addRowVector(h, pos, 1, B, T * C);
    this.saved = { B, T };
    return { h: emb.dropout.forward(h), B, T, mask: null };
  }

  protected embedTrainable(): boolean {
    return this.embeddings.parameters().some((p) => p.requiresGrad);
  }

  protected embedBackward(dhOut: Float32Array, inputGrad: boolean): Float32Array | null {
    const { B, T } = this.saved!;
    const C = this.cfg.hiddenSize;
    const P = T - 1;
    const emb = this.embeddings;
    const dh = emb.dropout.backward(dhOut);
    const be = getBackend();
    if (emb.cls.grad) {
      // the [CLS] rows of dh, summed over the batch
      const dcls = this.buffers.get('dcls_rows', B * C);
      be.copy2d(dcls, dh, { rows: B, cols: C, srcStride: T * C });
      be.columnSums(emb.cls.grad, dcls, null, 0, 1, B, C);
    }
    if (emb.pos.grad) be.columnSums(emb.pos.grad, dh, null, 0, 1, B, T * C);
    const proj = emb.projection;
    if (!inputGrad && !proj.weight.requiresGrad && !proj.bias.requiresGrad) return null;
    const dpatches = this.buffers.get('dpatches', B * P * C);
    be.copy2d(dpatches, dh, { rows: B, cols: P * C, srcOffset: C, srcStride: T * C });
    return proj.backward(dpatches, inputGrad);
  }

  protected head(h: Float32Array, B: number, T: number): Float32Array {
    const C = this.cfg.hiddenSize;
    const cls = this.buffers.get('cls', B * C);
    getBackend().copy2d(cls, h, { rows: B, cols: C, srcStride: T * C });
    // the final LayerNorm acts row by row: normalising only the [CLS] rows gives the same logits
    return this.classifier.forward(this.finalNorm.forward(cls, B), B);
  }

  protected headBackward(dlogits: Float32Array, needDh: boolean): Float32Array | null {
    const { B, T } = this.saved!;
    const C = this.cfg.hiddenSize;
    const norm = this.finalNorm;
    const head = this.classifier;
    norm.computeInputGrad = needDh;
    head.computeInputGrad = needDh || norm.parameters().some((p) => p.requiresGrad);
    const dn = head.backward(dlogits);
    if (!dn) return null;
    const dcls = norm.backward(dn);
    if (!needDh || !dcls) return null;
    const dh = this.buffers.zeros('dh', B * T * C);
    getBackend().copy2d(dh, dcls, { rows: B, cols: C, dstStride: T * C });
    return dh;
  }
}

/** The key a vit checkpoint tensor loads into (ViTModel keys gain `vit.`), or null to drop it (pooler, other heads). */
export function sanitizeViTKey(key: string): string | null {
  const k = key.startsWith('vit.') || key.startsWith('classifier.') ? key : /^(embeddings|encoder|layernorm|pooler)\b/.test(key) ? `vit.${key}` : key;
  if (k.startsWith('vit.pooler.') || k.endsWith('.mask_token')) return null;
  return k;
}

export const vitFamily: EncoderFamily<ViTConfig> = {
  name: 'vit',
  task: 'image',
  parseConfig: parseViTConfig,
  build: (cfg, opts) => new ViTForImageClassification(cfg, opts),
  sanitizeKey: (_cfg, key) => sanitizeViTKey(key),
  optionalPrefixes: ['classifier.'],
  architecture: 'ViTForImageClassification',
  defaultTargets: ['query', 'value'],
  headModules: ['classifier'],
};
