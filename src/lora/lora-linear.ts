// LoraLinear: a frozen Linear (or GPT-2 Conv1D Linear) plus named low-rank adapters.
//
//   y[N, O] = base(x) + Σ_active s·(dropout(x)·Aᵀ)·Bᵀ        A [R, I], B [O, R], s = α/R (α/√R rsLoRA)
//
// Each adapter has a variant (docs/ARCHITECTURE.md §LoRA variants): plain LoRA (variants.ts)
// adds the product above, DoRA (dora.ts) rescales the result by its magnitude. This file holds
// what they share: the adapters, the low-rank product h = dropout(x)·Aᵀ, its backward
//   dB += s·GLᵀ·h, dh = s·GL·B, dA += dhᵀ·xd, dxd = dh·A, dx += mask ⊙ dxd
// (GL: the gradient the variant hands back, walking the adapters in reverse), per-row adapters
// for mixed batches, and the layer's merge state (merge.ts: merging, the half-precision stash).
// The frozen base gets no gradient work: only dx = G·W when an input gradient is wanted.
import { getBackend } from '../backend/index.js';
import { warn } from '../io/errors.js';
import { Dropout } from '../nn/dropout.js';
import type { RowLayer } from '../nn/linear.js';
import { Linear } from '../nn/linear.js';
import { Buffers, Module, Parameter } from '../nn/module.js';
import { Rng } from '../tensor/rng.js';
import { addInputGrad, hasTrainable } from '../nn/rowlayer.js';
import { bf16ToF32, f16ToF32 } from '../tensor/half.js';
import { ShapeError, Tensor, formatShape } from '../tensor/tensor.js';
import { LoraAdapter, type AdapterLayer, type AdapterStep } from './adapter.js';
import type { InitLoraWeights } from './config.js';
import { loraScaling } from './config.js';
import { kaimingUniform, pissaFactors } from './init.js';
import { MergeState, deltaWeight, mergeAdapter, unmergeAll } from './merge.js';
import { variantFor } from './variants.js';

export { LoraAdapter } from './adapter.js';

/** The adapter name that means "no adapter" in a per-row adapter list. */
export const BASE_ADAPTER = '__base__';

/**
 * State shared by every LoraLinear of one model (a PeftModel owns one): the per-row adapter
 * choice for the next forward and the "adapters disabled" switch.
 */
export class LoraContext {
  /** one adapter name per batch row (B names for N = B·T rows), or null for the active adapters */
  adapterNames: readonly string[] | null = null;
  /** when true every LoraLinear runs its base layer alone */
  disabled = false;
}

export interface AdapterOptions {
  r: number;
  alpha: number;
  dropout?: number;
  useRslora?: boolean;
  useDora?: boolean;
  /** a trainable bias on B (PEFT lora_bias) */
  loraBias?: boolean;
  init?: InitLoraWeights;
  /** the stream for initialisation and dropout masks */
  rng?: Rng;
}

export class LoraLinear extends Module implements RowLayer, AdapterLayer {
  readonly base: Linear;
  /** the module path in its model ('' when used on its own), for messages */
  readonly path: string;
  readonly context: LoraContext;
  computeInputGrad = true;
  private readonly adapters = new Map<string, LoraAdapter>();
  private activeNames: string[] = [];
  private readonly mergeState = new MergeState();
  private mode: 'base' | 'lora' | 'mixed' | null = null;
  private steps: AdapterStep[] = [];
  private N = 0;

  constructor(base: Linear, opts: { path?: string; context?: LoraContext } = {}) {
    super();
    if (!(base instanceof Linear)) throw new TypeError(`LoraLinear: the base layer must be a Linear, got ${(base as object)?.constructor?.name}`);
    this.base = base;
    this.path = opts.path ?? '';
    this.context = opts.context ?? new LoraContext();
  }

  get inFeatures(): number {
    return this.base.inFeatures;
  }
  get outFeatures(): number {
    return this.base.outFeatures;
  }
  /** weight stored [in, out] (GPT-2 Conv1D): PEFT's fan_in_fan_out */
  get transposed(): boolean {
    return this.base.transposed;
  }
  get weight(): Parameter {
    return this.base.weight;
  }
  get bias(): Parameter | null {
    return this.base.bias;
  }

