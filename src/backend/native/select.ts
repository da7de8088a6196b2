// Node's backend choice (docs/ARCHITECTURE.md §Platforms and entry points), a fallback chain:
// the native addon when it loads, else the WebAssembly module (native/wasm), else the
// reference backend, with one line saying which and why. LORAKIT_BACKEND=native|wasm|ref
// forces one. lorakit's Node entry installs these defaults; the wasm module loads
// asynchronously, so entry points await prepareNodeBackend() before the first kernel.
import { isMainThread } from 'node:worker_threads';
import { refBackend, setBackend as setCoreBackend, setBackendDefaults, type Backend } from '../index.js';
import { loadWasm, wasmLoaded } from '../wasm/load.node.js';
import { createWasmMemory } from '../wasm/memory.js';
import { createNativeBackend, type NativeBackend } from '../addon.js';
import { loadAddon } from './index.js';

export type BackendName = 'native' | 'wasm' | 'ref';

let native: NativeBackend | null | undefined;
let wasm: NativeBackend | null | undefined;
let warned = false;

/** The native backend, or null (with the reason from nativeError()) when the addon is unavailable. */
export function nativeBackend(): NativeBackend | null {
  if (native === undefined) {
    const { addon } = loadAddon();
    native = addon ? createNativeBackend(addon, refBackend) : null;
  }
  return native;
}

export function nativeError(): string | null {
  return loadAddon().error;
}

/** The wasm backend once its module has loaded (await prepareNodeBackend() or loadWasmBackend()), else null. */
export function wasmBackend(): NativeBackend | null {
  if (wasm) return wasm;
  const w = wasmLoaded();
  if (!w?.heap) return null;
  // its memory is the module's heap: buffers allocated there are read in place by the kernels
  wasm = Object.assign(createNativeBackend(w.heap.addon(), refBackend, 'wasm'), { memory: createWasmMemory(w.heap) });
  return wasm;
}

/** Loads the wasm module (once) and returns its backend, or null (see wasmError()). */
export async function loadWasmBackend(): Promise<NativeBackend | null> {
  await loadWasm();
  return wasmBackend();
}

/** why the wasm backend is not available: null when it is, or when it has not been loaded */
export function wasmError(): string | null {
  return wasmLoaded()?.error ?? null;
}

/** 'simd128-relaxed' or 'simd128' once loaded */
export function wasmVariant(): string | null {
  return wasmLoaded()?.variant ?? null;
}

function parseName(v: string | undefined): BackendName | undefined {
  if (v === undefined || v === '') return undefined;
  if (v === 'native' || v === 'wasm' || v === 'ref') return v;
  // the WebGPU backend (docs/ARCHITECTURE.md §WebGPU) needs navigator.gpu, which Node has not
  if (v === 'webgpu') throw new Error('LORAKIT_BACKEND=webgpu: Node has no WebGPU (no navigator.gpu); the WebGPU backend runs in a browser (`lorakit/browser`, requestWebGpuBackend)');
  throw new Error(`LORAKIT_BACKEND must be native, wasm or ref (got "${v}"; webgpu runs in a browser)`);
}

/** Loads what the backend choice needs before the first kernel runs: the wasm module when
 *  LORAKIT_BACKEND=wasm or the native addon does not load. Entry points await it.
 *  Only on the main thread: the wasm module's own worker threads (its pthreads) inherit
 *  Node's --import preloads, and one that loaded the module again would start workers of
 *  its own without end. A worker thread of the user's awaits loadWasmBackend() itself. */
export async function prepareNodeBackend(backend = process.env.LORAKIT_BACKEND): Promise<void> {
  const want = parseName(backend);
  if (!isMainThread || want === 'ref' || (want !== 'wasm' && nativeBackend())) return;
  await loadWasm();
}

/** Chooses the backend: 'native', 'wasm' (loaded), 'ref', or a Backend object. */
export function setBackend(b: BackendName | Backend): Backend {
  if (b === 'native') {
    const n = nativeBackend();
    if (!n) throw new Error(`the native backend is not available: ${nativeError()}`);
    return setCoreBackend(n);
  }
  if (b === 'wasm') {
    const w = wasmBackend();
    if (!w) throw new Error(`the wasm backend is not available: ${wasmError() ?? 'its module has not been loaded (await loadWasmBackend() first)'}`);
    return setCoreBackend(w);
  }
  return setCoreBackend(b);
}

/** Which backend Node uses and why, one line (the notice printed when it is not native, and `lorakit backend`). */
export function backendReason(b: Backend, requested: string | undefined = process.env.LORAKIT_BACKEND): string {
  if (requested && b.name === requested) return `LORAKIT_BACKEND=${requested}`;
  if (b.name === 'native') return 'the native addon loaded';
  const whyNative = nativeError() ?? 'not requested';
  if (b.name === 'wasm') return `the native addon is unavailable (${whyNative})`;
  return `the native addon is unavailable (${whyNative}) and so is the wasm module (${wasmError() ?? 'not loaded'})`;
}

/** The backend Node uses until one is set: `backend` (LORAKIT_BACKEND) forces one; else native, wasm, ref in turn. */
export function chooseNodeBackend(backend: string | undefined): Backend {
  const want = parseName(backend);
  if (want === 'ref') return refBackend;
  if (want === 'native') return setBackend('native');
  if (want === 'wasm') {
    const w = wasmBackend();
    if (w) return w;
    throw new Error(`LORAKIT_BACKEND=wasm but the wasm backend is not available: ${wasmError() ?? 'its module has not been loaded (await installNodePlatform() or loadWasmBackend() first)'}`);
  }
  const chosen = nativeBackend() ?? wasmBackend() ?? refBackend;
  if (chosen.name !== 'native' && !warned) {
    warned = true;
    const what = chosen.name === 'wasm' ? `the WebAssembly backend (${wasmVariant()}, ${chosen.threads} threads)` : 'the slow TypeScript backend';
    process.emitWarning(`lorakit is running on ${what}: ${backendReason(chosen, backend)}`, { code: 'LORAKIT_NO_NATIVE' });
  }
  return chosen;
}

/** Installs Node's defaults: the backend named by LORAKIT_BACKEND or the fallback chain, and cache-line alignment from the addon. */
export function installNodeBackend(): void {
  setBackendDefaults({
    choose: () => chooseNodeBackend(process.env.LORAKIT_BACKEND),
    byteAlignment: (a) => {
      const addon = loadAddon().addon;
      return addon && typeof addon['byteAlignment'] === 'function' ? (addon['byteAlignment'](a) as number) : 0;
    },
  });
}
