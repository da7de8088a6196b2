// What every causal language model offers (CausalLM), and the pieces they share: positions
// and additive masks from a 0/1 attention mask, and the next-token cross-entropy loss with
// transformers' semantics.
//
// Letters: B batch, T tokens per row in this call, P tokens already in the KV cache,
// S = P + T keys, C hidden size, V vocabulary.
import { getBackend, type Accumulator } from '../backend/index.js';
import type { KVCache } from '../nn/attention.js';
import type { Module } from '../nn/module.js';
import { IGNORE_INDEX } from '../tensor/labels.js';
import { ShapeError } from '../tensor/tensor.js';

/** A 0/1 mask: 1 keeps a token, 0 hides it (padding). */
export type AttentionMask = Int32Array | Uint8Array | Float32Array | readonly number[];

export interface ForwardOptions {
  /**
   * [B, S] 0/1 over every key this call attends to (the P cached tokens, then the T new
   * ones), or [B, T] without a cache. Left padding: zeros first. Default: all ones.
   */
  attentionMask?: AttentionMask | undefined;
  /** [B, T] absolute positions; default cumsum(mask) − 1 over [B, S] (1 where masked), as transformers' generate() computes them, else P + t */
  positionIds?: Int32Array | undefined;
  /** the KV cache to read earlier keys from and append this call's keys to (inference only) */
  cache?: KVCache | null | undefined;
  /** [B, T, C] input embeddings used instead of looking up ids (ids may then be null) */
  inputsEmbeds?: Float32Array | undefined;
  /** an additive bias [B, T, S] added to the attention scores (0 keeps, −∞ hides), e.g. for packed rows */
  attentionBias?: Float32Array | undefined;
  /** make backward() return the gradient w.r.t. the input embeddings [B, T, C] */
  inputGrad?: boolean | undefined;
  /** compute logits only for the last position of each row: [B, V] instead of [B, T, V] */
  lastTokenOnly?: boolean | undefined;
}

export interface CausalLMInfo {
  modelType: string;
  vocabSize: number;
  hiddenSize: number;
  numLayers: number;
  /** largest position the model supports (learned position tables), or Infinity */
  maxPositions: number;
}

export interface CausalLM extends Module {
  readonly info: CausalLMInfo;
  /** the config the model was built from (config.json's object, as written by saveModel) */
  readonly config: Readonly<Record<string, unknown>>;
  /** recompute each decoder block's forward during backward instead of keeping its activations */
  gradientCheckpointing: boolean;
  /** logits [B, T, V] (or [B, V] with lastTokenOnly); owned by the model until its next forward */
  forward(ids: Int32Array | null, B: number, T: number, opts?: ForwardOptions): Float32Array;
  /** from dlogits of the last forward: adds into trainable gradients; returns d(input embeddings) [B, T, C] when the forward asked for inputGrad, else null */
  backward(dlogits: Float32Array): Float32Array | null;
  /** a KV cache with one layer per decoder block (`capacity` slots per row allocated at its first append) */
  createCache(capacity?: number): KVCache;
  /** readies buffers, kernels and a KV cache's arrays for prompts of B×T tokens (DecoderLM.prepareGeneration) */
  prepareGeneration?(B: number, T: number, context?: number): void;
  /**
   * The summed next-token loss over targets[B·T] (labels already shifted, −100 ignored)
   * without holding the full [B·T, V] logits; with gradScale (the factor on each token's
   * loss) also the backward. Models without it are trained through forward() and backward().
   */
  lossForwardBackward?(
    ids: Int32Array | null,
    B: number,
    T: number,
    targets: Int32Array,
    gradScale: number | null,
    opts?: Omit<ForwardOptions, 'cache' | 'lastTokenOnly'>,
    /** when given, the loss is added into acc[ACC_LOSS] on the backend and lossSum is 0 (docs/ARCHITECTURE.md §Backend memory) */
    acc?: Accumulator,
  ): { lossSum: number; count: number; inputGrad: Float32Array | null };
}

// ---------------------------------------------------------------------------------------
// masks and positions

/** Checks a 0/1 mask of B·S entries and returns it as a Uint8Array (1 keep, 0 hide). */
export function normalizeMask(mask: AttentionMask, B: number, S: number, what = 'attentionMask'): Uint8Array {
  if (mask.length !== B * S) throw new ShapeError(`${what}: expected [${B}, ${S}] = ${B * S} entries (0/1), got ${mask.length}`);
  const out = new Uint8Array(B * S);
  for (let i = 0; i < mask.length; i++) {
    const m = mask[i]!;
    if (m !== 0 && m !== 1) throw new RangeError(`${what}: entry ${i} (row ${Math.floor(i / S)}, column ${i % S}) is ${m}; expected 0 or 1`);
    out[i] = m;
  }
  return out;
}

/**
 * positions[B, T] of the last T columns of a mask [B, S]: cumsum(mask) − 1 along each row,
 * 1 where the mask is 0 (transformers' generate()).
 */
export function positionsFromMask(mask: Uint8Array, B: number, S: number, T: number): Int32Array {
  const out = new Int32Array(B * T);
  for (let b = 0; b < B; b++) {
    let c = 0;
    for (let s = 0; s < S; s++) {
      const m = mask[b * S + s]!;
      c += m;
      const t = s - (S - T);
      if (t >= 0) out[b * T + t] = m ? c - 1 : 1;
    }
  }
  return out;
}