  // ---------------------------------------------------------------- adapters

  adapterNames(): string[] {
    return [...this.adapters.keys()];
  }

  hasAdapter(name: string): boolean {
    return this.adapters.has(name);
  }

  adapter(name: string): LoraAdapter {
    const a = this.adapters.get(name);
    if (!a) throw new Error(`LoraLinear${this.where()}: no adapter "${name}" (adapters: ${this.adapterNames().join(', ') || 'none'})`);
    return a;
  }

  /** The adapters forward() applies, in order (names this layer lacks are skipped at forward). */
  get active(): readonly string[] {
    return this.activeNames;
  }

  setActive(names: readonly string[]): void {
    this.activeNames = [...names];
  }

  get merged(): readonly string[] {
    return this.mergeState.names;
  }

  /** ' <path>' (or '') for messages */
  get label(): string {
    return this.path ? ` ${this.path}` : '';
  }

  private where(): string {
    return this.label;
  }

  /**
   * Adds a named adapter and initialises it (see init.ts). 'pissa' rewrites the base weight
   * to the residual. The new adapter is trainable; it is not made active.
   */
  addAdapter(name: string, opts: AdapterOptions): LoraAdapter {
    if (this.adapters.has(name)) throw new Error(`LoraLinear${this.where()}: adapter "${name}" exists already`);
    if (name === BASE_ADAPTER || name.includes('.') || name === '') throw new Error(`LoraLinear: invalid adapter name ${JSON.stringify(name)} (non-empty, no dots, not "${BASE_ADAPTER}")`);
    const { r, alpha } = opts;
    if (!Number.isInteger(r) || r <= 0) throw new Error(`LoraLinear${this.where()}: r must be a positive integer, got ${r}`);
    const I = this.inFeatures;
    const O = this.outFeatures;
    const rng = opts.rng ?? new Rng(0);
    const init = opts.init ?? true;
    const A = new Parameter(Tensor.zeros([r, I]), true);
    const B = new Parameter(Tensor.zeros([O, r]), true);
    const bias = opts.loraBias ? new Parameter(Tensor.zeros([O]), true) : null;
    const useRslora = opts.useRslora ?? false;
    const scaling = loraScaling(alpha, r, useRslora);
    if (init === true) {
      kaimingUniform(A.data, I, rng);
    } else if (init === false) {
      kaimingUniform(A.data, I, rng);
      kaimingUniform(B.data, r, rng);
      if (bias) kaimingUniform(bias.data, r, rng); // nn.Linear's bias default: U(±1/√fan_in)
    } else if (init === 'gaussian') {
      const a = A.data;
      for (let i = 0; i < a.length; i++) a[i] = rng.normal(0, 1 / r);
    } else if (init === 'pissa' || init.startsWith('pissa_niter_')) {
      if (this.mergeState.names.length) throw new Error(`LoraLinear${this.where()}: cannot add a PiSSA adapter while adapters are merged`);
      const niter = init === 'pissa' ? null : Number(init.slice('pissa_niter_'.length));
      const W = this.weightMatrix64();
      const f = pissaFactors(W, O, I, r, scaling, niter, rng);
      A.data.set(f.A);
      B.data.set(f.B);
      this.setWeightMatrix(f.residual);
    } else {
      throw new Error(`LoraLinear: unknown init_lora_weights ${JSON.stringify(init)}`);
    }
    const dropout = new Dropout(opts.dropout ?? 0, rng);
    const variant = variantFor(opts);
    const magnitude = variant.extraParameter(this, { A, B, r, scaling });
    const a = new LoraAdapter(name, r, alpha, useRslora, A, B, bias, magnitude, dropout, variant, new Buffers());
    if (init === 'pissa' || (typeof init === 'string' && init.startsWith('pissa_niter_'))) a.pissaInitial = { A: A.data.slice(), B: B.data.slice() };
    this.adapters.set(name, a);
    return a;
  }

  deleteAdapter(name: string): void {
    this.adapter(name);
    if (this.mergeState.names.includes(name)) throw new Error(`LoraLinear${this.where()}: adapter "${name}" is merged; unmerge() before deleting it`);
    this.adapters.delete(name);
    this.activeNames = this.activeNames.filter((n) => n !== name);
  }

