// The WebGPU backend's memory and dispatch (docs/ARCHITECTURE.md §Backend memory, §WebGPU).
//
// A handle is a `GpuF32` / `GpuU16`: a typed-array subclass with no host elements over a
// region (element offset, length) of one GPUBuffer. What the layers above do with a handle
// works on the device: `length`; `subarray` (a region of the same buffer); `fill` (a clear
// queued in order with the kernels); `set` (an upload); `slice` (a device copy). Indexing
// it reads nothing: host values come back only through `memory.read` (asynchronous).
//
// Kernels are compute passes recorded into one command encoder, submitted when the host
// needs the queue in order (an upload, a readback) or every FLUSH_PASSES passes. Operands
// are bound whole (a region's element offset goes in the pass's uniform parameters, since
// storage bindings must start on 256 bytes) and every storage binding is read_write, so one
// buffer bound twice in a pass (aliased arguments, regions of one buffer) is allowed (the
// usage-scope storage exception). Host typed arrays given to a kernel as inputs (integer
// ids, positions, masks, a host weight) are uploaded for that pass.
import type { Accumulator, BackendMemory, F32Buf, HalfBuf, HalfDType } from '../types.js';

const FLUSH_PASSES = 256;
const STORAGE = 0x80; // GPUBufferUsage.STORAGE (the constants are globals only where WebGPU exists)
const COPY_SRC = 0x04;
const COPY_DST = 0x08;
const MAP_READ = 0x01;
const UNIFORM = 0x40;
const QUERY_RESOLVE = 0x200;

/** An f32 region of a GPUBuffer, typed as the Float32Array handle the interface names. */
export class GpuF32 extends Float32Array {
  readonly ctx: GpuContext;
  readonly gpu: GPUBuffer;
  /** first element of the region (f32 elements) */
  readonly off: number;
  readonly n: number;
  constructor(ctx: GpuContext, gpu: GPUBuffer, off: number, n: number) {
    super(0);
    this.ctx = ctx;
    this.gpu = gpu;
    this.off = off;
    this.n = n;
  }
  override subarray(begin = 0, end?: number): GpuF32 {
    const [b, e] = range(this.n, begin, end);
    return new GpuF32(this.ctx, this.gpu, this.off + b, e - b);
  }
  override fill(value: number, start?: number, end?: number): this {
    const [b, e] = range(this.n, start ?? 0, end);
    this.ctx.fill(this, value, b, e - b);
    return this;
  }
  /** an upload of host values, or a device copy when src is a handle of this context */
  override set(src: ArrayLike<number>, offset = 0): void {
    if (src instanceof GpuF32) this.ctx.copy(this.subarray(offset, offset + src.n), src);
    else this.ctx.writeF32(this, src, offset);
  }
  override slice(start = 0, end?: number): GpuF32 {
    const [b, e] = range(this.n, start, end);
    const out = this.ctx.allocF32(e - b);
    this.ctx.copy(out, this.subarray(b, e));
    return out;
  }
}

/** A 16-bit region (f16 or bf16 bits) of a GPUBuffer; offsets in 16-bit elements. */
export class GpuU16 extends Uint16Array {
  readonly ctx: GpuContext;
  readonly gpu: GPUBuffer;
  readonly off: number;
  readonly n: number;
  /** the whole allocation's length (its end may pad a word) */
  readonly rootN: number;
  constructor(ctx: GpuContext, gpu: GPUBuffer, off: number, n: number, rootN = n) {
    super(0);
    this.ctx = ctx;
    this.gpu = gpu;
    this.off = off;
    this.n = n;
    this.rootN = rootN;
  }
  override subarray(begin = 0, end?: number): GpuU16 {
    const [b, e] = range(this.n, begin, end);
    return new GpuU16(this.ctx, this.gpu, this.off + b, e - b, this.rootN);
  }
  override set(src: ArrayLike<number>, offset = 0): void {
    this.ctx.writeU16(this, src, offset);
  }
  override fill(): this {
    throw new Error('webgpu: fill of a 16-bit buffer is not supported (narrow an f32 buffer into it)');
  }
}

