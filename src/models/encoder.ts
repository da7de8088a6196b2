// Transformer encoders for classification (BERT, RoBERTa, ViT): the layer shared by the
// families, post-LayerNorm (BERT: y = LN(x + attn(x)), then LN(h + mlp(h))) or pre-LayerNorm
// (ViT: h = x + attn(LN(x)), y = h + mlp(LN(h))), non-causal attention with a key padding
// mask, and the classifier base class every family extends (embeddings → layers → head).
//
// Children are named as the checkpoint keys, nested as in transformers
// (`attention.self.query`, `attention.output.dense`, …) through plain Container modules, and
// looked up by path on every call, so LoRA injection may replace any Linear.
//
// Letters: B batch, T tokens (or patches + 1) per row, N = B·T rows, C hidden size,
// H MLP width, L labels.
import { getBackend, type GeluApprox } from '../backend/index.js';
import { AttentionCore } from '../nn/attention.js';
import { GradientCheckpointing } from '../nn/checkpoint.js';
import { Dropout } from '../nn/dropout.js';
import { LayerNorm } from '../nn/layernorm.js';
import { Linear, type RowLayer } from '../nn/linear.js';
import { Module, ModuleList } from '../nn/module.js';
import { Rng } from '../tensor/rng.js';
import { childRowLayer, hasTrainable } from '../nn/rowlayer.js';
import { ShapeError, Tensor, type DType } from '../tensor/tensor.js';

/** A module that only groups children under a name (transformers' BertAttention, BertOutput, …). */
export class Container extends Module {
  add<M extends Module>(name: string, m: M): M {
    return this.registerModule(name, m);
  }
}

/** Registers m at a dotted path below root, creating Containers on the way; returns m. */
export function place<M extends Module>(root: Container, path: string, m: M): M {
  const parts = path.split('.');
  let at: Container = root;
  for (const part of parts.slice(0, -1)) {
    const existing = at.children().find(([n]) => n === part)?.[1];
    if (existing && !(existing instanceof Container)) throw new Error(`place: "${part}" in ${path} is a ${existing.constructor.name}, not a container`);
    at = (existing as Container | undefined) ?? at.add(part, new Container());
  }
  return at.add(parts[parts.length - 1]!, m);
}

// ---------------------------------------------------------------------------------------
// EncoderLayer

/** Paths (below the layer) of its parts. */
export interface EncoderLayerNames {
  q: string;
  k: string;
  v: string;
  o: string;
  /** post-norm: the LayerNorm after attention; pre-norm: the one before it */
  norm1: string;
  fc: string;
  proj: string;
  /** post-norm: the LayerNorm after the MLP; pre-norm: the one before it */
  norm2: string;
}

export interface EncoderLayerOptions {
  hiddenSize: number;
  nHeads: number;
  intermediateSize: number;
  eps: number;
  /** ViT (true) or BERT (false) */
  prenorm: boolean;
  approx: GeluApprox;
  /** biases on q, k, v (BERT: always; ViT: qkv_bias) */
  qkvBias: boolean;
  dtype: DType;
  names: EncoderLayerNames;
  /** hidden_dropout_prob: after o and after proj, before the residual add (training mode only); default 0 */
  dropout?: number;
  /** the stream dropout masks are drawn from (shared by the model's layers) */
  rng?: Rng;
}

/** `a.b.c` → `a.b.<leaf>` */
function sibling(p: string, leaf: string): string {
  const i = p.lastIndexOf('.');
  return i < 0 ? leaf : `${p.slice(0, i)}.${leaf}`;
}

/** What a layer needs besides its rows: B, T and the additive key mask [B, T] (−∞ on padding) or null. */
export interface EncoderContext {
  B: number;
  T: number;
  mask: Float32Array | null;
}

export class EncoderLayer extends Container {
  readonly opts: EncoderLayerOptions;
  /** whether backward() computes dx */
  computeInputGrad = true;
  private readonly core: AttentionCore;
  private saved: { N: number; f: Float32Array } | null = null;

