// Tensor: a dtype, a shape and contiguous row-major storage.
// f32 data lives in a Float32Array; f16 and bf16 are 16-bit storage in a Uint16Array,
// widened to f32 by the kernels that read them. A frozen weight may also be quantized
// (tensor/quant.ts: GGML blocks in a Uint8Array), dequantized by the kernels as they read it
// (docs/ARCHITECTURE.md §Quantized weights).
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from './half.js';
import { QUANT_BLOCK, dequantizeAll, isQuantDType, quantBytes, quantNonFinite, type QuantDType } from './quant.js';

export type DType = 'f32' | 'f16' | 'bf16';
export const DTYPES: readonly DType[] = ['f32', 'f16', 'bf16'];
export type Storage = Float32Array | Uint16Array;
/** What a tensor may hold: f32, half, or quantized blocks (frozen weights only). */
export type TensorDType = DType | QuantDType;
/** A tensor's storage: Float32Array (f32), Uint16Array (f16, bf16) or Uint8Array (quantized blocks). */
export type TensorStorage = Storage | Uint8Array;

/**
 * The float dtype values of `d` are written in (safetensors, a merged model): `d` itself, or f32
 * for quantized blocks, which only GGUF holds (docs/ARCHITECTURE.md §Quantized weights).
 */
export function floatDTypeOf(d: TensorDType): DType {
  return isQuantDType(d) ? 'f32' : d;
}

export class ShapeError extends Error {
  override name = 'ShapeError';
}

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function formatShape(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

function checkShape(shape: readonly number[], what: string): void {
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) {
      throw new ShapeError(`${what}: shape ${formatShape(shape)} has an invalid dimension ${d} (expected non-negative integers)`);
    }
  }
}

/**
 * Where new tensors' storage comes from: the current backend's memory once a backend is
 * chosen (backend/index.ts installs it; this layer imports nothing), plain arrays before.
 * See docs/ARCHITECTURE.md §Backend memory.
 */
export interface StorageAllocator {
  f32(n: number): Float32Array;
  half(n: number, dtype: 'f16' | 'bf16'): Uint16Array;
}

let allocator: StorageAllocator | null = null;

export function setStorageAllocator(a: StorageAllocator | null): void {
  allocator = a;
}

function allocate(dtype: DType, n: number): Storage {
  if (allocator) return dtype === 'f32' ? allocator.f32(n) : allocator.half(n, dtype);
  return dtype === 'f32' ? new Float32Array(n) : new Uint16Array(n);
}

export class Tensor {
  readonly dtype: TensorDType;
  readonly shape: readonly number[];
  readonly data: TensorStorage;

  constructor(dtype: TensorDType, shape: readonly number[], data?: TensorStorage) {
    checkShape(shape, 'Tensor');
    const n = numel(shape);
    if (isQuantDType(dtype)) {
      // quantized blocks: rows (the last dimension) are whole blocks; the bytes come with them
      const cols = shape.length ? shape[shape.length - 1]! : 1;
      const qk = QUANT_BLOCK[dtype].values;
      if (cols % qk !== 0) throw new ShapeError(`Tensor: a ${dtype} tensor's rows must be whole ${qk}-value blocks; shape ${formatShape(shape)} has rows of ${cols}`);
      if (!(data instanceof Uint8Array)) throw new TypeError(`Tensor: dtype ${dtype} needs its blocks as a Uint8Array`);
      if (data.length !== quantBytes(dtype, n)) throw new ShapeError(`Tensor: shape ${formatShape(shape)} in ${dtype} needs ${quantBytes(dtype, n)} bytes, storage has ${data.length}`);
      this.dtype = dtype;
      this.shape = Object.freeze([...shape]);
      this.data = data;
      this.size = n;
      return;
    }
    if (data === undefined) {
      data = allocate(dtype, n);
    } else {
      const wantF32 = dtype === 'f32';
      if (wantF32 !== data instanceof Float32Array || (!wantF32 && !(data instanceof Uint16Array))) {
        throw new TypeError(`Tensor: dtype ${dtype} needs ${wantF32 ? 'Float32Array' : 'Uint16Array'} storage, got ${data.constructor.name}`);
      }
      if (data.length !== n) {
        throw new ShapeError(`Tensor: shape ${formatShape(shape)} needs ${n} elements, storage has ${data.length}`);
      }
    }
    this.dtype = dtype;
    this.shape = Object.freeze([...shape]);
    this.data = data;
    this.size = n;
  }

  /**
   * The storage of an f32 or half tensor, for the kernels that read no quantized blocks (norms,
   * biases, DoRA's row norms, serialization); throws for a quantized tensor. Only the GEMM's B
   * operand and the embedding lookup read quantized weights (docs/ARCHITECTURE.md §Quantized weights).
   */
  get floatData(): Storage {
    const d = this.data;
    if (d instanceof Uint8Array) throw new TypeError(`this operation needs f32, f16 or bf16 values, but the tensor holds ${this.dtype} blocks (a quantized base weight): dequantize it first (toF32(), or load the model with dtype f32)`);
    return d;
  }

  /** The dtype of an f32 or half tensor (throws like floatData for a quantized one). */
  get floatDtype(): DType {
    void this.floatData;
    return this.dtype as DType;
  }