/** The step's sums on the device: per slot a (hi, lo) pair of f32, a double-f32 sum (≈ 48 bits). */
export class GpuAcc extends Float64Array {
  readonly gpu: GPUBuffer;
  readonly slots: number;
  constructor(gpu: GPUBuffer, slots: number) {
    super(0);
    this.gpu = gpu;
    this.slots = slots;
  }
}

for (const C of [GpuF32, GpuU16]) Object.defineProperty(C.prototype, 'length', { get(this: GpuF32 | GpuU16) { return this.n; } });
Object.defineProperty(GpuAcc.prototype, 'length', { get(this: GpuAcc) { return this.slots; } });

function range(n: number, begin: number, end: number | undefined): [number, number] {
  const norm = (i: number): number => Math.min(n, Math.max(0, i < 0 ? n + i : i));
  const b = norm(begin);
  return [b, Math.max(b, norm(end ?? n))];
}

/** A kernel operand as bound: a device region, a host array uploaded for the pass, or none. */
export type Operand = GpuF32 | GpuU16 | GpuAcc | Float32Array | Uint16Array | Int32Array | Uint8Array | Float64Array | null;

/** Timestamps per kernel name (the benchmark's split), when the device has timestamp-query. */
export interface KernelTimes {
  /** kernel name → [passes, nanoseconds] */
  totals: Map<string, [number, number]>;
}

export class GpuContext {
  readonly device: GPUDevice;
  private encoder: GPUCommandEncoder | null = null;
  private passes = 0;
  private temps: GPUBuffer[] = [];
  private readonly pipelines = new Map<string, GPUComputePipeline>();
  private readonly layouts = new Map<string, GPUBindGroupLayout>();
  private readonly dummy: GPUBuffer;
  // timestamp queries (bench): two per pass, resolved at each flush
  private timing: { set: GPUQuerySet; resolve: GPUBuffer; names: string[]; cap: number; pending: Promise<void>[]; times: KernelTimes } | null = null;
  /** counts since creation: passes recorded, submits, readbacks, host arrays uploaded for a pass, bytes uploaded (those and writes) */
  readonly stats = { passes: 0, submits: 0, readbacks: 0, uploads: 0, uploadBytes: 0 };
  /** the error a device loss or a validation error left (thrown at the next readback) */
  private failure: Error | null = null;

  constructor(device: GPUDevice) {
    this.device = device;
    this.dummy = device.createBuffer({ size: 16, usage: STORAGE });
    device.addEventListener('uncapturederror', (e) => {
      this.failure ??= new Error(`webgpu: ${(e as GPUUncapturedErrorEvent).error.message}`);
    });
    void device.lost.then((info) => {
      this.failure ??= new Error(`webgpu: device lost (${info.reason}): ${info.message}`);
    });
  }

  // ---- memory ----

  private buffer(bytes: number): GPUBuffer {
    return this.device.createBuffer({ size: Math.max(16, Math.ceil(bytes / 16) * 16), usage: STORAGE | COPY_SRC | COPY_DST });
  }
  allocF32(n: number): GpuF32 {
    return new GpuF32(this, this.buffer(n * 4), 0, n);
  }
  /** Destroys a buffer once the passes recorded so far have been submitted (a kernel's scratch). */
  retire(h: GpuF32 | GpuU16): void {
    this.temps.push(h.gpu);
  }
  allocU16(n: number): GpuU16 {
    return new GpuU16(this, this.buffer(n * 2), 0, n);
  }

  /** src (host values) into h from element `offset`: a queue write, in order after the kernels recorded so far */
  writeF32(h: GpuF32, src: ArrayLike<number>, offset: number): void {
    if (offset + src.length > h.n) throw new RangeError(`webgpu write: ${src.length} values at ${offset} overrun a buffer of ${h.n}`);
    if (src.length === 0) return;
    const data = src instanceof Float32Array && !(src instanceof GpuF32) ? src : Float32Array.from(src as ArrayLike<number>);
    this.flush();
    this.stats.uploadBytes += data.byteLength;
    this.device.queue.writeBuffer(h.gpu, (h.off + offset) * 4, data.buffer, data.byteOffset, data.byteLength);
  }