/** positions[B, T] = P + t */
export function defaultPositions(B: number, T: number, P: number): Int32Array {
  const out = new Int32Array(B * T);
  for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) out[b * T + t] = P + t;
  return out;
}

/**
 * The additive key-padding mask the attention kernel takes: [B, S] (0 keep, −∞ hide). Null
 * when nothing is hidden. (A sliding window is the kernel's own argument, not a mask.)
 */
export function additiveMask(mask: Uint8Array | null, B: number, S: number): Float32Array | null {
  if (!mask || mask.every((m) => m === 1)) return null;
  const be = getBackend();
  const out = be.memory.alloc(B * S);
  be.additiveMask(out, mask, B, S);
  return out;
}

// ---------------------------------------------------------------------------------------
// loss

export interface LossResult {
  /** mean next-token cross-entropy over counted tokens (0 when none is counted) */
  loss: number;
  /** tokens counted (labels other than −100 after the shift) */
  count: number;
}

/** targets[B·T]: targets[b, t] = labels[b, t + 1], −100 at the last position of each row */
export function shiftLabels(labels: Int32Array, B: number, T: number): Int32Array {
  if (labels.length !== B * T) throw new ShapeError(`shiftLabels: labels has ${labels.length} elements, expected [${B}, ${T}] = ${B * T}`);
  const out = new Int32Array(B * T);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T - 1; t++) out[b * T + t] = labels[b * T + t + 1]!;
    out[b * T + T - 1] = IGNORE_INDEX;
  }
  return out;
}

/**
 * transformers' ForCausalLMLoss: logits [B, T, V] predict labels shifted left by one;
 * labels of −100 are ignored; the mean is over the tokens counted.
 */
export function causalLMLoss(logits: Float32Array, labels: Int32Array, B: number, T: number, V: number): LossResult {
  if (logits.length !== B * T * V) throw new ShapeError(`causalLMLoss: logits has ${logits.length} elements, expected [${B}, ${T}, ${V}] = ${B * T * V}`);
  const targets = shiftLabels(labels, B, T);
  const N = B * T;
  let count = 0;
  for (let n = 0; n < N; n++) {
    const y = targets[n]!;
    if (y === IGNORE_INDEX) continue;
    if (y < 0 || y >= V) throw new RangeError(`causalLMLoss: label ${y} (row ${Math.floor((n + 1) / T)}, position ${(n % T) + 1}) is outside the vocabulary 0..${V - 1} (use ${IGNORE_INDEX} to ignore a token)`);
    count++;
  }
  if (count === 0) return { loss: 0, count };
  const be = getBackend();
  const losses = be.memory.alloc(N);
  be.crossEntropyForward(losses, logits, targets, N, V, IGNORE_INDEX);
  // summed on the backend, read back here: the caller wants a number
  const acc = be.memory.allocAccumulator(1);
  be.sumInto(acc, 0, losses);
  return { loss: acc[0]! / count, count };
}

/** Writes dlogits [B, T, V] = d(mean loss)/d(logits) (zeros when nothing is counted). */
export function causalLMLossBackward(dlogits: Float32Array, logits: Float32Array, labels: Int32Array, B: number, T: number, V: number, count: number): void {
  if (dlogits.length !== B * T * V) throw new ShapeError(`causalLMLossBackward: dlogits has ${dlogits.length} elements, expected [${B}, ${T}, ${V}] = ${B * T * V}`);
  if (count === 0) {
    dlogits.fill(0);
    return;
  }
  getBackend().crossEntropyBackward(dlogits, logits, shiftLabels(labels, B, T), B * T, V, 1 / count, IGNORE_INDEX);
}

export interface LossAndBackwardOptions extends Omit<ForwardOptions, 'cache' | 'lastTokenOnly'> {
  /** labels [B, T]; default: the input ids (with −100 where the attention mask is 0) */
  labels?: Int32Array;
}

/** forward, the loss, backward; returns the loss and the token count. */
export function lossAndBackward(model: CausalLM, ids: Int32Array | null, B: number, T: number, opts: LossAndBackwardOptions = {}): LossResult & { inputGrad: Float32Array | null } {
  let labels = opts.labels;
  if (!labels) {
    if (!ids) throw new Error('lossAndBackward: pass labels when the input is given as inputsEmbeds');
    labels = ids.slice();
    if (opts.attentionMask) {
      const m = normalizeMask(opts.attentionMask, B, T);
      for (let i = 0; i < labels.length; i++) if (!m[i]) labels[i] = IGNORE_INDEX;
    }
  }
  const { labels: _l, ...fwd } = opts;
  void _l;
  if (model.lossForwardBackward) {
    const targets = shiftLabels(labels, B, T);
    let counted = 0;
    for (const y of targets) if (y !== IGNORE_INDEX) counted++;
    const { lossSum, count, inputGrad } = model.lossForwardBackward(ids, B, T, targets, counted > 0 ? 1 / counted : 0, fwd);
    return { loss: count > 0 ? lossSum / count : 0, count, inputGrad };
  }
  const V = model.info.vocabSize;
  const logits = model.forward(ids, B, T, fwd);
  const res = causalLMLoss(logits, labels, B, T, V);
  const dlogits = model.buffers.get('dlogits', B * T * V);
  causalLMLossBackward(dlogits, logits, labels, B, T, V, res.count);
  const inputGrad = model.backward(dlogits);
  return { ...res, inputGrad };
}
