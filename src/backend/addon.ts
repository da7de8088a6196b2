// A backend over an addon object: each kernel calls the addon with positional arguments.
// Its memory is the host's by default (docs/ARCHITECTURE.md §Backend memory): a handle is the
// typed array itself and is passed as it is (no copies); strings and option objects become numbers
// here. The native addon (backend/native/, Node) and the WebAssembly module
// (backend/wasm/module.ts; in Node and in a browser worker, web/wasm.ts) both have this
// shape, so this file is platform-neutral.
import { hostMemory } from './host-memory.js';
import { isQuantDType, type QuantDType } from '../tensor/quant.js';
import type { DType, TensorDType, TensorStorage } from '../tensor/tensor.js';
import type { AttentionArgs, Backend, GemmArgs, PatchArgs } from './types.js';

/** The raw addon: kernel functions with positional arguments (see native/src). */
export type NativeAddon = Record<string, (...args: unknown[]) => unknown> & {
  threads(n?: number): number;
  /** avx512f: the GEMM's packed path runs the AVX-512 micro-kernel (absent from older addons and the wasm module) */
  cpuInfo(): { avx2fma: boolean; avx512f?: boolean };
};

/** dtype codes of the addon (native/src/gemm.h): f32, half, then quantized blocks (tensor/quant.ts) */
export const DTYPE_CODE: Record<TensorDType, number> = { f32: 0, f16: 1, bf16: 2, q8_0: 3, q4_0: 4, q4_k: 5, q6_k: 6 };

export interface NativeBackend extends Backend {
  /** kernels the addon does not provide, served by the fallback (should be empty) */
  readonly missing: readonly string[];
  readonly avx2fma: boolean;
  /** the instruction set the kernels run on, for notices and bench headers ('AVX2+FMA', 'AVX-512 GEMM tile, AVX2+FMA', 'portable') */
  readonly isa: string;
  /** generation's prompt products with half or quantized weights run on AMX-BF16 (native/src/gemm_amx.cc; LORAKIT_AMX=0 turns it off) */
  readonly amx: boolean;
  /** generation's prompt attention runs on AMX-BF16 (native/src/attention_amx.cc; LORAKIT_AMX=0 or LORAKIT_AMX_ATTENTION=0 turns it off) */
  readonly amxAttention: boolean;
}

