// Attention: rotary position embedding (Rope), the per-layer key/value cache (LayerKVCache,
// KVCache), the parameter-free attention core (AttentionCore) and the projection module
// around it (MultiHeadAttention).
//
// Letters: B batch, T new tokens per row, S keys attended (S = past + T with a cache,
// else S = T), Hq query heads, Hkv key/value heads (Hq % Hkv == 0), D head size,
// C hidden size, P rows of the rope tables.
import { getBackend, type AttentionArgs } from '../backend/index.js';
import { ShapeError, type DType } from '../tensor/tensor.js';
import { Linear } from './linear.js';
import type { RowLayer } from './linear.js';
import { Module } from './module.js';
import { RMSNorm } from './rmsnorm.js';
import { addInputGrad, childRowLayer, hasTrainable } from './rowlayer.js';

// ---------------------------------------------------------------------------------------
// Rope

/** 'half': pairs (i, i + D/2) (LLaMA checkpoints); 'interleaved': pairs (2i, 2i + 1) (GPT-J style) */
export type RopeLayout = 'half' | 'interleaved';

/**
 * The default inverse frequencies invFreq[D/2], θ_i = 1 / theta^(2i / D), rounded as PyTorch
 * computes `base ** (arange(0, D, 2).float() / D)` in f32: the base, the exponent 2i/D, the
 * power and the reciprocal each rounded to f32. (models/rope.ts scales these for rope_scaling.)
 */
export function ropeInvFreq(D: number, theta = 10000): Float32Array {
  if (!Number.isInteger(D) || D <= 0 || D % 2 !== 0) throw new RangeError(`ropeInvFreq: head size D must be a positive even integer, got ${D}`);
  const f = Math.fround;
  const base = f(theta);
  const out = new Float32Array(D / 2);
  for (let i = 0; i < D / 2; i++) {
    const e = f((2 * i) / D);
    out[i] = f(1 / f(Math.pow(base, e)));
  }
  return out;
}

export interface RopeOptions {
  /** invFreq[D/2]; default ropeInvFreq(D, theta) */
  invFreq?: Float32Array | undefined;
  /** default 10000 (used only without invFreq) */
  theta?: number | undefined;
  /** default 'half' */
  layout?: RopeLayout | undefined;
  /** multiplies cos and sin (HF's attention_scaling from rope_scaling, e.g. YaRN); default 1 */
  attentionScaling?: number | undefined;
  /** table rows to build up front; more are added on demand */
  maxPositions?: number | undefined;
  /**
   * the head size when only its first `headDim` channels rotate (partial rotary, Phi-3's
   * partial_rotary_factor); default headDim. The other channels pass through.
   */
  headSize?: number | undefined;
}

/** Rotary position embedding with cos/sin tables [P, D/2], grown on demand. */
export class Rope {
  /** D: the rotated head size */
  readonly headDim: number;
  /** the head size (≥ headDim; larger with partial rotary) */
  readonly headSize: number;
  readonly layout: RopeLayout;
  readonly invFreq: Float32Array;
  private scaling: number;
  /** cos[P, D/2], sin[P, D/2] (read-only outside this class) */
  cos = new Float32Array(0);
  sin = new Float32Array(0);
  private P = 0;

  constructor(headDim: number, opts: RopeOptions = {}) {
    if (!Number.isInteger(headDim) || headDim <= 0 || headDim % 2 !== 0) throw new RangeError(`Rope: head size must be a positive even integer, got ${headDim}`);
    this.headDim = headDim;
    this.headSize = opts.headSize ?? headDim;
    if (!Number.isInteger(this.headSize) || this.headSize < headDim) throw new RangeError(`Rope: head size ${this.headSize} must be an integer ≥ the rotated size ${headDim}`);
    this.layout = opts.layout ?? 'half';
    this.invFreq = opts.invFreq ?? ropeInvFreq(headDim, opts.theta ?? 10000);
    if (this.invFreq.length !== headDim / 2) throw new ShapeError(`Rope: invFreq has ${this.invFreq.length} elements, expected D/2 = ${headDim / 2}`);
    this.scaling = opts.attentionScaling ?? 1;
    if (opts.maxPositions) this.ensure(opts.maxPositions);
  }

  /** rows in the tables (positions 0..P−1 are available) */
  get positions(): number {
    return this.P;
  }

  get attentionScaling(): number {
    return this.scaling;
  }

  /** Changes the cos/sin multiplier and rebuilds the tables. */
  setAttentionScaling(s: number): void {
    this.scaling = s;
    const P = this.P;
    this.P = 0;
    this.cos = new Float32Array(0);
    this.sin = new Float32Array(0);
    if (P) this.ensure(P);
  }

  /**
   * Makes the tables hold at least P positions (capacity doubles). Each angle is the f32
   * product pos·invFreq[i] and cos/sin are rounded to f32 before the scaling, as PyTorch does.
   */
  ensure(P: number): void {
    if (P <= this.P) return;
    const newP = Math.max(P, 2 * this.P, 64);
    const half = this.headDim / 2;
    const cos = new Float32Array(newP * half);
    const sin = new Float32Array(newP * half);
    cos.set(this.cos);
    sin.set(this.sin);
    const f = Math.fround;
    const s = this.scaling;
    for (let p = this.P; p < newP; p++) {
      for (let i = 0; i < half; i++) {
        const a = f(p * this.invFreq[i]!);
        cos[p * half + i] = s === 1 ? f(Math.cos(a)) : f(f(Math.cos(a)) * s);
        sin[p * half + i] = s === 1 ? f(Math.sin(a)) : f(f(Math.sin(a)) * s);
      }
    }
    this.cos = cos;
    this.sin = sin;
    this.P = newP;
  }

