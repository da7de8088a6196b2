// Batches: right padding, optional packing, and an epoch iterator whose position (epoch, batch)
// can be saved and restored; each epoch's order is a pure function of (seed, epoch).
//
// Labels are already shifted for next-token prediction: labels[b, t] is the id the model should
// predict at position t, i.e. inputs[b, t + 1], or -100 (IGNORE_INDEX) where nothing is trained
// (masked prompt, the last token of each example, padding). So the loss is simply
// crossEntropy(logits[b, t], labels[b, t]) with ignoreIndex -100.

import { IGNORE_INDEX } from '../tensor/labels.js';
import type { Example } from './dataset.js';
import { Rng, mixSeed } from '../tensor/rng.js';

export { IGNORE_INDEX };

export interface Batch {
  /** rows, columns */
  B: number;
  T: number;
  /** token ids [B, T]; padding holds padId */
  inputs: Int32Array;
  /** next-token targets [B, T] (see above): -100 where no loss */
  labels: Int32Array;
  /** [B, T]: 1 on real tokens, 0 on padding */
  attentionMask: Uint8Array;
  /** position ids [B, T]: 0, 1, … from the start of each example (packed rows restart per example) */
  positions: Int32Array;
  /** [B, T]: 1, 2, … numbering the examples within each row, 0 on padding */
  segmentIds: Int32Array;
  /** whether rows may hold several examples (then attention must stay within segments) */
  packed: boolean;
  /** for each row, the indices of the examples it holds */
  rows: number[][];
  /** real (non-padding) tokens, and labels that are not -100 */
  tokens: number;
  targets: number;
}

export interface CollateOptions {
  padId?: number;
  /** T is the longest row rounded up to a multiple of this. Default 1. */
  padMultiple?: number;
  /** a fixed T instead (must fit the longest row) */
  length?: number;
  packed?: boolean;
}

/**
 * Lays out rows of examples into a batch. Each row holds one example, or several (packed) placed
 * one after another; padding goes on the right.
 */
export function collate(examples: readonly Example[], rows: readonly (readonly number[])[], options: CollateOptions = {}): Batch {
  const padId = options.padId ?? 0;
  const multiple = options.padMultiple ?? 1;
  if (!Number.isInteger(multiple) || multiple < 1) throw new RangeError(`collate: padMultiple must be a positive integer, got ${multiple}`);
  if (rows.length === 0) throw new RangeError('collate: a batch needs at least one row');
  const rowLen = rows.map((r) => r.reduce((n, i) => n + examples[i]!.ids.length, 0));
  const longest = Math.max(...rowLen);
  let T = Math.ceil(longest / multiple) * multiple;
  if (options.length !== undefined) {
    if (options.length < longest) throw new RangeError(`collate: length ${options.length} is shorter than the longest row (${longest} tokens)`);
    T = options.length;
  }
  const B = rows.length;
  const inputs = new Int32Array(B * T).fill(padId);
  const labels = new Int32Array(B * T).fill(IGNORE_INDEX);
  const attentionMask = new Uint8Array(B * T);
  const positions = new Int32Array(B * T);
  const segmentIds = new Int32Array(B * T);
  let tokens = 0;
  let targets = 0;
  for (let b = 0; b < B; b++) {
    const row = b * T;
    let t = 0;
    rows[b]!.forEach((i, seg) => {
      const { ids, targetMask: tm } = examples[i]!;
      const L = ids.length;
      for (let k = 0; k < L; k++, t++) {
        inputs[row + t] = ids[k]!;
        attentionMask[row + t] = 1;
        positions[row + t] = k;
        segmentIds[row + t] = seg + 1;
        if (k + 1 < L && tm[k + 1] === 1) {
          labels[row + t] = ids[k + 1]!;
          targets++;
        }
      }
      tokens += L;
    });
    // Padding continues the positions of the row's last token (any value works: it is masked).
    const last = t > 0 ? positions[row + t - 1]! : -1;
    for (let k = 1; t < T; t++, k++) positions[row + t] = last + k;
  }
  return { B, T, inputs, labels, attentionMask, positions, segmentIds, packed: options.packed ?? false, rows: rows.map((r) => [...r]), tokens, targets };
}

/**
 * The additive attention mask [B, T, T] for a batch (the kernel's AttentionArgs.mask): 0 where
 * query t may see key s (same segment and s ≤ t), -Infinity elsewhere. A padding query sees only
 * itself, so its softmax stays finite. Unpacked batches need no mask beyond `causal` (padding is on
 * the right); this is for packed ones.
 */
export function attentionBias(batch: Pick<Batch, 'B' | 'T' | 'segmentIds'>): Float32Array {
  const { B, T, segmentIds } = batch;
  const mask = new Float32Array(B * T * T).fill(-Infinity);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      const seg = segmentIds[b * T + t]!;
      const base = (b * T + t) * T;
      if (seg === 0) {
        mask[base + t] = 0;
        continue;
      }
      for (let s = t; s >= 0 && segmentIds[b * T + s] === seg; s--) mask[base + s] = 0;
    }
  }
  return mask;
}