  constructor(opts: EncoderLayerOptions) {
    super();
    this.opts = opts;
    const { hiddenSize: C, intermediateSize: H, dtype, names } = opts;
    const lin = (i: number, o: number, bias: boolean): Linear => new Linear(i, o, { bias, dtype });
    place(this, names.q, lin(C, C, opts.qkvBias));
    place(this, names.k, lin(C, C, opts.qkvBias));
    place(this, names.v, lin(C, C, opts.qkvBias));
    place(this, names.o, lin(C, C, true));
    place(this, names.norm1, new LayerNorm(C, { eps: opts.eps, dtype }));
    place(this, names.fc, lin(C, H, true));
    place(this, names.proj, lin(H, C, true));
    place(this, names.norm2, new LayerNorm(C, { eps: opts.eps, dtype }));
    // transformers' BertSelfOutput / BertOutput (ViTSelfOutput / ViTOutput) dropouts, next to o and proj
    const rng = opts.rng ?? new Rng(0);
    place(this, sibling(names.o, 'dropout'), new Dropout(opts.dropout ?? 0, rng));
    place(this, sibling(names.proj, 'dropout'), new Dropout(opts.dropout ?? 0, rng));
    if (C % opts.nHeads !== 0) throw new RangeError(`EncoderLayer: hidden size ${C} is not divisible by ${opts.nHeads} heads`);
    this.core = new AttentionCore({ nHeads: opts.nHeads, headDim: C / opts.nHeads, causal: false });
  }

  private row(name: keyof EncoderLayerNames): RowLayer {
    return childRowLayer(this, this.opts.names[name], 'EncoderLayer');
  }
  private norm(name: 'norm1' | 'norm2'): LayerNorm {
    return this.getModule(this.opts.names[name]) as LayerNorm;
  }
  private drop(after: 'o' | 'proj'): Dropout {
    return this.getModule(sibling(this.opts.names[after], 'dropout')) as Dropout;
  }

  /** q, k, v projections of x[N, C] and the attention over them, then o: returns o's output [N, C] */
  private attend(x: Float32Array, ctx: EncoderContext): Float32Array {
    const N = ctx.B * ctx.T;
    const q = this.row('q').forward(x, N);
    const k = this.row('k').forward(x, N);
    const v = this.row('v').forward(x, N);
    // the core draws its scratch from this layer's buffers (shared arena under checkpointing)
    this.core.buffers = this.buffers;
    const att = this.core.forward(q, k, v, { B: ctx.B, T: ctx.T, mask: ctx.mask });
    return this.drop('o').forward(this.row('o').forward(att, N));
  }

  /** Backward of attend(): from d(o's output); returns dx[N, C] (owned here) or null when needDx is false */
  private attendBackward(dout: Float32Array, needDx: boolean): Float32Array | null {
    const N = this.saved!.N;
    const C = this.opts.hiddenSize;
    const o = this.row('o');
    o.computeInputGrad = true;
    const datt = o.backward(this.drop('o').backward(dout))!;
    this.core.buffers = this.buffers;
    const { dq, dk, dv } = this.core.backward(datt);
    const be = getBackend();
    let dx: Float32Array | null = null;
    const parts: [keyof EncoderLayerNames, Float32Array][] = [['q', dq], ['k', dk], ['v', dv]];
    for (const [name, d] of parts) {
      const l = this.row(name);
      l.computeInputGrad = needDx;
      const g = l.backward(d);
      if (!needDx || !g) continue;
      if (!dx) {
        dx = this.buffers.get('dattn_x', N * C);
        dx.set(g);
      } else be.add(dx, dx, g);
    }
    return dx;
  }

  /** mlp: proj(gelu(fc(x))); saves fc's output for backward */
  private mlp(x: Float32Array, N: number): Float32Array {
    const f = this.row('fc').forward(x, N);
    const g = this.buffers.get('g', N * this.opts.intermediateSize);
    getBackend().geluForward(g, f, this.opts.approx);
    this.saved = { N, f };
    return this.drop('proj').forward(this.row('proj').forward(g, N));
  }

  private mlpBackward(dy: Float32Array): Float32Array {
    const { N, f } = this.saved!;
    const proj = this.row('proj');
    proj.computeInputGrad = true;
    const dg = proj.backward(this.drop('proj').backward(dy))!;
    const df = this.buffers.zeros('df', N * this.opts.intermediateSize);
    getBackend().geluBackward(df, f, dg, this.opts.approx);
    const fc = this.row('fc');
    fc.computeInputGrad = true;
    return fc.backward(df)!;
  }