  /**
   * Rotates x[B, T, H·D] in place by the angles of positions[B·T] (by −angle when inverse),
   * or, given src of the same shape, writes src rotated into x. With partial rotary, D is
   * headSize and only each head's first headDim channels rotate: they are gathered into
   * rows of headDim, rotated by the kernel and put back.
   */
  apply(x: Float32Array, positions: Int32Array, B: number, T: number, H: number, inverse = false, src?: Float32Array): void {
    if (this.headSize !== this.headDim) {
      this.applyPartial(x, positions, B, T, H, inverse, src);
      return;
    }
    let max = -1;
    for (let i = 0; i < positions.length; i++) {
      const p = positions[i]!;
      if (p < 0) throw new RangeError(`Rope.apply: positions[${i}] = ${p} is negative`);
      if (p > max) max = p;
    }
    this.ensure(max + 1);
    if (src && src.length !== x.length) throw new ShapeError(`Rope.apply: src has ${src.length} elements, x has ${x.length}`);
    getBackend().rope(x, this.cos, this.sin, positions, B, T, H, this.headDim, this.layout === 'interleaved', inverse, src);
  }

  private partialRows = new Float32Array(0);

  private applyPartial(x: Float32Array, positions: Int32Array, B: number, T: number, H: number, inverse: boolean, src?: Float32Array): void {
    const Dr = this.headDim;
    const D = this.headSize;
    const rows = B * T * H;
    if (x.length !== rows * D) throw new ShapeError(`Rope.apply: x has ${x.length} elements, expected [${B}, ${T}, ${H}·${D}] = ${rows * D}`);
    if (src && src.length !== x.length) throw new ShapeError(`Rope.apply: src has ${src.length} elements, x has ${x.length}`);
    if (this.partialRows.length < rows * Dr) this.partialRows = new Float32Array(rows * Dr);
    const r = this.partialRows.subarray(0, rows * Dr);
    const from = src ?? x;
    const be = getBackend();
    if (src) be.copy2d(x, src, { rows: 1, cols: x.length });
    // the rotated part of each row out, rotated, and back in place (copy2d: strided rows)
    be.copy2d(r, from, { rows, cols: Dr, srcStride: D });
    let max = -1;
    for (let i = 0; i < positions.length; i++) {
      const p = positions[i]!;
      if (p < 0) throw new RangeError(`Rope.apply: positions[${i}] = ${p} is negative`);
      if (p > max) max = p;
    }
    this.ensure(max + 1);
    be.rope(r, this.cos, this.sin, positions, B, T, H, Dr, this.layout === 'interleaved', inverse);
    be.copy2d(x, r, { rows, cols: Dr, dstStride: D });
  }
}

// ---------------------------------------------------------------------------------------
// KV cache

/**
 * Arrays for KV caches to reuse (docs/ARCHITECTURE.md §Decoding): KVCache.release() gives a
 * finished cache's arrays back, and a cache layer that needs room takes the smallest one
 * large enough, so a process's later generations write into memory already mapped (fresh
 * arrays cost page faults on first touch: a 512-token prompt's 37 MB of keys and values, ~10 ms)
 * and the first prompt can find its arrays ready (DecoderLM.prepareGeneration). Holds at most
 * `maxArrays` (the smallest are dropped); only arrays of the backend's memory they came from,
 * on a host-visible backend.
 */
export class KVPool {
  readonly maxArrays: number;
  private arrays: Float32Array[] = [];
  private memory: unknown = null;

  constructor(maxArrays: number) {
    this.maxArrays = maxArrays;
  }

  /** The smallest array held with at least n floats (removed from the pool; contents undefined), or null. */
  take(n: number): Float32Array | null {
    if (this.memory !== getBackend().memory) return null;
    let best = -1;
    for (let i = 0; i < this.arrays.length; i++) {
      const len = this.arrays[i]!.length;
      if (len >= n && (best < 0 || len < this.arrays[best]!.length)) best = i;
    }
    return best < 0 ? null : this.arrays.splice(best, 1)[0]!;
  }

  /** Adds an array no cache uses any more (of the backend's memory). */
  give(a: Float32Array): void {
    const mem = getBackend().memory;
    if (!mem.hostVisible || a.length === 0) return;
    if (this.memory !== mem) {
      this.arrays = [];
      this.memory = mem;
    }
    this.arrays.push(a);
    this.arrays.sort((x, y) => y.length - x.length);
    this.arrays.length = Math.min(this.arrays.length, this.maxArrays);
  }

  /** Bytes held. */
  get bytes(): number {
    let n = 0;
    for (const a of this.arrays) n += a.byteLength;
    return n;
  }

  /** Drops every array. */
  clear(): void {
    this.arrays = [];
  }
}

