// LoraLinear: a frozen Linear (or GPT-2 Conv1D Linear) plus named low-rank adapters.
//
//   y[N, O] = base(x) + Σ_active s·(dropout(x)·Aᵀ)·Bᵀ        A [R, I], B [O, R], s = α/R (α/√R rsLoRA)
//
// DoRA (PEFT's dora.py): with the magnitude m [O] and the row norm
// n[o] = ‖W[o, :] + s·(B·A)[o, :]‖ treated as a constant (detached), g = m / n and
//   y ← y + (g − 1)·(y − b) + g·s·lora(x)            without dropout (y: the running result)
//   y ← y + (g − 1)·(W·xd) + g·s·lora(xd)            with dropout active, xd = dropout(x)
// Backward (dy → G, walking the adapters in reverse):
//   LoRA:  dB += s·Gᵀ·h, dh = s·G·B, dA += dhᵀ·xd, dxd = dh·A, dx += mask ⊙ dxd
//   DoRA:  dm += Σ_n G·P / n (P = the unscaled sum), the LoRA path sees g ⊙ G, and the
//          running result before this adapter receives g ⊙ G (or, with dropout, W·xd
//          receives (g − 1) ⊙ G)
// The frozen base gets no gradient work: only dx = G·W when an input gradient is wanted.
//
// Merging: W += s·B·A (in W's layout, i.e. transposed for Conv1D); DoRA: W ← (m/‖W + ΔW‖)·(W + ΔW).
// Half-precision (f16/bf16) base weights are merged in f32 and rounded back; because that
// rounding loses information, the original half tensors are kept while merged and unmerge()
// restores them exactly. f32 weights are updated in place and unmerge() subtracts again
// (exact up to f32 rounding).
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
import type { InitLoraWeights } from './config.js';
import { loraScaling } from './config.js';
import { kaimingUniform, pissaFactors } from './init.js';

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

/** One named adapter of a LoraLinear. Parameters are f32. */
export class LoraAdapter {
  readonly name: string;
  readonly r: number;
  readonly alpha: number;
  readonly useRslora: boolean;
  readonly scaling: number;
  /** [R, I] */
  readonly A: Parameter;
  /** [O, R] */
  readonly B: Parameter;
  /** [O] (lora_bias) */
  readonly bias: Parameter | null;
  /** [O] (DoRA) */
  readonly magnitude: Parameter | null;
  readonly dropout: Dropout;
  /** activations of the last forward */
  readonly buffers = new Buffers();
  /**
   * PiSSA: the factors the adapter started from (the base holds W − s·B₀·A₀), kept so the
   * adapter can be saved as a plain LoRA delta on the original W (files.ts, pissaAsLora)
   */
  pissaInitial: { A: Float32Array; B: Float32Array } | null = null;

  constructor(name: string, r: number, alpha: number, useRslora: boolean, A: Parameter, B: Parameter, bias: Parameter | null, magnitude: Parameter | null, dropout: Dropout) {
    this.name = name;
    this.r = r;
    this.alpha = alpha;
    this.useRslora = useRslora;
    this.scaling = loraScaling(alpha, r, useRslora);
    this.A = A;
    this.B = B;
    this.bias = bias;
    this.magnitude = magnitude;
    this.dropout = dropout;
  }

  get useDora(): boolean {
    return this.magnitude !== null;
  }

  /** [name, parameter] with PEFT's in-memory suffixes (lora_A.<name>.weight …). */
  namedParameters(): [string, Parameter][] {
    const n = this.name;
    const out: [string, Parameter][] = [
      [`lora_A.${n}.weight`, this.A],
      [`lora_B.${n}.weight`, this.B],
    ];
    if (this.bias) out.push([`lora_B.${n}.bias`, this.bias]);
    if (this.magnitude) out.push([`lora_magnitude_vector.${n}.weight`, this.magnitude]);
    return out;
  }