  /** y[N, C] (owned by the layer or its last norm) from x[N, C]; x must stay unchanged until backward */
  forward(x: Float32Array, ctx: EncoderContext): Float32Array {
    const N = ctx.B * ctx.T;
    const C = this.opts.hiddenSize;
    if (x.length !== N * C) throw new ShapeError(`EncoderLayer.forward: x has ${x.length} elements, expected [${ctx.B}·${ctx.T}, ${C}] = ${N * C}`);
    const be = getBackend();
    if (!this.opts.prenorm) {
      const o = this.attend(x, ctx);
      const z1 = this.buffers.get('z1', N * C);
      be.add(z1, x, o);
      const h = this.norm('norm1').forward(z1, N);
      const p = this.mlp(h, N);
      const z2 = this.buffers.get('z2', N * C);
      be.add(z2, h, p);
      return this.norm('norm2').forward(z2, N);
    }
    const o = this.attend(this.norm('norm1').forward(x, N), ctx);
    const h = this.buffers.get('h', N * C);
    be.add(h, x, o);
    const p = this.mlp(this.norm('norm2').forward(h, N), N);
    const y = this.buffers.get('y', N * C);
    be.add(y, h, p);
    return y;
  }

  /** parameter gradients += …; returns dx[N, C] (owned by the layer) or null when computeInputGrad is false */
  backward(dy: Float32Array): Float32Array | null {
    if (!this.saved) throw new Error('EncoderLayer.backward called before forward');
    const N = this.saved.N;
    const C = this.opts.hiddenSize;
    if (dy.length !== N * C) throw new ShapeError(`EncoderLayer.backward: dy has ${dy.length} elements, expected [${N}, ${C}]`);
    const be = getBackend();
    const n1 = this.norm('norm1');
    const n2 = this.norm('norm2');
    if (!this.opts.prenorm) {
      n2.computeInputGrad = true;
      const dz2 = n2.backward(dy)!;
      const dhm = this.mlpBackward(dz2);
      const dh = this.buffers.get('dh', N * C);
      be.add(dh, dz2, dhm);
      n1.computeInputGrad = true;
      const dz1 = n1.backward(dh)!;
      const dxa = this.attendBackward(dz1, this.computeInputGrad);
      if (!this.computeInputGrad || !dxa) return null;
      const dx = this.buffers.get('dx', N * C);
      be.add(dx, dz1, dxa);
      return dx;
    }
    const dn2 = this.mlpBackward(dy);
    n2.computeInputGrad = true;
    const dln2 = n2.backward(dn2)!;
    const dh = this.buffers.get('dh', N * C);
    be.add(dh, dy, dln2);
    const needN1 = this.computeInputGrad || hasTrainable(n1);
    const dn1 = this.attendBackward(dh, needN1);
    if (!needN1 || !dn1) return null;
    n1.computeInputGrad = this.computeInputGrad;
    const dln1 = n1.backward(dn1);
    if (!this.computeInputGrad || !dln1) return null;
    const dx = this.buffers.get('dx', N * C);
    be.add(dx, dh, dln1);
    return dx;
  }
}

// ---------------------------------------------------------------------------------------
// Classifier base

/** Token inputs: ids [B, T], optional 0/1 attention mask [B, T] (1 = real token) and token type ids [B, T]. */
export interface TextInputs {
  ids: Int32Array;
  B: number;
  T: number;
  attentionMask?: Uint8Array | Int32Array | null | undefined;
  tokenTypeIds?: Int32Array | null | undefined;
}

/** Image inputs: preprocessed pixels [B, C, H, W] (channels first, as PyTorch). */
export interface ImageInputs {
  pixels: Float32Array;
  B: number;
}

export type EncoderInputs = TextInputs | ImageInputs;

export interface ClassifierInfo {
  modelType: string;
  /** what forward() takes */
  task: 'text' | 'image';
  hiddenSize: number;
  numLayers: number;
  numLabels: number;
}

/** What every classification model offers: logits [B, L] from inputs, and their backward. */
export interface SequenceClassifier extends Module {
  readonly info: ClassifierInfo;
  /** config.json's object (id2label / label2id follow the head) */
  readonly config: Record<string, unknown>;
  /** label names by class index (config id2label) */
  readonly labels: readonly string[];
  /** logits [B, L], owned by the model until its next forward */
  forward(inputs: EncoderInputs, opts?: { inputGrad?: boolean }): Float32Array;
  /** parameter gradients += … from dlogits [B, L]; returns d(input embeddings or pixels) when the forward asked for inputGrad */
  backward(dlogits: Float32Array): Float32Array | null;
  /** A new classifier head for these labels (random normal(0, initializer_range) weights, zero bias). */
  replaceHead(labels: readonly string[], seed?: number): void;
}

