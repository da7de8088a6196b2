// safetensors: read and write.
//
// Layout: an 8-byte little-endian u64 N, then N bytes of UTF-8 JSON
//   {"__metadata__": {str: str}, name: {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...}
// (the JSON may be padded at the end with spaces), then the data region. Offsets are relative to
// the start of the data region; the tensors must cover it exactly, without holes or overlaps.
//
// This file parses and writes bytes (platform-neutral); safetensors.node.ts opens files: it
// validates the whole header up front, then reads each tensor lazily, straight from the file
// into its own typed array (so it is aligned and nothing is held twice).
import { Tensor, numel, formatShape } from '../tensor/index.js';
import type { DType } from '../tensor/index.js';
import { FormatError, Problems, describe } from './errors.js';

/** The dtype names used in safetensors headers. */
export type SafetensorsDType =
  | 'F64' | 'F32' | 'F16' | 'BF16'
  | 'I64' | 'I32' | 'I16' | 'I8'
  | 'U64' | 'U32' | 'U16' | 'U8'
  | 'BOOL' | 'F8_E4M3' | 'F8_E5M2';

export type RawArray =
  | Float64Array | Float32Array | Uint16Array | Int16Array | Int32Array | Int8Array
  | Uint8Array | Uint32Array | BigInt64Array | BigUint64Array;

/** A tensor of any safetensors dtype as a typed array (ints, bools, F64, fp8 bytes). */
export interface RawTensor {
  readonly dtype: SafetensorsDType;
  readonly shape: readonly number[];
  readonly data: RawArray;
}

interface DTypeSpec {
  size: number;
  make: (n: number) => RawArray;
  /** Name of the typed array class that holds this dtype. */
  array: string;
}

const ARRAY_CLASSES: Record<string, abstract new (...args: never[]) => RawArray> = {
  Float64Array, Float32Array, Uint16Array, Int16Array, Int32Array, Int8Array, Uint8Array, Uint32Array, BigInt64Array, BigUint64Array,
};

export const SPECS: Record<SafetensorsDType, DTypeSpec> = {
  F64: { size: 8, make: (n) => new Float64Array(n), array: 'Float64Array' },
  F32: { size: 4, make: (n) => new Float32Array(n), array: 'Float32Array' },
  F16: { size: 2, make: (n) => new Uint16Array(n), array: 'Uint16Array' },
  BF16: { size: 2, make: (n) => new Uint16Array(n), array: 'Uint16Array' },
  I64: { size: 8, make: (n) => new BigInt64Array(n), array: 'BigInt64Array' },
  I32: { size: 4, make: (n) => new Int32Array(n), array: 'Int32Array' },
  I16: { size: 2, make: (n) => new Int16Array(n), array: 'Int16Array' },
  I8: { size: 1, make: (n) => new Int8Array(n), array: 'Int8Array' },
  U64: { size: 8, make: (n) => new BigUint64Array(n), array: 'BigUint64Array' },
  U32: { size: 4, make: (n) => new Uint32Array(n), array: 'Uint32Array' },
  U16: { size: 2, make: (n) => new Uint16Array(n), array: 'Uint16Array' },
  U8: { size: 1, make: (n) => new Uint8Array(n), array: 'Uint8Array' },
  BOOL: { size: 1, make: (n) => new Uint8Array(n), array: 'Uint8Array' },
  F8_E4M3: { size: 1, make: (n) => new Uint8Array(n), array: 'Uint8Array' },
  F8_E5M2: { size: 1, make: (n) => new Uint8Array(n), array: 'Uint8Array' },
};

export const SAFETENSORS_DTYPES = Object.keys(SPECS) as SafetensorsDType[];

export const TO_TENSOR_DTYPE: Partial<Record<SafetensorsDType, DType>> = { F32: 'f32', F16: 'f16', BF16: 'bf16' };
const FROM_TENSOR_DTYPE: Record<DType, SafetensorsDType> = { f32: 'F32', f16: 'F16', bf16: 'BF16' };

export function isSafetensorsDType(x: unknown): x is SafetensorsDType {
  return typeof x === 'string' && Object.prototype.hasOwnProperty.call(SPECS, x);
}

/** The Tensor dtype for a safetensors dtype, or undefined if Tensor cannot hold it. */
export function tensorDTypeOf(dtype: SafetensorsDType): DType | undefined {
  return TO_TENSOR_DTYPE[dtype];
}

export function safetensorsDTypeOf(dtype: DType): SafetensorsDType {
  return FROM_TENSOR_DTYPE[dtype];
}

export function dtypeByteSize(dtype: SafetensorsDType): number {
  return SPECS[dtype].size;
}

