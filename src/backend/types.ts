// The kernel interface. A backend implements these and nothing else: no model logic.
// A backend owns its memory (`memory`, docs/ARCHITECTURE.md §Backend memory): buffers are
// allocated by it and held above it as handles; kernels take handles. Every kernel works on
// flat row-major buffers; the comment above each gives the shapes in the letters the
// arguments use. Shapes are checked once, at the op boundary (the nn
// layers that call the kernels, docs/ARCHITECTURE.md §Layers); kernels assume valid input.
//
// Conventions:
// - `Storage` operands may be f32 (Float32Array) or half (Uint16Array, with a dtype of
//   'f16' or 'bf16' given alongside); half data is widened to f32 as it is read.
// - Backward kernels ADD into their gradient buffers (one zeroGrad per step clears them),
//   unless the comment says "writes".
// - A `null` gradient buffer means "not needed": the kernel skips that work.
// - Sums that feed the loss or the gradient norm add into an Accumulator (no number is
//   returned), so a device backend reads back once per training step.
import type { QuantDType } from '../tensor/quant.js';
import type { DType, Storage, TensorDType, TensorStorage } from '../tensor/tensor.js';

// ---- memory (docs/ARCHITECTURE.md §Backend memory) ----

/**
 * A backend's f32 buffer handle. The host-memory backends (ref, native; wasm on a heap that
 * does not detach) hand out the Float32Array itself, so a handle is its own view and a kernel
 * call costs what it did before handles.
 */
export type F32Buf = Float32Array;
/** A backend's 16-bit (f16/bf16) buffer handle; on host-memory backends the Uint16Array itself. */
export type HalfBuf = Uint16Array;
/** A few f64 sums kept on the backend for one readback per step (slots LOSS, GRAD_SQ, …). */
export type Accumulator = Float64Array;

/** The accumulator slots the training step uses. */
export const ACC_LOSS = 0;
export const ACC_GRAD_SQ = 1;
export const ACC_SLOTS = 2;

/** How the host reaches a backend's memory (docs/ARCHITECTURE.md §Backend memory). */
export interface BackendMemory {
  /** true when view() works: the host addresses the backend's memory directly (CPU, wasm) */
  readonly hostVisible: boolean;
  /** a zero-filled f32 buffer of n elements, owned by the backend until free() */
  alloc(n: number): F32Buf;
  /** a zero-filled 16-bit buffer of n elements */
  allocHalf(n: number, dtype: HalfDType): HalfBuf;
  /**
   * The host's array over a buffer (host-visible backends only; throws otherwise). Re-derive
   * it at the point of use: do not keep it across a call that may allocate.
   */
  view(h: F32Buf): Float32Array;
  /** Writes host values into the buffer from `offset` (an upload for a device backend). */
  write(h: F32Buf, src: ArrayLike<number>, offset?: number): void;
  /** A host copy of the buffer (an asynchronous readback for a device backend). */
  read(h: F32Buf): Promise<Float32Array>;
  /** Gives a buffer back (CPU backends leave it to the garbage collector). */
  free(h: F32Buf | HalfBuf): void;
  /** An accumulator of `slots` sums, zeroed. */
  allocAccumulator(slots: number): Accumulator;
  /** Sets every slot to 0. */
  clearAccumulator(acc: Accumulator): void;
  /** The host's copy of the slots: the step's one readback. */
  readAccumulator(acc: Accumulator): Promise<Float64Array>;
}

export type HalfDType = 'f16' | 'bf16';
export type GeluApprox = 'none' | 'tanh';

export interface GemmArgs {
  M: number;
  N: number;
  K: number;
  /** A is stored [K, M] (read as its transpose) instead of [M, K]. */
  transA?: boolean;
  /** B is stored [N, K] (read as its transpose) instead of [K, N]. */
  transB?: boolean;
  /** C += alpha·op(A)·op(B) instead of C = alpha·op(A)·op(B). */
  accumulate?: boolean;
  /** Scale of the product; default 1. */
  alpha?: number;
  /**
   * Storage dtype of A / B when they are not f32: 'f16' / 'bf16' (Uint16Array) or quantized
   * blocks (Uint8Array, tensor/quant.ts; B only on the native backend, rows of B as stored are
   * whole blocks and ldb is in values). Default 'f32'.
   */
  aDtype?: TensorDType;
  bDtype?: TensorDType;
  /** Row strides in elements of A, B, C as stored; default their packed widths. */
  lda?: number;
  ldb?: number;
  ldc?: number;
}