/** Label names from a config: id2label (by index), else num_labels → LABEL_i, else the two of transformers' default. */
export function labelsFromConfig(raw: Record<string, unknown>, where = 'config.json'): string[] {
  const id2label = raw['id2label'];
  if (id2label && typeof id2label === 'object' && !Array.isArray(id2label)) {
    const entries = Object.entries(id2label as Record<string, unknown>);
    const out: string[] = new Array<string>(entries.length);
    for (const [k, v] of entries) {
      const i = Number(k);
      if (!Number.isInteger(i) || i < 0 || i >= entries.length || typeof v !== 'string') {
        throw new Error(`${where}: "id2label" must map "0".."${entries.length - 1}" to label names, got ${JSON.stringify(k)}: ${JSON.stringify(v)}`);
      }
      out[i] = v;
    }
    if (new Set(out).size !== out.length) throw new Error(`${where}: "id2label" names a label twice: ${JSON.stringify(out)}`);
    return out;
  }
  const n = raw['num_labels'];
  const count = typeof n === 'number' && Number.isInteger(n) && n > 0 ? n : 2;
  return Array.from({ length: count }, (_, i) => `LABEL_${i}`);
}

/** Writes id2label / label2id into a config object (as transformers serialises them: string keys). */
export function setConfigLabels(config: Record<string, unknown>, labels: readonly string[]): void {
  config['id2label'] = Object.fromEntries(labels.map((l, i) => [String(i), l]));
  config['label2id'] = Object.fromEntries(labels.map((l, i) => [l, i]));
  delete config['num_labels'];
}

/** Fills a Linear's weight with normal(0, std) (seeded) and zeroes its bias, in the layer's dtype. */
export function initLinear(l: Linear, std: number, rng: Rng): void {
  const w = new Float32Array(l.weight.value.size);
  for (let i = 0; i < w.length; i++) w[i] = rng.normal(0, std);
  l.weight.value = Tensor.fromValues(w, l.weight.shape, l.weight.value.floatDtype);
  if (l.bias) l.bias.value = Tensor.zeros(l.bias.shape, l.bias.value.floatDtype);
}

/**
 * The pieces a family defines (embeddings and head); the layer stack, masks and the
 * forward/backward order live here.
 */
export abstract class EncoderClassifier extends Module implements SequenceClassifier {
  abstract readonly info: ClassifierInfo;
  readonly config: Record<string, unknown>;
  labels: readonly string[];
  /** initializer_range: std of a new head */
  readonly initStd: number;
  /** the stream every dropout of the model draws from (checkpoints save it; see TrainOptions.rngs) */
  readonly rng = new Rng(0);
  private last: { B: number; T: number; inputGrad: boolean } | null = null;
  private readonly ckpt = new GradientCheckpointing(false);
  private gc = false;

  constructor(config: Record<string, unknown>) {
    super();
    this.config = { ...config };
    this.labels = labelsFromConfig(this.config);
    const r = config['initializer_range'];
    this.initStd = typeof r === 'number' && r > 0 ? r : 0.02;
  }

  /** recompute each layer's forward during backward instead of keeping its activations (training only) */
  get gradientCheckpointing(): boolean {
    return this.gc;
  }
  set gradientCheckpointing(on: boolean) {
    this.gc = on;
    if (!on) {
      for (const layer of this.layers) this.ckpt.detach(layer);
      this.ckpt.clear();
    }
  }

  /** the encoder layers, in order */
  abstract get layers(): ModuleList<EncoderLayer>;
  /** h[B·T, C] for the inputs, the additive key mask [B, T] (or null), B and T */
  protected abstract embed(inputs: EncoderInputs): { h: Float32Array; B: number; T: number; mask: Float32Array | null };
  /** parameter gradients += … from dh[B·T, C]; returns d(input) when wanted */
  protected abstract embedBackward(dh: Float32Array, inputGrad: boolean): Float32Array | null;
  protected abstract embedTrainable(): boolean;
  /** logits [B, L] from the last layer's h[B·T, C] */
  protected abstract head(h: Float32Array, B: number, T: number): Float32Array;
  /** parameter gradients += …; returns dh[B·T, C] (owned by the model) or null when needDh is false */
  protected abstract headBackward(dlogits: Float32Array, needDh: boolean): Float32Array | null;
  /** the head module path (for replaceHead): a Linear of C → L */
  protected abstract get headPath(): string;

  forward(inputs: EncoderInputs, opts: { inputGrad?: boolean } = {}): Float32Array {
    const { h: h0, B, T, mask } = this.embed(inputs);
    let h = h0;
    const ctx: EncoderContext = { B, T, mask };
    this.ckpt.enabled = this.gc && this.training;
    for (const layer of this.layers) h = this.ckpt.forward(layer, h, ctx);
    const logits = this.head(h, B, T);
    const L = this.labels.length;
    if (logits.length !== B * L) throw new ShapeError(`${this.info.modelType}.forward: the head gave ${logits.length} values, expected [${B}, ${L}]`);
    this.last = { B, T, inputGrad: opts.inputGrad ?? false };
    return logits;
  }

