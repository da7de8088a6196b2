// The native backend: each kernel calls the addon with positional arguments. Typed arrays
// are passed as they are (no copies); strings and option objects become numbers here.
import type { Storage } from '../../tensor/tensor.js';
import type { Backend, GemmArgs } from '../types.js';
import { DTYPE_CODE, type NativeAddon } from './index.js';

export interface NativeBackend extends Backend {
  /** kernels the addon does not provide, served by the fallback (should be empty) */
  readonly missing: readonly string[];
  readonly avx2fma: boolean;
}

export function createNativeBackend(addon: NativeAddon, fallback: Backend): NativeBackend {
  const kernels = {
    gemm(c: Float32Array, a: Storage, b: Storage, g: GemmArgs): void {
      addon.gemm(c, a, b, g.M, g.N, g.K, g.transA ?? false, g.transB ?? false, g.accumulate ?? false, g.alpha ?? 1, DTYPE_CODE[g.aDtype ?? 'f32'], DTYPE_CODE[g.bDtype ?? 'f32'], g.lda ?? (g.transA ? g.M : g.K), g.ldb ?? (g.transB ? g.K : g.N), g.ldc ?? g.N);
    },
    ...opsAdapters(addon),
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
    name: 'native',
    get threads() {
      return addon.threads();
    },
    missing,
    avx2fma: addon.cpuInfo().avx2fma,
  }) as unknown as NativeBackend;
}

/** Adapters for the non-GEMM kernels, present when the addon exports them. */
function opsAdapters(addon: NativeAddon): Partial<Backend> {
  void addon;
  return {};
}
