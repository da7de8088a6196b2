// The wasm backend's memory (docs/ARCHITECTURE.md §Backend memory): buffers are typed arrays
// over the module's heap, so kernels read and write them in place (WasmHeap.call passes
// their offset; no copies). The heap is a shared WebAssembly memory: growing it leaves
// older views valid over the same bytes, so a handle never goes stale.
//
// Freeing: a buffer is given back with free(), or when the garbage collector collects it
// (a FinalizationRegistry). Its views must not outlive it, so a heap buffer is a HeapF32 /
// HeapU16, whose subarray() views hold their root: the root is collected only after the
// last view of it.
import type { WasmHeap } from './module.js';

/** A Float32Array on the heap; `root` is the allocation a subarray view belongs to. */
export class HeapF32 extends Float32Array {
  root?: HeapF32;
  override subarray(begin?: number, end?: number): HeapF32 {
    const s = super.subarray(begin, end) as HeapF32;
    s.root = this.root ?? this;
    return s;
  }
}

/** A Uint16Array (f16/bf16 bits) on the heap. */
export class HeapU16 extends Uint16Array {
  root?: HeapU16;
  override subarray(begin?: number, end?: number): HeapU16 {
    const s = super.subarray(begin, end) as HeapU16;
    s.root = this.root ?? this;
    return s;
  }
}

/** The memory of the wasm backend, shaped as BackendMemory (backend/types.ts). */
export interface WasmMemory {
  readonly hostVisible: true;
  alloc(n: number): Float32Array;
  allocHalf(n: number, dtype: 'f16' | 'bf16'): Uint16Array;
  view(h: Float32Array): Float32Array;
  write(h: Float32Array, src: ArrayLike<number>, offset?: number): void;
  read(h: Float32Array): Promise<Float32Array>;
  free(h: Float32Array | Uint16Array): void;
  allocAccumulator(slots: number): Float64Array;
  clearAccumulator(acc: Float64Array): void;
  readAccumulator(acc: Float64Array): Promise<Float64Array>;
}

// Buffers smaller than this stay on the JavaScript heap (copied in and out per call, which
// costs less than a malloc and a finalizer for a few floats).
const HEAP_MIN_BYTES = 4096;

export function createWasmMemory(heap: WasmHeap): WasmMemory {
  const freeRaw = new FinalizationRegistry<number>((raw) => heap.mod._free(raw));
  const rawOf = new WeakMap<ArrayBufferView, number>();
  const place = <T extends HeapF32 | HeapU16>(make: (buf: ArrayBufferLike, at: number) => T, bytes: number): T => {
    const raw = heap.mod._malloc(bytes + 64);
    if (raw === 0) throw new RangeError(`wasm backend: out of memory allocating ${bytes} bytes (the module's heap is at most 4 GiB)`);
    const a = make(heap.buffer(), (raw + 63) & ~63);
    a.fill(0);
    rawOf.set(a, raw);
    freeRaw.register(a, raw, a);
    return a;
  };
  return {
    hostVisible: true,
    alloc(n) {
      if (n * 4 < HEAP_MIN_BYTES) return new Float32Array(n);
      return place((buf, at) => new HeapF32(buf as ArrayBuffer, at, n), n * 4);
    },
    allocHalf(n) {
      if (n * 2 < HEAP_MIN_BYTES) return new Uint16Array(n);
      return place((buf, at) => new HeapU16(buf as ArrayBuffer, at, n), n * 2);
    },
    view: (h) => h,
    write(h, src, offset = 0) {
      h.set(src, offset);
    },
    read: (h) => Promise.resolve(h.slice()),
    free(h) {
      const raw = rawOf.get(h);
      if (raw === undefined) return; // a view, a small host array, or freed already
      rawOf.delete(h);
      freeRaw.unregister(h);
      heap.mod._free(raw);
    },
    allocAccumulator: (slots) => new Float64Array(slots),
    clearAccumulator(acc) {
      acc.fill(0);
    },
    readAccumulator: (acc) => Promise.resolve(acc.slice()),
  };
}