/** The backend over an addon object: the N-API addon, or the WebAssembly module's (name 'wasm'). */
export function createNativeBackend(addon: NativeAddon, fallback: Backend, name = 'native'): NativeBackend {
  // inference products (Backend.setInferenceProducts): a prompt's rows against a half or
  // quantized weight stored [N, K] go to gemmInference (native/src/gemm_amx.cc: AMX-BF16 where
  // the CPU has it, else gemm's own path); the addon's gemm otherwise
  const gemmInference = typeof addon['gemmInference'] === 'function' ? addon['gemmInference'] : null;
  // and a prompt's attention (more than 16 query rows) to attentionInference
  // (native/src/attention_amx.cc: AMX-BF16 where the CPU has it; it answers false where it
  // does not apply, and attentionForward runs)
  const attentionInference = typeof addon['attentionInference'] === 'function' ? addon['attentionInference'] : null;
  let inference = false;
  const kernels = {
    gemm(c: Float32Array, a: TensorStorage, b: TensorStorage, g: GemmArgs): void {
      const f = inference && g.M > 16 && g.transB && !g.transA && (g.aDtype ?? 'f32') === 'f32' && (g.bDtype ?? 'f32') !== 'f32' ? gemmInference! : addon.gemm;
      f(c, a, b, g.M, g.N, g.K, g.transA ?? false, g.transB ?? false, g.accumulate ?? false, g.alpha ?? 1, DTYPE_CODE[g.aDtype ?? 'f32'], DTYPE_CODE[g.bDtype ?? 'f32'], g.lda ?? (g.transA ? g.M : g.K), g.ldb ?? (g.transB ? g.K : g.N), g.ldc ?? g.N);
    },
    ...opsAdapters(addon),
    ...convAdapters(addon),
    ...rowsAdapters(addon),
  } as Partial<Backend>;
  const exactAttention = kernels.attentionForward;
  if (exactAttention && attentionInference) {
    kernels.attentionForward = (out, lse, q, k, v, g) => {
      if (inference && g.T > 16 && attentionInference(out, lse, q, k, v, g.mask ?? null, attentionDims(g)) === true) return;
      exactAttention(out, lse, q, k, v, g);
    };
  }
  const missing: string[] = [];
  const backend: Record<string, unknown> = {};
  for (const key of Object.keys(fallback) as (keyof Backend)[]) {
    if (key === 'name' || key === 'threads' || key === 'memory' || key === 'quantTypes') continue;
    const fn = kernels[key];
    if (fn) backend[key] = fn;
    else {
      backend[key] = fallback[key];
      missing.push(key);
    }
  }
  // the quantized B operands the addon's gemm reads (native/src/quant.h: a bit mask of dtype
  // codes); none for a module built without them (then models dequantize on load)
  const mask = typeof addon['quantTypes'] === 'function' ? (addon['quantTypes']() as number) : 0;
  const quantTypes = (Object.keys(DTYPE_CODE) as TensorDType[]).filter((d): d is QuantDType => isQuantDType(d) && ((mask >>> DTYPE_CODE[d]) & 1) === 1);
  const cpu = addon.cpuInfo();
  return Object.assign(backend, {
    name,
    memory: hostMemory,
    quantTypes,
    get threads() {
      return addon.threads();
    },
    missing,
    setInferenceProducts(on: boolean): boolean {
      const prev = inference;
      inference = on && gemmInference !== null;
      return prev;
    },
    avx2fma: cpu.avx2fma,
    isa: isaLabel(cpu),
    amx: typeof addon['amxAvailable'] === 'function' && addon['amxAvailable']() === true,
    amxAttention: typeof addon['amxAttentionAvailable'] === 'function' && addon['amxAttentionAvailable']() === true,
  }) as unknown as NativeBackend;
}

/** cpuInfo as a label; LORAKIT_NO_AVX2 / LORAKIT_NO_AVX512 are honoured by the addon's cpuInfo itself (native/src/cpu.cc) */
function isaLabel(info: { avx2fma: boolean; avx512f?: boolean }): string {
  if (!info.avx2fma) return 'portable';
  return info.avx512f ? 'AVX-512 GEMM tile, AVX2+FMA' : 'AVX2+FMA';
}

/** Adapters for the convolution kernels (native/src/conv.cc), present when the addon exports them. */
function convAdapters(addon: NativeAddon): Partial<Backend> {
  const dims = (g: PatchArgs): Float64Array => Float64Array.of(g.B, g.C, g.H, g.W, g.KH, g.KW, g.SH, g.SW);
  const present: Partial<Backend> = {};
  if (typeof addon['im2col'] === 'function') present.im2col = (cols, img, g) => void addon['im2col']!(cols, img, dims(g));
  if (typeof addon['col2im'] === 'function') present.col2im = (dimg, dcols, g) => void addon['col2im']!(dimg, dcols, dims(g));
  return present;
}

