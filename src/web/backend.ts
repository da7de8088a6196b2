// The browser entry's backend choice (docs/ARCHITECTURE.md §Platforms and entry points,
// §Browser, §WebGPU). The worker calls installBrowserBackend before it loads a model. Each kind
// has an async loader (a WebAssembly backend compiles its module first; WebGPU asks for an
// adapter); 'auto' takes the first that loads, in order of preference (WebGPU, wasm), else the
// reference backend, and says which and why in one line. A fallback (software) WebGPU adapter,
// such as SwiftShader, is slower than the CPU backends: 'auto' takes it only when asked
// (allowFallbackAdapter); choosing 'webgpu' by name takes it too.
import { refBackend, setBackend, type Backend } from '../backend/index.js';
import { requestWebGpuBackend, type WebGpuBackend } from '../backend/webgpu/index.js';
import type { BackendChoice, BackendInfo } from './protocol.js';

export interface LoaderOptions {
  /** a fallback (software) WebGPU adapter may be taken */
  allowFallback: boolean;
}
export type BackendLoader = (opts: LoaderOptions) => Promise<Backend>;

/** Loaders in order of preference for 'auto'. The reference backend always loads. */
const loaders = new Map<string, BackendLoader>([['ref', async () => refBackend]]);

/** Adds a backend the browser entry can choose (first in 'auto' order when `preferred`). */
export function registerBrowserBackend(name: string, load: BackendLoader, preferred = true): void {
  const rest = [...loaders].filter(([n]) => n !== name);
  loaders.clear();
  for (const [n, l] of preferred ? [[name, load] as const, ...rest] : [...rest, [name, load] as const]) loaders.set(n, l);
}

/** The WebGPU loader: an adapter of `gpu` (default navigator.gpu), a fallback one only when allowed. */
export function webGpuLoader(gpu?: GPU): BackendLoader {
  return ({ allowFallback }) => requestWebGpuBackend({ allowFallback, ...(gpu ? { gpu } : {}) });
}

export interface InstallOptions {
  /** 'auto' may take a fallback (software) WebGPU adapter (default false) */
  allowFallbackAdapter?: boolean;
}

/** Sets the backend for this thread; returns which one and why (BackendInfo.notice: the one-line notice). */
export async function installBrowserBackend(choice: BackendChoice, opts: InstallOptions = {}): Promise<BackendInfo> {
  const isolated = (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated === true;
  const info = (b: Backend, why: string): BackendInfo => {
    const gpu = b.name === 'webgpu' ? (b as WebGpuBackend) : null;
    const adapter = gpu ? `${gpu.adapter}${gpu.fallback ? ', a fallback adapter' : ''}` : undefined;
    const notice = `lorakit is running on ${b.name}${adapter ? ` (${adapter})` : ''}: ${why}`;
    return { name: b.name, why, crossOriginIsolated: isolated, notice, ...(adapter ? { adapter } : {}) };
  };
  if (choice !== 'auto') {
    const load = loaders.get(choice);
    if (!load) throw new Error(`backend "${choice}" is not available in this build (available: ${[...loaders.keys()].join(', ')})`);
    return info(setBackend(await load({ allowFallback: true })), `asked for ${choice}`);
  }
  const failures: string[] = [];
  for (const [name, load] of loaders) {
    try {
      const b = setBackend(await load({ allowFallback: opts.allowFallbackAdapter === true }));
      const first = name === 'ref' ? 'the only backend registered' : (b as Partial<WebGpuBackend>).fallback ? 'the first that loaded (a fallback adapter allowed)' : 'the fastest that loaded';
      const why = failures.length ? `fallback: ${failures.join('; ')}` : first;
      return info(b, why);
    } catch (e) {
      failures.push(`${name}: ${(e as Error).message}`);
    }
  }
  throw new Error(`no backend loaded: ${failures.join('; ')}`);
}