  backward(dlogits: Float32Array): Float32Array | null {
    const last = this.last;
    if (!last) throw new Error(`${this.info.modelType}.backward called before forward`);
    const L = this.labels.length;
    if (dlogits.length !== last.B * L) throw new ShapeError(`${this.info.modelType}.backward: dlogits has ${dlogits.length} elements, expected [${last.B}, ${L}]`);
    const layers = [...this.layers];
    // below[i]: whether anything under layer i (or the input) needs a gradient
    const below: boolean[] = new Array<boolean>(layers.length + 1);
    below[0] = last.inputGrad || this.embedTrainable();
    for (let i = 0; i < layers.length; i++) below[i + 1] = below[i]! || hasTrainable(layers[i]!);
    let dh = this.headBackward(dlogits, below[layers.length]!);
    for (let i = layers.length - 1; i >= 0 && dh; i--) {
      layers[i]!.computeInputGrad = below[i]!;
      dh = this.ckpt.backward(layers[i]!, dh);
    }
    if (!dh) return null;
    return this.embedBackward(dh, last.inputGrad);
  }

  replaceHead(labels: readonly string[], seed = 0): void {
    if (labels.length === 0) throw new Error(`${this.info.modelType}.replaceHead: no labels`);
    if (new Set(labels).size !== labels.length) throw new Error(`${this.info.modelType}.replaceHead: a label is given twice: ${JSON.stringify(labels)}`);
    const old = this.getModule(this.headPath);
    if (!(old instanceof Linear)) throw new Error(`${this.info.modelType}.replaceHead: ${this.headPath} is a ${old.constructor.name} (an adapter wraps it?); replace the head before injecting adapters`);
    const head = new Linear(old.inFeatures, labels.length, { bias: old.bias !== null, dtype: old.weight.value.floatDtype });
    initLinear(head, this.initStd, new Rng(seed));
    head.training = old.training;
    this.setModule(this.headPath, head);
    this.labels = [...labels];
    setConfigLabels(this.config, labels);
    this.info.numLabels = labels.length;
  }
}

/** The additive key mask [B, T] (0 keeps, −∞ hides) from a 0/1 mask, or null when there is none or it hides nothing. */
export function keyMask(mask: Uint8Array | Int32Array | null | undefined, B: number, T: number, what: string): Float32Array | null {
  if (!mask) return null;
  if (mask.length !== B * T) throw new ShapeError(`${what}: attentionMask has ${mask.length} elements, expected [${B}, ${T}] = ${B * T}`);
  let any = false;
  const out = new Float32Array(B * T);
  for (let i = 0; i < B * T; i++) {
    if (mask[i] === 0) {
      out[i] = -Infinity;
      any = true;
    }
  }
  for (let b = 0; b < B; b++) {
    let keep = false;
    for (let t = 0; t < T; t++) if (mask[b * T + t] !== 0) keep = true;
    if (!keep) throw new RangeError(`${what}: attentionMask row ${b} hides every token`);
  }
  return any ? out : null;
}

/** tanh forward in place: y = tanh(x) */
export function tanhInPlace(x: Float32Array): void {
  getBackend().tanhForward(x, x);
}

/** dx = dy · (1 − y²) for y = tanh(x), written into out */
export function tanhBackward(out: Float32Array, y: Float32Array, dy: Float32Array): void {
  getBackend().tanhBackward(out, y, dy);
}

/** A classification family by config.json model_type (the encoder counterpart of ModelFamily). */
export interface EncoderFamily<Cfg = unknown> {
  /** e.g. 'bert' */
  readonly name: string;
  readonly task: 'text' | 'image';
  /** Validates config.json; throws a ConfigError naming every bad key. */
  parseConfig(json: Record<string, unknown>, where?: string): Cfg;
  /** The module tree (zero weights, unit norms) in the given dtype. */
  build(cfg: Cfg, opts?: { dtype?: DType }): EncoderClassifier;
  /** The key a checkpoint tensor loads into, or null to drop it (heads of other tasks, buffers). */
  sanitizeKey(cfg: Cfg, key: string): string | null;
  /** module paths a checkpoint may lack (a base model has no classifier): built fresh, with a warning */
  readonly optionalPrefixes: readonly string[];
  /** config.json `architectures` entry */
  readonly architecture: string;
  /** PEFT's default LoRA target_modules for the family */
  readonly defaultTargets: readonly string[];
  /** PEFT's modules_to_save for the classification task */
  readonly headModules: readonly string[];
}