/** Adapters for the accumulators and the row kernels (native/src/ops_rows.cc), present when the addon exports them. */
function rowsAdapters(addon: NativeAddon): Partial<Backend> {
  const dt = (d: DType | undefined): number => DTYPE_CODE[d ?? 'f32'];
  const all: Partial<Backend> = {
    // the accumulator lives on the host for a CPU backend: the addon returns each sum
    sumInto: (acc, slot, x, offset, n) => void (acc[slot] = acc[slot]! + (addon['sumRange']!(x, offset ?? 0, n ?? x.length - (offset ?? 0)) as number)),
    copy2d: (dst, src, g) => void addon['copy2d']!(dst, src, g.rows, g.cols, g.dstOffset ?? 0, g.dstStride ?? g.cols, g.srcOffset ?? 0, g.srcStride ?? g.cols, g.accumulate ?? false),
    mul: (out, a, b) => void addon['mul']!(out, a, b),
    div: (out, a, b) => void addon['div']!(out, a, b),
    addRowVector: (out, v, alpha, N, C) => void addon['addRowVector']!(out, v, alpha, N, C),
    scaleColumns: (out, x, v, shift, N, C) => void addon['scaleColumns']!(out, x, v, shift, N, C),
    columnSums: (out, x, v, shift, alpha, N, C) => void addon['columnSums']!(out, x, v, shift, alpha, N, C),
    columnDots: (out, a, b, d, N, C) => void addon['columnDots']!(out, a, b, d, N, C),
    doraCombine: (out, P, wx, g, bias, N, O, bd) => void addon['doraCombine']!(out, P, wx, g, bias, N, O, dt(bd)),
    weightRowNorms: (out, w, wd, tr, delta, o0, rows, O, I) => void addon['weightRowNorms']!(out, w, dt(wd), tr, delta, o0, rows, O, I),
    scaleWeightRows: (w, num, den, tr, O, I) => void addon['scaleWeightRows']!(w, num, den, tr, O, I),
    additiveMask: (out, mask, B, S) => void addon['additiveMask']!(out, mask, B, S),
    addMasks: (out, bias, own, B, T, S) => void addon['addMasks']!(out, bias, own, B, T, S),
    tanhForward: (out, inp) => void addon['tanhForward']!(out, inp),
    tanhBackward: (dinp, y, dout) => void addon['tanhBackward']!(dinp, y, dout),
    sgd: (p, g, buf, o) => void addon['sgd']!(p, g, buf, o.lr, o.momentum, o.dampening, o.weightDecay, o.nesterov, o.first),
  };
  const present: Partial<Backend> = {};
  const addonName: Record<string, string> = { sumInto: 'sumRange' };
  for (const [name, fn] of Object.entries(all)) if (typeof addon[addonName[name] ?? name] === 'function') (present as Record<string, unknown>)[name] = fn;
  if (typeof addon.sumSquares === 'function') {
    // acc[slot] += the addon's threaded f64 sum of squares; the clip factor from the accumulator, applied by scale
    present.sumSquaresInto = (acc, slot, x) => void (acc[slot] = acc[slot]! + (addon.sumSquares!(x) as number));
  }
  if (typeof addon.scale === 'function') {
    present.clipByNorm = (x, acc, slot, maxNorm) => {
      const norm = Math.sqrt(acc[slot]!);
      if (!Number.isFinite(norm)) return;
      const factor = maxNorm / (norm + 1e-6);
      if (factor < 1) addon.scale!(x, x, factor);
    };
  }
  return present;
}

/** Attention shapes as one Float64Array (the addon takes at most 16 arguments): [B, T, S, Hq, Hkv, D, causal, scale, window]. */
function attentionDims(g: AttentionArgs): Float64Array {
  return Float64Array.of(g.B, g.T, g.S, g.Hq, g.Hkv, g.D, g.causal ? 1 : 0, g.scale, g.window ?? 0);
}

/** Adapters for the non-GEMM kernels, present when the addon exports them. */
function opsAdapters(addon: NativeAddon): Partial<Backend> {
  const dt = (d: import('../tensor/tensor.js').DType | undefined): number => DTYPE_CODE[d ?? 'f32'];
  const gelu = (approx: import('./types.js').GeluApprox): number => (approx === 'tanh' ? 1 : 0);
  const dims = attentionDims;
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
    embeddingForward: (out, ids, table, N, C, d) => void addon.embeddingForward!(out, ids, table, N, C, DTYPE_CODE[d ?? 'f32']),
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