export interface AttentionArgs {
  /** batch, query length, key length (S ≥ T; S > T when a KV cache holds earlier keys) */
  B: number;
  T: number;
  S: number;
  /** query heads, key/value heads (Hq % Hkv == 0: grouped-query), head size */
  Hq: number;
  Hkv: number;
  D: number;
  /** query t (at absolute position t + S − T) sees keys s ≤ t + S − T */
  causal: boolean;
  /** multiplies q·k; usually 1/sqrt(D) */
  scale: number;
  /**
   * sliding window (0 or absent: none): query t (at slot t + S − T) sees only keys s with
   * t + S − T − s < window, the window − 1 slots before it and its own. The kernel skips the
   * keys outside it; no [B, T, S] mask is built (docs/ARCHITECTURE.md §Model families).
   */
  window?: number;
  /**
   * optional additive mask: [B, S] (key padding) or [B, T, S] (full); -Infinity hides a key.
   * The layout is told by its length (B·S or B·T·S; when T = 1 the two are the same).
   * Added after scaling: score = scale·q·k + mask.
   */
  mask?: Float32Array | null;
}

export interface AdamWArgs {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** 1-based step count, for bias correction */
  step: number;
}

/** Shapes of a 2-D convolution's patch extraction (no padding, no dilation). */
export interface PatchArgs {
  /** batch, channels, image height and width */
  B: number;
  C: number;
  H: number;
  W: number;
  /** kernel height and width */
  KH: number;
  KW: number;
  /** strides (a ViT patch embedding has SH = KH, SW = KW); output OH = (H − KH)/SH + 1, OW likewise (floor) */
  SH: number;
  SW: number;
}

/** A strided 2-D copy: `rows` rows of `cols` elements (offsets and strides in elements). */
export interface Copy2dArgs {
  rows: number;
  cols: number;
  /** first element of dst and src; default 0 */
  dstOffset?: number;
  srcOffset?: number;
  /** elements between row starts; default cols (src 0 repeats one row) */
  dstStride?: number;
  srcStride?: number;
  /** dst += src instead of dst = src */
  accumulate?: boolean;
}

/** SGD with momentum, PyTorch's semantics. */
export interface SgdArgs {
  lr: number;
  momentum: number;
  dampening: number;
  weightDecay: number;
  nesterov: boolean;
  /** the first step with this momentum buffer: it is set to the gradient, not blended */
  first: boolean;
}

export interface Backend {
  readonly name: string;
  /** worker threads the backend uses (1 for ref) */
  readonly threads: number;
  /** the backend's memory: allocation, views, writes, readback (docs/ARCHITECTURE.md §Backend memory) */
  readonly memory: BackendMemory;
  /**
   * The quantized weight types (tensor/quant.ts) its gemm reads as B and its embeddingForward
   * reads as the table, dequantizing blocks as it packs (docs/ARCHITECTURE.md §Quantized weights);
   * absent or empty: none, and models loaded for it dequantize on load.
   */
  readonly quantTypes?: readonly QuantDType[];

  // ---- matrix product ----
  /** C[M,N] (+)= alpha · op(A)[M,K] · op(B)[K,N] */
  gemm(c: Float32Array, a: TensorStorage, b: TensorStorage, args: GemmArgs): void;
  /**
   * Inference products on or off; returns the previous state. While on, gemm may compute a
   * prompt's product with a half or quantized weight (B transposed, more rows than decoding's
   * few) with A rounded to bf16 and f32 sums, as llama.cpp does (native: AMX-BF16 tiles;
   * docs/ARCHITECTURE.md §Decoding). Generation and the server turn it on around their
   * forwards only (withInferenceProducts), never training or evaluation. Absent: always exact.
   */
  setInferenceProducts?(on: boolean): boolean;

  // ---- elementwise and reductions (n elements) ----
  /** out[n] = a[n] + b[n]; out may alias a or b */
  add(out: Float32Array, a: Float32Array, b: Float32Array): void;
  /** y[n] += alpha · x[n] */
  axpy(y: Float32Array, x: Float32Array, alpha: number): void;
  /** out[n] = a[n] · s; out may alias a */
  scale(out: Float32Array, a: Float32Array, s: number): void;
  /** Σ x[i]² accumulated in f64 */
  sumSquares(x: Float32Array): number;
  /** out[n] = widen(src[n]) */
  widen(out: Float32Array, src: Uint16Array, dtype: HalfDType): void;
  /** out[n] = round-to-nearest-even(src[n]) */
  narrow(out: Uint16Array, src: Float32Array, dtype: HalfDType): void;

