// The native backend: each kernel calls the addon with positional arguments. Typed arrays
// are passed as they are (no copies); strings and option objects become numbers here.
import type { Storage } from '../../tensor/tensor.js';
import type { Backend, GemmArgs, PatchArgs } from '../types.js';
import { DTYPE_CODE, type NativeAddon } from './index.js';

export interface NativeBackend extends Backend {
  /** kernels the addon does not provide, served by the fallback (should be empty) */
  readonly missing: readonly string[];
  readonly avx2fma: boolean;
}

/** The backend over an addon object: the N-API addon, or the WebAssembly module's (name 'wasm'). */
export function createNativeBackend(addon: NativeAddon, fallback: Backend, name = 'native'): NativeBackend {
  const kernels = {
    gemm(c: Float32Array, a: Storage, b: Storage, g: GemmArgs): void {
      addon.gemm(c, a, b, g.M, g.N, g.K, g.transA ?? false, g.transB ?? false, g.accumulate ?? false, g.alpha ?? 1, DTYPE_CODE[g.aDtype ?? 'f32'], DTYPE_CODE[g.bDtype ?? 'f32'], g.lda ?? (g.transA ? g.M : g.K), g.ldb ?? (g.transB ? g.K : g.N), g.ldc ?? g.N);
    },
    ...opsAdapters(addon),
    ...convAdapters(addon),
  } as Partial<Backend>;
  const missing: string[] = [];
  const backend: Record<string, unknown> = {};
  for (const key of Object.keys(fallback) as (keyof Backend)[]) {
    if (key === 'name' || key === 'threads') continue;
    const fn = kernels[key];
    if (fn) backend[key] = fn;
    else {
      backend[key] = fallback[key];
      missing.push(key);
    }
  }
  return Object.assign(backend, {
    name,
    get threads() {
      return addon.threads();
    },
    missing,
    avx2fma: addon.cpuInfo().avx2fma,
  }) as unknown as NativeBackend;
}

/** Adapters for the convolution kernels (native/src/conv.cc), present when the addon exports them. */
function convAdapters(addon: NativeAddon): Partial<Backend> {
  const dims = (g: PatchArgs): Float64Array => Float64Array.of(g.B, g.C, g.H, g.W, g.KH, g.KW, g.SH, g.SW);
  const present: Partial<Backend> = {};
  if (typeof addon['im2col'] === 'function') present.im2col = (cols, img, g) => void addon['im2col']!(cols, img, dims(g));
  if (typeof addon['col2im'] === 'function') present.col2im = (dimg, dcols, g) => void addon['col2im']!(dimg, dcols, dims(g));
  return present;
}

/** Adapters for the non-GEMM kernels, present when the addon exports them. */
function opsAdapters(addon: NativeAddon): Partial<Backend> {
  const dt = (d: import('../../tensor/tensor.js').DType | undefined): number => DTYPE_CODE[d ?? 'f32'];
  const gelu = (approx: import('../types.js').GeluApprox): number => (approx === 'tanh' ? 1 : 0);
  // attention shapes travel as one Float64Array: the addon takes at most 16 arguments
  const dims = (g: import('../types.js').AttentionArgs): Float64Array => Float64Array.of(g.B, g.T, g.S, g.Hq, g.Hkv, g.D, g.causal ? 1 : 0, g.scale, g.window ?? 0);
  const all: Partial<Backend> = {
    add: (out, a, b) => void addon.add!(out, a, b),
    axpy: (y, x, alpha) => void addon.axpy!(y, x, alpha),
    scale: (out, a, s) => void addon.scale!(out, a, s),
    sumSquares: (x) => addon.sumSquares!(x) as number,
    widen: (out, src, dtype) => void addon.widen!(out, src, DTYPE_CODE[dtype]),
    narrow: (out, src, dtype) => void addon.narrow!(out, src, DTYPE_CODE[dtype]),
    biasAdd: (out, bias, M, N, d) => void addon.biasAdd!(out, bias, M, N, dt(d)),
    biasBackward: (dbias, dout, M, N) => void addon.biasBackward!(dbias, dout, M, N),
    rmsnormForward: (out, rstd, inp, w, N, C, eps, d) => void addon.rmsnormForward!(out, rstd, inp, w, N, C, eps, dt(d)),
    rmsnormBackward: (dinp, dw, dout, inp, w, rstd, N, C, d) => void addon.rmsnormBackward!(dinp, dw, dout, inp, w, rstd, N, C, dt(d)),
    layernormForward: (out, mean, rstd, inp, w, b, N, C, eps, d) => void addon.layernormForward!(out, mean, rstd, inp, w, b, N, C, eps, dt(d)),
    layernormBackward: (dinp, dw, db, dout, inp, w, mean, rstd, N, C, d) => void addon.layernormBackward!(dinp, dw, db, dout, inp, w, mean, rstd, N, C, dt(d)),
    softmax: (out, inp, N, C) => void addon.softmax!(out, inp, N, C),
    geluForward: (out, inp, approx) => void addon.geluForward!(out, inp, gelu(approx)),
    geluBackward: (dinp, inp, dout, approx) => void addon.geluBackward!(dinp, inp, dout, gelu(approx)),
    siluForward: (out, inp) => void addon.siluForward!(out, inp),
    siluBackward: (dinp, inp, dout) => void addon.siluBackward!(dinp, inp, dout),
    swigluForward: (out, gate, up) => void addon.swigluForward!(out, gate, up),
    swigluBackward: (dgate, dup, dout, gate, up, accumulate) => void addon.swigluBackward!(dgate, dup, dout, gate, up, accumulate ?? true),
    embeddingForward: (out, ids, table, N, C, d) => void addon.embeddingForward!(out, ids, table, N, C, dt(d)),
    embeddingBackward: (dtable, dout, ids, N, C) => void addon.embeddingBackward!(dtable, dout, ids, N, C),
    rope: (x, cos, sin, pos, B, T, H, D, interleaved, inverse, src) => void addon.rope!(x, cos, sin, pos, B, T, H, D, interleaved, inverse, src ?? null),
    attentionForward: (out, lse, q, k, v, g) => void addon.attentionForward!(out, lse, q, k, v, g.mask ?? null, dims(g)),
    attentionBackward: (dq, dk, dv, dout, q, k, v, out, lse, g) => void addon.attentionBackward!(dq, dk, dv, dout, q, k, v, out, lse, g.mask ?? null, dims(g)),
    crossEntropyForward: (losses, logits, targets, N, V, ignore) => void addon.crossEntropyForward!(losses, logits, targets, N, V, ignore),
    crossEntropyBackward: (dl, logits, targets, N, V, gs, ignore) => void addon.crossEntropyBackward!(dl, logits, targets, N, V, gs, ignore),
    crossEntropyLossGrad: (losses, dl, logits, targets, N, V, gs, ignore) => void addon.crossEntropyLossGrad!(losses, dl, logits, targets, N, V, gs, ignore),
    adamw: (p, g, m, v, o) => void addon.adamw!(p, g, m, v, o.lr, o.beta1, o.beta2, o.eps, o.weightDecay, o.step),
  };
  // keep only the kernels this build of the addon exports; the rest fall back (backend.missing)
  const present: Partial<Backend> = {};
  for (const [name, fn] of Object.entries(all)) if (typeof addon[name] === 'function') (present as Record<string, unknown>)[name] = fn;
  return present;
}