/**
 * First-fit-decreasing bin packing: groups example indices into rows of at most `capacity` tokens.
 * Longest first; each goes into the first row with room (found in O(log n) with a max segment tree
 * over the rows' free space). Deterministic: ties keep index order.
 */
export function packRows(lengths: readonly number[], capacity: number): number[][] {
  const n = lengths.length;
  lengths.forEach((L, i) => {
    if (L > capacity) throw new RangeError(`packRows: example ${i} has ${L} tokens, more than the row length ${capacity}`);
  });
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => lengths[b]! - lengths[a]! || a - b);
  let size = 1;
  while (size < Math.max(1, n)) size *= 2;
  const free = new Array<number>(2 * size).fill(-1); // leaves: free space of row k (-1: not opened)
  const rows: number[][] = [];
  const set = (k: number, v: number): void => {
    let p = size + k;
    free[p] = v;
    for (p >>= 1; p >= 1; p >>= 1) free[p] = Math.max(free[2 * p]!, free[2 * p + 1]!);
  };
  for (const i of order) {
    const L = lengths[i]!;
    let k: number;
    if (free[1]! >= L) {
      let p = 1;
      while (p < size) p = free[2 * p]! >= L ? 2 * p : 2 * p + 1;
      k = p - size;
    } else {
      k = rows.length;
      rows.push([]);
      free[size + k] = capacity; // opened below by set()
    }
    rows[k]!.push(i);
    set(k, free[size + k]! - L);
  }
  return rows;
}

export type BatchOrder = 'shuffle' | 'sorted' | 'sequential';

export interface BatchOptions {
  batchSize: number;
  /**
   * shuffle: a new permutation of the examples each epoch. sorted: examples sorted by length and cut
   * into batches (little padding), the batches in a new random order each epoch (mlx-lm's way;
   * with dropLast the cut starts at a random offset each epoch, so no example is always left out).
   * sequential: file order (for evaluation). Default shuffle.
   */
  order?: BatchOrder;
  /** Seed of the epoch orders. Default 0. */
  seed?: number;
  /** Pack several examples into each row of `maxLength` tokens. Default false. */
  pack?: boolean;
  /** Row length when packing (every batch then has T = maxLength). Default 2048. */
  maxLength?: number;
  /** Padding id (use padIdFor(tokenizer)). Default 0. */
  padId?: number;
  /** Unpacked batches: T rounded up to a multiple of this. Default 1. */
  padMultiple?: number;
  /** Leave out each epoch's last, smaller batch. Default false. */
  dropLast?: boolean;
}

/** Where an iterator is: the next batch is number `batch` of epoch `epoch` (both from 0). */
export interface BatchIteratorState {
  seed: number;
  epoch: number;
  batch: number;
  /** rows per epoch, to catch restoring a state onto different data */
  units: number;
}

/** The pad id to use for a tokenizer: its pad token, else 0 (padding is masked either way). */
export function padIdFor(tokenizer: { readonly padTokenId: number | undefined }): number {
  return tokenizer.padTokenId ?? 0;
}

export class BatchIterator implements Iterable<Batch> {
  /** Rows: one example each, or packed groups. */
  readonly units: readonly (readonly number[])[];
  readonly batchesPerEpoch: number;
  private readonly examples: readonly Example[];
  private readonly opts: Required<Omit<BatchOptions, 'maxLength'>> & { maxLength: number };
  private readonly unitLength: number[];
  private readonly sortedUnits: number[];
  private epoch = 0;
  private batch = 0;
  private cachedEpoch = -1;
  private cached: number[][] = [];