  // ---- bias ----
  /** out[M,N] += bias[N] (each row) */
  biasAdd(out: Float32Array, bias: Storage, M: number, N: number, biasDtype?: DType): void;
  /** dbias[N] += Σ_rows dout[M,N] */
  biasBackward(dbias: Float32Array, dout: Float32Array, M: number, N: number): void;

  // ---- normalisation (N rows of C channels) ----
  /** out[N,C] = inp · rstd · weight[C] with rstd = 1/√(mean(inp²) + eps); writes rstd[N] for backward */
  rmsnormForward(out: Float32Array, rstd: Float32Array, inp: Float32Array, weight: Storage, N: number, C: number, eps: number, weightDtype?: DType): void;
  /** dinp[N,C] += …, dweight[C] += … (either may be null) */
  rmsnormBackward(dinp: Float32Array | null, dweight: Float32Array | null, dout: Float32Array, inp: Float32Array, weight: Storage, rstd: Float32Array, N: number, C: number, weightDtype?: DType): void;
  /** out[N,C] = (inp − mean) · rstd · weight[C] + bias[C], rstd = 1/√(var + eps) with the biased
   *  variance (PyTorch); writes mean[N], rstd[N]. bias null means no bias. */
  layernormForward(out: Float32Array, mean: Float32Array, rstd: Float32Array, inp: Float32Array, weight: Storage, bias: Storage | null, N: number, C: number, eps: number, paramDtype?: DType): void;
  /** dinp[N,C], dweight[C], dbias[C] += … (any may be null) */
  layernormBackward(dinp: Float32Array | null, dweight: Float32Array | null, dbias: Float32Array | null, dout: Float32Array, inp: Float32Array, weight: Storage, mean: Float32Array, rstd: Float32Array, N: number, C: number, paramDtype?: DType): void;
  /** out[N,C] = softmax over each row of inp; out may alias inp; a row of all -Infinity gives zeros */
  softmax(out: Float32Array, inp: Float32Array, N: number, C: number): void;

  // ---- activations (n elements) ----
  /**
   * out = gelu(inp); out may alias inp. 'none': x·Φ(x) = ½x(1 + erf(x/√2)) (PyTorch default);
   * 'tanh': ½x(1 + tanh(√(2/π)(x + 0.044715x³))) (gelu_new, PyTorch approximate='tanh').
   */
  geluForward(out: Float32Array, inp: Float32Array, approx: GeluApprox): void;
  /** dinp += gelu'(inp) · dout */
  geluBackward(dinp: Float32Array, inp: Float32Array, dout: Float32Array, approx: GeluApprox): void;
  /** out = inp · sigmoid(inp) */
  siluForward(out: Float32Array, inp: Float32Array): void;
  /** dinp += silu'(inp) · dout */
  siluBackward(dinp: Float32Array, inp: Float32Array, dout: Float32Array): void;
  /** out = silu(gate) · up */
  swigluForward(out: Float32Array, gate: Float32Array, up: Float32Array): void;
  /** dgate += dout · up · silu'(gate), dup += dout · silu(gate); written (=) instead when accumulate is false (default true) */
  swigluBackward(dgate: Float32Array, dup: Float32Array, dout: Float32Array, gate: Float32Array, up: Float32Array, accumulate?: boolean): void;

  // ---- embedding ----
  /** out[N,C] = table[ids[n], :] for table [V,C] (f32, half, or quantized blocks: rows dequantized); writes */
  embeddingForward(out: Float32Array, ids: Int32Array, table: TensorStorage, N: number, C: number, tableDtype?: TensorDType): void;
  /** dtable[ids[n], :] += dout[n, :] */
  embeddingBackward(dtable: Float32Array, dout: Float32Array, ids: Int32Array, N: number, C: number): void;

