// The WebAssembly kernel module (native/wasm, built from the same kernel sources as the
// native addon, docs/ARCHITECTURE.md §Adding a backend) as an addon object: one function
// per kernel taking the addon's positional arguments, so the native backend's adapters
// (backend/native/backend.ts) drive it unchanged.
//
// Each call writes its arguments as lk_shim_value records (native/src/napi_shim.h: kind,
// typed-array type, data pointer, length, number; 24 bytes in wasm32) and calls lk_call.
// A typed array over the module's own heap is passed by its offset: no copy. Any other
// array is copied into scratch memory on the heap and copied back after the call (every
// array, inputs too: unchanged bytes come back unchanged). Arrays over the same
// ArrayBuffer share one copy of the range they cover, so aliased arguments (out = a)
// stay aliased.

/** The kernels as positional-argument functions, the shape of the native addon (backend/native/index.ts's NativeAddon). */
export type KernelAddon = Record<string, (...args: unknown[]) => unknown> & {
  threads(n?: number): number;
  cpuInfo(): { avx2fma: boolean };
};

/** The parts of the emscripten module (native/wasm/lorakit.js) lorakit uses. */
export interface KernelModule {
  wasmMemory: { readonly buffer: ArrayBufferLike };
  _malloc(bytes: number): number;
  _free(ptr: number): void;
  _lk_init(): number;
  _lk_fn_name(i: number): number;
  _lk_call(fn: number, argc: number, argv: number): number;
  _lk_error(): number;
  _lk_result(): number;
  _lk_string(): number;
  _lk_threads(n: number): number;
  _lk_impl(): number;
}

const ARG_BYTES = 24; // sizeof(lk_shim_value) in wasm32
const MAX_ARGS = 16;
// napi_valuetype and napi_typedarray_type codes (napi_shim.h)
const KIND = { undefined: 0, null: 1, boolean: 2, number: 3, object: 6 } as const;

function typedArrayType(a: ArrayBufferView): number {
  if (a instanceof Float32Array) return 7;
  if (a instanceof Uint16Array) return 4;
  if (a instanceof Int32Array) return 5;
  if (a instanceof Float64Array) return 8;
  if (a instanceof Uint8Array) return 1;
  if (a instanceof Int8Array) return 0;
  if (a instanceof Int16Array) return 3;
  if (a instanceof Uint32Array) return 6;
  throw new TypeError(`wasm backend: unsupported argument type ${a.constructor.name}`);
}

/** The module's heap, its allocations, and calls into its kernels. */
export class WasmHeap {
  /** every SharedArrayBuffer object the heap has been seen through (a grown shared memory
   *  gives a new object over the same bytes; views made from an older one stay valid) */
  private readonly buffers = new WeakSet<ArrayBufferLike>();
  private readonly argv: number;
  private scratch = 0;
  private scratchBytes = 0;
  readonly names: string[];
  readonly impl: string;

  constructor(readonly mod: KernelModule) {
    const n = mod._lk_init();
    this.argv = mod._malloc(ARG_BYTES * MAX_ARGS);
    this.names = Array.from({ length: n }, (_, i) => this.string(mod._lk_fn_name(i)));
    this.impl = this.string(mod._lk_impl());
  }

  /** the heap's current buffer (re-derived: the memory may have grown) */
  buffer(): ArrayBufferLike {
    const b = this.mod.wasmMemory.buffer;
    this.buffers.add(b);
    return b;
  }

  /** does the array lie in this module's heap? */
  holds(a: ArrayBufferView): boolean {
    if (this.buffers.has(a.buffer)) return true;
    return a.buffer === this.buffer();
  }

  /** a zero-filled Float32Array of n floats on the heap, 64-byte aligned; free it with free() */
  allocF32(n: number): Float32Array {
    const raw = this.mod._malloc(n * 4 + 64);
    if (raw === 0) throw new RangeError(`wasm backend: out of memory allocating ${n} floats`);
    const p = (raw + 63) & ~63;
    const a = new Float32Array(this.buffer(), p, n);
    a.fill(0);
    this.rawOf.set(a, raw);
    return a;
  }

  private readonly rawOf = new WeakMap<ArrayBufferView, number>();

  free(a: ArrayBufferView): void {
    const raw = this.rawOf.get(a);
    if (raw !== undefined) {
      this.mod._free(raw);
      this.rawOf.delete(a);
    }
  }

