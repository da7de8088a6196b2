// A device backend (WebGPU) driven with host arrays, for the kernel-compare tests
// (tests/unit/kernels-compare.ts), which were written for host-memory backends: each kernel
// call uploads its host operands (views of one ArrayBuffer share one device region, so
// aliased and overlapping arguments stay aliased), runs the kernel, reads every float
// operand back into its host array and resolves. A host Float64Array accumulator becomes a
// device accumulator for the call. Integer tables go as they are (the backend uploads them).
import type { Backend } from '../../src/backend/types.js';
import { GpuAcc, GpuF32, GpuU16, type WebGpuBackend } from '../../src/backend/webgpu/index.js';

/** Backend's kernels, each also allowed to return a promise of its result: await every call. */
export type KernelsUnderTest = {
  [K in keyof Backend]: Backend[K] extends (...a: infer A) => infer R ? (...a: A) => R | Promise<R> : Backend[K];
};

interface Region {
  lo: number;
  hi: number;
  dev?: GpuF32 | GpuU16;
  half: boolean;
}

export function deviceAsHost(be: WebGpuBackend): KernelsUnderTest {
  const ctx = be.context;
  const wrap = (name: keyof Backend) =>
    async (...args: unknown[]): Promise<unknown> => {
      const regions = new Map<ArrayBufferLike, Region>();
      const accs: [Float64Array, GpuAcc][] = [];
      const note = (a: Float32Array | Uint16Array): void => {
        if (a instanceof GpuF32 || a instanceof GpuU16) return;
        const r = regions.get(a.buffer) ?? { lo: Infinity, hi: -Infinity, half: a instanceof Uint16Array };
        r.lo = Math.min(r.lo, a.byteOffset);
        r.hi = Math.max(r.hi, a.byteOffset + a.byteLength);
        regions.set(a.buffer, r);
      };
      const visit = (x: unknown): void => {
        if (x instanceof Float32Array || x instanceof Uint16Array) note(x);
        else if (x && typeof x === 'object' && !ArrayBuffer.isView(x)) for (const v of Object.values(x)) visit(v);
      };
      args.forEach(visit);
      for (const [buf, r] of regions) {
        r.lo -= r.lo % 4;
        if (r.half) {
          const d = ctx.allocU16((r.hi - r.lo) / 2);
          d.set(new Uint16Array(buf, r.lo, d.n));
          r.dev = d;
        } else {
          const d = ctx.allocF32((r.hi - r.lo) / 4);
          d.set(new Float32Array(buf, r.lo, d.n));
          r.dev = d;
        }
      }
      const conv = (x: unknown): unknown => {
        if ((x instanceof Float32Array || x instanceof Uint16Array) && !(x instanceof GpuF32 || x instanceof GpuU16)) {
          const r = regions.get(x.buffer)!;
          const first = (x.byteOffset - r.lo) / x.BYTES_PER_ELEMENT;
          return r.dev!.subarray(first, first + x.length);
        }
        if (x instanceof Float64Array && !(x instanceof GpuAcc)) {
          const acc = ctx.allocAcc(x.length);
          const w = new Float32Array(x.length * 4);
          for (let i = 0; i < x.length; i++) {
            const hi = Math.fround(x[i]!);
            w[4 * i] = hi;
            w[4 * i + 1] = Number.isFinite(hi) ? x[i]! - hi : 0;
          }
          ctx.device.queue.writeBuffer(acc.gpu, 0, w);
          accs.push([x, acc]);
          return acc;
        }
        if (x && typeof x === 'object' && !ArrayBuffer.isView(x)) return Object.fromEntries(Object.entries(x).map(([k, v]) => [k, conv(v)]));
        return x;
      };
      ctx.flush();
      const dargs = args.map(conv);
      const result = (be[name] as (...a: unknown[]) => unknown)(...dargs);
      for (const [buf, r] of regions) {
        const d = r.dev!;
        const back = d instanceof GpuF32 ? await ctx.readF32(d) : await ctx.readU16(d as GpuU16);
        const n = Math.min(back.byteLength, r.hi - r.lo);
        new Uint8Array(buf, r.lo, n).set(new Uint8Array(back.buffer, back.byteOffset, n));
        be.memory.free(d);
      }
      for (const [host, acc] of accs) host.set(await ctx.readAcc(acc));
      return result;
    };
  const out: Record<string, unknown> = { name: be.name, threads: be.threads, memory: be.memory };
  for (const k of Object.keys(be) as (keyof Backend)[]) {
    if (typeof be[k] === 'function') out[k] = wrap(k);
  }
  // sumSquares returns a number, which a device backend cannot do synchronously (it throws);
  // here, its accumulator twin read back
  out.sumSquares = async (x: Float32Array): Promise<number> => {
    const acc = be.memory.allocAccumulator(1);
    await (out.sumSquaresInto as KernelsUnderTest['sumSquaresInto'])(acc, 0, x);
    return (await be.memory.readAccumulator(acc))[0]!;
  };
  return out as unknown as KernelsUnderTest;
}