  constructor(examples: readonly Example[], options: BatchOptions) {
    const o = {
      batchSize: options.batchSize,
      order: options.order ?? 'shuffle',
      seed: options.seed ?? 0,
      pack: options.pack ?? false,
      maxLength: options.maxLength ?? 2048,
      padId: options.padId ?? 0,
      padMultiple: options.padMultiple ?? 1,
      dropLast: options.dropLast ?? false,
    };
    const bad: string[] = [];
    if (!Number.isInteger(o.batchSize) || o.batchSize < 1) bad.push(`batchSize must be a positive integer, got ${o.batchSize}`);
    if (!['shuffle', 'sorted', 'sequential'].includes(o.order)) bad.push(`order must be shuffle, sorted or sequential, got ${JSON.stringify(o.order)}`);
    if (!Number.isInteger(o.seed) || o.seed < 0) bad.push(`seed must be a non-negative integer, got ${o.seed}`);
    if (!Number.isInteger(o.maxLength) || o.maxLength < 2) bad.push(`maxLength must be an integer ≥ 2, got ${o.maxLength}`);
    if (examples.length === 0) bad.push('there are no examples');
    if (o.pack && bad.length === 0) {
      const long = examples.filter((e) => e.ids.length > o.maxLength);
      if (long.length > 0) {
        const where = long.slice(0, 3).map((e) => `${e.file}:${e.line} (${e.ids.length})`).join(', ');
        bad.push(`${long.length} example(s) are longer than the packed row length ${o.maxLength} tokens: ${where}${long.length > 3 ? ', …' : ''}; load the data with the same maxLength`);
      }
    }
    if (bad.length > 0) throw new RangeError(`BatchIterator: ${bad.join('; ')}`);
    this.examples = examples;
    this.opts = o;
    const lengths = examples.map((e) => e.ids.length);
    this.units = o.pack ? packRows(lengths, o.maxLength) : examples.map((_, i) => [i]);
    this.unitLength = this.units.map((u) => u.reduce((n, i) => n + lengths[i]!, 0));
    this.sortedUnits = this.units.map((_, i) => i).sort((a, b) => this.unitLength[a]! - this.unitLength[b]! || a - b);
    const U = this.units.length;
    this.batchesPerEpoch = o.dropLast ? Math.floor(U / o.batchSize) : Math.ceil(U / o.batchSize);
    if (this.batchesPerEpoch === 0) throw new RangeError(`BatchIterator: ${U} rows make no full batch of ${o.batchSize} (dropLast is on)`);
  }

  /** The batches of an epoch, each a list of unit (row) indices. A pure function of (seed, epoch). */
  epochBatches(epoch: number): number[][] {
    if (epoch === this.cachedEpoch) return this.cached;
    const { batchSize, order, seed, dropLast } = this.opts;
    const U = this.units.length;
    const chunk = (idx: number[]): number[][] => {
      const out: number[][] = [];
      for (let i = 0; i < idx.length; i += batchSize) out.push(idx.slice(i, i + batchSize));
      if (dropLast && out.length > 0 && out[out.length - 1]!.length < batchSize) out.pop();
      return out;
    };
    let batches: number[][];
    if (order === 'sequential') batches = chunk(this.units.map((_, i) => i));
    else if (order === 'shuffle') batches = chunk(new Rng(mixSeed(seed, epoch)).permutation(U));
    else {
      const rng = new Rng(mixSeed(seed, epoch));
      // With dropLast, start the cut at a random offset so that the examples left out (at either
      // end of the length order) change from epoch to epoch instead of always being the longest.
      const offset = dropLast ? rng.nextInt((U % batchSize) + 1) : 0;
      batches = rng.shuffle(chunk(this.sortedUnits.slice(offset)));
    }
    this.cachedEpoch = epoch;
    this.cached = batches;
    return batches;
  }

  /** Builds batch number `index` of `epoch`. */
  batchAt(epoch: number, index: number): Batch {
    const ids = this.epochBatches(epoch)[index];
    if (ids === undefined) throw new RangeError(`BatchIterator: epoch ${epoch} has ${this.batchesPerEpoch} batches, no batch ${index}`);
    const rows = ids.map((u) => this.units[u] as number[]);
    const base = { padId: this.opts.padId, packed: this.opts.pack };
    return collate(this.examples, rows, this.opts.pack ? { ...base, length: this.opts.maxLength } : { ...base, padMultiple: this.opts.padMultiple });
  }

  /** The next batch; after an epoch's last batch comes the next epoch's first. */
  next(): Batch {
    const b = this.batchAt(this.epoch, this.batch);
    this.batch++;
    if (this.batch === this.batchesPerEpoch) {
      this.batch = 0;
      this.epoch++;
    }
    return b;
  }

  state(): BatchIteratorState {
    return { seed: this.opts.seed, epoch: this.epoch, batch: this.batch, units: this.units.length };
  }

  setState(s: BatchIteratorState): void {
    if (s.seed !== this.opts.seed || s.units !== this.units.length) {
      throw new Error(`BatchIterator.setState: the state is for seed ${s.seed} and ${s.units} rows, this iterator has seed ${this.opts.seed} and ${this.units.length} rows`);
    }
    if (!Number.isInteger(s.epoch) || s.epoch < 0 || !Number.isInteger(s.batch) || s.batch < 0 || s.batch >= this.batchesPerEpoch) {
      throw new RangeError(`BatchIterator.setState: epoch ${s.epoch}, batch ${s.batch} is not a position (an epoch has ${this.batchesPerEpoch} batches)`);
    }
    this.epoch = s.epoch;
    this.batch = s.batch;
  }

  /** Every batch of one epoch, in order (does not move the iterator). */
  *epochIterator(epoch: number): Generator<Batch> {
    for (let i = 0; i < this.batchesPerEpoch; i++) yield this.batchAt(epoch, i);
  }

  /** Endless: next() forever. */
  *[Symbol.iterator](): Iterator<Batch> {
    for (;;) yield this.next();
  }
}
