// The pre-norm decoder shared by the families here:
//   h = x + attn(norm1(x));  y = h + mlp(norm2(h))
// or, with post-norms (Gemma's four norms per block: input, post-attention, pre-feedforward,
// post-feedforward), h = x + post1(attn(norm1(x)));  y = h + post2(mlp(norm2(h))).
// A family may softcap the logits (Gemma: logits = c·tanh(logits / c), final_logit_softcapping).
// stacked, then a final norm and the LM head (a Linear, or the token embedding's table
// read transposed when the weights are tied). Families give the child names (checkpoint
// keys) and the input embedding (token table only, or tokens + learned positions).
//
// Letters: B batch, T tokens this call, S keys (cache + new), N = B·T rows, C hidden, V vocab.
import { ACC_LOSS, getBackend, withInferenceProducts, type Accumulator } from '../backend/index.js';
import { KVCache, KVPool, MultiHeadAttention, type AttnContext } from '../nn/attention.js';
import { GradientCheckpointing, SharedScratch, retainedBytes } from '../nn/checkpoint.js';
import type { Embedding } from '../nn/embedding.js';
import type { LayerNorm } from '../nn/layernorm.js';
import type { RowLayer } from '../nn/linear.js';
import type { GatedMLP, GeluMLP } from '../nn/mlp.js';
import { Module, ModuleList, Parameter, checkInto, moduleTreeVersion } from '../nn/module.js';
import type { RMSNorm } from '../nn/rmsnorm.js';
import { hasTrainable } from '../nn/rowlayer.js';
import { IGNORE_INDEX } from '../tensor/labels.js';
import { ShapeError } from '../tensor/tensor.js';
import {
  additiveMask,
  defaultPositions,
  normalizeMask,
  positionsFromMask,
  type CausalLM,
  type CausalLMInfo,
  type ForwardOptions,
} from './causal-lm.js';

export type Norm = RMSNorm | LayerNorm;
export type MLP = GatedMLP | GeluMLP;

export interface BlockNames {
  norm1: string;
  attn: string;
  norm2: string;
  mlp: string;
  /** norms on the attention's and the MLP's outputs, before the residual adds (Gemma) */
  post1?: string;
  post2?: string;
}

/** One decoder layer; its children are looked up by name on every call (LoRA may swap them). */
export class DecoderBlock extends Module {
  readonly names: BlockNames;
  readonly hiddenSize: number;
  /** whether backward() computes dx */
  computeInputGrad = true;
  /**
   * which of two scratch slots backward() returns dx in: neighbouring blocks of a stack use
   * different ones, since a block reads its dy (the block above's dx) while writing its dx
   */
  scratchSlot = 0;
  private N = 0;
  private x: Float32Array | null = null;
  private h: Float32Array | null = null;

  constructor(hiddenSize: number, names: BlockNames, parts: { norm1: Norm; attn: MultiHeadAttention; norm2: Norm; mlp: MLP; post1?: Norm; post2?: Norm }) {
    super();
    this.hiddenSize = hiddenSize;
    this.names = names;
    if ((names.post1 === undefined) !== (parts.post1 === undefined) || (names.post2 === undefined) !== (parts.post2 === undefined)) {
      throw new Error('DecoderBlock: a post-norm needs both its name and its module');
    }
    // registered in the checkpoint's order: input, attention, post-attention, pre-feedforward, mlp, post-feedforward
    this.registerModule(names.norm1, parts.norm1);
    this.registerModule(names.attn, parts.attn);
    if (parts.post1) this.registerModule(names.post1!, parts.post1);
    this.registerModule(names.norm2, parts.norm2);
    this.registerModule(names.mlp, parts.mlp);
    if (parts.post2) this.registerModule(names.post2!, parts.post2);
  }

