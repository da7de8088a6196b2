// Merging adapters into the base weight and back (docs/ARCHITECTURE.md §LoRA variants).
// The merge runs in f32 on the backend: W (widened when half) + the variant's change, then
// committed in W's dtype. Half-precision (f16/bf16) weights lose information when rounded
// back, so the original half tensors are stashed while merged and unmerge restores them
// exactly; f32 weights are updated in place and unmerge runs each variant's inverse (exact up
// to f32 rounding). A quantized weight (GGUF blocks, docs/ARCHITECTURE.md §Quantized weights)
// is dequantized and the merged weight stays f32: blocks cannot hold W + ΔW without a second
// quantization, which is the export's to do (lorakit export --format gguf --type q4_0). Its
// blocks are stashed like a half weight's, so unmerge restores them exactly.
import { getBackend, type F32Buf } from '../backend/index.js';
import type { Parameter } from '../nn/module.js';
import { Tensor } from '../tensor/tensor.js';
import type { AdapterLayer, LoraAdapter } from './adapter.js';

/** A layer's merge state: what is merged, in order, and what unmerge needs. */
export class MergeState {
  /** merged adapter names, oldest first */
  names: string[] = [];
  /** the original half-precision weight and bias while merged */
  stash: { weight: Tensor; bias: Tensor | null } | null = null;
  /** what each merged adapter's variant returned from merge() */
  readonly variantState = new Map<string, unknown>();

  /** Forgets everything (after mergeAndUnload, or once restored). */
  clear(): void {
    this.names = [];
    this.stash = null;
    this.variantState.clear();
  }
}

/** ΔW = s·B·A in W's own layout ([out, in], or [in, out] for Conv1D), f32. */
export function deltaWeight(layer: AdapterLayer, a: LoraAdapter): F32Buf {
  const be = getBackend();
  const I = layer.inFeatures;
  const O = layer.outFeatures;
  const d = be.memory.alloc(O * I);
  if (layer.transposed) be.gemm(d, a.A.data, a.B.data, { M: I, N: O, K: a.r, transA: true, transB: true, alpha: a.scaling });
  else be.gemm(d, a.B.data, a.A.data, { M: O, N: I, K: a.r, alpha: a.scaling });
  return d;
}

/** A tensor's values as a new f32 buffer (widened when half, dequantized on the host when quantized). */
function f32Copy(t: Tensor): F32Buf {
  const be = getBackend();
  const out = be.memory.alloc(t.size);
  if (t.data instanceof Float32Array) be.copy2d(out, t.data, { rows: 1, cols: t.size });
  else if (t.data instanceof Uint8Array) be.memory.write(out, t.toF32Array());
  else be.widen(out, t.data, t.dtype as 'f16' | 'bf16');
  return out;
}

/** f32 values as they will be stored in a parameter like p: in its dtype (rounded to nearest even when half; f32 for a quantized one). */
function cast(p: Parameter, v: F32Buf): Tensor {
  const t = p.value;
  if (t.dtype === 'f32' || t.quantized) return Tensor.fromF32(v, t.shape);
  const be = getBackend();
  const dtype = t.dtype as 'f16' | 'bf16';
  const h = be.memory.allocHalf(t.size, dtype);
  be.narrow(h, v, dtype);
  return new Tensor(dtype, t.shape, h);
}

/** Commits a cast value: an f32 parameter is updated in place, a half one gets the new tensor. */
function commit(p: Parameter, v: Tensor): void {
  const t = p.value;
  if (t.data instanceof Float32Array) getBackend().copy2d(t.data, v.f32, { rows: 1, cols: t.size });
  else p.value = v;
}

/** How many values are NaN or ±Inf (read back: it is for the message). */
function nonFinite(v: F32Buf): number {
  const host = getBackend().memory.view(v);
  let bad = 0;
  for (let i = 0; i < host.length; i++) if (!Number.isFinite(host[i]!)) bad++;
  return bad;
}

/**
 * Merges one adapter into the layer's base weight (and its lora_bias into the base bias).
 * safe checks the result for NaN/Inf before committing and throws naming the adapter and the
 * module, leaving the weights unchanged.
 */
export function mergeAdapter(layer: AdapterLayer, state: MergeState, a: LoraAdapter, safe: boolean, path: string): void {
  const be = getBackend();
  const base = layer.base;
  const W = base.weight.value;
  const half = W.dtype !== 'f32';
  if (half && !state.stash) state.stash = { weight: W, bias: base.bias ? base.bias.value : null };
  const w = f32Copy(W);
  const vstate = a.variant.merge(layer, a, w, deltaWeight(layer, a));
  let newBias: F32Buf | null = null;
  if (a.bias) {
    if (!base.bias) throw new Error(`LoraLinear${layer.label}: adapter "${a.name}" has lora_bias but the base layer has no bias, so it cannot be merged`);
    newBias = f32Copy(base.bias.value);
    be.axpy(newBias, a.bias.data, a.scaling);
  }
  // the values as they will be stored: a half base rounds W + s·B·A to half here, and a
  // finite f32 sum past the half range becomes Inf, so safe merge checks after the cast
  const wOut = cast(base.weight, w);
  const bOut = newBias && base.bias ? cast(base.bias, newBias) : null;
  if (safe) {
    // checks of the result, read back on the host (a message needs the count)
    const bad = wOut.nonFiniteCount() + (bOut ? bOut.nonFiniteCount() : 0);
    if (bad > 0) {
      if (half && state.names.length === 0) state.stash = null;
      const finiteBefore = nonFinite(w) + (newBias ? nonFinite(newBias) : 0) === 0;
      const why = finiteBefore ? ` (the sum is finite in f32 but exceeds the ${W.dtype} range when stored as ${W.dtype})` : '';
      throw new Error(`safe merge: adapter "${a.name}" gives ${bad} NaN/Inf value(s) in the merged weights of module ${path || '(this layer)'}${why}; the weights were left unchanged`);
    }
  }
  commit(base.weight, wOut);
  if (bOut && base.bias) commit(base.bias, bOut);
  if (vstate !== undefined) state.variantState.set(a.name, vstate);
  state.names.push(a.name);
}

/** Undoes every merge, most recent first (restoring the stashed half tensors when there are any). */
export function unmergeAll(layer: AdapterLayer, state: MergeState, adapter: (name: string) => LoraAdapter): void {
  const base = layer.base;
  if (state.stash) {
    base.weight.value = state.stash.weight;
    if (base.bias && state.stash.bias) base.bias.value = state.stash.bias;
    state.clear();
    return;
  }
  const be = getBackend();
  while (state.names.length) {
    const name = state.names.pop()!;
    const a = adapter(name);
    a.variant.unmerge(layer, a, base.weight.value.f32, deltaWeight(layer, a), state.variantState.get(name));
    state.variantState.delete(name);
    if (a.bias && base.bias) be.axpy(base.bias.value.f32, a.bias.data, -a.scaling);
  }
}