  setTrainable(flag: boolean): void {
    for (const [, p] of this.namedParameters()) p.requiresGrad = flag;
  }
}

interface Step {
  a: LoraAdapter;
  /** the input the adapter saw (x, or dropout(x)) */
  xd: Float32Array;
  /** DoRA with dropout active: the base term was recomputed as W·xd */
  viaDropout: boolean;
  /** dropout changed the input (xd is not x), so dx takes the adapter's part through the mask */
  masked: boolean;
}

function finiteCount(a: Float32Array): number {
  let bad = 0;
  for (let i = 0; i < a.length; i++) if (!Number.isFinite(a[i]!)) bad++;
  return bad;
}

export class LoraLinear extends Module implements RowLayer {
  readonly base: Linear;
  /** the module path in its model ('' when used on its own), for messages */
  readonly path: string;
  readonly context: LoraContext;
  computeInputGrad = true;
  private readonly adapters = new Map<string, LoraAdapter>();
  private activeNames: string[] = [];
  private mergedNames: string[] = [];
  /** original half-precision weight and bias while merged */
  private stash: { weight: Tensor; bias: Tensor | null } | null = null;
  private readonly doraMergeNorms = new Map<string, Float64Array>();
  private mode: 'base' | 'lora' | 'mixed' | null = null;
  private steps: Step[] = [];
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
    return this.mergedNames;
  }

  private where(): string {
    return this.path ? ` ${this.path}` : '';
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
      if (this.mergedNames.length) throw new Error(`LoraLinear${this.where()}: cannot add a PiSSA adapter while adapters are merged`);
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
    const magnitude = opts.useDora ? new Parameter(Tensor.fromValues(this.doraWeightNorm({ A, B, r, scaling }), [O]), true) : null;
    const a = new LoraAdapter(name, r, alpha, useRslora, A, B, bias, magnitude, dropout);
    if (init === 'pissa' || (typeof init === 'string' && init.startsWith('pissa_niter_'))) a.pissaInitial = { A: A.data.slice(), B: B.data.slice() };
    this.adapters.set(name, a);
    return a;
  }

  deleteAdapter(name: string): void {
    this.adapter(name);
    if (this.mergedNames.includes(name)) throw new Error(`LoraLinear${this.where()}: adapter "${name}" is merged; unmerge() before deleting it`);
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
    if (ctx.disabled && this.mergedNames.length) {
      warn(`LoraLinear${this.where()}: adapters disabled while merged; unmerging`, 'LORAKIT_UNMERGE');
      this.unmerge();
    }
    this.N = N;
    this.steps = [];
    const present = this.activeNames.filter((n) => this.adapters.has(n));
    const adapting = !(ctx.disabled || this.mergedNames.length > 0 || (ctx.adapterNames === null && present.length === 0));
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

  private adapterForward(a: LoraAdapter, x: Float32Array, N: number, out: Float32Array): Step {
    const be = getBackend();
    const I = this.inFeatures;
    const O = this.outFeatures;
    const { r, scaling: s } = a;
    a.dropout.training = this.training;
    const xd = a.dropout.forward(x);
    // h[N, R] = xd · Aᵀ
    const h = a.buffers.get('h', N * r);
    be.gemm(h, xd, a.A.data, { M: N, N: r, K: I, transB: true });
    if (!a.magnitude) {
      // out[N, O] += s · h · Bᵀ
      be.gemm(out, h, a.B.data, { M: N, N: O, K: r, transB: true, accumulate: true, alpha: s });
      if (a.bias) addRows(out, a.bias.data, N, O, s);
      return { a, xd, viaDropout: false, masked: xd !== x };
    }
    // DoRA: g[o] = m[o] / ‖W + s·B·A‖[o] (the norm is a constant for backward)
    const norm = this.doraWeightNorm(a);
    const m = a.magnitude.data;
    const g = a.buffers.get('g', O);
    const n32 = a.buffers.get('norm', O);
    for (let o = 0; o < O; o++) {
      g[o] = m[o]! / norm[o]!;
      n32[o] = norm[o]!;
    }
    const P = a.buffers.get('P', N * O);
    be.gemm(P, h, a.B.data, { M: N, N: O, K: r, transB: true, alpha: s });
    const viaDropout = a.dropout.active;
    if (viaDropout) {
      // P = W·xd + s·lora, out += g·P − W·xd
      const wx = a.buffers.get('wx', N * O);
      const W = this.base.weight.value;
      be.gemm(wx, xd, W.data, { M: N, N: O, K: I, transB: !this.transposed, bDtype: W.dtype });
      for (let n = 0; n < N; n++) {
        const row = n * O;
        for (let o = 0; o < O; o++) {
          const p = P[row + o]! + wx[row + o]!;
          P[row + o] = p;
          out[row + o] = out[row + o]! + g[o]! * p - wx[row + o]!;
        }
      }
    } else {
      // P = (y − b) + s·lora, y ← g·P + b
      const b = this.base.bias ? this.base.bias.value.toF32Array() : null;
      for (let n = 0; n < N; n++) {
        const row = n * O;
        for (let o = 0; o < O; o++) {
          const bo = b ? b[o]! : 0;
          const p = P[row + o]! + out[row + o]! - bo;
          P[row + o] = p;
          out[row + o] = g[o]! * p + bo;
        }
      }
    }
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
      if (a.magnitude) throw new Error(`LoraLinear${this.where()}: per-row adapter names cannot be used with DoRA adapter "${name}"`);
      const rows = entries.length * T;
      const xg = this.buffers.get('mixed_x', rows * I);
      entries.forEach((b, j) => xg.set(x.subarray(b * T * I, (b + 1) * T * I), j * T * I));
      const h = a.buffers.get('mixed_h', rows * a.r);
      be.gemm(h, xg, a.A.data, { M: rows, N: a.r, K: I, transB: true });
      const yg = this.buffers.get('mixed_y', rows * O);
      be.gemm(yg, h, a.B.data, { M: rows, N: O, K: a.r, transB: true, alpha: a.scaling });
      if (a.bias) addRows(yg, a.bias.data, rows, O, a.scaling);
      entries.forEach((b, j) => {
        const dst = b * T * O;
        const src = j * T * O;
        for (let i = 0; i < T * O; i++) out[dst + i] = out[dst + i]! + yg[src + i]!;
      });
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
      if (this.mergedNames.length && this.active.some((n) => this.adapters.get(n)?.A.requiresGrad)) {
        throw new Error(`LoraLinear.backward${this.where()}: adapters are merged, so their gradients cannot be computed; unmerge() before training`);
      }
      this.base.computeInputGrad = this.computeInputGrad;
      return addInputGrad(this.base, dy, into);
    }
    const be = getBackend();
    const wantDx = this.computeInputGrad;
    const hasDora = this.steps.some((st) => st.a.magnitude);
    let G = dy;
    if (hasDora) {
      G = this.buffers.get('G', N * O);
      G.set(dy);
    }
    // The adapters' parts of dx: dh·A goes straight into the base's dx (one accumulating
    // product after base.backward) unless dropout masked the adapter's input; then it is
    // summed in dxd, masked, and added through dxa.
    let dxa: Float32Array | null = null;
    const direct: LoraAdapter[] = [];
    const baseBias = this.base.bias;
    for (let k = this.steps.length - 1; k >= 0; k--) {
      const { a, xd, viaDropout, masked } = this.steps[k]!;
      const { r, scaling: s } = a;
      const h = a.buffers.get('h', N * r);
      let GL = G;
      let dxd: Float32Array | null = null;
      if (wantDx && masked) dxd = this.buffers.scratchZeros('dxd', N * I);
      else if (wantDx) direct.push(a);
      if (a.magnitude) {
        const g = a.buffers.get('g', O);
        const norm = a.buffers.get('norm', O);
        const P = a.buffers.get('P', N * O);
        const dm = a.magnitude.grad;
        if (dm) {
          for (let o = 0; o < O; o++) {
            let acc = 0;
            for (let n = 0; n < N; n++) acc += G[n * O + o]! * P[n * O + o]!;
            dm[o] = dm[o]! + acc / norm[o]!;
          }
        }
        if (viaDropout) {
          GL = a.buffers.get('GL', N * O);
          for (let n = 0; n < N; n++) for (let o = 0; o < O; o++) GL[n * O + o] = g[o]! * G[n * O + o]!;
          if (dxd) {
            // W·xd received (g − 1)·G
            const Gw = a.buffers.get('Gw', N * O);
            for (let n = 0; n < N; n++) for (let o = 0; o < O; o++) Gw[n * O + o] = (g[o]! - 1) * G[n * O + o]!;
            const W = this.base.weight.value;
            be.gemm(dxd, Gw, W.data, { M: N, N: I, K: O, transB: this.transposed, bDtype: W.dtype, accumulate: true });
          }
        } else {
          // y ← g·(y_prev − b) + b + g·s·lora: y_prev receives g·G, the bias (1 − g)·G directly
          if (baseBias?.grad) {
            const db = baseBias.grad;
            for (let n = 0; n < N; n++) for (let o = 0; o < O; o++) db[o] = db[o]! + (1 - g[o]!) * G[n * O + o]!;
          }
          for (let n = 0; n < N; n++) for (let o = 0; o < O; o++) G[n * O + o] = g[o]! * G[n * O + o]!;
          GL = G;
        }
      }
      // dB[O, R] += s · GLᵀ · h
      if (a.B.grad) be.gemm(a.B.grad, GL, h, { M: O, N: r, K: N, transA: true, accumulate: true, alpha: s });
      if (a.bias?.grad) {
        const db = a.bias.grad;
        for (let n = 0; n < N; n++) for (let o = 0; o < O; o++) db[o] = db[o]! + s * GL[n * O + o]!;
      }
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
        else (dxa = this.buffers.scratch('dx_adapters', N * I)).set(dxm);
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
    else this.base.weight.value = Tensor.fromValues(vals, W.shape, W.dtype);
  }

  /** n[o] = ‖W[o, :] + s·(B·A)[o, :]‖ (f64), computed in row blocks with the backend GEMM. */
  doraWeightNorm(a: Pick<LoraAdapter, 'A' | 'B' | 'r' | 'scaling'>): Float64Array {
    const be = getBackend();
    const I = this.inFeatures;
    const O = this.outFeatures;
    const r = a.r;
    const rd = this.weightReader();
    const W = this.base.weight.value.data;
    const wd = W instanceof Float32Array ? W : null;
    const norm = new Float64Array(O);
    const rows = Math.max(1, Math.min(O, Math.floor((1 << 20) / I)));
    const tmp = this.buffers.get('dora_rows', rows * I);
    for (let o0 = 0; o0 < O; o0 += rows) {
      const n = Math.min(rows, O - o0);
      const t = tmp.subarray(0, n * I);
      be.gemm(t, a.B.data.subarray(o0 * r, (o0 + n) * r), a.A.data, { M: n, N: I, K: r, alpha: a.scaling });
      if (wd) {
        // f32 weight: index it directly ([O, I] rows, or [I, O] columns for Conv1D)
        for (let j = 0; j < n; j++) {
          const o = o0 + j;
          let ss = 0;
          if (this.transposed) {
            for (let i = 0; i < I; i++) {
              const v = wd[i * O + o]! + t[j * I + i]!;
              ss += v * v;
            }
          } else {
            const base = o * I;
            for (let i = 0; i < I; i++) {
              const v = wd[base + i]! + t[j * I + i]!;
              ss += v * v;
            }
          }
          norm[o] = Math.sqrt(ss);
        }
        continue;
      }
      for (let j = 0; j < n; j++) {
        let ss = 0;
        for (let i = 0; i < I; i++) {
          const v = rd(o0 + j, i) + t[j * I + i]!;
          ss += v * v;
        }
        norm[o0 + j] = Math.sqrt(ss);
      }
    }
    return norm;
  }

  /** ΔW = s·B·A in W's own layout ([out, in], or [in, out] for Conv1D), f32. */
  deltaWeight(name: string): Float32Array {
    const a = this.adapter(name);
    const I = this.inFeatures;
    const O = this.outFeatures;
    const d = new Float32Array(O * I);
    const be = getBackend();
    if (this.transposed) be.gemm(d, a.A.data, a.B.data, { M: I, N: O, K: a.r, transA: true, transB: true, alpha: a.scaling });
    else be.gemm(d, a.B.data, a.A.data, { M: O, N: I, K: a.r, alpha: a.scaling });
    return d;
  }

  /**
   * Merges adapters into the base weight (default: the active ones not merged yet).
   * safeMerge checks the result for NaN/Inf before committing and throws naming the
   * adapter and the module.
   */
  merge(opts: { adapterNames?: readonly string[]; safeMerge?: boolean } = {}): void {
    const names = (opts.adapterNames ?? this.activeNames).filter((n) => this.adapters.has(n) && !this.mergedNames.includes(n));
    for (const name of names) this.mergeOne(name, opts.safeMerge ?? false);
  }

  private mergeOne(name: string, safe: boolean): void {
    const a = this.adapter(name);
    const W = this.base.weight.value;
    const half = W.dtype !== 'f32';
    if (half && !this.stash) this.stash = { weight: W, bias: this.base.bias ? this.base.bias.value : null };
    const w = W.toF32Array(true);
    const delta = this.deltaWeight(name);
    if (a.magnitude) {
      for (let i = 0; i < w.length; i++) w[i] = w[i]! + delta[i]!;
      const norm = this.rowNorms(w);
      const m = a.magnitude.data;
      this.scaleRows(w, (o) => m[o]! / norm[o]!);
      this.doraMergeNorms.set(name, norm);
    } else {
      for (let i = 0; i < w.length; i++) w[i] = w[i]! + delta[i]!;
    }
    let newBias: Float32Array | null = null;
    if (a.bias) {
      if (!this.base.bias) throw new Error(`LoraLinear${this.where()}: adapter "${name}" has lora_bias but the base layer has no bias, so it cannot be merged`);
      newBias = this.base.bias.value.toF32Array(true);
      for (let o = 0; o < newBias.length; o++) newBias[o] = newBias[o]! + a.scaling * a.bias.data[o]!;
    }
    // the values as they will be stored: a half base rounds W + s·B·A to half here, and a
    // finite f32 sum past the half range becomes Inf, so safe merge checks after the cast
    const Wout = half ? Tensor.fromValues(w, W.shape, W.dtype) : Tensor.fromF32(w, W.shape);
    const Bout = newBias && this.base.bias ? (this.base.bias.value.dtype === 'f32' ? Tensor.fromF32(newBias, this.base.bias.value.shape) : Tensor.fromValues(newBias, this.base.bias.value.shape, this.base.bias.value.dtype)) : null;
    if (safe) {
      const bad = Wout.nonFiniteCount() + (Bout ? Bout.nonFiniteCount() : 0);
      if (bad > 0) {
        this.doraMergeNorms.delete(name);
        if (half && this.mergedNames.length === 0) this.stash = null;
        const finiteBefore = finiteCount(w) + (newBias ? finiteCount(newBias) : 0) === 0;
        const why = finiteBefore ? ` (the sum is finite in f32 but exceeds the ${W.dtype} range when stored as ${W.dtype})` : '';
        throw new Error(`safe merge: adapter "${name}" gives ${bad} NaN/Inf value(s) in the merged weights of module ${this.path || '(this layer)'}${why}; the weights were left unchanged`);
      }
    }
    if (W.dtype === 'f32') W.f32.set(w);
    else this.base.weight.value = Wout;
    if (Bout && this.base.bias) {
      if (this.base.bias.value.dtype === 'f32') this.base.bias.value.f32.set(newBias!);
      else this.base.bias.value = Bout;
    }
    this.mergedNames.push(name);
  }

  /** Undoes every merge (most recent first). */
  unmerge(): void {
    if (this.mergedNames.length === 0) {
      warn(`LoraLinear${this.where()}: already unmerged, nothing to do`, 'LORAKIT_UNMERGE');
      return;
    }
    if (this.stash) {
      this.base.weight.value = this.stash.weight;
      if (this.base.bias && this.stash.bias) this.base.bias.value = this.stash.bias;
      this.stash = null;
      this.mergedNames = [];
      this.doraMergeNorms.clear();
      return;
    }
    while (this.mergedNames.length) {
      const name = this.mergedNames.pop()!;
      const a = this.adapter(name);
      const w = this.base.weight.value.f32;
      const delta = this.deltaWeight(name);
      if (a.magnitude) {
        const norm = this.doraMergeNorms.get(name)!;
        const m = a.magnitude.data;
        this.scaleRows(w, (o) => norm[o]! / m[o]!);
        this.doraMergeNorms.delete(name);
      }
      for (let i = 0; i < w.length; i++) w[i] = w[i]! - delta[i]!;
      if (a.bias && this.base.bias) {
        const b = this.base.bias.value.f32;
        for (let o = 0; o < b.length; o++) b[o] = b[o]! - a.scaling * a.bias.data[o]!;
      }
    }
  }

  /** Forgets the half-precision originals kept for unmerge (after mergeAndUnload). */
  dropMergeState(): void {
    this.stash = null;
    this.mergedNames = [];
    this.doraMergeNorms.clear();
  }

  private rowNorms(w: Float32Array): Float64Array {
    const I = this.inFeatures;
    const O = this.outFeatures;
    const norm = new Float64Array(O);
    if (this.transposed) {
      for (let i = 0; i < I; i++) for (let o = 0; o < O; o++) norm[o] = norm[o]! + w[i * O + o]! ** 2;
    } else {
      for (let o = 0; o < O; o++) {
        let s = 0;
        for (let i = 0; i < I; i++) s += w[o * I + i]! ** 2;
        norm[o] = s;
      }
    }
    for (let o = 0; o < O; o++) norm[o] = Math.sqrt(norm[o]!);
    return norm;
  }

  private scaleRows(w: Float32Array, f: (o: number) => number): void {
    const I = this.inFeatures;
    const O = this.outFeatures;
    const fs = new Float64Array(O);
    for (let o = 0; o < O; o++) fs[o] = f(o);
    if (this.transposed) for (let i = 0; i < I; i++) for (let o = 0; o < O; o++) w[i * O + o] = w[i * O + o]! * fs[o]!;
    else for (let o = 0; o < O; o++) for (let i = 0; i < I; i++) w[o * I + i] = w[o * I + i]! * fs[o]!;
  }

  /** Assigns adapter tensors (shapes checked; the message names the tensor and both shapes). */
  static checkShape(what: string, t: Tensor, expected: readonly number[]): string | null {
    if (t.shape.length === expected.length && t.shape.every((d, i) => d === expected[i])) return null;
    return `tensor ${what} has shape ${formatShape(t.shape)}, the model expects ${formatShape(expected)}`;
  }
}

/** out[N, C] += s · v[C] on every row */
function addRows(out: Float32Array, v: Float32Array, N: number, C: number, s: number): void {
  for (let n = 0; n < N; n++) for (let c = 0; c < C; c++) out[n * C + c] = out[n * C + c]! + s * v[c]!;
}