  get norm1(): Norm {
    return this.getModule(this.names.norm1) as Norm;
  }
  get attn(): MultiHeadAttention {
    return this.getModule(this.names.attn) as MultiHeadAttention;
  }
  get norm2(): Norm {
    return this.getModule(this.names.norm2) as Norm;
  }
  get mlp(): MLP {
    return this.getModule(this.names.mlp) as MLP;
  }
  /** the post-attention norm, or null */
  get post1(): Norm | null {
    return this.names.post1 === undefined ? null : (this.getModule(this.names.post1) as Norm);
  }
  /** the post-feedforward norm, or null */
  get post2(): Norm | null {
    return this.names.post2 === undefined ? null : (this.getModule(this.names.post2) as Norm);
  }

  /** y[N, C] (owned by the block) from x[N, C]; x must stay unchanged until backward */
  forward(x: Float32Array, ctx: AttnContext): Float32Array {
    const N = ctx.B * ctx.T;
    const C = this.hiddenSize;
    if (x.length !== N * C) throw new ShapeError(`DecoderBlock.forward: x has ${x.length} elements, expected [${N}, ${C}]`);
    const be = getBackend();
    const { attn, mlp, post1, post2 } = this;
    // Two stages, each taking its scratch afresh. The attn and mlp outputs are added at once.
    // A norm's output that a learning projection reads again in backward is not kept per
    // block: it is shared and recomputed (one cheap pass) right before that backward. A
    // post-norm reads its input again in backward, so the output it norms is the layer's own.
    this.buffers.releaseScratch();
    let a = attn.forward(this.norm1.forward(x, N, attn.savesInput ? 'shared' : 'scratch'), ctx, post1 === null);
    if (post1) a = post1.forward(a, N, 'scratch');
    const h = this.buffers.get('h', N * C);
    be.add(h, x, a);
    this.buffers.releaseScratch();
    let m = mlp.forward(this.norm2.forward(h, N, mlp.savesInput ? 'shared' : 'scratch'), N, post2 === null);
    if (post2) m = post2.forward(m, N, 'scratch');
    const y = this.buffers.get('y', N * C);
    be.add(y, h, m);
    this.N = N;
    this.x = x;
    this.h = h;
    return y;
  }

  /** parameter gradients += …; returns dx[N, C] (owned by the block) or null */
  backward(dy: Float32Array): Float32Array | null {
    const N = this.N;
    const C = this.hiddenSize;
    if (N === 0) throw new Error('DecoderBlock.backward called before forward');
    if (dy.length !== N * C) throw new ShapeError(`DecoderBlock.backward: dy has ${dy.length} elements, expected [${N}, ${C}]`);
    const { norm1, attn, norm2, mlp, post1, post2 } = this;
    // the gradient at h is needed when anything below it learns or dx is wanted
    const lowerNeeds = this.computeInputGrad || hasTrainable(attn) || hasTrainable(norm1) || (post1 !== null && hasTrainable(post1));
    norm2.computeInputGrad = lowerNeeds;
    mlp.computeInputGrad = lowerNeeds || hasTrainable(norm2);
    if (post2) post2.computeInputGrad = mlp.computeInputGrad || hasTrainable(mlp);
    norm1.computeInputGrad = this.computeInputGrad;
    attn.computeInputGrad = this.computeInputGrad || hasTrainable(norm1);
    if (post1) post1.computeInputGrad = attn.computeInputGrad || hasTrainable(attn);
    const buf = this.buffers;

    buf.releaseScratch();
    if (mlp.savesInput) norm2.forward(this.h!, N, 'shared'); // what mlp's learning layers read
    const dmo = post2 ? post2.backward(dy) : dy;
    const dm = dmo ? mlp.backward(dmo) : null;
    // dh = dy + norm2's dx (the norm adds into a copy of dy)
    const dh = lowerNeeds ? buf.shared('dh', N * C) : null;
    dh?.set(dy);
    if (dm) norm2.backward(dm, dh ?? undefined);
    if (!dh) return null;

    buf.releaseScratch();
    if (attn.savesInput) norm1.forward(this.x!, N, 'shared');
    const dao = post1 ? post1.backward(dh) : dh;
    const da = dao ? attn.backward(dao) : null;
    // dx = dh + norm1's dx, likewise
    const dx = this.computeInputGrad ? buf.shared(this.scratchSlot ? 'dx1' : 'dx0', N * C) : null;
    dx?.set(dh);
    if (da) norm1.backward(da, dx ?? undefined);
    return dx;
  }
}

