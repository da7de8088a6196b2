// Embedding: out[N, C] = weight[ids[n], :] for weight [V, C] (torch.nn.Embedding).
// The table may be f32, f16 or bf16 (widened row by row as it is read); backward
// scatter-adds dout into weight.grad when the table is trainable.
import { getBackend } from '../backend/index.js';
import { Tensor, ShapeError, type DType } from '../tensor/tensor.js';
import { Module, Parameter } from './module.js';

export interface EmbeddingOptions {
  dtype?: DType | undefined;
}

export class Embedding extends Module {
  /** V: rows in the table */
  readonly numEmbeddings: number;
  /** C: width of each row */
  readonly embeddingDim: number;
  readonly weight: Parameter;
  private ids: Int32Array | null = null;

  constructor(numEmbeddings: number, embeddingDim: number, opts: EmbeddingOptions = {}) {
    super();
    this.numEmbeddings = numEmbeddings;
    this.embeddingDim = embeddingDim;
    this.weight = this.registerParameter('weight', new Parameter(Tensor.zeros([numEmbeddings, embeddingDim], opts.dtype ?? 'f32')));
  }

  /** out[N, C] from ids[N]; the result is owned by the layer until its next forward */
  forward(ids: Int32Array): Float32Array {
    const V = this.numEmbeddings;
    const C = this.embeddingDim;
    const N = ids.length;
    for (let n = 0; n < N; n++) {
      const id = ids[n]!;
      if (id < 0 || id >= V) throw new RangeError(`Embedding.forward: ids[${n}] = ${id} is out of range for a vocabulary of ${V} (valid ids 0..${V - 1})`);
    }
    const W = this.weight.value;
    const out = this.buffers.get('out', N * C);
    getBackend().embeddingForward(out, ids, W.data, N, C, W.dtype);
    this.ids = ids;
    return out;
  }

  /** dweight[ids[n], :] += dout[n, :]; nothing to return (ids have no gradient) */
  backward(dout: Float32Array): null {
    const ids = this.ids;
    if (!ids) throw new Error('Embedding.backward called before forward');
    const C = this.embeddingDim;
    const N = ids.length;
    if (dout.length !== N * C) throw new ShapeError(`Embedding.backward: dout has ${dout.length} elements, expected [${N}, ${C}] = ${N * C}`);
    if (this.weight.grad) getBackend().embeddingBackward(this.weight.grad, dout, ids, N, C);
    return null;
  }
}