  /** Whether the storage is quantized blocks (a frozen weight read through the kernels only). */
  get quantized(): boolean {
    return isQuantDType(this.dtype);
  }

  static zeros(shape: readonly number[], dtype: DType = 'f32'): Tensor {
    return new Tensor(dtype, shape);
  }

  /** An f32 tensor viewing (not copying) the given array. */
  static fromF32(data: Float32Array, shape: readonly number[]): Tensor {
    return new Tensor('f32', shape, data);
  }

  /** Builds a tensor of any dtype from f32 values (rounding to nearest even for half types). */
  static fromValues(values: ArrayLike<number>, shape: readonly number[], dtype: DType = 'f32'): Tensor {
    const t = new Tensor(dtype, shape);
    if (values.length !== t.size) {
      throw new ShapeError(`Tensor.fromValues: shape ${formatShape(shape)} needs ${t.size} values, got ${values.length}`);
    }
    t.set(values);
    return t;
  }

  /** the number of values (for quantized storage not its byte length) */
  readonly size: number;

  get ndim(): number {
    return this.shape.length;
  }

  /** The f32 storage itself; throws for half tensors (use toF32()). */
  get f32(): Float32Array {
    if (!(this.data instanceof Float32Array)) {
      throw new TypeError(`Tensor.f32: tensor is ${this.dtype}; call toF32() to widen it`);
    }
    return this.data;
  }

  /** Writes f32 values into storage, converting to the tensor's dtype (not for quantized tensors). */
  set(values: ArrayLike<number>, offset = 0): void {
    const d = this.data;
    if (d instanceof Float32Array) {
      d.set(values, offset);
      return;
    }
    if (!(d instanceof Uint16Array)) throw new TypeError(`Tensor.set: a ${this.dtype} tensor is read-only (quantized blocks); dequantize it with toF32() first`);
    const conv = this.dtype === 'bf16' ? f32ToBf16 : f32ToF16;
    // converted on the host, then written with set(): storage may be a device handle (docs/ARCHITECTURE.md §Backend memory)
    const h = new Uint16Array(values.length);
    for (let i = 0; i < values.length; i++) h[i] = conv(values[i]!);
    d.set(h, offset);
  }

  /** Reads storage widened to f32 (a copy for half types, the storage itself for f32 unless copy is asked). */
  toF32Array(copy = false): Float32Array {
    const d = this.data;
    if (d instanceof Float32Array) return copy ? d.slice() : d;
    if (d instanceof Uint8Array) return dequantizeAll(this.dtype as QuantDType, d);
    // a device handle has no host elements (docs/ARCHITECTURE.md §Backend memory)
    if (d.byteLength === 0 && d.length > 0) throw new TypeError(`Tensor.toF32Array: this ${this.dtype} tensor's storage is on the device; read it back first (hostTensor, backend/transfer.ts)`);
    const out = new Float32Array(d.length);
    const conv = this.dtype === 'bf16' ? bf16ToF32 : f16ToF32;
    for (let i = 0; i < d.length; i++) out[i] = conv(d[i]!);
    return out;
  }

  /**
   * How many stored values are NaN or ±Inf, read from the storage itself (for half types the
   * exponent bits), so it checks what is written, after any cast (docs/ARCHITECTURE.md §Files
   * written and signals).
   */
  nonFiniteCount(): number {
    const d = this.data;
    let bad = 0;
    if (d instanceof Float32Array) {
      for (let i = 0; i < d.length; i++) if (!Number.isFinite(d[i]!)) bad++;
    } else if (d instanceof Uint8Array) {
      bad = quantNonFinite(this.dtype as QuantDType, d);
    } else {
      const exp = this.dtype === 'bf16' ? 0x7f80 : 0x7c00;
      for (let i = 0; i < d.length; i++) if ((d[i]! & exp) === exp) bad++;
    }
    return bad;
  }

  toF32(): Tensor {
    return this.dtype === 'f32' ? this : new Tensor('f32', this.shape, this.toF32Array());
  }

  /** The values in another float dtype (quantized blocks are dequantized: a new tensor). */
  to(dtype: DType): Tensor {
    if (dtype === this.dtype) return this;
    return Tensor.fromValues(this.toF32Array(), this.shape, dtype);
  }

  /** Same storage, another shape with the same element count. */
  reshape(shape: readonly number[]): Tensor {
    checkShape(shape, 'Tensor.reshape');
    if (numel(shape) !== this.size) {
      throw new ShapeError(`Tensor.reshape: cannot view ${formatShape(this.shape)} (${this.size} elements) as ${formatShape(shape)} (${numel(shape)} elements)`);
    }
    return new Tensor(this.dtype, shape, this.data);
  }

  clone(): Tensor {
    return new Tensor(this.dtype, this.shape, this.data.slice());
  }

  /** Throws a ShapeError naming `what` unless the shape equals `expected`. */
  expectShape(expected: readonly number[], what: string): void {
    if (expected.length !== this.shape.length || expected.some((d, i) => d !== this.shape[i])) {
      throw new ShapeError(`${what}: expected shape ${formatShape(expected)}, got ${formatShape(this.shape)}`);
    }
  }
}