/** logits[N, V] = x[N, C] · Wᵀ with W [V, C] the token embedding's table (tied weights: no parameter of its own). */
export class TiedLMHead extends Module implements RowLayer {
  readonly inFeatures: number;
  readonly outFeatures: number;
  computeInputGrad = true;
  /** the embedding table this head reads (not registered here: the checkpoint has it once) */
  readonly weight: Parameter;
  private x: Float32Array | null = null;
  private N = 0;

  constructor(embedding: Embedding) {
    super();
    this.weight = embedding.weight;
    this.inFeatures = embedding.embeddingDim;
    this.outFeatures = embedding.numEmbeddings;
  }

  forward(x: Float32Array, N: number, transient = false): Float32Array {
    const { inFeatures: C, outFeatures: V } = this;
    if (x.length !== N * C) throw new ShapeError(`TiedLMHead.forward: x has ${x.length} elements, expected [${N}, ${C}]`);
    const out = transient ? this.buffers.scratch('out', N * V) : this.buffers.get('out', N * V);
    const W = this.weight.value;
    getBackend().gemm(out, x, W.data, { M: N, N: V, K: C, transB: true, bDtype: W.dtype });
    this.x = x;
    this.N = N;
    return out;
  }

  backward(dy: Float32Array, into?: Float32Array): Float32Array | null {
    const { N, inFeatures: C, outFeatures: V, x } = this;
    if (!x) throw new Error('TiedLMHead.backward called before forward');
    if (dy.length !== N * V) throw new ShapeError(`TiedLMHead.backward: dy has ${dy.length} elements, expected [${N}, ${V}]`);
    const be = getBackend();
    const W = this.weight.value;
    if (this.weight.grad) be.gemm(this.weight.grad, dy, x, { M: V, N: C, K: N, transA: true, accumulate: true });
    if (!this.computeInputGrad) return null;
    const dx = checkInto(into, N, C, 'TiedLMHead.backward') ?? this.buffers.scratch('dx', N * C);
    be.gemm(dx, dy, W.data, { M: N, N: C, K: V, bDtype: W.dtype, accumulate: into !== undefined });
    return dx;
  }
}

/** The stack's container: `model` (LLaMA) or `transformer` (GPT-2). */
export class Backbone extends Module {
  /** Registers a child (the families fill their backbone from outside). */
  add<M extends Module>(name: string, m: M): M {
    return this.registerModule(name, m);
  }
}

export interface DecoderLMNames {
  /** the container of everything but the head: 'model' or 'transformer' */
  backbone: string;
  /** within the backbone */
  embed: string;
  layers: string;
  norm: string;
  /** at the root */
  head: string;
}

/**
 * A decoder-only causal LM over DecoderBlocks. Subclasses build the tree (in their
 * constructor, then call init()) and define the input embedding.
 */
export abstract class DecoderLM extends Module implements CausalLM {
  abstract readonly info: CausalLMInfo;
  readonly config: Readonly<Record<string, unknown>>;
  readonly dnames: DecoderLMNames;
  private logitsBlockSet: number | null = null;
  private readonly ckpt = new GradientCheckpointing(false);
  /** the blocks' shared scratch when they run without checkpointing */
  private readonly scratch = new SharedScratch();
  private gc = false;
  private last: { B: number; T: number; N: number; inputGrad: boolean; lastOnly: boolean; usedCache: boolean; hn: Float32Array } | null = null;
  /** moduleTreeVersion() when the blocks were last attached for cached forwards (-1: they are not; see hidden()) */
  private attachedVersion = -1;
  /** c of the logits' softcapping, c·tanh(logits / c) (Gemma's final_logit_softcapping); 0: none */
  protected logitSoftcap = 0;