/** The largest header accepted (the reference implementation's limit). */
export const MAX_HEADER_BYTES = 100_000_000;

/** Where one tensor lives. Offsets are absolute byte positions in the file. */
export interface TensorInfo {
  readonly name: string;
  readonly dtype: SafetensorsDType;
  readonly shape: readonly number[];
  readonly file: string;
  /** Absolute byte offset of the first byte in the file. */
  readonly offset: number;
  readonly byteLength: number;
}

/** Anything tensors can be read from by name: one safetensors file, or a sharded checkpoint. */
export interface TensorSource {
  /** Tensor names, sorted. */
  names(): string[];
  has(name: string): boolean;
  info(name: string): TensorInfo;
  /** Reads a float tensor (F32, F16, BF16) from disk. */
  tensor(name: string): Tensor;
  /** Reads a tensor of any dtype as a typed array. */
  raw(name: string): RawTensor;
  /** Yields every float tensor, one at a time, in file order (other dtypes are skipped). */
  tensors(): IterableIterator<[string, Tensor]>;
  close(): void;
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

export function checkLittleEndian(what: string): void {
  if (!LITTLE_ENDIAN) throw new Error(`${what}: safetensors data is little-endian and this host is big-endian (not supported)`);
}

// ---------------------------------------------------------------------------------------------
// Header parsing and validation

export interface Entry {
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
  begin: number;
  end: number;
}

export interface ParsedHeader {
  entries: Map<string, Entry>;
  metadata: Record<string, string>;
  headerLength: number;
}

function isIndex(x: unknown): x is number {
  return typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
}

function fmtOffsets(e: { begin: number; end: number }): string {
  return `[${e.begin}, ${e.end}]`;
}

/**
 * Validates a header given its length prefix, its JSON bytes and the total file size.
 * Collects every problem and throws one FormatError naming the file.
 */
export function parseHeader(file: string, fileSize: number, prefix: Uint8Array, readJson: (n: number) => Uint8Array): ParsedHeader {
  const p = new Problems('safetensors', file);
  if (fileSize < 8) {
    p.add(`file is ${fileSize} bytes, shorter than the 8-byte header length (truncated or not a safetensors file)`);
    p.throwIfAny();
  }
  const n64 = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (n64 > BigInt(fileSize - 8)) {
    p.add(`header length ${n64} runs past the end of the file (file is ${fileSize} bytes, so at most ${fileSize - 8} header bytes fit): truncated or not a safetensors file`);
    p.throwIfAny();
  }
  const headerLength = Number(n64);
  if (headerLength > MAX_HEADER_BYTES) {
    p.add(`header length ${headerLength} exceeds the limit of ${MAX_HEADER_BYTES} bytes`);
    p.throwIfAny();
  }
  const jsonBytes = readJson(headerLength);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(jsonBytes);
  } catch {
    p.add(`header (${headerLength} bytes after the 8-byte length) is not valid UTF-8`);
    p.throwIfAny();
    text = '';
  }
  if (!text.startsWith('{')) {
    p.add(`header must be a JSON object starting with '{', got ${JSON.stringify(text.slice(0, 20))}`);
    p.throwIfAny();
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    p.add(`header is not valid JSON (${(err as Error).message}); header length ${headerLength}`);
    p.throwIfAny();
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    p.add(`header must be a JSON object, got ${describe(json)}`);
    p.throwIfAny();
  }
  const dataSize = fileSize - 8 - headerLength;
  const entries = new Map<string, Entry>();
  const metadata: Record<string, string> = {};
  for (const [name, value] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) {
        p.add(`__metadata__ must be an object of strings, got ${describe(value)}`);
        continue;
      }
      for (const [k, v] of Object.entries(value)) {
        if (typeof v !== 'string') p.add(`__metadata__.${k} must be a string, got ${describe(v)}`);
        else metadata[k] = v;
      }
      continue;
    }
    const where = `tensor ${JSON.stringify(name)}`;
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      p.add(`${where}: expected an object {dtype, shape, data_offsets}, got ${describe(value)}`);
      continue;
    }
    const v = value as Record<string, unknown>;
    let ok = true;
    if (!isSafetensorsDType(v['dtype'])) {
      p.add(`${where}: unknown dtype ${v['dtype'] === undefined ? '(missing)' : JSON.stringify(v['dtype'])} (expected one of ${SAFETENSORS_DTYPES.join(', ')})`);
      ok = false;
    }
    const shape = v['shape'];
    if (!Array.isArray(shape) || !shape.every(isIndex)) {
      p.add(`${where}: shape must be an array of non-negative integers, got ${JSON.stringify(shape)}`);
      ok = false;
    }
    const offs = v['data_offsets'];
    if (!Array.isArray(offs) || offs.length !== 2 || !isIndex(offs[0]) || !isIndex(offs[1])) {
      p.add(`${where}: data_offsets must be [begin, end] with non-negative integers, got ${JSON.stringify(offs)}`);
      ok = false;
    } else if (offs[0] > offs[1]) {
      p.add(`${where}: data_offsets ${JSON.stringify(offs)} are out of order (begin after end)`);
      ok = false;
    }
    if (!ok) continue;
    const e: Entry = { name, dtype: v['dtype'] as SafetensorsDType, shape: shape as number[], begin: (offs as number[])[0]!, end: (offs as number[])[1]! };
    const want = numel(e.shape) * SPECS[e.dtype].size;
    if (want !== e.end - e.begin) {
      p.add(`${where}: shape ${formatShape(e.shape)} of ${e.dtype} needs ${want} bytes, but data_offsets ${fmtOffsets(e)} span ${e.end - e.begin} bytes`);
      continue;
    }
    if (e.end > dataSize) {
      p.add(
        `${where}: data_offsets ${fmtOffsets(e)} run past the end of the data region (${dataSize} bytes after the header): ` +
          `the file is ${fileSize} bytes, expected at least ${8 + headerLength + e.end} (truncated file?)`,
      );
      continue;
    }
    entries.set(name, e);
  }
  // The tensors must tile the data region: sorted by offset, each begins where the last ended.
  if (p.empty) {
    const sorted = [...entries.values()].sort((a, b) => a.begin - b.begin || a.end - b.end);
    let cursor = 0;
    let last: Entry | undefined;
    for (const e of sorted) {
      if (e.begin === e.end && e.begin <= cursor) continue; // empty tensors take no bytes
      if (e.begin > cursor) {
        p.add(
          `data bytes [${cursor}, ${e.begin}) belong to no tensor (a hole ${last ? `after tensor ${JSON.stringify(last.name)}` : 'at the start'}, before tensor ${JSON.stringify(e.name)}); expected the tensors to cover the data region exactly`,
        );
      } else if (e.begin < cursor) {
        p.add(`tensor ${JSON.stringify(e.name)} data_offsets ${fmtOffsets(e)} overlap tensor ${JSON.stringify(last!.name)} ${fmtOffsets(last!)}`);
      }
      if (e.end >= cursor) {
        cursor = e.end;
        last = e;
      }
    }
    if (cursor < dataSize) {
      p.add(`the data region is ${dataSize} bytes but the tensors cover only ${cursor}: ${dataSize - cursor} trailing bytes belong to no tensor`);
    }
  }
  p.throwIfAny();
  return { entries, metadata, headerLength };
}

