// The LoRA variants (docs/ARCHITECTURE.md §LoRA variants): plain LoRA here, DoRA in dora.ts.
// A new variant is an object implementing LoraVariant (adapter.ts) and a line in variantFor.
import { getBackend } from '../backend/index.js';
import type { LoraVariant } from './adapter.js';
import { dora } from './dora.js';

/** Plain LoRA: y += s·(dropout(x)·Aᵀ)·Bᵀ (+ s·bias with lora_bias); merged as W += s·B·A. */
export const lora: LoraVariant = {
  name: 'LoRA',
  rewritesGradient: false,
  perRow: true,
  extraParameter: () => null,
  forward(layer, a, _xd, h, N, out) {
    const be = getBackend();
    const O = layer.outFeatures;
    // out[N, O] += s · h · Bᵀ
    be.gemm(out, h, a.B.data, { M: N, N: O, K: a.r, transB: true, accumulate: true, alpha: a.scaling });
    if (a.bias) be.addRowVector(out, a.bias.data, a.scaling, N, O);
    return false;
  },
  backward: (_layer, _step, G) => G,
  merge(_layer, _a, w, delta) {
    getBackend().axpy(w, delta, 1);
    return undefined;
  },
  unmerge(_layer, _a, w, delta) {
    getBackend().axpy(w, delta, -1);
  },
};

/** The variant an adapter's options ask for. */
export function variantFor(opts: { useDora?: boolean | undefined }): LoraVariant {
  return opts.useDora ? dora : lora;
}