  constructor(config: Readonly<Record<string, unknown>>, names: DecoderLMNames) {
    super();
    this.config = config;
    this.dnames = names;
  }

  /**
   * Floats of logits lossForwardBackward() holds at a time (rows of V per block: at least one).
   * Default: 8M floats (32 MiB) or LOGITS_MIN_ROWS rows of the vocabulary, whichever is more.
   */
  get logitsBlock(): number {
    return this.logitsBlockSet ?? defaultLogitsBlock(this.info.vocabSize);
  }
  set logitsBlock(floats: number) {
    this.logitsBlockSet = floats;
  }

  get gradientCheckpointing(): boolean {
    return this.gc;
  }
  set gradientCheckpointing(on: boolean) {
    this.gc = on;
    this.attachedVersion = -1;
    if (!on) {
      for (const blk of this.layers) this.ckpt.detach(blk);
      this.ckpt.clear();
    }
  }

  get backbone(): Module {
    return this.getModule(this.dnames.backbone);
  }
  get layers(): ModuleList<DecoderBlock> {
    return this.backbone.getModule(this.dnames.layers) as ModuleList<DecoderBlock>;
  }
  get finalNorm(): Norm {
    return this.backbone.getModule(this.dnames.norm) as Norm;
  }
  get embedTokens(): Embedding {
    return this.backbone.getModule(this.dnames.embed) as Embedding;
  }
  get lmHead(): RowLayer {
    return this.getModule(this.dnames.head) as unknown as RowLayer;
  }

  /** arrays of released KV caches, for the next ones (KVPool: one cache's worth) */
  private kvPool: KVPool | null = null;

  /**
   * A KV cache for this model: a sliding layer's keeps only its window (docs/ARCHITECTURE.md
   * §Model families). Its arrays come from the model's pool and go back to it on release().
   */
  createCache(capacity?: number): KVCache {
    this.kvPool ??= new KVPool(2 * this.layers.length);
    return new KVCache(this.layers.length, { windows: [...this.layers].map((blk) => blk.attn.core.window), pool: this.kvPool, capacity });
  }

  /**
   * Readies the model to generate from B prompts of T tokens with `context` slots per row
   * (default T), as llama.cpp readies itself when it creates a context: one forward of B×T
   * tokens (id 0) with generation's products into a cache of that capacity, which is then
   * released. The step buffers for B·T rows, the kernels' scratch and the thread pool are
   * then allocated and touched, and the cache's arrays wait in the pool for the next cache,
   * so the first prompt of that size costs what later ones do (docs/ARCHITECTURE.md
   * §Decoding). Memory held afterwards: what the first such prompt would leave anyway.
   */
  prepareGeneration(B: number, T: number, context = T): void {
    if (!(Number.isInteger(B) && B > 0 && Number.isInteger(T) && T > 0 && Number.isInteger(context) && context >= T)) {
      throw new RangeError(`prepareGeneration: B and T must be positive integers and context ≥ T, got B=${B}, T=${T}, context=${context}`);
    }
    if (T > this.info.maxPositions) throw new RangeError(`prepareGeneration: T=${T} is beyond the model's ${this.info.maxPositions} positions`);
    const wasTraining = this.training;
    this.eval();
    const cache = this.createCache(context);
    try {
      withInferenceProducts(() => this.forward(new Int32Array(B * T), B, T, { cache, lastTokenOnly: true }));
    } finally {
      cache.release();
      if (wasTraining) this.train();
    }
  }

  /** Bytes of activations and scratch held: the modules' buffers, the blocks' shared scratch, the checkpointing arena. */
  get bufferBytes(): number {
    return retainedBytes(this, this.scratch, this.ckpt);
  }

  /** whether this call's h came from token ids (the embedding's gradient is then owed) */
  protected embeddedFromIds = false;