  /** The base's parameters under their own names, then each adapter's (lora_A.<name>.weight …). */
  override namedParameters(prefix = ''): [string, Parameter][] {
    const key = (n: string): string => (prefix ? `${prefix}.${n}` : n);
    const out: [string, Parameter][] = [[key('weight'), this.base.weight]];
    if (this.base.bias) out.push([key('bias'), this.base.bias]);
    for (const a of this.adapters.values()) for (const [n, p] of a.namedParameters()) out.push([key(n), p]);
    return out;
  }

  override ownParameters(): [string, Parameter][] {
    return this.namedParameters();
  }

  // ---------------------------------------------------------------- forward / backward

  /** whether backward() reads the x of forward: when anything here learns (see RowLayer.savesInput) */
  get savesInput(): boolean {
    return hasTrainable(this);
  }

  /** y[N, O] = base(x) + the active adapters (or per-row adapters from the context); see RowLayer.forward for `transient` */
  forward(x: Float32Array, N: number, transient = false): Float32Array {
    const I = this.inFeatures;
    if (x.length !== N * I) throw new ShapeError(`LoraLinear.forward${this.where()}: x has ${x.length} elements, expected [${N}, ${I}] = ${N * I}`);
    const ctx = this.context;
    if (ctx.disabled && this.mergeState.names.length) {
      warn(`LoraLinear${this.where()}: adapters disabled while merged; unmerging`, 'LORAKIT_UNMERGE');
      this.unmerge();
    }
    this.N = N;
    this.steps = [];
    const present = this.activeNames.filter((n) => this.adapters.has(n));
    const adapting = !(ctx.disabled || this.mergeState.names.length > 0 || (ctx.adapterNames === null && present.length === 0));
    // the adapters add into the base output itself (the base never reads it again)
    const out = this.base.forward(x, N, transient);
    if (!adapting) {
      this.mode = 'base';
      return out;
    }
    if (ctx.adapterNames !== null) {
      this.mixedForward(x, N, out, ctx.adapterNames);
      this.mode = 'mixed';
      return out;
    }
    for (const name of present) this.steps.push(this.adapterForward(this.adapters.get(name)!, x, N, out));
    this.mode = 'lora';
    return out;
  }

  private adapterForward(a: LoraAdapter, x: Float32Array, N: number, out: Float32Array): AdapterStep {
    const be = getBackend();
    a.dropout.training = this.training;
    const xd = a.dropout.forward(x);
    // h[N, R] = xd · Aᵀ, then the variant adds the adapter into out
    const h = a.buffers.get('h', N * a.r);
    be.gemm(h, xd, a.A.data, { M: N, N: a.r, K: this.inFeatures, transB: true });
    const viaDropout = a.variant.forward(this, a, xd, h, N, out);
    return { a, xd, viaDropout, masked: xd !== x };
  }

  /** Per-row adapters (inference): rows of batch entry b use adapterNames[b]. */
  private mixedForward(x: Float32Array, N: number, out: Float32Array, names: readonly string[]): void {
    const be = getBackend();
    const I = this.inFeatures;
    const O = this.outFeatures;
    const Bn = names.length;
    if (Bn === 0 || N % Bn !== 0) throw new ShapeError(`LoraLinear.forward${this.where()}: ${N} rows cannot be split over ${Bn} per-row adapter names`);
    const T = N / Bn;
    const groups = new Map<string, number[]>();
    names.forEach((n, b) => {
      if (n === BASE_ADAPTER) return;
      let g = groups.get(n);
      if (!g) groups.set(n, (g = []));
      g.push(b);
    });
    for (const [name, entries] of groups) {
      const a = this.adapters.get(name);
      if (!a) continue; // this layer has no such adapter: base output for those rows
      if (!a.variant.perRow) throw new Error(`LoraLinear${this.where()}: per-row adapter names cannot be used with ${a.variant.name} adapter "${name}"`);
      const rows = entries.length * T;
      // the rows of this adapter's batch entries, gathered
      const xg = this.buffers.get('mixed_x', rows * I);
      entries.forEach((b, j) => be.copy2d(xg, x, { rows: 1, cols: T * I, srcOffset: b * T * I, dstOffset: j * T * I }));
      const h = a.buffers.get('mixed_h', rows * a.r);
      be.gemm(h, xg, a.A.data, { M: rows, N: a.r, K: I, transB: true });
      const yg = this.buffers.get('mixed_y', rows * O);
      be.gemm(yg, h, a.B.data, { M: rows, N: O, K: a.r, transB: true, alpha: a.scaling });
      if (a.bias) be.addRowVector(yg, a.bias.data, a.scaling, rows, O);
      // scattered back, added into the base output
      entries.forEach((b, j) => be.copy2d(out, yg, { rows: 1, cols: T * O, srcOffset: j * T * O, dstOffset: b * T * O, accumulate: true }));
    }
  }