export interface KVCacheOptions {
  /** key slots per row to allocate up front (grown on demand); default: the first append's T */
  capacity?: number | undefined;
  /**
   * the layer's sliding window (0: none): the cache keeps only the keys a later query can
   * still see, the last window − 1 (dropped in bulk, so it holds at most 2·window + T)
   */
  window?: number | undefined;
  /** where its arrays come from and go back to on release() (default: allocated, left to the garbage collector) */
  pool?: KVPool | undefined;
}

/**
 * One layer's cache: k, v [B, capacity, Hkv·D]. Slots are numbered from the start of the
 * sequence; `length` of them were appended, and the cache holds slots start..length − 1
 * (`held` of them) at the front of each row: start is 0 unless a sliding window let it drop
 * the oldest (docs/ARCHITECTURE.md §Model families). Sized by its first append; reset()
 * empties it (keeping the memory), select() keeps a subset of batch rows.
 */
export class LayerKVCache {
  /** B: batch rows */
  batch = 0;
  /** Hkv·D */
  kvDim = 0;
  /** slots per row */
  capacity = 0;
  /** slots appended per row (S after the last append) */
  length = 0;
  /** the first slot held (slots before it were outside the sliding window and dropped) */
  start = 0;
  k: Float32Array = new Float32Array(0);
  v: Float32Array = new Float32Array(0);
  /**
   * Rows of capacity·kvDim that the k and v allocations hold (≥ batch): the serving scheduler
   * joins rows in place up to it. Kept here, not read off k.buffer: on the wasm backend every
   * buffer is a view of the one module heap, whose byteLength says nothing of an allocation.
   */
  rowRoom = 0;
  /** the sliding window (0: none) */
  readonly window: number;
  private readonly initialCapacity: number;
  private readonly pool: KVPool | null;

  constructor(opts: KVCacheOptions = {}) {
    this.initialCapacity = opts.capacity ?? 0;
    this.window = opts.window ?? 0;
    this.pool = opts.pool ?? null;
  }

  /** slots held per row (length − start) */
  get held(): number {
    return this.length - this.start;
  }

  /** Empties the cache (keeps the memory for the next sequence). */
  reset(): void {
    this.length = 0;
    this.start = 0;
  }

  /**
   * With a sliding window, drops all but the last window − 1 slots of each row (what a next
   * query can still see) once the cache holds 2·window, or would have to grow for `incoming`.
   */
  private trim(incoming: number): void {
    const w = this.window;
    if (w <= 0) return;
    const keep = w - 1;
    const held = this.held;
    if (held <= keep || (held < 2 * w && held + incoming <= this.capacity)) return;
    const { batch: B, kvDim: W, capacity: cap } = this;
    const drop = held - keep;
    const be = getBackend();
    if (be.memory.hostVisible) {
      for (let b = 0; b < B; b++) {
        const row = b * cap * W;
        this.k.copyWithin(row, row + drop * W, row + held * W);
        this.v.copyWithin(row, row + drop * W, row + held * W);
      }
    } else {
      // on a device the kept slots move to new buffers (copy2d's regions may not overlap)
      const g = { rows: B, cols: keep * W, dstStride: cap * W, srcStride: cap * W, srcOffset: drop * W };
      for (const side of ['k', 'v'] as const) {
        const moved = be.memory.alloc(B * cap * W);
        be.copy2d(moved, this[side], g);
        be.memory.free(this[side]);
        this[side] = moved;
      }
      this.rowRoom = B;
    }
    this.start += drop;
  }

  /** Makes room for S held slots per row, copying what is filled. */
  reserve(S: number): void {
    if (S <= this.capacity) return;
    let cap = Math.max(S, 2 * this.capacity);
    const { batch: B, kvDim: W, held: L } = this;
    const be = getBackend();
    // from the pool: the smallest arrays large enough, all of their room used
    const pk = this.pool?.take(B * cap * W) ?? null;
    const pv = pk ? this.pool!.take(B * cap * W) : null;
    if (pk && !pv) this.pool!.give(pk);
    if (pk && pv) cap = Math.floor(Math.min(pk.length, pv.length) / (B * W));
    const k = pk && pv ? pk.subarray(0, B * cap * W) : be.memory.alloc(B * cap * W);
    const v = pk && pv ? pv.subarray(0, B * cap * W) : be.memory.alloc(B * cap * W);
    if (L > 0) {
      // each row's L held slots, from rows of the old capacity to rows of the new
      const g = { rows: B, cols: L * W, dstStride: cap * W, srcStride: this.capacity * W };
      be.copy2d(k, this.k, g);
      be.copy2d(v, this.v, g);
    }
    this.k = k;
    this.v = v;
    this.capacity = cap;
    this.rowRoom = B;
  }

  /** Appends k, v [B, T, kvDim] at slots length..length+T−1 of each row. */
  append(k: Float32Array, v: Float32Array, B: number, T: number, kvDim: number): void {
    if (k.length !== B * T * kvDim || v.length !== B * T * kvDim) {
      throw new ShapeError(`LayerKVCache.append: k has ${k.length} and v ${v.length} elements, expected [${B}, ${T}, ${kvDim}] = ${B * T * kvDim}`);
    }
    const g = this.open(B, T, kvDim);
    const be = getBackend();
    be.copy2d(this.k, k, g);
    be.copy2d(this.v, v, g);
    this.commit(T);
  }