// ---------------------------------------------------------------------------------------------
// Reading

export function notFloat(name: string, dtype: SafetensorsDType, file: string): FormatError {
  return new FormatError('safetensors', file, [`tensor ${JSON.stringify(name)} is ${dtype}; Tensor holds only F32, F16 and BF16 (read it with raw())`]);
}

export function toTensor(raw: RawTensor, name: string, file: string): Tensor {
  const dtype = TO_TENSOR_DTYPE[raw.dtype];
  if (dtype === undefined) throw notFloat(name, raw.dtype, file);
  return new Tensor(dtype, raw.shape, raw.data as Float32Array | Uint16Array);
}

export interface LoadedSafetensors {
  /** F32/F16/BF16 tensors. */
  tensors: Map<string, Tensor>;
  /** Tensors of other dtypes (ints, bools, F64, fp8) as typed arrays. */
  others: Map<string, RawTensor>;
  metadata: Record<string, string>;
}

/** Parses safetensors bytes held in memory (`label` names them in errors). */
export function deserializeSafetensors(bytes: Uint8Array, label = '<buffer>'): LoadedSafetensors {
  checkLittleEndian(`safetensors ${label}`);
  const header = parseHeader(label, bytes.length, bytes.subarray(0, 8), (n) => bytes.subarray(8, 8 + n));
  const start = 8 + header.headerLength;
  const out: LoadedSafetensors = { tensors: new Map(), others: new Map(), metadata: header.metadata };
  for (const e of header.entries.values()) {
    const data = SPECS[e.dtype].make(numel(e.shape));
    new Uint8Array(data.buffer).set(bytes.subarray(start + e.begin, start + e.end));
    const raw: RawTensor = { dtype: e.dtype, shape: e.shape, data };
    if (TO_TENSOR_DTYPE[e.dtype] !== undefined) out.tensors.set(e.name, toTensor(raw, e.name, label));
    else out.others.set(e.name, raw);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Writing

export type TensorLike = Tensor | RawTensor;
export type TensorMap = ReadonlyMap<string, TensorLike> | Readonly<Record<string, TensorLike>>;

export interface WriteSafetensorsOptions {
  /** String key/values stored under `__metadata__`. */
  metadata?: Readonly<Record<string, string>>;
}

function asRaw(t: TensorLike): RawTensor {
  if (t instanceof Tensor) return { dtype: FROM_TENSOR_DTYPE[t.floatDtype], shape: t.shape, data: t.floatData };
  return t;
}

export function tensorEntries(tensors: TensorMap): [string, TensorLike][] {
  return tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors as Record<string, TensorLike>);
}

/** Bytes of a tensor's data, viewing (not copying) its storage. */
export function tensorBytes(t: TensorLike): Uint8Array {
  const d = asRaw(t).data;
  return new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
}

export function tensorByteLength(t: TensorLike): number {
  return asRaw(t).data.byteLength;
}

/**
 * Plans a file: the header bytes (JSON with `__metadata__` first, then tensors sorted by name,
 * padded with spaces to a multiple of 8 bytes including the length prefix) and the data chunks.
 * Data is laid out by decreasing element size, then name, so every tensor starts aligned to its
 * element size (as the reference implementation does).
 */
export function planSafetensors(tensors: TensorMap, options: WriteSafetensorsOptions = {}, label = '<tensors>'): { header: Uint8Array; chunks: Uint8Array[]; byteLength: number } {
  checkLittleEndian(`safetensors ${label}`);
  const p = new Problems('writing safetensors', label);
  const items: { name: string; raw: RawTensor }[] = [];
  for (const [name, t] of tensorEntries(tensors)) {
    if (name === '__metadata__' || name === '') {
      p.add(`tensor name ${JSON.stringify(name)} is reserved or empty`);
      continue;
    }
    const raw = asRaw(t);
    if (!isSafetensorsDType(raw.dtype)) {
      p.add(`tensor ${JSON.stringify(name)}: unknown dtype ${JSON.stringify(raw.dtype)} (expected one of ${SAFETENSORS_DTYPES.join(', ')})`);
      continue;
    }
    const spec = SPECS[raw.dtype];
    if (!(raw.data instanceof ARRAY_CLASSES[spec.array]!)) {
      p.add(`tensor ${JSON.stringify(name)}: ${raw.dtype} data must be a ${spec.array}, got ${raw.data.constructor.name}`);
      continue;
    }
    if (!raw.shape.every(isIndex) || raw.data.length !== numel(raw.shape)) {
      p.add(`tensor ${JSON.stringify(name)}: shape ${formatShape(raw.shape)} needs ${numel(raw.shape)} elements, data has ${raw.data.length}`);
      continue;
    }
    items.push({ name, raw });
  }
  for (const [k, v] of Object.entries(options.metadata ?? {})) {
    if (typeof v !== 'string') p.add(`metadata ${JSON.stringify(k)} must be a string, got ${describe(v)}`);
  }
  p.throwIfAny();

  const layout = [...items].sort((a, b) => SPECS[b.raw.dtype].size - SPECS[a.raw.dtype].size || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const offsets = new Map<string, [number, number]>();
  let cursor = 0;
  for (const it of layout) {
    const n = it.raw.data.byteLength;
    offsets.set(it.name, [cursor, cursor + n]);
    cursor += n;
  }
  const header: Record<string, unknown> = {};
  if (options.metadata !== undefined) header['__metadata__'] = { ...options.metadata };
  for (const it of [...items].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    header[it.name] = { dtype: it.raw.dtype, shape: [...it.raw.shape], data_offsets: offsets.get(it.name) };
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const pad = (8 - ((8 + json.length) % 8)) % 8;
  const headerBytes = new Uint8Array(8 + json.length + pad).fill(0x20, 8 + json.length);
  new DataView(headerBytes.buffer).setBigUint64(0, BigInt(json.length + pad), true);
  headerBytes.set(json, 8);
  const chunks = layout.map((it) => tensorBytes(it.raw));
  return { header: headerBytes, chunks, byteLength: headerBytes.length + cursor };
}

/** The complete file as one byte array. */
export function serializeSafetensors(tensors: TensorMap, options: WriteSafetensorsOptions = {}): Uint8Array {
  const plan = planSafetensors(tensors, options);
  const out = new Uint8Array(plan.byteLength);
  out.set(plan.header, 0);
  let off = plan.header.length;
  for (const c of plan.chunks) {
    out.set(c, off);
    off += c.length;
  }
  return out;
}