  /** From dy[N, O] of the last forward: adds into adapter (and trainable base) gradients, returns dx (or into += dx, see RowLayer) or null. */
  backward(dy: Float32Array, into?: Float32Array): Float32Array | null {
    const N = this.N;
    const I = this.inFeatures;
    const O = this.outFeatures;
    if (this.mode === null) throw new Error(`LoraLinear.backward${this.where()} called before forward`);
    if (dy.length !== N * O) throw new ShapeError(`LoraLinear.backward${this.where()}: dy has ${dy.length} elements, expected [${N}, ${O}]`);
    if (this.mode === 'mixed') throw new Error(`LoraLinear.backward${this.where()}: per-row adapter names are for inference; clear them before training`);
    if (this.mode === 'base') {
      if (this.mergeState.names.length && this.active.some((n) => this.adapters.get(n)?.A.requiresGrad)) {
        throw new Error(`LoraLinear.backward${this.where()}: adapters are merged, so their gradients cannot be computed; unmerge() before training`);
      }
      this.base.computeInputGrad = this.computeInputGrad;
      return addInputGrad(this.base, dy, into);
    }
    const be = getBackend();
    const wantDx = this.computeInputGrad;
    // a variant that rewrites G (DoRA) gets a copy of dy
    let G = dy;
    if (this.steps.some((st) => st.a.variant.rewritesGradient)) {
      G = this.buffers.get('G', N * O);
      be.copy2d(G, dy, { rows: N, cols: O });
    }
    // The adapters' parts of dx: dh·A goes straight into the base's dx (one accumulating
    // product after base.backward) unless dropout masked the adapter's input; then it is
    // summed in dxd, masked, and added through dxa.
    let dxa: Float32Array | null = null;
    const direct: LoraAdapter[] = [];
    for (let k = this.steps.length - 1; k >= 0; k--) {
      const step = this.steps[k]!;
      const { a, xd, masked } = step;
      const { r, scaling: s } = a;
      const h = a.buffers.get('h', N * r);
      let dxd: Float32Array | null = null;
      if (wantDx && masked) dxd = this.buffers.scratchZeros('dxd', N * I);
      else if (wantDx) direct.push(a);
      const GL = a.variant.backward(this, step, G, dxd, N);
      // dB[O, R] += s · GLᵀ · h
      if (a.B.grad) be.gemm(a.B.grad, GL, h, { M: O, N: r, K: N, transA: true, accumulate: true, alpha: s });
      if (a.bias?.grad) be.columnSums(a.bias.grad, GL, null, 0, s, N, O);
      if (a.A.grad || wantDx) {
        // dh[N, R] = s · GL · B
        const dh = a.buffers.get('dh', N * r);
        be.gemm(dh, GL, a.B.data, { M: N, N: r, K: O, alpha: s });
        // dA[R, I] += dhᵀ · xd
        if (a.A.grad) be.gemm(a.A.grad, dh, xd, { M: r, N: I, K: N, transA: true, accumulate: true });
        // dxd[N, I] += dh · A
        if (dxd) be.gemm(dxd, dh, a.A.data, { M: N, N: I, K: r, accumulate: true });
      }
      if (dxd) {
        const dxm = a.dropout.backward(dxd);
        if (dxa) be.add(dxa, dxa, dxm);
        else be.copy2d((dxa = this.buffers.scratch('dx_adapters', N * I)), dxm, { rows: N, cols: I });
      }
    }
    this.base.computeInputGrad = wantDx;
    const dx = addInputGrad(this.base, G, into);
    if (!wantDx || !dx) return null;
    // dx[N, I] += dh · A for the unmasked adapters
    for (const a of direct) be.gemm(dx, a.buffers.get('dh', N * a.r), a.A.data, { M: N, N: I, K: a.r, accumulate: true });
    if (dxa) be.add(dx, dx, dxa);
    return dx;
  }

