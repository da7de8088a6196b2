// RMSNorm: y[N, C] = x / sqrt(mean(x²) + eps) · weight[C] (LLaMA's LlamaRMSNorm), or with
// `unitOffset` · (1 + weight[C]) (Gemma's Gemma3RMSNorm: weights stored around 0, the sum taken
// in f32). The backward is the same with the effective weight; its gradient is weight's.
import { getBackend } from '../backend/index.js';
import { Tensor, ShapeError, type DType, type Storage } from '../tensor/tensor.js';
import { Module, Parameter, checkInto, type OutputPlace } from './module.js';

export interface RMSNormOptions {
  /** default 1e-6 */
  eps?: number | undefined;
  dtype?: DType | undefined;
  /** scale by (1 + weight) (Gemma); the weight then starts at 0 */
  unitOffset?: boolean | undefined;
}

export class RMSNorm extends Module {
  /** C: channels normalised per row */
  readonly dim: number;
  readonly eps: number;
  readonly weight: Parameter;
  readonly unitOffset: boolean;
  /** whether backward() computes dx */
  computeInputGrad = true;
  private x: Float32Array | null = null;
  private rstd: Float32Array | null = null;
  private N = 0;

  constructor(dim: number, opts: RMSNormOptions = {}) {
    super();
    this.dim = dim;
    this.eps = opts.eps ?? 1e-6;
    this.unitOffset = opts.unitOffset ?? false;
    this.weight = this.registerParameter('weight', new Parameter(Tensor.fromValues(new Float32Array(dim).fill(this.unitOffset ? 0 : 1), [dim], opts.dtype ?? 'f32')));
  }

  /** the weight the kernels use: weight, or 1 + weight in f32 (unitOffset) */
  private effectiveWeight(): { data: Storage; dtype: DType } {
    const W = this.weight.value;
    if (!this.unitOffset) return { data: W.floatData, dtype: W.floatDtype };
    const w = W.toF32Array();
    const eff = this.buffers.get('weight1p', this.dim);
    for (let i = 0; i < eff.length; i++) eff[i] = 1 + w[i]!;
    return { data: eff, dtype: 'f32' };
  }

  /** y[N, C] from x[N, C], placed as `where` says (see OutputPlace); x must stay unchanged until backward */
  forward(x: Float32Array, N: number, where: OutputPlace = 'own'): Float32Array {
    const C = this.dim;
    if (x.length !== N * C) throw new ShapeError(`RMSNorm.forward: x has ${x.length} elements, expected [${N}, ${C}] = ${N * C}`);
    const out = this.buffers.place(where, 'out', N * C);
    const rstd = this.buffers.get('rstd', N);
    const W = this.effectiveWeight();
    getBackend().rmsnormForward(out, rstd, x, W.data, N, C, this.eps, W.dtype);
    this.x = x;
    this.rstd = rstd;
    this.N = N;
    return out;
  }

  /** dweight[C] += …; returns dx[N, C] (or null when computeInputGrad is false); given `into` [N, C], dx is added into it and `into` returned */
  backward(dy: Float32Array, into?: Float32Array): Float32Array | null {
    const { N, dim: C, x, rstd } = this;
    if (!x || !rstd) throw new Error('RMSNorm.backward called before forward');
    if (dy.length !== N * C) throw new ShapeError(`RMSNorm.backward: dy has ${dy.length} elements, expected [${N}, ${C}] = ${N * C}`);
    const dw = this.weight.grad;
    if (!dw && !this.computeInputGrad) return null;
    checkInto(into, N, C, 'RMSNorm.backward');
    const dx = this.computeInputGrad ? (into ?? this.buffers.scratchZeros('dx', N * C)) : null;
    const W = this.effectiveWeight();
    getBackend().rmsnormBackward(dx, dw, dy, x, W.data, rstd, N, C, W.dtype);
    return dx;
  }
}
