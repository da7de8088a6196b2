// GGUF: parsing and writing the header, over bytes (platform-neutral). docs/ARCHITECTURE.md §GGUF.
//
// Layout (GGUF v3, little-endian; v2 reads the same):
//   u32 magic "GGUF", u32 version, u64 tensor_count, u64 kv_count,
//   kv_count × (string key, u32 value_type, value),
//   tensor_count × (string name, u32 n_dims, u64 ne[n_dims], u32 ggml_type, u64 offset),
//   padding to `general.alignment` (default 32), then the data region: each tensor at its
//   offset (relative to the region, a multiple of the alignment).
// A string is a u64 byte length and UTF-8 bytes; an array is a u32 item type, a u64 count and
// the items. ne[0] is the fastest-moving dimension: a PyTorch weight of shape [out, in] is
// ne = [in, out]. `shape` below is PyTorch's order (ne reversed).
//
// The parser trusts nothing: every length and count is checked against the bytes that are
// left before anything is allocated, so a malformed file gives a FormatError naming the key or
// tensor and the byte offset, never a crash or a huge allocation.
import { FormatError } from './errors.js';
import { blockSpecOf, ggmlTypeName, READABLE_TYPES, type BlockSpec } from './gguf-blocks.js';

export const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian u32
export const GGUF_DEFAULT_ALIGNMENT = 32;
/** The most header bytes lorakit reads (a 256k-token vocabulary takes a few MB). */
export const GGUF_MAX_HEADER_BYTES = 1 << 30;
/** The longest metadata array lorakit reads (vocabularies have a few hundred thousand tokens). */
export const GGUF_MAX_ARRAY_ITEMS = 1 << 24;
const MAX_DIMS = 4;

export const GGUF_VALUE = { U8: 0, I8: 1, U16: 2, I16: 3, U32: 4, I32: 5, F32: 6, BOOL: 7, STRING: 8, ARRAY: 9, U64: 10, I64: 11, F64: 12 } as const;
export type GgufValueType = (typeof GGUF_VALUE)[keyof typeof GGUF_VALUE];
const VALUE_NAMES = ['U8', 'I8', 'U16', 'I16', 'U32', 'I32', 'F32', 'BOOL', 'STRING', 'ARRAY', 'U64', 'I64', 'F64'];
const VALUE_SIZE = [1, 1, 2, 2, 4, 4, 4, 1, 8, 12, 8, 8, 8]; // STRING and ARRAY: their smallest encoding

export type GgufScalar = number | bigint | boolean | string;

/** A metadata value with its GGUF type (arrays: their item type). u64/i64 beyond 2^53 stay bigint. */
export interface GgufKV {
  type: GgufValueType;
  value: GgufScalar | GgufScalar[];
  itemType?: GgufValueType;
}

export interface GgufTensorInfo {
  readonly name: string;
  /** GGML dimensions, fastest first */
  readonly ne: readonly number[];
  /** PyTorch order (ne reversed) */
  readonly shape: readonly number[];
  readonly type: number;
  readonly spec: BlockSpec;
  /** absolute byte offset in the file */
  readonly offset: number;
  readonly byteLength: number;
}

export interface GgufHeader {
  readonly version: number;
  readonly metadata: ReadonlyMap<string, GgufKV>;
  readonly tensors: readonly GgufTensorInfo[];
  readonly alignment: number;
  /** absolute byte offset of the data region */
  readonly dataOffset: number;
}

