// LayerNorm: y[N, C] = (x − mean) / sqrt(var + eps) · weight[C] + bias[C] (torch.nn.LayerNorm).
import { getBackend } from '../backend/index.js';
import type { DType, Storage } from '../tensor/tensor.js';
import { Tensor, ShapeError } from '../tensor/tensor.js';
import { Module, Parameter, checkInto, type OutputPlace } from './module.js';

export interface LayerNormOptions {
  /** default 1e-5 */
  eps?: number | undefined;
  /** default true */
  bias?: boolean | undefined;
  dtype?: DType | undefined;
}

export class LayerNorm extends Module {
  /** C: channels normalised per row */
  readonly dim: number;
  readonly eps: number;
  readonly weight: Parameter;
  readonly bias: Parameter | null;
  /** whether backward() computes dx */
  computeInputGrad = true;
  private x: Float32Array | null = null;
  private mean: Float32Array | null = null;
  private rstd: Float32Array | null = null;
  private N = 0;

  constructor(dim: number, opts: LayerNormOptions = {}) {
    super();
    this.dim = dim;
    this.eps = opts.eps ?? 1e-5;
    const dtype = opts.dtype ?? 'f32';
    this.weight = this.registerParameter('weight', new Parameter(Tensor.fromValues(new Float32Array(dim).fill(1), [dim], dtype)));
    this.bias = opts.bias === false ? null : this.registerParameter('bias', new Parameter(Tensor.zeros([dim], dtype)));
  }

  /** The kernel takes one dtype for weight and bias: widen both when they differ (rare). */
  private kernelParams(): { w: Storage; b: Storage | null; dtype: DType } {
    const W = this.weight.value;
    const Bt = this.bias?.value ?? null;
    if (!Bt || Bt.dtype === W.dtype) return { w: W.floatData, b: Bt?.floatData ?? null, dtype: W.floatDtype };
    return { w: W.toF32Array(), b: Bt.toF32Array(), dtype: 'f32' };
  }

  /** y[N, C] from x[N, C], placed as `where` says (see OutputPlace); x must stay unchanged until backward */
  forward(x: Float32Array, N: number, where: OutputPlace = 'own'): Float32Array {
    const C = this.dim;
    if (x.length !== N * C) throw new ShapeError(`LayerNorm.forward: x has ${x.length} elements, expected [${N}, ${C}] = ${N * C}`);
    const out = this.buffers.place(where, 'out', N * C);
    const mean = this.buffers.get('mean', N);
    const rstd = this.buffers.get('rstd', N);
    const { w, b, dtype } = this.kernelParams();
    getBackend().layernormForward(out, mean, rstd, x, w, b, N, C, this.eps, dtype);
    this.x = x;
    this.mean = mean;
    this.rstd = rstd;
    this.N = N;
    return out;
  }

  /** dweight[C], dbias[C] += …; returns dx[N, C] (or null when computeInputGrad is false); given `into` [N, C], dx is added into it and `into` returned */
  backward(dy: Float32Array, into?: Float32Array): Float32Array | null {
    const { N, dim: C, x, mean, rstd } = this;
    if (!x || !mean || !rstd) throw new Error('LayerNorm.backward called before forward');
    if (dy.length !== N * C) throw new ShapeError(`LayerNorm.backward: dy has ${dy.length} elements, expected [${N}, ${C}] = ${N * C}`);
    const dw = this.weight.grad;
    const db = this.bias?.grad ?? null;
    if (!dw && !db && !this.computeInputGrad) return null;
    checkInto(into, N, C, 'LayerNorm.backward');
    const dx = this.computeInputGrad ? (into ?? this.buffers.scratchZeros('dx', N * C)) : null;
    const { w, dtype } = this.kernelParams();
    getBackend().layernormBackward(dx, dw, db, dy, x, w, mean, rstd, N, C, dtype);
    return dx;
  }
}
