// The WebAssembly backend in the browser (docs/ARCHITECTURE.md §Browser): native/wasm's
// emscripten module, which the build copies to dist/browser/wasm/, loaded in the training
// worker (a classic worker, for importScripts) with its pthread pool, one thread per core.
// It needs SharedArrayBuffer, so the page must be cross-origin isolated (`lorakit web` is).
// The relaxed-SIMD build is taken where the engine validates it, as in Node
// (backend/wasm/load.node.ts), so the page and `LORAKIT_BACKEND=wasm lorakit train` run the
// same code.
import { createNativeBackend } from '../backend/addon.js';
import { refBackend, type Backend } from '../backend/index.js';
import { createWasmMemory } from '../backend/wasm/memory.js';
import { WasmHeap, type KernelModule } from '../backend/wasm/module.js';

type Factory = (opts: Record<string, unknown>) => Promise<KernelModule>;

interface WorkerGlobals {
  crossOriginIsolated?: boolean;
  importScripts?: (url: string) => void;
  createLorakitWasm?: Factory;
  navigator?: { hardwareConcurrency?: number };
  WebAssembly: { validate(b: Uint8Array): boolean };
}

/** Loads the module from `base` (the folder holding lorakit.js, lorakit.worker.js and the .wasm files). */
export async function loadBrowserWasm(base: string | URL): Promise<Backend> {
  const g = globalThis as unknown as WorkerGlobals;
  if (typeof SharedArrayBuffer === 'undefined' || g.crossOriginIsolated === false) throw new Error('the page is not cross-origin isolated (the wasm backend needs SharedArrayBuffer for its threads; serve it with COOP/COEP, as `lorakit web` does)');
  if (typeof g.importScripts !== 'function') throw new Error('the wasm backend loads in a classic worker (importScripts); this is not one');
  const url = (f: string): string => new URL(f, base).href;
  const bytes = async (f: string): Promise<Uint8Array> => {
    const r = await fetch(url(f));
    if (!r.ok) throw new Error(`GET ${url(f)} answered ${r.status}`);
    return new Uint8Array(await r.arrayBuffer());
  };
  const relaxed = await bytes('lorakit-relaxed.wasm');
  const useRelaxed = g.WebAssembly.validate(relaxed);
  const wasmBinary = useRelaxed ? relaxed : await bytes('lorakit.wasm');
  g.importScripts(url('lorakit.js'));
  const factory = g.createLorakitWasm;
  if (typeof factory !== 'function') throw new Error(`${url('lorakit.js')} defined no createLorakitWasm`);
  const threads = Math.max(1, Math.min(g.navigator?.hardwareConcurrency ?? 1, 16));
  const mod = await factory({ wasmBinary, lkPoolSize: threads - 1, locateFile: (f: string) => url(f), mainScriptUrlOrBlob: url('lorakit.js') });
  const heap = new WasmHeap(mod);
  mod._lk_threads(threads);
  // its memory is the module's heap, as in Node (backend/native/select.ts): kernels read buffers in place
  return Object.assign(createNativeBackend(heap.addon(), refBackend, 'wasm'), { memory: createWasmMemory(heap) });
}