  writeU16(h: GpuU16, src: ArrayLike<number>, offset: number): void {
    if (offset + src.length > h.n) throw new RangeError(`webgpu write: ${src.length} values at ${offset} overrun a buffer of ${h.n}`);
    if (src.length === 0) return;
    const start = h.off + offset;
    let data = Uint16Array.from(src);
    // queue writes move whole 4-byte words: an even start and an even length, or an odd
    // length ending the allocation (its last word's other half is padding)
    const end = start + data.length;
    if (start % 2 === 0 && (data.length % 2 === 0 || end === h.rootN)) {
      if (data.length % 2) data = Uint16Array.from([...data, 0]);
      this.flush();
      this.stats.uploadBytes += data.byteLength;
      this.device.queue.writeBuffer(h.gpu, start * 2, data.buffer, data.byteOffset, data.byteLength);
      return;
    }
    // elsewhere: upload to a temporary buffer and copy the halves with a kernel
    const tmp = this.allocU16(data.length);
    this.writeU16(tmp, data, 0);
    this.copyHalf(h.subarray(offset, offset + data.length), tmp);
    this.temps.push(tmp.gpu);
  }

  /** the host's copy of a region */
  async readF32(h: GpuF32): Promise<Float32Array> {
    const bytes = await this.readBytes(h.gpu, h.off * 4, h.n * 4);
    return new Float32Array(bytes);
  }
  async readU16(h: GpuU16): Promise<Uint16Array> {
    const first = h.off - (h.off % 2);
    const words = Math.ceil((h.off + h.n - first) / 2);
    const bytes = await this.readBytes(h.gpu, first * 2, words * 4);
    return new Uint16Array(bytes).slice(h.off - first, h.off - first + h.n);
  }

  async readBytes(gpu: GPUBuffer, byteOffset: number, byteLength: number): Promise<ArrayBuffer> {
    if (byteLength === 0) return new ArrayBuffer(0);
    const start = byteOffset - (byteOffset % 4);
    const size = Math.ceil((byteOffset + byteLength - start) / 4) * 4;
    const staging = this.device.createBuffer({ size, usage: MAP_READ | COPY_DST });
    this.stats.readbacks++;
    this.enc().copyBufferToBuffer(gpu, start, staging, 0, size);
    this.flush();
    await staging.mapAsync(1 /* GPUMapMode.READ */);
    const out = staging.getMappedRange().slice(byteOffset - start, byteOffset - start + byteLength);
    staging.destroy();
    this.throwFailure();
    return out;
  }

  /** Throws (once) the error the device reported since the last readback. */
  private throwFailure(): void {
    const f = this.failure;
    this.failure = null;
    if (f) throw f;
  }

  copy(dst: GpuF32, src: GpuF32): void {
    // a buffer cannot be copied into itself by the queue: regions of one buffer go through a kernel
    if (dst.gpu === src.gpu) this.copyKernel(dst, src);
    else if (src.n) this.enc().copyBufferToBuffer(src.gpu, src.off * 4, dst.gpu, dst.off * 4, src.n * 4);
  }

  /** set by the kernels module: a pass that copies 16-bit regions, and one that fills f32 ones */
  copyHalf: (dst: GpuU16, src: GpuU16) => void = () => {
    throw new Error('webgpu: kernels not installed');
  };
  copyKernel: (dst: GpuF32, src: GpuF32) => void = () => {
    throw new Error('webgpu: kernels not installed');
  };
  fillKernel: (h: GpuF32, value: number) => void = () => {
    throw new Error('webgpu: kernels not installed');
  };

  fill(h: GpuF32, value: number, start: number, n: number): void {
    if (n === 0) return;
    if (value === 0 && !Object.is(value, -0)) this.enc().clearBuffer(h.gpu, (h.off + start) * 4, n * 4);
    else this.fillKernel(h.subarray(start, start + n), value);
  }

  // ---- passes ----

  private enc(): GPUCommandEncoder {
    return (this.encoder ??= this.device.createCommandEncoder());
  }