  // ---------------------------------------------------------------- weights

  /** Reader of W[o, i] in [out, in] orientation, widening half storage. */
  private weightReader(): (o: number, i: number) => number {
    const W = this.base.weight.value;
    const I = this.inFeatures;
    const O = this.outFeatures;
    const d = W.data;
    const at = this.transposed ? (o: number, i: number): number => i * O + o : (o: number, i: number): number => o * I + i;
    if (d instanceof Float32Array) return (o, i) => d[at(o, i)]!;
    if (d instanceof Uint8Array) {
      const v = W.toF32Array(); // quantized blocks, dequantized once
      return (o, i) => v[at(o, i)]!;
    }
    const conv = W.dtype === 'bf16' ? bf16ToF32 : f16ToF32;
    return (o, i) => conv(d[at(o, i)]!);
  }

  /** W as f64 [out, in] (whatever its layout and dtype). */
  weightMatrix64(): Float64Array {
    const I = this.inFeatures;
    const O = this.outFeatures;
    const rd = this.weightReader();
    const w = new Float64Array(O * I);
    for (let o = 0; o < O; o++) for (let i = 0; i < I; i++) w[o * I + i] = rd(o, i);
    return w;
  }

  /** Replaces W by w [out, in] (converted to W's layout and dtype). */
  private setWeightMatrix(w: Float64Array): void {
    const I = this.inFeatures;
    const O = this.outFeatures;
    const W = this.base.weight.value;
    const vals = new Float32Array(O * I);
    if (this.transposed) for (let o = 0; o < O; o++) for (let i = 0; i < I; i++) vals[i * O + o] = w[o * I + i]!;
    else vals.set(w);
    if (W.dtype === 'f32') W.f32.set(vals);
    // a quantized base becomes f32 here: PiSSA rewrites the weight, which blocks cannot hold exactly
    else this.base.weight.value = Tensor.fromValues(vals, W.shape, W.quantized ? 'f32' : W.floatDtype);
  }

  /** ΔW = s·B·A in W's own layout ([out, in], or [in, out] for Conv1D), f32. */
  deltaWeight(name: string): Float32Array {
    return deltaWeight(this, this.adapter(name));
  }

  /**
   * Merges adapters into the base weight (default: the active ones not merged yet), each by
   * its variant (merge.ts). safeMerge checks the result for NaN/Inf before committing and
   * throws naming the adapter and the module.
   */
  merge(opts: { adapterNames?: readonly string[]; safeMerge?: boolean } = {}): void {
    const names = (opts.adapterNames ?? this.activeNames).filter((n) => this.adapters.has(n) && !this.mergeState.names.includes(n));
    for (const name of names) mergeAdapter(this, this.mergeState, this.adapter(name), opts.safeMerge ?? false, this.path);
  }

  /** Undoes every merge (most recent first). */
  unmerge(): void {
    if (this.mergeState.names.length === 0) {
      warn(`LoraLinear${this.where()}: already unmerged, nothing to do`, 'LORAKIT_UNMERGE');
      return;
    }
    unmergeAll(this, this.mergeState, (n) => this.adapter(n));
  }

  /** Forgets the half-precision originals kept for unmerge (after mergeAndUnload). */
  dropMergeState(): void {
    this.mergeState.clear();
  }

  /** Assigns adapter tensors (shapes checked; the message names the tensor and both shapes). */
  static checkShape(what: string, t: Tensor, expected: readonly number[]): string | null {
    if (t.shape.length === expected.length && t.shape.every((d, i) => d === expected[i])) return null;
    return `tensor ${what} has shape ${formatShape(t.shape)}, the model expects ${formatShape(expected)}`;
  }
}