  /**
   * Makes room for T new slots in each of B rows of kvDim (dropping what a sliding window no
   * longer needs) and returns where they lie in k and v, as copy2d's destination: row b's T
   * slots are cols floats at dstOffset + b·dstStride. Write them, then commit(T).
   */
  open(B: number, T: number, kvDim: number): { rows: number; cols: number; dstOffset: number; dstStride: number } {
    if (this.length === 0 && (B !== this.batch || kvDim !== this.kvDim)) {
      this.batch = B;
      this.kvDim = kvDim;
      this.capacity = 0;
      this.k = new Float32Array(0);
      this.v = new Float32Array(0);
      this.rowRoom = 0;
    } else if (B !== this.batch || kvDim !== this.kvDim) {
      throw new ShapeError(`LayerKVCache.append: new keys are [${B}, ${T}, ${kvDim}], the cache holds [${this.batch}, ${this.held}, ${this.kvDim}]`);
    }
    this.trim(T);
    this.reserve(Math.max(this.held + T, this.initialCapacity));
    // row b's T new slots go after its held ones
    return { rows: B, cols: T * kvDim, dstOffset: this.held * kvDim, dstStride: this.capacity * kvDim };
  }

  /** Counts the T slots per row written after open(). */
  commit(T: number): void {
    this.length += T;
  }

  /** Keeps batch rows `rows` (in that order) and drops the others: rows[j] becomes row j. */
  select(rows: readonly number[]): void {
    if (this.length === 0) return; // empty: the next append sizes it
    const held = this.held;
    for (const r of rows) {
      if (!Number.isInteger(r) || r < 0 || r >= this.batch) throw new RangeError(`LayerKVCache.select: row ${r} is out of range for a batch of ${this.batch}`);
    }
    const { capacity: cap, kvDim: W } = this;
    const rowSize = cap * W;
    const increasing = rows.every((r, j) => j === 0 || r > rows[j - 1]!);
    if (increasing) {
      // rows[j] ≥ j: copying forward in place never overwrites a row still to be read
      const be = getBackend();
      for (let j = 0; j < rows.length; j++) {
        const r = rows[j]!;
        if (r === j) continue;
        const g = { rows: 1, cols: held * W, dstOffset: j * rowSize, srcOffset: r * rowSize };
        be.copy2d(this.k, this.k, g);
        be.copy2d(this.v, this.v, g);
      }
      this.k = this.k.subarray(0, rows.length * rowSize);
      this.v = this.v.subarray(0, rows.length * rowSize);
    } else {
      const be = getBackend();
      const k = be.memory.alloc(rows.length * rowSize);
      const v = be.memory.alloc(rows.length * rowSize);
      rows.forEach((r, j) => {
        const g = { rows: 1, cols: held * W, dstOffset: j * rowSize, srcOffset: r * rowSize };
        be.copy2d(k, this.k, g);
        be.copy2d(v, this.v, g);
      });
      this.rowRoom = rows.length;
      this.k = k;
      this.v = v;
    }
    this.batch = rows.length;
  }

  /**
   * Empties the cache and gives its arrays to its pool (if it has one) for other caches to
   * reuse; the cache stays usable (its next append allocates again). Only for a cache whose
   * arrays no other cache shares (the serving scheduler's joined caches may).
   */
  release(): void {
    if (this.pool) {
      this.pool.give(this.k);
      this.pool.give(this.v);
    }
    this.k = new Float32Array(0);
    this.v = new Float32Array(0);
    this.batch = 0;
    this.kvDim = 0;
    this.capacity = 0;
    this.rowRoom = 0;
    this.reset();
  }

  /** Bytes held. */
  get bytes(): number {
    return this.k.byteLength + this.v.byteLength;
  }
}

/** A cache per layer; pass `cache.layer(i)` in layer i's AttnContext. */
export class KVCache {
  readonly layers: LayerKVCache[];

  /** `windows[i]`: layer i's sliding window (0 or absent: none; KVCacheOptions.window) */
  constructor(nLayers: number, opts: Omit<KVCacheOptions, 'window'> & { windows?: readonly number[] | undefined } = {}) {
    const { windows, ...rest } = opts;
    this.layers = Array.from({ length: nLayers }, (_, i) => new LayerKVCache({ ...rest, window: windows?.[i] ?? 0 }));
  }

  layer(i: number): LayerKVCache {
    const l = this.layers[i];
    if (!l) throw new RangeError(`KVCache.layer: index ${i} out of range (${this.layers.length} layers)`);
    return l;
  }

  /** filled slots per row (every layer in use has the same after a full forward) */
  get length(): number {
    let n = 0;
    for (const l of this.layers) n = Math.max(n, l.length);
    return n;
  }

  /** batch rows held (0 while empty) */
  get batch(): number {
    for (const l of this.layers) if (l.length > 0) return l.batch;
    return 0;
  }

  reset(): void {
    for (const l of this.layers) l.reset();
  }

  /** Empties every layer and gives their arrays to the pool (LayerKVCache.release). */
  release(): void {
    for (const l of this.layers) l.release();
  }

  /** Keeps batch rows `rows` in every layer (e.g. dropping finished sequences). */
  select(rows: readonly number[]): void {
    for (const l of this.layers) l.select(rows);
  }

  get bytes(): number {
    let n = 0;
    for (const l of this.layers) n += l.bytes;
    return n;
  }
}

// ---------------------------------------------------------------------------------------
// AttentionCore