  // ---- rotary position embedding, in place on x[B,T,H,D] ----
  /**
   * Rotates pairs by angle pos·θ_i using tables cos/sin [P, D/2] and positions[B·T].
   * Half-split layout (LLaMA checkpoints) pairs (i, i + D/2); interleaved pairs (2i, 2i+1).
   * inverse = true rotates by −angle: that is the backward of the forward rotation.
   * A pair (a, b) at position p becomes (a·c − b·s, a·s + b·c) with c = cos[p, i], s = sin[p, i]
   * (s negated when inverse), as HF's q·cos + rotate_half(q)·sin.
   * x is rotated in place, or, when `src` (same shape, not overlapping x) is given, x is
   * written with src rotated.
   */
  rope(x: Float32Array, cos: Float32Array, sin: Float32Array, positions: Int32Array, B: number, T: number, H: number, D: number, interleaved: boolean, inverse: boolean, src?: Float32Array): void;

  // ---- attention, fused per (batch, head) ----
  /**
   * out[B,T,Hq·D] = softmax(scale · q·kᵀ + mask) · v with q[B,T,Hq·D], k,v[B,S,Hkv·D];
   * query head h reads key/value head h / (Hq/Hkv). Writes lse[B,Hq,T] (log-sum-exp of
   * each score row) for backward. A row with every key hidden gives zeros and lse = -Infinity.
   */
  attentionForward(out: Float32Array, lse: Float32Array, q: Float32Array, k: Float32Array, v: Float32Array, args: AttentionArgs): void;
  /**
   * Writes dq, dk, dv (their old contents are not read) from dout[B,T,Hq·D], recomputing
   * scores from q, k, v, out and lse: p = exp(score − lse), dv = pᵀ·dout,
   * ds = p·(dout·vᵀ − rowsum(dout·out)), dq = scale·ds·k, dk = scale·dsᵀ·q. `out` and `lse`
   * must be the forward's; rows with lse = -Infinity contribute nothing (their dq is 0).
   */
  attentionBackward(dq: Float32Array, dk: Float32Array, dv: Float32Array, dout: Float32Array, q: Float32Array, k: Float32Array, v: Float32Array, out: Float32Array, lse: Float32Array, args: AttentionArgs): void;

  // ---- loss ----
  /** losses[N] = logsumexp(logits[n]) − logits[n, targets[n]]; 0 where targets[n] == ignoreIndex
   *  (any other target outside [0, V) is invalid input, rejected at the op boundary) */
  crossEntropyForward(losses: Float32Array, logits: Float32Array, targets: Int32Array, N: number, V: number, ignoreIndex: number): void;
  /** writes dlogits[N,V] = (softmax(logits[n]) − onehot) · gradScale (0 rows where ignored); dlogits may alias logits */
  crossEntropyBackward(dlogits: Float32Array, logits: Float32Array, targets: Int32Array, N: number, V: number, gradScale: number, ignoreIndex: number): void;
  /** both of the above in one call, as a training step needs them: losses as crossEntropyForward,
   *  then dlogits as crossEntropyBackward (may alias logits); each row's max and exps are computed once */
  crossEntropyLossGrad(losses: Float32Array, dlogits: Float32Array, logits: Float32Array, targets: Int32Array, N: number, V: number, gradScale: number, ignoreIndex: number): void;

  // ---- optimizer ----
  /**
   * decoupled AdamW on n elements, as PyTorch: param ·= 1 − lr·wd; m = β1·m + (1−β1)·g;
   * v = β2·v + (1−β2)·g²; param −= lr·m̂/(√v̂ + eps) with m̂ = m/(1−β1^step), v̂ = v/(1−β2^step).
   */
  adamw(param: Float32Array, grad: Float32Array, m: Float32Array, v: Float32Array, args: AdamWArgs): void;

  // ---- convolution as GEMM (patch extraction) ----
  /**
   * cols[B·OH·OW, C·KH·KW] (writes) from img[B, C, H, W]: row (b, oh, ow) holds the patch at
   * (oh·SH, ow·SW), its columns ordered (c, kh, kw) like a PyTorch Conv2d weight [O, C, KH, KW]
   * flattened, so conv(img) = cols · Wᵀ (+ bias) gives [B, OH, OW, O].
   */
  im2col(cols: Float32Array, img: Float32Array, args: PatchArgs): void;
  /** dimg[B, C, H, W] += the scatter of dcols[B·OH·OW, C·KH·KW] back to the pixels each column came from (col2im) */
  col2im(dimg: Float32Array, dcols: Float32Array, args: PatchArgs): void;