  /** Submits what is recorded (the host is about to touch the queue, or enough passes wait). */
  flush(): void {
    if (!this.encoder) return;
    const t = this.timing;
    let mapTimes: (() => void) | null = null;
    if (t && t.names.length) {
      this.encoder.resolveQuerySet(t.set, 0, t.names.length * 2, t.resolve, 0);
      const names = t.names.splice(0);
      const staging = this.device.createBuffer({ size: names.length * 16, usage: MAP_READ | COPY_DST });
      this.encoder.copyBufferToBuffer(t.resolve, 0, staging, 0, names.length * 16);
      // mapped once submitted (a buffer mapped at submit is an error)
      mapTimes = () =>
        t.pending.push(
          staging.mapAsync(1).then(() => {
            const ts = new BigUint64Array(staging.getMappedRange());
            names.forEach((name, i) => {
              const e = t.times.totals.get(name) ?? [0, 0];
              e[0]++;
              e[1] += Number(ts[2 * i + 1]! - ts[2 * i]!);
              t.times.totals.set(name, e);
            });
            staging.destroy();
          }),
        );
    }
    this.device.queue.submit([this.encoder.finish()]);
    this.stats.submits++;
    mapTimes?.();
    this.encoder = null;
    this.passes = 0;
    for (const b of this.temps) b.destroy();
    this.temps = [];
  }

  /** Starts collecting per-kernel GPU time (timestamp-query); returns the running totals. */
  startTiming(): KernelTimes {
    if (!this.device.features.has('timestamp-query')) throw new Error('webgpu: this device has no timestamp-query feature');
    const cap = FLUSH_PASSES;
    const set = this.device.createQuerySet({ type: 'timestamp', count: cap * 2 });
    const resolve = this.device.createBuffer({ size: cap * 16, usage: QUERY_RESOLVE | COPY_SRC });
    this.flush();
    this.timing = { set, resolve, names: [], cap, pending: [], times: { totals: new Map() } };
    return this.timing.times;
  }
  /** Waits for the timings recorded so far. */
  async settleTiming(): Promise<void> {
    this.flush();
    if (this.timing) await Promise.all(this.timing.pending.splice(0));
  }

  /** the bind group layout of a binding pattern (see wgsl.ts: -1 marks an operand with its own binding) */
  private layout(pattern: readonly number[]): GPUBindGroupLayout {
    const key = pattern.map((p) => (p === -1 ? 'b' : '-')).join('');
    let l = this.layouts.get(key);
    if (!l) {
      const entries: GPUBindGroupLayoutEntry[] = [];
      pattern.forEach((p, i) => {
        if (p === -1) entries.push({ binding: i, visibility: 4 /* COMPUTE */, buffer: { type: 'storage' } });
      });
      entries.push({ binding: pattern.length, visibility: 4, buffer: { type: 'uniform' } });
      l = this.device.createBindGroupLayout({ entries });
      this.layouts.set(key, l);
    }
    return l;
  }

  pipeline(key: string, pattern: readonly number[], code: () => string): GPUComputePipeline {
    let p = this.pipelines.get(key);
    if (!p) {
      const module = this.device.createShaderModule({ code: code(), label: key });
      p = this.device.createComputePipeline({
        label: key,
        layout: this.device.createPipelineLayout({ bindGroupLayouts: [this.layout(pattern)] }),
        compute: { module, entryPoint: 'main' },
      });
      this.pipelines.set(key, p);
    }
    return p;
  }

  /**
   * Records one pass of `pipe` over `groups` workgroups (spread over x and y when more than
   * 65535) with the operands bound in order and `params` (u32 words) as its uniform block.
   * Each operand's element offset is among the parameters: see wgsl.ts.
   */
  dispatch(name: string, pipe: GPUComputePipeline, ops: readonly (Operand | undefined)[], params: Uint32Array, groups: number): void {
    if (groups <= 0) return;
    // undefined: an operand without a binding of its own (null, or sharing another's)
    const entries: GPUBindGroupEntry[] = [];
    ops.forEach((op, i) => {
      if (op !== undefined) entries.push({ binding: i, resource: { buffer: this.bind(op) } });
    });
    const ubuf = this.device.createBuffer({ size: Math.max(16, Math.ceil(params.byteLength / 16) * 16), usage: UNIFORM, mappedAtCreation: true });
    new Uint32Array(ubuf.getMappedRange()).set(params);
    ubuf.unmap();
    this.temps.push(ubuf);
    entries.push({ binding: ops.length, resource: { buffer: ubuf } });
    const bind = this.device.createBindGroup({ layout: pipe.getBindGroupLayout(0), entries });
    const t = this.timing;
    const timed = t !== null && t.names.length < t.cap;
    const pass = this.enc().beginComputePass(timed ? { timestampWrites: { querySet: t.set, beginningOfPassWriteIndex: t.names.length * 2, endOfPassWriteIndex: t.names.length * 2 + 1 } } : {});
    if (timed) t.names.push(name);
    pass.setPipeline(pipe);
    pass.setBindGroup(0, bind);
    const x = Math.min(groups, 65535);
    pass.dispatchWorkgroups(x, Math.ceil(groups / x));
    pass.end();
    this.stats.passes++;
    if (++this.passes >= FLUSH_PASSES || (t && t.names.length >= t.cap)) this.flush();
  }