  /**
   * h[N, C] (owned by the model) for this call's input; positions[N] are absolute. The default
   * is the token embedding alone (llama, phi3); families with more (positions, a scale) override.
   */
  protected embed(ids: Int32Array | null, inputsEmbeds: Float32Array | null, _positions: Int32Array, _B: number, _T: number): Float32Array {
    this.embeddedFromIds = inputsEmbeds === null;
    return inputsEmbeds ?? this.embedTokens.forward(ids!);
  }
  /** Backward of embed(): parameter gradients += …; dh is also d(inputs embeds). */
  protected embedBackward(dh: Float32Array): void {
    if (this.embeddedFromIds) this.embedTokens.backward(dh);
  }
  /** whether embed() has trainable parameters */
  protected embedTrainable(): boolean {
    return this.embedTokens.weight.requiresGrad;
  }
  /** Called before the stack runs with the largest position of this call (dynamic rope). */
  protected prepare(maxPosition: number): void {
    void maxPosition;
  }

  forward(ids: Int32Array | null, B: number, T: number, opts: ForwardOptions = {}): Float32Array {
    const V = this.info.vocabSize;
    const { hn, rows } = this.hidden(ids, B, T, opts, `${this.info.modelType}.forward`);
    const logits = this.lmHead.forward(hn, rows);
    if (logits.length !== rows * V) throw new ShapeError(`${this.info.modelType}.forward: the LM head gave ${logits.length} values, expected [${rows}, ${V}]`);
    if (this.logitSoftcap > 0) softcapForward(logits, this.buffers.get('softcap.t', logits.length), this.logitSoftcap);
    return logits;
  }

  /**
   * Next-token cross-entropy straight from the final hidden states: the head runs over
   * blocks of rows, so only [rows, V] logits exist at a time, never [B·T, V]. targets[B·T]
   * are the labels already shifted (targets[b, t] = labels[b, t + 1]; −100 is ignored).
   * With gradScale (the factor on each token's loss, e.g. 1 / tokens counted) the backward
   * runs too, adding into the trainable gradients. Returns the summed loss, the tokens
   * counted and, when opts.inputGrad, d(input embeddings) [B, T, C].
   */
  lossForwardBackward(
    ids: Int32Array | null,
    B: number,
    T: number,
    targets: Int32Array,
    gradScale: number | null,
    opts: Omit<ForwardOptions, 'cache' | 'lastTokenOnly'> = {},
    acc?: Accumulator,
  ): { lossSum: number; count: number; inputGrad: Float32Array | null } {
    const what = `${this.info.modelType}.lossForwardBackward`;
    const C = this.info.hiddenSize;
    const V = this.info.vocabSize;
    const N = B * T;
    if (targets.length !== N) throw new ShapeError(`${what}: targets has ${targets.length} elements, expected [${B}, ${T}] = ${N}`);
    let count = 0;
    for (let n = 0; n < N; n++) {
      const y = targets[n]!;
      if (y === IGNORE_INDEX) continue;
      if (!(y >= 0 && y < V)) throw new RangeError(`${what}: target ${y} (row ${Math.floor(n / T)}, position ${n % T}) is outside the vocabulary 0..${V - 1} (use ${IGNORE_INDEX} to ignore a token)`);
      count++;
    }
    // a forward-only call (an evaluation) runs through the checkpointing arena when checkpointing
    // is on, as training does: no block keeps activations for a backward that never comes
    const { hn } = this.hidden(ids, B, T, { ...opts, cache: null, lastTokenOnly: false }, what, gradScale === null);
    const head = this.lmHead;
    // the blocks' scratch is idle between their forward and backward: the logits take it
    this.scratch.attach(head as unknown as Module);
    const backward = gradScale !== null;
    const needDh = backward && this.planBackward();
    const be = getBackend();
    const dhn = needDh ? this.buffers.get('dhn', N * C) : null;
    // blocks of equal size (a small last block would run the head GEMM at a poor shape)
    const blocks = Math.ceil(N / Math.max(1, Math.min(N, Math.floor(this.logitsBlock / V))));
    const R = Math.ceil(N / blocks);
    const losses = this.buffers.get('losses', R);
    // the loss is summed on the backend: into the caller's accumulator (lossSum 0), or one
    // read back at the end (docs/ARCHITECTURE.md §Backend memory)
    const sums = acc ?? be.memory.allocAccumulator(1);
    const slot = acc ? ACC_LOSS : 0;
    for (let r0 = 0; r0 < N; r0 += R) {
      const rows = Math.min(R, N - r0);
      const t = targets.subarray(r0, r0 + rows);
      if (t.every((y) => y === IGNORE_INDEX)) {
        dhn?.fill(0, r0 * C, (r0 + rows) * C); // no loss here, so no gradient either
        continue;
      }
      this.scratch.arena.release();
      const logits = head.forward(hn.subarray(r0 * C, (r0 + rows) * C), rows, true);
      const capT = this.logitSoftcap > 0 ? this.buffers.get('softcap.t', rows * V) : null;
      if (capT) softcapForward(logits, capT, this.logitSoftcap);
      const l = losses.subarray(0, rows);
      if (backward) be.crossEntropyLossGrad(l, logits, logits, t, rows, V, gradScale, IGNORE_INDEX);
      else be.crossEntropyForward(l, logits, t, rows, V, IGNORE_INDEX);
      be.sumInto(sums, slot, l);
      if (!backward) continue;
      if (capT) softcapBackward(logits, logits, capT);
      const d = head.backward(logits);
      if (dhn && d) be.copy2d(dhn, d, { rows: 1, cols: d.length, dstOffset: r0 * C });
    }
    const inputGrad = dhn ? this.backwardStack(dhn) : null;
    return { lossSum: acc ? 0 : sums[0]!, count, inputGrad };
  }