  // ---- accumulators (docs/ARCHITECTURE.md §Backend memory: one readback per step) ----
  /** acc[slot] += Σ x[offset .. offset+n) (f64, in order); n defaults to the rest of x */
  sumInto(acc: Accumulator, slot: number, x: F32Buf, offset?: number, n?: number): void;
  /** acc[slot] += Σ x[i]² (f64) */
  sumSquaresInto(acc: Accumulator, slot: number, x: F32Buf): void;
  /**
   * Clip by global norm, the factor computed from the accumulator (no readback): with
   * norm = √acc[slot], x ·= maxNorm / (norm + 1e-6) when that is below 1 and norm is finite
   * (torch's clip_grad_norm_).
   */
  clipByNorm(x: F32Buf, acc: Accumulator, slot: number, maxNorm: number): void;

  // ---- copies, rows and columns (the loops of the layers above, src/nn, src/lora, src/models) ----
  /** dst[dstOffset + r·dstStride + c] (+)= src[srcOffset + r·srcStride + c]; the regions do not overlap (dst and src may be one buffer) */
  copy2d(dst: F32Buf, src: F32Buf, args: Copy2dArgs): void;
  /** out[n] = a[n] · b[n]; out may alias a or b */
  mul(out: F32Buf, a: F32Buf, b: F32Buf): void;
  /** out[n] = a[n] / b[n]; out may alias a or b */
  div(out: F32Buf, a: F32Buf, b: F32Buf): void;
  /** out[N,C] += alpha · v[C] on every row */
  addRowVector(out: F32Buf, v: F32Buf, alpha: number, N: number, C: number): void;
  /** out[N,C] = (v[c] + shift) · x[N,C]; out may alias x */
  scaleColumns(out: F32Buf, x: F32Buf, v: F32Buf, shift: number, N: number, C: number): void;
  /** out[C] += alpha · (v ? v[c] + shift : 1) · Σ_n x[n,c] */
  columnSums(out: F32Buf, x: F32Buf, v: F32Buf | null, shift: number, alpha: number, N: number, C: number): void;
  /** out[C] += Σ_n a[n,c] · b[n,c] / div[c] (f64 per column) */
  columnDots(out: F32Buf, a: F32Buf, b: F32Buf, div: F32Buf, N: number, C: number): void;
  /**
   * DoRA's rescale of one adapter's output (src/lora): with P [N,O] holding s·lora(x) and g [O],
   * - wx given (dropout active; wx = W·dropout(x)): P += wx, out += g·P − wx;
   * - else: P += out − bias, out = g·P + bias (bias [O] or none).
   */
  doraCombine(out: F32Buf, P: F32Buf, wx: F32Buf | null, g: F32Buf, bias: Storage | null, N: number, O: number, biasDtype?: DType): void;
  /**
   * out[o] = ‖W[o, :] + delta[o − o0, :]‖ for o in [o0, o0 + rows) (f64 sums), W [O, I] or,
   * transposed, [I, O] (a Conv1D weight) in any dtype; delta [rows, I] or null; out [O].
   */
  weightRowNorms(out: F32Buf, w: Storage, wDtype: DType, transposed: boolean, delta: F32Buf | null, o0: number, rows: number, O: number, I: number): void;
  /** W[o, :] ·= num[o] / den[o] (the factor in f64), W f32 [O, I] or, transposed, [I, O] */
  scaleWeightRows(w: F32Buf, num: F32Buf, den: F32Buf, transposed: boolean, O: number, I: number): void;

  // ---- masks ----
  /** The attention kernel's additive key-padding mask: out[B, S] = 0 where mask is 1, −∞ where 0 */
  additiveMask(out: F32Buf, mask: Uint8Array, B: number, S: number): void;
  /** out[B,T,S] = bias[B,T,S] + own, own [B,T,S] or [B,S] (broadcast over t) */
  addMasks(out: F32Buf, bias: F32Buf, own: F32Buf, B: number, T: number, S: number): void;

  // ---- more activations and optimizers ----
  /** out = tanh(inp); out may alias inp */
  tanhForward(out: F32Buf, inp: F32Buf): void;
  /** writes dinp = dout · (1 − y²) for y = tanh(x) */
  tanhBackward(dinp: F32Buf, y: F32Buf, dout: F32Buf): void;
  /**
   * SGD on n elements (PyTorch): d = g + wd·p; with momentum buf = first ? d : μ·buf + (1 − dampening)·d,
   * d = nesterov ? d + μ·buf : buf; p −= lr·d. buf null means no momentum.
   */
  sgd(param: F32Buf, grad: F32Buf, buf: F32Buf | null, args: SgdArgs): void;
}