  string(ptr: number): string {
    const u8 = new Uint8Array(this.buffer());
    let end = ptr;
    while (u8[end] !== 0) end++;
    return new TextDecoder().decode(u8.slice(ptr, end)); // a copy: TextDecoder refuses shared memory
  }

  private scratchFor(bytes: number): number {
    if (bytes > this.scratchBytes) {
      if (this.scratch) this.mod._free(this.scratch);
      this.scratchBytes = Math.max(bytes, this.scratchBytes * 2, 1 << 16);
      this.scratch = this.mod._malloc(this.scratchBytes);
      if (this.scratch === 0) {
        this.scratchBytes = 0;
        throw new RangeError(`wasm backend: out of memory for ${bytes} bytes of arguments`);
      }
    }
    return this.scratch;
  }

  /** calls kernel `fn` with the addon's positional arguments; returns its number result */
  call(fn: number, name: string, args: readonly unknown[]): number {
    if (args.length > MAX_ARGS) throw new TypeError(`${name}: at most ${MAX_ARGS} arguments`);
    // arrays not on the heap, grouped by ArrayBuffer: the byte range each group covers
    const groups = new Map<ArrayBufferLike, { lo: number; hi: number; at: number }>();
    let total = 0;
    for (const a of args) {
      if (!ArrayBuffer.isView(a) || this.holds(a)) continue;
      const g = groups.get(a.buffer);
      if (g) {
        g.lo = Math.min(g.lo, a.byteOffset);
        g.hi = Math.max(g.hi, a.byteOffset + a.byteLength);
      } else groups.set(a.buffer, { lo: a.byteOffset, hi: a.byteOffset + a.byteLength, at: 0 });
    }
    for (const g of groups.values()) {
      g.at = total;
      total += (g.hi - g.lo + 63) & ~63;
    }
    const base = total > 0 ? this.scratchFor(total) : 0;
    const buf = this.buffer();
    const u8 = new Uint8Array(buf);
    for (const [ab, g] of groups) u8.set(new Uint8Array(ab, g.lo, g.hi - g.lo), base + g.at);
    const dv = new DataView(buf);
    for (let i = 0; i < args.length; i++) {
      const a = args[i];
      const at = this.argv + i * ARG_BYTES;
      let kind: number = KIND.undefined;
      let ta = 0;
      let ptr = 0;
      let len = 0;
      let num = 0;
      if (a === null) kind = KIND.null;
      else if (typeof a === 'number') (kind = KIND.number), (num = a);
      else if (typeof a === 'boolean') (kind = KIND.boolean), (num = a ? 1 : 0);
      else if (ArrayBuffer.isView(a)) {
        kind = KIND.object;
        ta = typedArrayType(a);
        len = a.byteLength / (a as unknown as { BYTES_PER_ELEMENT: number }).BYTES_PER_ELEMENT;
        if (this.holds(a)) ptr = a.byteOffset;
        else {
          const g = groups.get(a.buffer)!;
          ptr = base + g.at + (a.byteOffset - g.lo);
        }
      } else if (a !== undefined) throw new TypeError(`${name}: argument ${i} has an unsupported type (${typeof a})`);
      dv.setInt32(at, kind, true);
      dv.setInt32(at + 4, ta, true);
      dv.setUint32(at + 8, ptr, true);
      dv.setUint32(at + 12, len, true);
      dv.setFloat64(at + 16, num, true);
    }
    const status = this.mod._lk_call(fn, args.length, this.argv);
    if (groups.size > 0) {
      const out = new Uint8Array(this.buffer());
      for (const [ab, g] of groups) new Uint8Array(ab, g.lo, g.hi - g.lo).set(out.subarray(base + g.at, base + g.at + (g.hi - g.lo)));
    }
    if (status !== 0) throw new TypeError(this.string(this.mod._lk_error()));
    return this.mod._lk_result();
  }

  /** the kernels as an addon object (positional arguments, as native/src's N-API functions) */
  addon(): KernelAddon {
    const addon: Record<string, (...args: unknown[]) => unknown> = {};
    this.names.forEach((name, fn) => {
      addon[name] = (...args: unknown[]) => this.call(fn, name, args);
    });
    addon['gemmImpl'] = () => this.impl;
    addon['threads'] = (n?: unknown) => this.mod._lk_threads(typeof n === 'number' ? n : 0);
    addon['cpuInfo'] = () => ({ avx2fma: false });
    return addon as KernelAddon;
  }
}
