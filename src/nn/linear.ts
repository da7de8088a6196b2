// Linear: y[N, out] = x[N, in] · Wᵀ + b, W stored [out, in] (torch.nn.Linear), or
// [in, out] when `transposed` (GPT-2's Conv1D). The weight may be f32, f16 or bf16;
// half weights are widened inside the GEMM, never in full.
import { getBackend } from '../backend/index.js';
import { Tensor, ShapeError, type DType } from '../tensor/tensor.js';
import { Module, Parameter, checkInto } from './module.js';

/** A layer mapping rows of `inFeatures` to rows of `outFeatures` (Linear and its adapters). */
export interface RowLayer {
  readonly inFeatures: number;
  readonly outFeatures: number;
  /** whether backward() computes dx (false below the lowest trainable layer) */
  computeInputGrad: boolean;
  /**
   * y[N, outFeatures] from x[N, inFeatures]; the result is owned by the layer until its next
   * forward, or, when `transient`, only until the caller has read it (it may live in scratch
   * shared with the same layer of other blocks; see Buffers.scratch)
   */
  forward(x: Float32Array, N: number, transient?: boolean): Float32Array;
  /**
   * whether backward() reads the x of forward (a trainable weight or adapter does), so the
   * producer of x must keep it; absent means yes
   */
  readonly savesInput?: boolean;
  /**
   * from dy[N, outFeatures] of the last forward: adds into parameter gradients, returns
   * dx[N, inFeatures] or null. Given `into` [N, inFeatures], dx is added into it and `into`
   * returned (so a sum of input gradients takes no extra pass); a layer may also return its
   * own dx instead, which addInputGrad (rowlayer.ts) then adds.
   */
  backward(dy: Float32Array, into?: Float32Array): Float32Array | null;
}

export interface LinearOptions {
  bias?: boolean;
  /** weight stored [in, out] (GPT-2 Conv1D) */
  transposed?: boolean;
  dtype?: DType;
}

export class Linear extends Module implements RowLayer {
  readonly inFeatures: number;
  readonly outFeatures: number;
  readonly transposed: boolean;
  readonly weight: Parameter;
  readonly bias: Parameter | null;
  computeInputGrad = true;
  private x: Float32Array | null = null;
  private N = 0;

  constructor(inFeatures: number, outFeatures: number, opts: LinearOptions = {}) {
    super();
    this.inFeatures = inFeatures;
    this.outFeatures = outFeatures;
    this.transposed = opts.transposed ?? false;
    const shape = this.transposed ? [inFeatures, outFeatures] : [outFeatures, inFeatures];
    this.weight = this.registerParameter('weight', new Parameter(Tensor.zeros(shape, opts.dtype ?? 'f32')));
    this.bias = opts.bias ? this.registerParameter('bias', new Parameter(Tensor.zeros([outFeatures], opts.dtype ?? 'f32'))) : null;
  }

  /** backward() reads x only for the weight's gradient */
  get savesInput(): boolean {
    return this.weight.requiresGrad;
  }

  /** y[N, out] = x[N, in] · Wᵀ + b */
  forward(x: Float32Array, N: number, transient = false): Float32Array {
    if (x.length !== N * this.inFeatures) {
      throw new ShapeError(`Linear.forward: x has ${x.length} elements, expected [${N}, ${this.inFeatures}] = ${N * this.inFeatures}`);
    }
    const be = getBackend();
    const out = transient ? this.buffers.scratch('out', N * this.outFeatures) : this.buffers.get('out', N * this.outFeatures);
    const W = this.weight.value;
    be.gemm(out, x, W.data, { M: N, N: this.outFeatures, K: this.inFeatures, transB: !this.transposed, bDtype: W.dtype });
    if (this.bias) be.biasAdd(out, this.bias.value.floatData, N, this.outFeatures, this.bias.value.floatDtype);
    this.x = x;
    this.N = N;
    return out;
  }

  /** dW += dyᵀ·x (or xᵀ·dy when transposed), db += Σ dy, returns dx = dy·W (or into += dy·W, see RowLayer) */
  backward(dy: Float32Array, into?: Float32Array): Float32Array | null {
    const { N, inFeatures: I, outFeatures: O } = this;
    const x = this.x;
    if (!x) throw new Error('Linear.backward called before forward');
    if (dy.length !== N * O) throw new ShapeError(`Linear.backward: dy has ${dy.length} elements, expected [${N}, ${O}]`);
    const be = getBackend();
    const W = this.weight.value;
    if (this.weight.grad) {
      if (this.transposed) be.gemm(this.weight.grad, x, dy, { M: I, N: O, K: N, transA: true, accumulate: true });
      else be.gemm(this.weight.grad, dy, x, { M: O, N: I, K: N, transA: true, accumulate: true });
    }
    if (this.bias?.grad) be.biasBackward(this.bias.grad, dy, N, O);
    if (!this.computeInputGrad) return null;
    const dx = checkInto(into, N, I, 'Linear.backward') ?? this.buffers.scratch('dx', N * I);
    be.gemm(dx, dy, W.data, { M: N, N: I, K: O, transB: this.transposed, bDtype: W.dtype, accumulate: into !== undefined });
    return dx;
  }
}