/** What an attention layer needs to know about the batch besides its input rows. */
export interface AttnContext {
  B: number;
  T: number;
  /** absolute position of each token [B·T] (rope); default past + t for every row */
  positions?: Int32Array | undefined;
  /** additive mask [B, S] or [B, T, S] over all S keys (cached + new); -Infinity hides a key */
  mask?: Float32Array | null | undefined;
  /** this layer's KV cache (generation); the new keys are appended before attending */
  cache?: LayerKVCache | null | undefined;
}

export interface AttentionCoreOptions {
  /** Hq */
  nHeads: number;
  /** Hkv; default Hq */
  nKvHeads?: number | undefined;
  /** D */
  headDim: number;
  /** default true */
  causal?: boolean | undefined;
  /** multiplies q·k; default 1/√D */
  scale?: number | undefined;
  /** rotary embedding applied to q and k; none when null/absent */
  rope?: Rope | null | undefined;
  /** sliding window: a query sees no key window or more slots before it (0/absent: none) */
  window?: number | undefined;
}

/**
 * softmax(scale·q·kᵀ + mask)·v over fresh projections q [B,T,Hq·D], k, v [B,T,Hkv·D]:
 * rotates copies of q and k by rope, appends k and v to the cache when there is one, and
 * runs the fused attention kernel over all S keys. Saves what backward needs (rotated q,
 * k, the given v by reference, out, lse). No parameters.
 */
export class AttentionCore extends Module {
  readonly nHeads: number;
  readonly nKvHeads: number;
  readonly headDim: number;
  readonly causal: boolean;
  readonly scale: number;
  /** sliding window (0: none), computed by the attention kernel (AttentionArgs.window) */
  readonly window: number;
  rope: Rope | null;
  private saved: {
    q: Float32Array;
    k: Float32Array;
    v: Float32Array;
    out: Float32Array;
    lse: Float32Array;
    positions: Int32Array;
    rope: Rope | null;
    args: AttentionArgs;
    past: number;
  } | null = null;
  private defaultPositions = new Int32Array(0);

  constructor(opts: AttentionCoreOptions) {
    super();
    const Hq = opts.nHeads;
    const Hkv = opts.nKvHeads ?? Hq;
    if (!(Hq > 0 && Hkv > 0 && Hq % Hkv === 0)) throw new RangeError(`AttentionCore: nHeads ${Hq} must be a positive multiple of nKvHeads ${Hkv}`);
    if (opts.rope && opts.rope.headSize !== opts.headDim) throw new RangeError(`AttentionCore: rope head size ${opts.rope.headSize} differs from headDim ${opts.headDim}`);
    this.nHeads = Hq;
    this.nKvHeads = Hkv;
    this.headDim = opts.headDim;
    this.causal = opts.causal ?? true;
    this.scale = opts.scale ?? 1 / Math.sqrt(opts.headDim);
    this.rope = opts.rope ?? null;
    this.window = opts.window ?? 0;
    if (!(Number.isInteger(this.window) && this.window >= 0)) throw new RangeError(`AttentionCore: window must be a non-negative integer, got ${opts.window}`);
  }

  /** out[B, T, Hq·D] (owned by the core) from q[B, T, Hq·D], k, v[B, T, Hkv·D] */
  forward(q: Float32Array, k: Float32Array, v: Float32Array, ctx: AttnContext): Float32Array {
    const { B, T } = ctx;
    const { nHeads: Hq, nKvHeads: Hkv, headDim: D } = this;
    const qDim = Hq * D;
    const kvDim = Hkv * D;
    if (!(Number.isInteger(B) && B > 0 && Number.isInteger(T) && T > 0)) throw new ShapeError(`AttentionCore.forward: B and T must be positive integers, got B=${B}, T=${T}`);
    if (q.length !== B * T * qDim) throw new ShapeError(`AttentionCore.forward: q has ${q.length} elements, expected [${B}, ${T}, ${Hq}·${D}] = ${B * T * qDim}`);
    if (k.length !== B * T * kvDim) throw new ShapeError(`AttentionCore.forward: k has ${k.length} elements, expected [${B}, ${T}, ${Hkv}·${D}] = ${B * T * kvDim}`);
    if (v.length !== B * T * kvDim) throw new ShapeError(`AttentionCore.forward: v has ${v.length} elements, expected [${B}, ${T}, ${Hkv}·${D}] = ${B * T * kvDim}`);
    const cache = ctx.cache ?? null;
    const past = cache ? cache.length : 0;
    if (cache && past > 0 && cache.batch !== B) throw new ShapeError(`AttentionCore.forward: the KV cache holds ${cache.batch} rows, the input has B=${B}`);
    const S = past + T;
    const mask = ctx.mask ?? null;
    if (mask && mask.length !== B * S && mask.length !== B * T * S) {
      throw new ShapeError(`AttentionCore.forward: mask has ${mask.length} elements, expected [${B}, ${S}] = ${B * S} or [${B}, ${T}, ${S}] = ${B * T * S}`);
    }
    let positions = ctx.positions ?? null;
    if (positions && positions.length !== B * T) throw new ShapeError(`AttentionCore.forward: positions has ${positions.length} elements, expected [${B}·${T}] = ${B * T}`);
    const be = getBackend();

    // rotate copies of q and k (the projections' outputs stay as they were); one row's keys
    // are rotated straight into their cache slots, which are contiguous (no copy after)
    let qr = q;
    let kr = k;
    const direct = cache !== null && B === 1;
    if (this.rope) {
      if (!positions) {
        if (this.defaultPositions.length !== B * T) this.defaultPositions = new Int32Array(B * T);
        for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) this.defaultPositions[b * T + t] = past + t;
        positions = this.defaultPositions;
      }
      qr = this.buffers.get('attn.q', q.length);
      this.rope.apply(qr, positions, B, T, Hq, false, q);
      if (!direct) {
        kr = this.buffers.get('attn.k', k.length);
        this.rope.apply(kr, positions, B, T, Hkv, false, k);
      }
    }

