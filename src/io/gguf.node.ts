// GGUF files on disk (Node): open a file and parse its header (gguf.ts), read each tensor's bytes
// on demand; write a file atomically. docs/ARCHITECTURE.md §GGUF.
import * as fs from 'node:fs';
import { writeFileAtomic } from './atomic.node.js';
import { FormatError } from './errors.js';
import { dequantize } from './gguf-blocks.js';
import { GgufMetadata, GgufNeedMore, ggufChunks, parseGgufHeader, type GgufHeader, type GgufOut, type GgufTensorInfo } from './gguf.js';

/** A GGUF file, its header parsed and checked, tensors read one at a time. Call close() when done. */
export class GgufFile {
  readonly path: string;
  readonly header: GgufHeader;
  readonly metadata: GgufMetadata;
  readonly fileSize: number;
  private readonly byName: Map<string, GgufTensorInfo>;
  private fd: number | undefined;

  private constructor(path: string, fd: number, fileSize: number, header: GgufHeader) {
    this.path = path;
    this.fd = fd;
    this.fileSize = fileSize;
    this.header = header;
    this.metadata = new GgufMetadata(header.metadata, path);
    this.byName = new Map(header.tensors.map((t) => [t.name, t]));
  }

  /** Opens `path` and parses its header (reading more of the file only as the header needs). */
  static open(path: string): GgufFile {
    let fd: number;
    try {
      fd = fs.openSync(path, 'r');
    } catch (err) {
      throw new FormatError('GGUF file', path, [`cannot open: ${(err as Error).message}`]);
    }
    try {
      const size = fs.fstatSync(fd).size;
      let want = Math.min(size, 1 << 20);
      for (;;) {
        const buf = new Uint8Array(want);
        readFully(fd, buf, 0, path);
        try {
          return new GgufFile(path, fd, size, parseGgufHeader(buf, size, path));
        } catch (err) {
          if (!(err instanceof GgufNeedMore)) throw err;
          want = Math.min(size, Math.max(err.bytes, want * 2));
        }
      }
    } catch (err) {
      fs.closeSync(fd);
      throw err;
    }
  }

  get tensors(): readonly GgufTensorInfo[] {
    return this.header.tensors;
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  info(name: string): GgufTensorInfo {
    const t = this.byName.get(name);
    if (!t) throw new FormatError('GGUF file', this.path, [`no tensor named "${name}"`]);
    return t;
  }

  /** A tensor's bytes as stored (blocks for quantized types). */
  bytes(name: string): Uint8Array {
    const t = this.info(name);
    if (this.fd === undefined) throw new Error(`GGUF file ${this.path} is closed`);
    const out = new Uint8Array(t.byteLength);
    readFully(this.fd, out, t.offset, this.path);
    return out;
  }

  /** A tensor's values, dequantized to f32 (PyTorch order: row-major over `shape`). */
  values(name: string): Float32Array {
    const t = this.info(name);
    return dequantize(t.spec, this.bytes(name), t.byteLength / t.spec.blockBytes * t.spec.blockValues);
  }

  close(): void {
    if (this.fd !== undefined) fs.closeSync(this.fd);
    this.fd = undefined;
  }
}

function readFully(fd: number, into: Uint8Array, position: number, file: string): void {
  let done = 0;
  while (done < into.length) {
    const got = fs.readSync(fd, into, done, Math.min(1 << 30, into.length - done), position + done);
    if (got === 0) throw new FormatError('GGUF file', file, [`the file ended at byte ${position + done} while reading ${into.length} bytes at offset ${position} (truncated or changed while open?)`]);
    done += got;
  }
}

/** Writes a GGUF file atomically, one tensor in memory at a time. */
export async function writeGguf(path: string, doc: GgufOut): Promise<void> {
  await writeFileAtomic(path, ggufChunks(doc));
}

/** Whether a path names a GGUF file (by its magic, or its extension when it cannot be read). */
export function isGgufPath(path: string): boolean {
  try {
    if (!fs.statSync(path).isFile()) return false;
    const fd = fs.openSync(path, 'r');
    try {
      const b = new Uint8Array(4);
      fs.readSync(fd, b, 0, 4, 0);
      return b[0] === 0x47 && b[1] === 0x47 && b[2] === 0x55 && b[3] === 0x46;
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    return path.toLowerCase().endsWith('.gguf');
  }
}
