// The kernels of a cross-compiled build, served by native/test/kernel_server.cc in another
// process (the ARM64 NEON build under qemu-aarch64), as an addon object: each kernel call
// is written to the server over a FIFO and waited for synchronously, and the arrays come
// back as the kernel left them. With createNativeBackend it runs every kernel comparison.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readSync, rmSync, statSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NativeAddon } from '../../src/backend/native/index.js';
import { packageRoot } from '../../src/backend/native/index.js';

export const AARCH64_GXX = 'aarch64-linux-gnu-g++';
export const QEMU = 'qemu-aarch64-static';
export const AARCH64_SYSROOT = '/usr/aarch64-linux-gnu';

/** the kernel sources (no N-API: napi_shim.h stands in) and the server's main */
export function kernelSources(): string[] {
  const src = join(packageRoot(), 'native', 'src');
  return [...['cpu', 'threadpool', 'gemm', 'gemm_simd', 'gemv', 'napi_gemm', 'ops', 'ops_attention', 'ops_rows', 'conv', 'shim_module'].map((f) => join(src, `${f}.cc`)), join(packageRoot(), 'native', 'test', 'kernel_server.cc')];
}

/** which of the tools are missing (empty when the NEON tests can run) */
export function missingArmTools(): string[] {
  return [AARCH64_GXX, QEMU].filter((t) => spawnSync('sh', ['-c', `command -v ${t}`]).status !== 0);
}

/** Cross-compiles the kernel server for aarch64 into build/aarch64/ (again only when a source is newer). */
export function buildArmServer(): string {
  const dir = join(packageRoot(), 'build', 'aarch64');
  mkdirSync(dir, { recursive: true });
  const bin = join(dir, 'kernel_server');
  const srcs = kernelSources();
  const headers = ['simd.h', 'napi_shim.h', 'napi_util.h', 'napi_gemm.h', 'ops_common.h', 'gemm.h', 'threadpool.h'].map((h) => join(packageRoot(), 'native', 'src', h));
  const newest = Math.max(...[...srcs, ...headers].map((f) => statSync(f).mtimeMs));
  if (existsSync(bin) && statSync(bin).mtimeMs > newest) return bin;
  const r = spawnSync(AARCH64_GXX, ['-O2', '-std=c++17', '-pthread', '-DLK_NAPI_SHIM', '-fno-exceptions', ...srcs, '-o', bin], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${AARCH64_GXX} failed:\n${r.stderr}`);
  return bin;
}

export interface KernelServer {
  addon: NativeAddon;
  /** the GEMM kernel set the build uses ("neon") */
  impl: string;
  close(): void;
}

const KIND = { undefined: 0, null: 1, boolean: 2, number: 3, object: 6 } as const;
function taType(a: ArrayBufferView): number {
  const types: [new (...args: never[]) => ArrayBufferView, number][] = [
    [Int8Array, 0], [Uint8Array, 1], [Int16Array, 3], [Uint16Array, 4], [Int32Array, 5], [Uint32Array, 6], [Float32Array, 7], [Float64Array, 8],
  ];
  for (const [T, code] of types) if (a instanceof T) return code;
  throw new TypeError(`kernel server: unsupported argument ${a.constructor.name}`);
}

/** Starts the server under `runner` (e.g. [qemu, '-L', sysroot]) and reads its kernel names. */
export function startKernelServer(bin: string, runner: string[]): KernelServer {
  const dir = mkdtempSync(join(tmpdir(), 'lorakit-ks-'));
  const req = join(dir, 'req');
  const rep = join(dir, 'rep');
  for (const f of [req, rep]) if (spawnSync('mkfifo', [f]).status !== 0) throw new Error(`mkfifo ${f} failed`);
  const cmd = [...runner, bin, req, rep];
  const child: ChildProcess = spawn(cmd[0]!, cmd.slice(1), { stdio: ['ignore', 'inherit', 'inherit'] });
  child.unref();
  const wfd = openSync(req, 'w'); // both block until the server has opened its ends
  const rfd = openSync(rep, 'r');

  const read = (n: number): Buffer => {
    const b = Buffer.alloc(n);
    let got = 0;
    while (got < n) {
      const k = readSync(rfd, b, got, n - got, null);
      if (k === 0) throw new Error(`kernel server (${cmd.join(' ')}) exited`);
      got += k;
    }
    return b;
  };
  const u32 = (): number => read(4).readUInt32LE(0);
  const str = (): string => read(u32()).toString('utf8');
  const count = u32();
  const names = Array.from({ length: count }, str);
  const impl = str();

  const call = (fn: number, name: string, args: unknown[]): number => {
    const parts: Buffer[] = [];
    const head = Buffer.alloc(8);
    head.writeUInt32LE(fn, 0);
    head.writeUInt32LE(args.length, 4);
    parts.push(head);
    const arrays: ArrayBufferView[] = [];
    for (const a of args) {
      const h = Buffer.alloc(24);
      let kind: number = KIND.undefined;
      let bytes: Buffer | null = null;
      if (a === null) kind = KIND.null;
      else if (typeof a === 'number') (kind = KIND.number), h.writeDoubleLE(a, 16);
      else if (typeof a === 'boolean') (kind = KIND.boolean), h.writeDoubleLE(a ? 1 : 0, 16);
      else if (ArrayBuffer.isView(a)) {
        kind = KIND.object;
        h.writeInt32LE(taType(a), 4);
        const same = arrays.findIndex((b) => b.buffer === a.buffer && b.byteOffset === a.byteOffset && b.byteLength === a.byteLength);
        if (same >= 0) {
          // the same array again (out = a): the server points this argument at that copy
          h.writeBigUInt64LE(0xffffffffffffffffn, 8);
          h.writeDoubleLE(args.indexOf(arrays[same]), 16);
        } else {
          h.writeBigUInt64LE(BigInt(a.byteLength), 8);
          bytes = Buffer.from(a.buffer, a.byteOffset, a.byteLength);
          arrays.push(a);
        }
      } else if (a !== undefined) throw new TypeError(`${name}: unsupported argument ${typeof a}`);
      h.writeInt32LE(kind, 0);
      parts.push(h);
      if (bytes) parts.push(bytes);
    }
    const msg = Buffer.concat(parts);
    for (let off = 0; off < msg.length; ) off += writeSync(wfd, msg, off);
    const status = u32();
    const result = read(8).readDoubleLE(0);
    const error = str();
    // the copies come back in argument order, each array once
    for (const a of arrays) Buffer.from(a.buffer, a.byteOffset, a.byteLength).set(read(a.byteLength));
    if (status !== 0) throw new TypeError(error);
    return result;
  };

  const addon: Record<string, (...args: unknown[]) => unknown> = {};
  names.forEach((name, fn) => (addon[name] = (...args: unknown[]) => call(fn, name, args)));
  addon['gemmImpl'] = () => impl;
  addon['threads'] = () => 1;
  addon['cpuInfo'] = () => ({ avx2fma: false });
  return {
    addon: addon as NativeAddon,
    impl,
    close() {
      const end = Buffer.alloc(4);
      end.writeUInt32LE(0xffffffff, 0);
      try {
        writeSync(wfd, end);
      } catch {
        // already gone
      }
      closeSync(wfd);
      closeSync(rfd);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