  /** Runs the embedding, the blocks and the final norm (records what backward needs); hn is [rows, C]. */
  private hidden(ids: Int32Array | null, B: number, T: number, opts: ForwardOptions, what: string, forwardOnly = false): { hn: Float32Array; rows: number } {
    const C = this.info.hiddenSize;
    if (!(Number.isInteger(B) && B > 0 && Number.isInteger(T) && T > 0)) throw new ShapeError(`${what}: B and T must be positive integers, got B=${B}, T=${T}`);
    const embeds = opts.inputsEmbeds ?? null;
    if (embeds) {
      if (embeds.length !== B * T * C) throw new ShapeError(`${what}: inputsEmbeds has ${embeds.length} elements, expected [${B}, ${T}, ${C}] = ${B * T * C}`);
    } else if (!ids) {
      throw new Error(`${what}: pass input ids or inputsEmbeds`);
    } else if (ids.length !== B * T) {
      throw new ShapeError(`${what}: ids has ${ids.length} elements, expected [${B}, ${T}] = ${B * T}`);
    }
    const cache = opts.cache ?? null;
    const P = cache ? cache.length : 0;
    if (cache && P > 0 && cache.batch !== B) throw new ShapeError(`${what}: the KV cache holds ${cache.batch} rows, the input has B=${B}`);
    if (cache && cache.layers.length !== this.layers.length) throw new ShapeError(`${what}: the KV cache has ${cache.layers.length} layers, the model ${this.layers.length}`);
    const S = P + T;
    const mask = opts.attentionMask ? normalizeMask(opts.attentionMask, B, S, `${what}: attentionMask`) : null;
    let positions: Int32Array;
    if (opts.positionIds) {
      if (opts.positionIds.length !== B * T) throw new ShapeError(`${what}: positionIds has ${opts.positionIds.length} elements, expected [${B}, ${T}] = ${B * T}`);
      positions = opts.positionIds;
    } else {
      positions = mask ? positionsFromMask(mask, B, S, T) : defaultPositions(B, T, P);
    }
    let maxPos = 0;
    for (let i = 0; i < positions.length; i++) {
      const p = positions[i]!;
      if (p < 0) throw new RangeError(`${what}: position ${p} at row ${Math.floor(i / T)}, token ${i % T} is negative`);
      if (p > maxPos) maxPos = p;
    }
    if (maxPos >= this.info.maxPositions) throw new RangeError(`${what}: position ${maxPos} is beyond the model's ${this.info.maxPositions} positions (max_position_embeddings / n_positions)`);
    this.prepare(maxPos);
    const amask = combineMasks(additiveMask(mask, B, S), opts.attentionBias ?? null, B, T, S, what);
    const N = B * T;
    const inputGrad = opts.inputGrad ?? false;

    let h = this.embed(ids, embeds, positions, B, T);
    // Checkpointing runs the blocks through one shared arena (one block's activations, not one
    // per block, nn/checkpoint.ts): for training, and for forward-only calls while it is on, so an
    // evaluation between steps holds no per-block buffers (docs/ARCHITECTURE.md §Quantized weights).
    const useCkpt = this.gc && !cache && (this.training || forwardOnly);
    this.ckpt.enabled = useCkpt;
    const layers = this.layers;
    // Cached forwards (decoding steps, prompts) run the same blocks: they are attached to the
    // shared scratch as InferenceBuffers (and detached from the checkpointing arena) when the
    // last forward was not a cached one or a module was registered or replaced since
    // (moduleTreeVersion), not on every call: each attach walks the block's module tree
    // (~4% of a decoding step, ~1 ms of a 512-token prompt; docs/ARCHITECTURE.md §Decoding).
    // A module added between them otherwise (an adapter's dropout, held in a field) keeps its
    // own buffers until the next attach: correct, only not shared. Uncached forwards attach
    // every call, with the blocks' own activations (backward reads them).
    const version = moduleTreeVersion();
    const attach = !useCkpt && (cache === null || this.attachedVersion !== version);
    this.attachedVersion = !useCkpt && cache !== null ? version : -1;
    for (let i = 0; i < layers.length; i++) {
      const ctx: AttnContext = { B, T, positions, mask: amask, cache: cache ? cache.layer(i) : null };
      const blk = layers.at(i);
      if (!useCkpt) {
        if (attach) this.scratch.attach(blk, cache !== null);
        blk.scratchSlot = i & 1;
      }
      h = attach || useCkpt ? this.ckpt.forward(blk, h, ctx) : blk.forward(h, ctx);
    }
    let rows = N;
    const lastOnly = opts.lastTokenOnly ?? false;
    if (lastOnly && T > 1) {
      // the norm is per row: only the rows kept are normed (no backward can follow lastTokenOnly)
      const sel = this.buffers.get('last', B * C);
      for (let b = 0; b < B; b++) sel.set(h.subarray(((b + 1) * T - 1) * C, (b + 1) * T * C), b * C);
      h = sel;
    }
    if (lastOnly) rows = B;
    const hn = this.finalNorm.forward(h, rows);
    this.last = { B, T, N, inputGrad, lastOnly, usedCache: cache !== null, hn };
    return { hn, rows };
  }

