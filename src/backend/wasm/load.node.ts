// Loads the WebAssembly kernel module in Node: native/wasm/lorakit.js (emscripten's glue,
// CommonJS) with the binary's bytes passed in (the glue would try fetch on a file path).
// The relaxed-SIMD binary is taken where the engine validates it: Node 20's V8 has relaxed
// SIMD behind a flag, which is switched on here before validating (worker threads share it).
// docs/ARCHITECTURE.md §Platforms and entry points.
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { packageRoot } from '../native/index.js';
import { WasmHeap, type KernelModule } from './module.js';

export interface WasmLoad {
  heap: WasmHeap | null;
  /** why the module is not available, when it is not */
  error: string | null;
  /** 'simd128-relaxed' or 'simd128' */
  variant?: string;
}

type Factory = (opts: Record<string, unknown>) => Promise<KernelModule>;

let loading: Promise<WasmLoad> | null = null;
let loaded: WasmLoad | null = null;

/** the module once loadWasm() has finished, else null */
export function wasmLoaded(): WasmLoad | null {
  return loaded;
}

// (tsconfig's libraries have no WebAssembly declarations)
const validate = (bytes: Uint8Array): boolean => (globalThis as unknown as { WebAssembly: { validate(b: Uint8Array): boolean } }).WebAssembly.validate(bytes);

function relaxedSupported(bytes: Uint8Array): boolean {
  if (process.env.LORAKIT_WASM_RELAXED === '0') return false;
  if (validate(bytes)) return true;
  try {
    setFlagsFromString('--experimental-wasm-relaxed-simd');
  } catch {
    return false;
  }
  return validate(bytes);
}

/** Loads the module once; later calls return the same promise. */
export function loadWasm(): Promise<WasmLoad> {
  loading ??= (async (): Promise<WasmLoad> => {
    try {
      if (typeof SharedArrayBuffer === 'undefined') return { heap: null, error: 'this JavaScript engine has no SharedArrayBuffer (the wasm backend needs threads)' };
      const dir = join(packageRoot(), 'native', 'wasm');
      const glue = join(dir, 'lorakit.js');
      if (!existsSync(glue)) return { heap: null, error: `${glue} does not exist (run \`npm run build:wasm\`)` };
      const relaxed = new Uint8Array(readFileSync(join(dir, 'lorakit-relaxed.wasm')));
      const useRelaxed = relaxedSupported(relaxed);
      const wasmBinary = useRelaxed ? relaxed : new Uint8Array(readFileSync(join(dir, 'lorakit.wasm')));
      const factory = createRequire(import.meta.url)(glue) as Factory;
      // the pool's workers start with the module: one per core but the caller's (LORAKIT_THREADS caps it)
      const want = Number(process.env.LORAKIT_THREADS) > 0 ? Number(process.env.LORAKIT_THREADS) : availableParallelism();
      const threads = Math.max(1, Math.min(want, availableParallelism(), 16));
      const mod = await factory({ wasmBinary, lkPoolSize: threads - 1, locateFile: (f: string) => join(dir, f) });
      const heap = new WasmHeap(mod);
      mod._lk_threads(threads);
      // the pool's worker threads must not keep the process alive
      const pt = (mod as unknown as { PThread?: { unusedWorkers: { unref(): void }[]; runningWorkers: { unref(): void }[] } }).PThread;
      for (const w of [...(pt?.unusedWorkers ?? []), ...(pt?.runningWorkers ?? [])]) w.unref();
      return { heap, error: null, variant: useRelaxed ? 'simd128-relaxed' : 'simd128' };
    } catch (e) {
      return { heap: null, error: `loading the wasm module failed: ${(e as Error).message}` };
    }
  })().then((r) => (loaded = r));
  return loading;
}