    const out = this.buffers.get('attn.out', B * T * qDim);
    const lse = this.buffers.get('attn.lse', B * Hq * T);
    const args: AttentionArgs = { B, T, S, Hq, Hkv, D, causal: this.causal, scale: this.scale, mask, window: this.window };
    if (!cache) {
      be.attentionForward(out, lse, qr, kr, v, args);
    } else {
      if (cache.window !== this.window) throw new Error(`AttentionCore.forward: the KV cache layer was made for a window of ${cache.window}, the layer attends with ${this.window} (make the cache with the model's createCache())`);
      if (direct && this.rope) {
        const g = cache.open(B, T, kvDim);
        kr = cache.k.subarray(g.dstOffset, g.dstOffset + T * kvDim);
        this.rope.apply(kr, positions!, B, T, Hkv, false, k);
        be.copy2d(cache.v, v, g);
        cache.commit(T);
      } else {
        cache.append(kr, v, B, T, kvDim);
      }
      // each row's held slots (start..S − 1) are contiguous in the cache: attend row by row;
      // the mask's columns before start belong to dropped slots
      const cap = cache.capacity;
      const H = cache.held;
      const st = cache.start;
      const fullMask = mask !== null && mask.length === B * T * S;
      for (let b = 0; b < B; b++) {
        const kb = cache.k.subarray(b * cap * kvDim, (b * cap + H) * kvDim);
        const vb = cache.v.subarray(b * cap * kvDim, (b * cap + H) * kvDim);
        let mb: Float32Array | null = null;
        if (mask && !fullMask) mb = mask.subarray(b * S + st, (b + 1) * S);
        else if (mask) {
          mb = st === 0 ? mask.subarray(b * T * S, (b + 1) * T * S) : new Float32Array(T * H);
          if (st > 0) for (let t = 0; t < T; t++) mb.set(mask.subarray((b * T + t) * S + st, (b * T + t + 1) * S), t * H);
        }
        be.attentionForward(out.subarray(b * T * qDim, (b + 1) * T * qDim), lse.subarray(b * Hq * T, (b + 1) * Hq * T), qr.subarray(b * T * qDim, (b + 1) * T * qDim), kb, vb, { ...args, B: 1, S: H, mask: mb });
      }
    }
    this.saved = { q: qr, k: kr, v, out, lse, positions: positions ?? new Int32Array(0), rope: this.rope, args: { ...args, S: T }, past };
    return out;
  }

  /** dq[B,T,Hq·D], dk, dv[B,T,Hkv·D] (owned by the core) from dout[B,T,Hq·D]; dq, dk un-rotated */
  backward(dout: Float32Array): { dq: Float32Array; dk: Float32Array; dv: Float32Array } {
    const s = this.saved;
    if (!s) throw new Error('AttentionCore.backward called before forward');
    if (s.past > 0) {
      throw new Error(`AttentionCore.backward: the last forward attended to ${s.past} earlier keys from a KV cache; backward works only without earlier cached keys (training never uses a cache)`);
    }
    const { B, T, Hq, Hkv, D } = s.args;
    if (dout.length !== B * T * Hq * D) throw new ShapeError(`AttentionCore.backward: dout has ${dout.length} elements, expected [${B}, ${T}, ${Hq}·${D}] = ${B * T * Hq * D}`);
    const dq = this.buffers.scratch('attn.dq', B * T * Hq * D);
    const dk = this.buffers.scratch('attn.dk', B * T * Hkv * D);
    const dv = this.buffers.scratch('attn.dv', B * T * Hkv * D);
    getBackend().attentionBackward(dq, dk, dv, dout, s.q, s.k, s.v, s.out, s.lse, s.args);
    if (s.rope) {
      s.rope.apply(dq, s.positions, B, T, Hq, true);
      s.rope.apply(dk, s.positions, B, T, Hkv, true);
    }
    return { dq, dk, dv };
  }
}

// ---------------------------------------------------------------------------------------
// MultiHeadAttention

export interface MultiHeadAttentionOptions {
  /** Hq */
  nHeads: number;
  /** Hkv; default Hq */
  nKvHeads?: number | undefined;
  /** D; default hidden / Hq */
  headDim?: number | undefined;
  /** default true */
  causal?: boolean | undefined;
  /** biases on q, k, v (default false) */
  bias?: boolean | undefined;
  /** bias on o (default: same as bias) */
  oBias?: boolean | undefined;
  /** multiplies q·k; default 1/√D */
  scale?: number | undefined;
  rope?: Rope | null | undefined;
  /** sliding window (AttentionCoreOptions.window) */
  window?: number | undefined;
  /**
   * RMSNorm over each head of q and of k (D values, weight [D]) after the projections and
   * before RoPE: Qwen3's q_norm and k_norm (children of those names)
   */
  qkNorm?: { eps: number; unitOffset?: boolean | undefined } | undefined;
  /** projection weights stored [in, out] (GPT-2 Conv1D) */
  transposed?: boolean | undefined;
  dtype?: DType | undefined;
  /**
   * child names; default q_proj, k_proj, v_proj, o_proj. With `qkv` set (GPT-2: 'c_attn')
   * one fused projection C → (Hq + 2·Hkv)·D gives q, k, v side by side and q/k/v are unused.
   */
  names?: { q?: string; k?: string; v?: string; o?: string; qkv?: string } | undefined;
}