/** Thrown by the parser when the bytes it was given end before the file does (read more and retry). */
export class GgufNeedMore extends Error {
  constructor(readonly bytes: number) {
    super(`need ${bytes} header bytes`);
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

class Cursor {
  pos = 0;
  private readonly dv: DataView;
  constructor(
    private readonly buf: Uint8Array,
    private readonly fileSize: number,
    private readonly file: string,
  ) {
    this.dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  fail(what: string, problem: string, at = this.pos): never {
    throw new FormatError('GGUF file', this.file, [`${what} at byte ${at}: ${problem}`]);
  }

  /** Makes sure n more bytes can be read, else asks for more or says where the file ends. */
  need(n: number, what: string): void {
    const end = this.pos + n;
    if (end <= this.buf.length) return;
    if (end > this.fileSize) this.fail(what, `the file ends at byte ${this.fileSize}, ${n} more bytes were expected`);
    if (end > GGUF_MAX_HEADER_BYTES) this.fail(what, `the header runs past ${GGUF_MAX_HEADER_BYTES} bytes, more than lorakit reads`);
    throw new GgufNeedMore(end);
  }

  remaining(): number {
    return this.fileSize - this.pos;
  }

  u32(what: string): number {
    this.need(4, what);
    const v = this.dv.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }

  /** A u64 that must fit a JS number (counts, lengths, dims, offsets). */
  u64n(what: string): number {
    this.need(8, what);
    const v = this.dv.getBigUint64(this.pos, true);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) this.fail(what, `${v} is too large`);
    this.pos += 8;
    return Number(v);
  }

  string(what: string): string {
    const at = this.pos;
    const len = this.u64n(`${what} (string length)`);
    if (len > this.remaining()) this.fail(what, `a string of ${len} bytes runs past the end of the file (${this.fileSize} bytes)`, at);
    this.need(len, what);
    const bytes = this.buf.subarray(this.pos, this.pos + len);
    this.pos += len;
    try {
      return utf8.decode(bytes);
    } catch {
      return this.fail(what, 'the string is not valid UTF-8', at);
    }
  }

  scalar(type: number, what: string): GgufScalar {
    switch (type) {
      case GGUF_VALUE.STRING:
        return this.string(what);
      case GGUF_VALUE.BOOL: {
        this.need(1, what);
        const b = this.buf[this.pos]!;
        if (b > 1) this.fail(what, `a bool must be 0 or 1, got ${b}`);
        this.pos += 1;
        return b === 1;
      }
      case GGUF_VALUE.U64:
      case GGUF_VALUE.I64: {
        this.need(8, what);
        const big = type === GGUF_VALUE.U64 ? this.dv.getBigUint64(this.pos, true) : this.dv.getBigInt64(this.pos, true);
        this.pos += 8;
        return big >= BigInt(Number.MIN_SAFE_INTEGER) && big <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(big) : big;
      }
    }
    const size = VALUE_SIZE[type]!;
    this.need(size, what);
    const p = this.pos;
    this.pos += size;
    switch (type) {
      case GGUF_VALUE.U8: return this.dv.getUint8(p);
      case GGUF_VALUE.I8: return this.dv.getInt8(p);
      case GGUF_VALUE.U16: return this.dv.getUint16(p, true);
      case GGUF_VALUE.I16: return this.dv.getInt16(p, true);
      case GGUF_VALUE.U32: return this.dv.getUint32(p, true);
      case GGUF_VALUE.I32: return this.dv.getInt32(p, true);
      case GGUF_VALUE.F32: return this.dv.getFloat32(p, true);
      default: return this.dv.getFloat64(p, true);
    }
  }
}

function valueTypeName(t: number): string {
  return VALUE_NAMES[t] ?? `type ${t}`;
}

/**
 * Parses a GGUF header from the first bytes of a file of `fileSize` bytes. Throws GgufNeedMore
 * when `bytes` ends before the header does (the caller reads more and calls again), FormatError
 * naming the key, tensor and byte offset for anything malformed: a wrong magic or version,
 * counts or lengths beyond the file, unknown value types, nested arrays, duplicate keys or
 * tensor names, a bad alignment, more than 4 dimensions, a row that is not whole blocks, a
 * GGML type lorakit cannot read, data outside the file or overlapping another tensor's.
 */
export function parseGgufHeader(bytes: Uint8Array, fileSize: number, file: string): GgufHeader {
  const c = new Cursor(bytes, fileSize, file);
  const magic = c.u32('magic');
  if (magic !== GGUF_MAGIC) {
    const shown = [...bytes.subarray(0, 4)].map((b) => (b >= 32 && b < 127 ? String.fromCharCode(b) : `\\x${b.toString(16).padStart(2, '0')}`)).join('');
    c.fail('magic', `not a GGUF file: it starts with "${shown}", expected "GGUF"`, 0);
  }
  const version = c.u32('version');
  if (version !== 2 && version !== 3) {
    c.fail('version', version === 1 ? 'GGUF version 1 is not supported (versions 2 and 3 are)' : version > 0xffff ? `version ${version} (a big-endian GGUF file? lorakit reads little-endian ones)` : `GGUF version ${version} is not supported (versions 2 and 3 are)`, 4);
  }
  const tensorCount = c.u64n('tensor_count');
  const kvCount = c.u64n('kv_count');
  if (kvCount * 13 > c.remaining()) c.fail('kv_count', `${kvCount} metadata entries cannot fit in the ${c.remaining()} bytes left`, 16);
  if (tensorCount * 32 > c.remaining()) c.fail('tensor_count', `${tensorCount} tensors cannot fit in the ${c.remaining()} bytes left`, 8);

  const metadata = new Map<string, GgufKV>();
  for (let i = 0; i < kvCount; i++) {
    const at = c.pos;
    const key = c.string(`metadata key #${i}`);
    if (metadata.has(key)) c.fail(`metadata key "${key}"`, 'the key appears twice', at);
    const type = c.u32(`type of metadata key "${key}"`);
    if (type > 12) c.fail(`metadata key "${key}"`, `unknown value type ${type} (GGUF types are 0..12)`);
    if (type === GGUF_VALUE.ARRAY) {
      const itemType = c.u32(`item type of array "${key}"`);
      if (itemType > 12) c.fail(`metadata key "${key}"`, `unknown array item type ${itemType}`);
      if (itemType === GGUF_VALUE.ARRAY) c.fail(`metadata key "${key}"`, 'arrays of arrays are not supported');
      const count = c.u64n(`length of array "${key}"`);
      if (count * VALUE_SIZE[itemType]! > c.remaining()) c.fail(`metadata key "${key}"`, `an array of ${count} ${valueTypeName(itemType)} items runs past the end of the file`);
      if (count > GGUF_MAX_ARRAY_ITEMS) c.fail(`metadata key "${key}"`, `an array of ${count} items is longer than lorakit reads (${GGUF_MAX_ARRAY_ITEMS})`);
      const items: GgufScalar[] = new Array(count);
      for (let j = 0; j < count; j++) items[j] = c.scalar(itemType, `item ${j} of array "${key}"`);
      metadata.set(key, { type: GGUF_VALUE.ARRAY, itemType: itemType as GgufValueType, value: items });
    } else {
      metadata.set(key, { type: type as GgufValueType, value: c.scalar(type, `value of metadata key "${key}"`) });
    }
  }

  let alignment = GGUF_DEFAULT_ALIGNMENT;
  const al = metadata.get('general.alignment');
  if (al !== undefined) {
    if (al.type !== GGUF_VALUE.U32 || typeof al.value !== 'number' || al.value === 0 || (al.value & (al.value - 1)) !== 0) {
      c.fail('metadata key "general.alignment"', `must be a power of two as a U32, got ${describeKV(al)}`, 24);
    }
    alignment = al.value as number;
  }

  const infos: { name: string; ne: number[]; type: number; spec: BlockSpec; rel: number; byteLength: number; at: number }[] = [];
  const names = new Set<string>();
  for (let i = 0; i < tensorCount; i++) {
    const at = c.pos;
    const name = c.string(`name of tensor #${i}`);
    const what = `tensor "${name}"`;
    if (names.has(name)) c.fail(what, 'the name appears twice', at);
    names.add(name);
    const nDims = c.u32(`${what} n_dims`);
    if (nDims < 1 || nDims > MAX_DIMS) c.fail(what, `has ${nDims} dimensions; GGUF tensors have 1 to ${MAX_DIMS}`);
    const ne: number[] = [];
    let n = 1;
    for (let d = 0; d < nDims; d++) {
      const v = c.u64n(`${what} dimension ${d}`);
      if (v < 1) c.fail(what, `dimension ${d} is ${v}; dimensions must be at least 1`);
      n *= v;
      if (n > Number.MAX_SAFE_INTEGER || n > fileSize * 8) c.fail(what, `dimensions [${[...ne, v].join(', ')}…] hold more values than the file can`);
      ne.push(v);
    }
    const type = c.u32(`${what} type`);
    const spec = blockSpecOf(type);
    if (spec === undefined) return c.fail(what, `has GGML type ${ggmlTypeName(type)}, which lorakit does not read (it reads ${READABLE_TYPES.join(', ')})`);
    if (ne[0]! % spec.blockValues !== 0) c.fail(what, `rows of ${ne[0]} values are not whole ${spec.name} blocks of ${spec.blockValues}`);
    const rel = c.u64n(`${what} offset`);
    if (rel % alignment !== 0) c.fail(what, `data offset ${rel} is not a multiple of the alignment ${alignment}`);
    infos.push({ name, ne, type, spec, rel, byteLength: (n / spec.blockValues) * spec.blockBytes, at });
  }
  const dataOffset = Math.ceil(c.pos / alignment) * alignment;
  const tensors: GgufTensorInfo[] = infos.map((t) => {
    const offset = dataOffset + t.rel;
    if (offset + t.byteLength > fileSize) {
      c.fail(`tensor "${t.name}"`, `its ${t.byteLength} bytes of data at file offset ${offset} run past the end of the file (${fileSize} bytes)`, t.at);
    }
    return Object.freeze({ name: t.name, ne: Object.freeze(t.ne), shape: Object.freeze([...t.ne].reverse()), type: t.type, spec: t.spec, offset, byteLength: t.byteLength });
  });
  const sorted = [...tensors].sort((a, b) => a.offset - b.offset);
  for (let i = 1; i < sorted.length; i++) {
    const a = sorted[i - 1]!, b = sorted[i]!;
    if (a.offset + a.byteLength > b.offset) c.fail(`tensor "${b.name}"`, `its data at file offset ${b.offset} overlaps tensor "${a.name}" (bytes ${a.offset}..${a.offset + a.byteLength})`, dataOffset);
  }
  return { version, metadata, tensors, alignment, dataOffset };
}

function describeKV(kv: GgufKV): string {
  if (kv.type === GGUF_VALUE.ARRAY) return `an array of ${Array.isArray(kv.value) ? kv.value.length : '?'} ${valueTypeName(kv.itemType ?? 99)}`;
  return `${valueTypeName(kv.type)} ${String(kv.value)}`;
}

// ---------------------------------------------------------------------------------------------
// Reading metadata with types checked

/** Typed access to a header's metadata; every wrong or missing key names the key and the file. */
export class GgufMetadata {
  constructor(
    readonly map: ReadonlyMap<string, GgufKV>,
    readonly file: string,
  ) {}

  private bad(key: string, expected: string, kv: GgufKV | undefined): never {
    throw new FormatError('GGUF file', this.file, [kv === undefined ? `metadata key "${key}" is missing (expected ${expected})` : `metadata key "${key}" must be ${expected}, got ${describeKV(kv)}`]);
  }

  has(key: string): boolean {
    return this.map.has(key);
  }

  string(key: string): string;
  string(key: string, optional: true): string | undefined;
  string(key: string, optional = false): string | undefined {
    const kv = this.map.get(key);
    if (kv === undefined && optional) return undefined;
    if (kv?.type !== GGUF_VALUE.STRING) this.bad(key, 'a string', kv);
    return kv.value as string;
  }

  /** Any integer or float type, as a number. */
  number(key: string): number;
  number(key: string, optional: true): number | undefined;
  number(key: string, optional = false): number | undefined {
    const kv = this.map.get(key);
    if (kv === undefined && optional) return undefined;
    if (kv === undefined || typeof kv.value !== 'number' || kv.type === GGUF_VALUE.ARRAY) this.bad(key, 'a number', kv);
    return kv.value as number;
  }

  bool(key: string): boolean | undefined {
    const kv = this.map.get(key);
    if (kv === undefined) return undefined;
    if (kv.type !== GGUF_VALUE.BOOL) this.bad(key, 'a bool', kv);
    return kv.value as boolean;
  }

  strings(key: string): string[];
  strings(key: string, optional: true): string[] | undefined;
  strings(key: string, optional = false): string[] | undefined {
    const kv = this.map.get(key);
    if (kv === undefined && optional) return undefined;
    if (kv?.type !== GGUF_VALUE.ARRAY || kv.itemType !== GGUF_VALUE.STRING) this.bad(key, 'an array of strings', kv);
    return kv.value as string[];
  }

  numbers(key: string): number[] | undefined {
    const kv = this.map.get(key);
    if (kv === undefined) return undefined;
    if (kv.type !== GGUF_VALUE.ARRAY || kv.itemType === GGUF_VALUE.STRING || (kv.value as GgufScalar[]).some((v) => typeof v !== 'number')) this.bad(key, 'an array of numbers', kv);
    return kv.value as number[];
  }
}

// ---------------------------------------------------------------------------------------------
// Writing

/** A tensor to write: PyTorch-order shape, GGML type, and its bytes (made when written). */
export interface GgufTensorOut {
  name: string;
  shape: readonly number[];
  type: number;
  byteLength: number;
  data: () => Uint8Array;
}

export interface GgufOut {
  metadata: readonly (readonly [string, GgufKV])[];
  tensors: readonly GgufTensorOut[];
  alignment?: number;
}

/** Shorthands for metadata values. */
export const kv = {
  str: (value: string): GgufKV => ({ type: GGUF_VALUE.STRING, value }),
  u32: (value: number): GgufKV => ({ type: GGUF_VALUE.U32, value }),
  i32: (value: number): GgufKV => ({ type: GGUF_VALUE.I32, value }),
  f32: (value: number): GgufKV => ({ type: GGUF_VALUE.F32, value }),
  bool: (value: boolean): GgufKV => ({ type: GGUF_VALUE.BOOL, value }),
  strs: (value: string[]): GgufKV => ({ type: GGUF_VALUE.ARRAY, itemType: GGUF_VALUE.STRING, value }),
  i32s: (value: number[]): GgufKV => ({ type: GGUF_VALUE.ARRAY, itemType: GGUF_VALUE.I32, value }),
};

class Writer {
  private chunks: Uint8Array[] = [];
  private cur = new Uint8Array(1 << 16);
  private dv = new DataView(this.cur.buffer);
  private pos = 0;
  length = 0;
  private static enc = new TextEncoder();

  private room(n: number): void {
    if (this.pos + n <= this.cur.length) return;
    this.chunks.push(this.cur.subarray(0, this.pos));
    this.cur = new Uint8Array(Math.max(1 << 16, n));
    this.dv = new DataView(this.cur.buffer);
    this.pos = 0;
  }
  u8(v: number): void { this.room(1); this.cur[this.pos++] = v; this.length += 1; }
  u32(v: number): void { this.room(4); this.dv.setUint32(this.pos, v, true); this.pos += 4; this.length += 4; }
  u64(v: number | bigint): void { this.room(8); this.dv.setBigUint64(this.pos, BigInt(v), true); this.pos += 8; this.length += 8; }
  bytes(b: Uint8Array): void { this.room(b.length); this.cur.set(b, this.pos); this.pos += b.length; this.length += b.length; }
  string(s: string): void { const b = Writer.enc.encode(s); this.u64(b.length); this.bytes(b); }
  scalar(type: number, v: GgufScalar): void {
    this.room(8);
    const p = this.pos;
    switch (type) {
      case GGUF_VALUE.STRING: return this.string(v as string);
      case GGUF_VALUE.BOOL: return this.u8(v ? 1 : 0);
      case GGUF_VALUE.U8: this.dv.setUint8(p, Number(v)); break;
      case GGUF_VALUE.I8: this.dv.setInt8(p, Number(v)); break;
      case GGUF_VALUE.U16: this.dv.setUint16(p, Number(v), true); break;
      case GGUF_VALUE.I16: this.dv.setInt16(p, Number(v), true); break;
      case GGUF_VALUE.U32: this.dv.setUint32(p, Number(v), true); break;
      case GGUF_VALUE.I32: this.dv.setInt32(p, Number(v), true); break;
      case GGUF_VALUE.F32: this.dv.setFloat32(p, Number(v), true); break;
      case GGUF_VALUE.U64: this.dv.setBigUint64(p, BigInt(v as number), true); break;
      case GGUF_VALUE.I64: this.dv.setBigInt64(p, BigInt(v as number), true); break;
      case GGUF_VALUE.F64: this.dv.setFloat64(p, Number(v), true); break;
      default: throw new TypeError(`GGUF writer: cannot write a value of type ${valueTypeName(type)}`);
    }
    const size = VALUE_SIZE[type]!;
    this.pos += size;
    this.length += size;
  }
  pad(alignment: number): void {
    const n = (alignment - (this.length % alignment)) % alignment;
    for (let i = 0; i < n; i++) this.u8(0);
  }
  done(): Uint8Array {
    this.chunks.push(this.cur.subarray(0, this.pos));
    const out = new Uint8Array(this.length);
    let o = 0;
    for (const c of this.chunks) {
      out.set(c, o);
      o += c.length;
    }
    return out;
  }
}

/**
 * A GGUF v3 file as chunks: the header (padded to the alignment) and then each tensor's bytes,
 * made one at a time, each padded to the alignment. `general.alignment` is written when the
 * alignment is not the default.
 */
export function* ggufChunks(doc: GgufOut): Generator<Uint8Array> {
  const alignment = doc.alignment ?? GGUF_DEFAULT_ALIGNMENT;
  const meta = [...doc.metadata];
  if (alignment !== GGUF_DEFAULT_ALIGNMENT && !meta.some(([k]) => k === 'general.alignment')) meta.push(['general.alignment', kv.u32(alignment)]);
  const w = new Writer();
  w.u32(GGUF_MAGIC);
  w.u32(3);
  w.u64(doc.tensors.length);
  w.u64(meta.length);
  for (const [key, v] of meta) {
    w.string(key);
    w.u32(v.type);
    if (v.type === GGUF_VALUE.ARRAY) {
      const items = v.value as GgufScalar[];
      w.u32(v.itemType!);
      w.u64(items.length);
      for (const item of items) w.scalar(v.itemType!, item);
    } else w.scalar(v.type, v.value as GgufScalar);
  }
  let rel = 0;
  for (const t of doc.tensors) {
    w.string(t.name);
    w.u32(t.shape.length);
    for (let d = t.shape.length - 1; d >= 0; d--) w.u64(t.shape[d]!);
    w.u32(t.type);
    w.u64(rel);
    rel += Math.ceil(t.byteLength / alignment) * alignment;
  }
  w.pad(alignment);
  yield w.done();
  for (const t of doc.tensors) {
    const data = t.data();
    if (data.length !== t.byteLength) throw new Error(`GGUF writer: tensor ${t.name} made ${data.length} bytes, ${t.byteLength} were announced`);
    yield data;
    const pad = (alignment - (data.length % alignment)) % alignment;
    if (pad) yield new Uint8Array(pad);
  }
}

/** A whole GGUF file in memory (for tests and small files). */
export function serializeGguf(doc: GgufOut): Uint8Array {
  const chunks = [...ggufChunks(doc)];
  const out = new Uint8Array(chunks.reduce((s, c) => s + c.length, 0));
  let o = 0;
  for (const c of chunks) {
    out.set(c, o);
    o += c.length;
  }
  return out;
}

/** Parses a whole GGUF file held in memory. */
export function parseGguf(bytes: Uint8Array, file = '<bytes>'): GgufHeader {
  return parseGgufHeader(bytes, bytes.length, file);
}
