// safetensors files on disk (Node): open and validate a file's header up front, then read each
// tensor lazily, straight from the file into its own typed array (so it is aligned and nothing is
// held twice); write files atomically. The format itself is parsed in safetensors.ts.
import * as fs from 'node:fs';
import { numel } from '../tensor/index.js';
import type { Tensor } from '../tensor/index.js';
import { writeFileAtomic, writeFileAtomicSync } from './atomic.node.js';
import { FormatError } from './errors.js';
import {
  SPECS,
  TO_TENSOR_DTYPE,
  checkLittleEndian,
  notFloat,
  parseHeader,
  planSafetensors,
  toTensor,
  type Entry,
  type LoadedSafetensors,
  type ParsedHeader,
  type RawTensor,
  type TensorInfo,
  type TensorMap,
  type TensorSource,
  type WriteSafetensorsOptions,
} from './safetensors.js';

function readFully(fd: number, into: Uint8Array, position: number, file: string, what: string): void {
  const CHUNK = 1 << 30;
  let done = 0;
  while (done < into.length) {
    const len = Math.min(CHUNK, into.length - done);
    const got = fs.readSync(fd, into, done, len, position + done);
    if (got === 0) {
      throw new FormatError('safetensors', file, [`${what}: file ended after ${position + done} bytes while reading ${into.length} bytes at offset ${position} (file truncated or changed while open?)`]);
    }
    done += got;
  }
}

/** One safetensors file, opened and validated, read tensor by tensor. Call close() when done. */
export class SafetensorsFile implements TensorSource {
  readonly path: string;
  readonly metadata: Readonly<Record<string, string>>;
  readonly fileSize: number;
  /** Byte length of the JSON header (without the 8-byte prefix). */
  readonly headerLength: number;
  private readonly entries: Map<string, Entry>;
  private fd: number | undefined;

  private constructor(path: string, fd: number, fileSize: number, header: ParsedHeader) {
    this.path = path;
    this.fd = fd;
    this.fileSize = fileSize;
    this.entries = header.entries;
    this.metadata = Object.freeze(header.metadata);
    this.headerLength = header.headerLength;
  }

  /** Opens and validates `path`; throws a FormatError listing every problem in the header. */
  static open(path: string): SafetensorsFile {
    checkLittleEndian(`safetensors ${path}`);
    const fd = fs.openSync(path, 'r');
    try {
      const size = fs.fstatSync(fd).size;
      const prefix = new Uint8Array(8);
      if (size >= 8) readFully(fd, prefix, 0, path, 'header length');
      const header = parseHeader(path, size, prefix, (n) => {
        const buf = new Uint8Array(n);
        readFully(fd, buf, 8, path, 'header');
        return buf;
      });
      return new SafetensorsFile(path, fd, size, header);
    } catch (err) {
      fs.closeSync(fd);
      throw err;
    }
  }

  get dataOffset(): number {
    return 8 + this.headerLength;
  }

  names(): string[] {
    return [...this.entries.keys()].sort();
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  private entry(name: string): Entry {
    const e = this.entries.get(name);
    if (e === undefined) {
      throw new FormatError('safetensors', this.path, [`no tensor named ${JSON.stringify(name)} (the file has ${this.entries.size} tensors${this.entries.size ? `, e.g. ${JSON.stringify(this.names()[0])}` : ''})`]);
    }
    return e;
  }

  info(name: string): TensorInfo {
    const e = this.entry(name);
    return { name, dtype: e.dtype, shape: e.shape, file: this.path, offset: this.dataOffset + e.begin, byteLength: e.end - e.begin };
  }

  raw(name: string): RawTensor {
    const e = this.entry(name);
    if (this.fd === undefined) throw new Error(`safetensors ${this.path}: file is closed (reading tensor ${JSON.stringify(name)})`);
    const data = SPECS[e.dtype].make(numel(e.shape));
    readFully(this.fd, new Uint8Array(data.buffer, 0, data.byteLength), this.dataOffset + e.begin, this.path, `tensor ${JSON.stringify(name)}`);
    return { dtype: e.dtype, shape: e.shape.slice(), data };
  }

  tensor(name: string): Tensor {
    const e = this.entry(name);
    if (TO_TENSOR_DTYPE[e.dtype] === undefined) throw notFloat(name, e.dtype, this.path);
    return toTensor(this.raw(name), name, this.path);
  }

  /** Names in file order (ascending offset), for sequential reads. */
  fileOrder(): string[] {
    return [...this.entries.values()].sort((a, b) => a.begin - b.begin).map((e) => e.name);
  }

  /** Float tensors in file order; tensors of other dtypes are skipped (read them with raw()). */
  *tensors(): IterableIterator<[string, Tensor]> {
    for (const name of this.fileOrder()) if (TO_TENSOR_DTYPE[this.entries.get(name)!.dtype] !== undefined) yield [name, this.tensor(name)];
  }

  close(): void {
    if (this.fd !== undefined) fs.closeSync(this.fd);
    this.fd = undefined;
  }
}

/** Reads a whole file: every tensor, each into its own typed array. */
export function readSafetensors(path: string): LoadedSafetensors {
  const f = SafetensorsFile.open(path);
  try {
    const out: LoadedSafetensors = { tensors: new Map(), others: new Map(), metadata: { ...f.metadata } };
    for (const name of f.fileOrder()) {
      const raw = f.raw(name);
      if (TO_TENSOR_DTYPE[raw.dtype] !== undefined) out.tensors.set(name, toTensor(raw, name, path));
      else out.others.set(name, raw);
    }
    return out;
  } finally {
    f.close();
  }
}

/** Writes a safetensors file atomically (temp file, fsync, rename); tensor data is not copied. */
export async function writeSafetensors(path: string, tensors: TensorMap, options: WriteSafetensorsOptions = {}): Promise<void> {
  const plan = planSafetensors(tensors, options, path);
  await writeFileAtomic(path, [plan.header, ...plan.chunks]);
}

export function writeSafetensorsSync(path: string, tensors: TensorMap, options: WriteSafetensorsOptions = {}): void {
  const plan = planSafetensors(tensors, options, path);
  writeFileAtomicSync(path, [plan.header, ...plan.chunks]);
}