/**
 * y[B·T, C] = o(attention(q(x), k(x), v(x))). The projections are children (RowLayers,
 * replaceable via setModule) looked up by name on every call.
 */
export class MultiHeadAttention extends Module {
  readonly hiddenSize: number;
  readonly nHeads: number;
  readonly nKvHeads: number;
  readonly headDim: number;
  readonly names: { q: string; k: string; v: string; o: string; qkv: string | null; qNorm: string | null; kNorm: string | null };
  /** the parameter-free attention (not a registered child: it shares this module's buffers) */
  readonly core: AttentionCore;
  /** whether backward() computes dx */
  computeInputGrad = true;
  private N = 0;

  constructor(hiddenSize: number, opts: MultiHeadAttentionOptions) {
    super();
    const Hq = opts.nHeads;
    const Hkv = opts.nKvHeads ?? Hq;
    const D = opts.headDim ?? hiddenSize / Hq;
    if (!Number.isInteger(D) || D <= 0) throw new RangeError(`MultiHeadAttention: hidden size ${hiddenSize} is not divisible by nHeads ${Hq}; pass headDim`);
    this.hiddenSize = hiddenSize;
    this.nHeads = Hq;
    this.nKvHeads = Hkv;
    this.headDim = D;
    const n = opts.names ?? {};
    const qkNorm = opts.qkNorm ?? null;
    this.names = { q: n.q ?? 'q_proj', k: n.k ?? 'k_proj', v: n.v ?? 'v_proj', o: n.o ?? 'o_proj', qkv: n.qkv ?? null, qNorm: qkNorm ? 'q_norm' : null, kNorm: qkNorm ? 'k_norm' : null };
    if (qkNorm && this.names.qkv) throw new Error('MultiHeadAttention: qkNorm needs separate q, k, v projections');
    const bias = opts.bias ?? false;
    const lin = (i: number, o: number, b: boolean): Linear => new Linear(i, o, { bias: b, transposed: opts.transposed ?? false, dtype: opts.dtype ?? 'f32' });
    if (this.names.qkv) {
      this.registerModule(this.names.qkv, lin(hiddenSize, (Hq + 2 * Hkv) * D, bias));
    } else {
      this.registerModule(this.names.q, lin(hiddenSize, Hq * D, bias));
      this.registerModule(this.names.k, lin(hiddenSize, Hkv * D, bias));
      this.registerModule(this.names.v, lin(hiddenSize, Hkv * D, bias));
    }
    this.registerModule(this.names.o, lin(Hq * D, hiddenSize, opts.oBias ?? bias));
    if (qkNorm) {
      this.registerModule('q_norm', new RMSNorm(D, { eps: qkNorm.eps, unitOffset: qkNorm.unitOffset, dtype: opts.dtype ?? 'f32' }));
      this.registerModule('k_norm', new RMSNorm(D, { eps: qkNorm.eps, unitOffset: qkNorm.unitOffset, dtype: opts.dtype ?? 'f32' }));
    }
    this.core = new AttentionCore({ nHeads: Hq, nKvHeads: Hkv, headDim: D, causal: opts.causal ?? true, ...(opts.scale !== undefined ? { scale: opts.scale } : {}), rope: opts.rope ?? null, window: opts.window ?? 0 });
  }

  get qProj(): RowLayer {
    return childRowLayer(this, this.names.q, 'MultiHeadAttention');
  }
  get kProj(): RowLayer {
    return childRowLayer(this, this.names.k, 'MultiHeadAttention');
  }
  get vProj(): RowLayer {
    return childRowLayer(this, this.names.v, 'MultiHeadAttention');
  }
  get oProj(): RowLayer {
    return childRowLayer(this, this.names.o, 'MultiHeadAttention');
  }
  /** Qwen3's per-head norms (only with qkNorm) */
  get qNorm(): RMSNorm {
    return this.getModule(this.names.qNorm ?? 'q_norm') as RMSNorm;
  }
  get kNorm(): RMSNorm {
    return this.getModule(this.names.kNorm ?? 'k_norm') as RMSNorm;
  }
  /** the fused projection (only with names.qkv) */
  get qkvProj(): RowLayer {
    if (!this.names.qkv) throw new Error('MultiHeadAttention.qkvProj: this layer has separate q, k, v projections');
    return childRowLayer(this, this.names.qkv, 'MultiHeadAttention');
  }

  /** whether backward() reads the x of forward (see RowLayer.savesInput) */
  get savesInput(): boolean {
    const rows = this.names.qkv ? [this.qkvProj] : [this.qProj, this.kProj, this.vProj];
    return rows.some((l) => l.savesInput !== false);
  }

