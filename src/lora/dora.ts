// DoRA (PEFT's dora.py) as a LoRA variant (docs/ARCHITECTURE.md §LoRA variants). With the
// magnitude m [O] and the row norm n[o] = ‖W[o, :] + s·(B·A)[o, :]‖ treated as a constant
// (detached), g = m / n and
//   y ← y + (g − 1)·(y − b) + g·s·lora(x)            without dropout (y: the running result)
//   y ← y + (g − 1)·(W·xd) + g·s·lora(xd)            with dropout active, xd = dropout(x)
// Backward: dm += Σ_n G·P / n (P = the unscaled sum), the LoRA path sees g ⊙ G, and the running
// result before this adapter receives g ⊙ G (or, with dropout, W·xd receives (g − 1) ⊙ G).
// Merging: W ← (m / ‖W + ΔW‖)·(W + ΔW); unmerging divides by the same factor and subtracts ΔW.
import { getBackend, type F32Buf } from '../backend/index.js';
import { Parameter } from '../nn/module.js';
import { Tensor } from '../tensor/tensor.js';
import type { AdapterLayer, LowRank, LoraVariant } from './adapter.js';

/** n[o] = ‖W[o, :] + s·(B·A)[o, :]‖ into out [O] (sums in f64), in row blocks with the backend GEMM. */
export function doraWeightNorm(layer: AdapterLayer, a: LowRank, out?: F32Buf): F32Buf {
  const be = getBackend();
  const I = layer.inFeatures;
  const O = layer.outFeatures;
  const r = a.r;
  const W = layer.base.weight.value;
  const norm = out ?? be.memory.alloc(O);
  const rows = Math.max(1, Math.min(O, Math.floor((1 << 20) / I)));
  const tmp = layer.buffers.get('dora_rows', rows * I);
  for (let o0 = 0; o0 < O; o0 += rows) {
    const n = Math.min(rows, O - o0);
    // tmp[n, I] = s · B[o0 .. o0+n) · A, then the norms of W's rows o0.. plus tmp's
    be.gemm(tmp, a.B.data.subarray(o0 * r, (o0 + n) * r), a.A.data, { M: n, N: I, K: r, alpha: a.scaling });
    be.weightRowNorms(norm, W.floatData, W.floatDtype, layer.transposed, tmp, o0, n, O, I);
  }
  return norm;
}

export const dora: LoraVariant = {
  name: 'DoRA',
  rewritesGradient: true,
  perRow: false,
  extraParameter: (layer, a) => new Parameter(new Tensor('f32', [layer.outFeatures], doraWeightNorm(layer, a)), true),

  forward(layer, a, xd, h, N, out) {
    const be = getBackend();
    const I = layer.inFeatures;
    const O = layer.outFeatures;
    // g[o] = m[o] / ‖W + s·B·A‖[o] (the norm is a constant for backward)
    const norm = doraWeightNorm(layer, a, a.buffers.get('norm', O));
    const g = a.buffers.get('g', O);
    be.div(g, a.magnitude!.data, norm);
    const P = a.buffers.get('P', N * O);
    be.gemm(P, h, a.B.data, { M: N, N: O, K: a.r, transB: true, alpha: a.scaling });
    const viaDropout = a.dropout.active;
    if (viaDropout) {
      // P = W·xd + s·lora, out += g·P − W·xd
      const wx = a.buffers.get('wx', N * O);
      const W = layer.base.weight.value;
      be.gemm(wx, xd, W.data, { M: N, N: O, K: I, transB: !layer.transposed, bDtype: W.dtype });
      be.doraCombine(out, P, wx, g, null, N, O);
    } else {
      // P = (y − b) + s·lora, y ← g·P + b
      const b = layer.base.bias?.value ?? null;
      be.doraCombine(out, P, null, g, b ? b.floatData : null, N, O, b?.floatDtype);
    }
    return viaDropout;
  },

  backward(layer, step, G, dxd, N) {
    const be = getBackend();
    const { a, viaDropout } = step;
    const I = layer.inFeatures;
    const O = layer.outFeatures;
    const g = a.buffers.get('g', O);
    const norm = a.buffers.get('norm', O);
    const P = a.buffers.get('P', N * O);
    const dm = a.magnitude!.grad;
    if (dm) be.columnDots(dm, G, P, norm, N, O);
    if (viaDropout) {
      const GL = a.buffers.get('GL', N * O);
      be.scaleColumns(GL, G, g, 0, N, O);
      if (dxd) {
        // W·xd received (g − 1)·G
        const Gw = a.buffers.get('Gw', N * O);
        be.scaleColumns(Gw, G, g, -1, N, O);
        const W = layer.base.weight.value;
        be.gemm(dxd, Gw, W.data, { M: N, N: I, K: O, transB: layer.transposed, bDtype: W.dtype, accumulate: true });
      }
      return GL;
    }
    // y ← g·(y_prev − b) + b + g·s·lora: y_prev receives g·G, the bias (1 − g)·G directly
    const baseBias = layer.base.bias;
    if (baseBias?.grad) be.columnSums(baseBias.grad, G, g, -1, -1, N, O);
    be.scaleColumns(G, G, g, 0, N, O);
    return G;
  },

  merge(layer, a, w, delta) {
    const be = getBackend();
    const O = layer.outFeatures;
    be.axpy(w, delta, 1);
    const norm = be.memory.alloc(O);
    be.weightRowNorms(norm, w, 'f32', layer.transposed, null, 0, O, O, layer.inFeatures);
    be.scaleWeightRows(w, a.magnitude!.data, norm, layer.transposed, O, layer.inFeatures);
    return norm;
  },

  unmerge(layer, a, w, delta, state) {
    const be = getBackend();
    be.scaleWeightRows(w, state as F32Buf, a.magnitude!.data, layer.transposed, layer.outFeatures, layer.inFeatures);
    be.axpy(w, delta, -1);
  },
};