  private bind(op: Operand): GPUBuffer {
    if (op === null) return this.dummy;
    if (op instanceof GpuF32 || op instanceof GpuU16 || op instanceof GpuAcc) return op.gpu;
    // a host array read by the pass: uploaded for it
    this.stats.uploads++;
    const bytes = op.byteLength;
    this.stats.uploadBytes += bytes;
    const b = this.device.createBuffer({ size: Math.max(16, Math.ceil(bytes / 16) * 16), usage: STORAGE, mappedAtCreation: true });
    const src = op instanceof Float64Array ? Float32Array.from(op) : op;
    new Uint8Array(b.getMappedRange()).set(new Uint8Array(src.buffer, src.byteOffset, src.byteLength));
    b.unmap();
    this.temps.push(b);
    return b;
  }

  /** Buffers the accumulator kernels use: 4 f32 words per slot [hi, lo, 0, 0]. */
  allocAcc(slots: number): GpuAcc {
    return new GpuAcc(this.buffer(slots * 16), slots);
  }
  clearAcc(acc: GpuAcc): void {
    this.enc().clearBuffer(acc.gpu, 0, acc.gpu.size);
  }
  async readAcc(acc: GpuAcc): Promise<Float64Array> {
    const w = new Float32Array(await this.readBytes(acc.gpu, 0, acc.slots * 16));
    const out = new Float64Array(acc.slots);
    for (let i = 0; i < acc.slots; i++) out[i] = w[4 * i]! + w[4 * i + 1]!;
    return out;
  }

  destroy(h: GpuF32 | GpuU16): void {
    // only a whole buffer is destroyed (a subarray shares it); after the queued work, so flush first
    if (h.off === 0 && h.n * (h instanceof GpuF32 ? 4 : 2) > h.gpu.size - 16) {
      this.flush();
      h.gpu.destroy();
    }
  }
}

/** The backend's memory over a context (docs/ARCHITECTURE.md §Backend memory). */
export function gpuMemory(ctx: GpuContext): BackendMemory {
  return {
    hostVisible: false,
    alloc: (n: number): F32Buf => ctx.allocF32(n),
    allocHalf: (n: number, _dtype: HalfDType): HalfBuf => ctx.allocU16(n),
    view(): Float32Array {
      throw new Error('webgpu: buffers live on the device; read them back with `await memory.read(h)`');
    },
    write(h: F32Buf, src: ArrayLike<number>, offset = 0): void {
      ctx.writeF32(asGpuF32(h, 'memory.write'), src, offset);
    },
    read: (h: F32Buf): Promise<Float32Array> => ctx.readF32(asGpuF32(h, 'memory.read')),
    free(h: F32Buf | HalfBuf): void {
      if (h instanceof GpuF32 || h instanceof GpuU16) ctx.destroy(h);
    },
    allocAccumulator: (slots: number): Accumulator => ctx.allocAcc(slots),
    clearAccumulator(acc: Accumulator): void {
      ctx.clearAcc(asAcc(acc));
    },
    readAccumulator: (acc: Accumulator): Promise<Float64Array> => ctx.readAcc(asAcc(acc)),
  };
}

function asGpuF32(h: Float32Array, what: string): GpuF32 {
  if (!(h instanceof GpuF32)) throw new TypeError(`webgpu ${what}: expected a buffer from this backend's memory, got a host ${h.constructor.name}`);
  return h;
}
function asAcc(a: Accumulator): GpuAcc {
  if (!(a instanceof GpuAcc)) throw new TypeError('webgpu: expected an accumulator from this backend\'s memory.allocAccumulator');
  return a;
}