  /** y[B·T, C] from x[B·T, C]; x must stay unchanged until backward; y is owned by o (see RowLayer.forward for `transient`) */
  forward(x: Float32Array, ctx: AttnContext, transient = false): Float32Array {
    const N = ctx.B * ctx.T;
    const C = this.hiddenSize;
    if (x.length !== N * C) throw new ShapeError(`MultiHeadAttention.forward: x has ${x.length} elements, expected [${ctx.B}·${ctx.T}, ${C}] = ${N * C}`);
    const qDim = this.nHeads * this.headDim;
    const kvDim = this.nKvHeads * this.headDim;
    let q: Float32Array;
    let k: Float32Array;
    let v: Float32Array;
    if (this.names.qkv) {
      const qkv = this.qkvProj.forward(x, N, true); // [N, qDim + 2·kvDim], split into copies at once
      q = this.buffers.get('q', N * qDim);
      k = this.buffers.get('k', N * kvDim);
      v = this.buffers.get('v', N * kvDim);
      splitColumns(qkv, N, [q, k, v], [qDim, kvDim, kvDim]);
    } else if (this.names.qNorm) {
      // the norms keep the projections' outputs for their backward; rope rotates copies of theirs
      q = this.qNorm.forward(this.qProj.forward(x, N), N * this.nHeads);
      k = this.kNorm.forward(this.kProj.forward(x, N), N * this.nKvHeads);
      v = this.vProj.forward(x, N);
    } else {
      // with rope the core rotates copies of q and k, so the projections' outputs are read once
      const copied = this.core.rope !== null;
      q = this.qProj.forward(x, N, copied);
      k = this.kProj.forward(x, N, copied);
      v = this.vProj.forward(x, N);
    }
    this.core.buffers = this.buffers;
    const att = this.core.forward(q, k, v, ctx);
    this.N = N;
    return this.oProj.forward(att, N, transient);
  }

  /** parameter gradients += …; returns dx[B·T, C] or null */
  backward(dy: Float32Array): Float32Array | null {
    const N = this.N;
    const C = this.hiddenSize;
    if (N === 0) throw new Error('MultiHeadAttention.backward called before forward');
    if (dy.length !== N * C) throw new ShapeError(`MultiHeadAttention.backward: dy has ${dy.length} elements, expected [${N}, ${C}] = ${N * C}`);
    const inner = this.names.qkv ? [this.names.qkv] : [this.names.q, this.names.k, this.names.v, ...(this.names.qNorm ? [this.names.qNorm, this.names.kNorm!] : [])];
    const innerTrainable = inner.some((n) => hasTrainable(this.getModule(n)));
    const o = this.oProj;
    o.computeInputGrad = this.computeInputGrad || innerTrainable;
    const datt = o.backward(dy);
    if (!datt) return null;
    this.core.buffers = this.buffers;
    const { dq, dk, dv } = this.core.backward(datt);
    if (this.names.qkv) {
      const qDim = this.nHeads * this.headDim;
      const kvDim = this.nKvHeads * this.headDim;
      const dqkv = this.buffers.scratch('dqkv', N * (qDim + 2 * kvDim));
      joinColumns(dqkv, N, [dq, dk, dv], [qDim, kvDim, kvDim]);
      const p = this.qkvProj;
      p.computeInputGrad = this.computeInputGrad;
      return p.backward(dqkv);
    }
    // dx = q's dx, with k's and v's added into it
    const layers = [this.qProj, this.kProj, this.vProj];
    const grads: (Float32Array | null)[] = [dq, dk, dv];
    if (this.names.qNorm) {
      // through the per-head norms first: d(projection output) from d(normed q), d(normed k)
      const norms = [this.qNorm, this.kNorm];
      for (let i = 0; i < 2; i++) {
        const nm = norms[i]!;
        nm.computeInputGrad = this.computeInputGrad || hasTrainable(layers[i]! as unknown as Module);
        grads[i] = nm.backward(grads[i]!);
      }
    }
    let dx: Float32Array | null = null;
    for (let i = 0; i < 3; i++) {
      const l = layers[i]!;
      const g = grads[i];
      if (!g) continue; // a norm gave no gradient: nothing below it learns or needs one
      l.computeInputGrad = this.computeInputGrad;
      const d = addInputGrad(l, g, dx ?? undefined);
      if (this.computeInputGrad) dx = d;
    }
    return dx;
  }
}

/** Splits rows of src[N, Σw] into dst[j][N, w[j]] (side by side, in order): one strided copy each. */
export function splitColumns(src: Float32Array, N: number, dst: Float32Array[], w: number[]): void {
  const be = getBackend();
  let W = 0;
  for (const x of w) W += x;
  let off = 0;
  for (let j = 0; j < dst.length; j++) {
    be.copy2d(dst[j]!, src, { rows: N, cols: w[j]!, srcOffset: off, srcStride: W });
    off += w[j]!;
  }
}

/** The inverse of splitColumns: writes out[N, Σw] from src[j][N, w[j]]. */
export function joinColumns(out: Float32Array, N: number, src: Float32Array[], w: number[]): void {
  const be = getBackend();
  let W = 0;
  for (const x of w) W += x;
  let off = 0;
  for (let j = 0; j < src.length; j++) {
    be.copy2d(out, src[j]!, { rows: N, cols: w[j]!, dstOffset: off, dstStride: W });
    off += w[j]!;
  }
}