  backward(dlogits: Float32Array): Float32Array | null {
    const last = this.last;
    if (!last) throw new Error(`${this.info.modelType}.backward called before forward`);
    if (last.lastOnly) throw new Error(`${this.info.modelType}.backward: the last forward computed only the last token's logits (lastTokenOnly); run forward without it to train`);
    if (last.usedCache) throw new Error(`${this.info.modelType}.backward: the last forward used a KV cache; backward needs a forward without one`);
    const V = this.info.vocabSize;
    if (dlogits.length !== last.N * V) throw new ShapeError(`${this.info.modelType}.backward: dlogits has ${dlogits.length} elements, expected [${last.B}, ${last.T}, ${V}]`);
    if (this.logitSoftcap > 0) {
      const dz = this.buffers.get('softcap.dz', dlogits.length);
      softcapBackward(dz, dlogits, this.buffers.get('softcap.t', dlogits.length));
      dlogits = dz;
    }
    if (!this.planBackward()) {
      this.lmHead.backward(dlogits); // a trainable head still gets its gradient
      return null;
    }
    const dhn = this.lmHead.backward(dlogits);
    return dhn ? this.backwardStack(dhn) : null;
  }

  /**
   * Sets which modules compute input gradients for this backward (none below the lowest
   * layer that learns, unless the input gradient is wanted); returns whether the head must
   * give d(final norm output).
   */
  private planBackward(): boolean {
    const last = this.last!;
    const layers = this.layers;
    // below[i]: whether anything at or below layer i − 1 (or the embedding) learns or dx is wanted there
    const below: boolean[] = new Array<boolean>(layers.length + 1);
    below[0] = last.inputGrad || this.embedTrainable();
    for (let i = 0; i < layers.length; i++) below[i + 1] = below[i]! || hasTrainable(layers.at(i));
    for (let i = 0; i < layers.length; i++) layers.at(i).computeInputGrad = below[i]!;
    const norm = this.finalNorm;
    norm.computeInputGrad = below[layers.length]!;
    const head = this.lmHead;
    head.computeInputGrad = norm.computeInputGrad || hasTrainable(norm);
    return head.computeInputGrad;
  }

  /** Backward from d(final norm output) [N, C] through the norm, the blocks and the embedding. */
  private backwardStack(dhn: Float32Array): Float32Array | null {
    let dh = this.finalNorm.backward(dhn);
    const layers = this.layers;
    for (let i = layers.length - 1; i >= 0 && dh; i--) dh = this.ckpt.backward(layers.at(i), dh);
    if (!dh) return null;
    this.embedBackward(dh);
    return this.last!.inputGrad ? dh : null;
  }
}

/**
 * Softcapping z[n] ← c·tanh(z[n] / c) in place, keeping t[n] = tanh(z[n] / c) for the backward;
 * three kernels (scale, tanh, scale): the division is a multiplication by 1/c, which may differ
 * from torch's z / c in the last bit.
 */
function softcapForward(z: Float32Array, t: Float32Array, c: number): void {
  const be = getBackend();
  be.scale(t, z, 1 / c);
  be.tanhForward(t, t);
  be.scale(z, t, c);
}

/** dz[n] = dy[n] · (1 − t[n]²) (dz may alias dy) */
function softcapBackward(dz: Float32Array, dy: Float32Array, t: Float32Array): void {
  getBackend().tanhBackward(dz, t, dy);
}

/**
 * Floats of logits the fused loss holds at a time (32 MiB, in the blocks' scratch): the head
 * runs over N·V in blocks of rows this size. Fewer, larger blocks pass over the head's
 * weights fewer times.
 */
const LOGITS_BLOCK = 1 << 23;
/**
 * Rows of logits the default block holds at least (GPT-2: 512 × 50257 floats, 103 MB). The
 * head's two products pack the whole [V, C] weight once per block, so their speed grows with
 * the rows: GPT-2's head ran at about 120 GFLOP/s in blocks of 147 rows (what 32 MiB gave),
 * 135 in 256 and 150 in 512. Set logitsBlock to hold less.
 */
const LOGITS_MIN_ROWS = 512;

/** The default logits block for a vocabulary of V words: 8M floats or 512 rows, whichever is more. */
export function defaultLogitsBlock(V: number): number {
  return Math.max(LOGITS_BLOCK, LOGITS_MIN_ROWS * V);
}

/**
 * Adds a caller's additive bias [B, T, S] (e.g. packed rows: attention kept within each
 * example) to the model's own mask ([B, S], [B, T, S] or none).
 */
function combineMasks(own: Float32Array | null, bias: Float32Array | null, B: number, T: number, S: number, what: string): Float32Array | null {
  if (!bias) return own;
  if (bias.length !== B * T * S) throw new ShapeError(`${what}: attentionBias has ${bias.length} elements, expected [${B}, ${T}, ${S}] = ${B * T * S}`);
  if (!own) return bias;
  const be = getBackend();
  const out = be.memory.alloc(B * T * S);
  be.addMasks(out, bias, own, B, T, S);
  return out;
}
