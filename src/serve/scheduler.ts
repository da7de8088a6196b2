// Continuous batching of many requests, each with its own adapter, over one base model.
//
// Design: one shared KV cache for the running batch, rows left-padded.
//  - A new request is prefilled on its own (B = 1, no padding, its own adapter), exactly the
//    forward offline generate() runs for a single prompt, and its first token is sampled
//    from those logits. The n choices of one prompt share that prefill.
//  - Rows join between decoding steps. A row holding c real tokens sits right-aligned in
//    the batch cache of length S, with S − c masked slots in front. When every joining row
//    fits (c ≤ S) and the cache's buffers have spare rows, the new rows are written after
//    the running ones in place; otherwise the cache is rebuilt: every row's filled slots are
//    copied right-aligned into fresh buffers (sized for maxBatch rows) whose length S is the
//    longest row. When the longest row leaves and the columns every row masks reach a
//    quarter of S, a rebuild drops them, so padding does not outlive the row that caused it.
//  - A decoding step feeds each row its last token (T = 1) with an attention mask [B, S + 1]
//    (zeros over the row's padding) and explicit positions (the row's real token count), so
//    every row sees exactly its own keys at its own positions: what generate() computes for
//    that prompt alone. Rows choose their adapter through the per-row adapter mechanism of
//    src/lora (one name per row, "__base__" for none); the base projections run once for the
//    whole batch and each adapter's low-rank product only over its own rows.
//  - Finished and cancelled rows leave at the end of a step (KVCache.select, then compaction).
//
// Attention with a cache runs row by row anyway (each row attends over its own S slots), so
// per-sequence caches would save nothing there, while one cache keeps the decode step a
// single forward. Greedy results equal offline decoding token for token. Measured on the
// native backend: the batched GEMMs and the per-row adapter path give bit-identical rows,
// and so does left padding while a row's keys fit one attention key tile (64); past that,
// padding moves the tile boundaries of the online softmax and logits differ by ~1e-7, so an
// exact near-tie between two logits could in principle break the other way.
import { getBackend, withInferenceProducts } from '../backend/index.js';
import type { FinishReason } from '../generate/generate.js';
import { sampleToken, type SamplingOptions } from '../generate/sampling.js';
import type { StreamDecoder, Tokenizer } from '../io/tokenizer.js';
import type { CausalLM } from '../models/causal-lm.js';
import type { KVCache } from '../nn/attention.js';
import { Rng } from '../tensor/rng.js';
import { firstStop, heldBack } from '../generate/stops.js';
import { ApiError } from './errors.js';

export interface SequenceSpec {
  /** prompt token ids (at least one) */
  prompt: readonly number[];
  /** adapter to apply (the name the row-adapter setter understands); null: the base model */
  adapter: string | null;
  /** tokens to generate at most (≥ 1) */
  maxTokens: number;
  sampling: SamplingOptions;
  /** seed of this sequence's sampling stream */
  seed: number;
  /** the sequence stops once its text contains one of these (cut before it) */
  stopStrings?: readonly string[];
  /** the sequence stops after one of these tokens (included); default: the tokenizer's EOS ids */
  stopTokenIds?: readonly number[];
}

export interface SequenceEvent {
  /** index of the sequence within its job */
  seq: number;
  token: number;
  /** text settled by this token ('' while held back or incomplete) */
  text: string;
  /** set on the sequence's last token */
  finishReason?: FinishReason;
}

export interface SequenceResult {
  tokens: number[];
  text: string;
  finishReason: FinishReason;
  promptTokens: number;
}

/** Chooses the adapter of each batch row for the next forwards (null: clear; a null entry: the base). */
export type RowAdapterSetter = (names: readonly (string | null)[] | null) => void;

export interface SchedulerOptions {
  tokenizer: Tokenizer;
  /** sets per-row adapters before each forward; absent: every row runs the base model */
  setRowAdapters?: RowAdapterSetter;
  /** sequences decoded together at most (default 16) */
  maxBatch?: number;
  /** jobs waiting for a place in the batch at most; more are refused with 429 (default 64) */
  maxQueue?: number;
  /** prompt tokens prefilled per step before the batch decodes again (at least one job is admitted; default 2048) */
  prefillBudget?: number;
}

export interface SchedulerStats {
  /** decoding steps run */
  steps: number;
  /** sum over steps of the rows decoded (mean batch = decodedRows / steps) */
  decodedRows: number;
  prefillTokens: number;
  generatedTokens: number;
  /** batch caches rebuilt (every row copied), against rows joined in place */
  cacheRebuilds: number;
  inPlaceJoins: number;
  running: number;
  queued: number;
}

/** A job was ended by its owner (client gone) or by shutdown before it finished. */
export class JobCancelledError extends Error {
  override name = 'JobCancelledError';
}

class Sequence {
  tokens: number[] = [];
  text = '';
  /** characters of text already handed out */
  sent = 0;
  /** real tokens in the KV cache (prompt, then generated tokens once fed back) */
  cached = 0;
  finish: FinishReason | null = null;
  readonly rng: Rng;
  readonly decoder: StreamDecoder;
  readonly stopIds: ReadonlySet<number>;
  readonly stops: readonly string[];

  constructor(
    readonly job: Job,
    readonly index: number,
    readonly spec: SequenceSpec,
    tokenizer: Tokenizer,
  ) {
    this.rng = new Rng(spec.seed);
    this.decoder = tokenizer.streamDecoder({ skipSpecialTokens: true });
    this.stopIds = new Set(spec.stopTokenIds ?? tokenizer.eosTokenIds);
    this.stops = (spec.stopStrings ?? []).filter((s) => s !== '');
  }

  get last(): number {
    return this.tokens[this.tokens.length - 1]!;
  }

  /** Samples from logits (modified) and records the token, as generateSteps does for a row. */
  choose(logits: Float32Array): SequenceEvent {
    const next = sampleToken(logits, this.context(), this.spec.sampling, this.rng);
    this.tokens.push(next);
    this.text += this.decoder.push(next);
    if (this.stopIds.has(next)) this.finish = 'stop_token';
    else if (this.stops.length) {
      const cut = firstStop(this.text, this.stops);
      if (cut >= 0) {
        this.text = this.text.slice(0, cut);
        this.finish = 'stop_string';
      }
    }
    if (!this.finish && this.tokens.length >= this.spec.maxTokens) this.finish = 'length';
    if (this.finish && this.finish !== 'stop_string') this.text += this.decoder.flush();
    const upTo = this.finish ? this.text.length : this.text.length - heldBack(this.text, this.stops);
    const text = upTo > this.sent ? this.text.slice(this.sent, upTo) : '';
    this.sent = Math.max(this.sent, upTo);
    const ev: SequenceEvent = { seq: this.index, token: next, text };
    if (this.finish) ev.finishReason = this.finish;
    return ev;
  }

  private *context(): Generator<number> {
    yield* this.spec.prompt;
    yield* this.tokens;
  }
}

/** One request: sequences admitted together, finished together. */
export class Job {
  readonly seqs: Sequence[];
  readonly results: Promise<SequenceResult[]>;
  /** set once the job resolved, failed or was cancelled */
  settled = false;
  onEvent: ((ev: SequenceEvent) => void) | null = null;
  private resolveFn!: (r: SequenceResult[]) => void;
  private rejectFn!: (e: unknown) => void;
  private remaining: number;

  constructor(
    private readonly owner: Scheduler,
    specs: readonly SequenceSpec[],
    tokenizer: Tokenizer,
  ) {
    this.seqs = specs.map((s, i) => new Sequence(this, i, s, tokenizer));
    this.remaining = specs.length;
    this.results = new Promise((res, rej) => {
      this.resolveFn = res;
      this.rejectFn = rej;
    });
    this.results.catch(() => undefined); // an owner that went away need not observe it
  }

  get size(): number {
    return this.seqs.length;
  }

  /** Ends the job now: it leaves the queue, or its rows leave the batch before the next step. */
  cancel(reason = 'cancelled'): void {
    if (this.settled) return;
    this.fail(new JobCancelledError(reason));
    this.owner.forget(this);
  }

  /** @internal */
  emit(ev: SequenceEvent): void {
    if (this.settled) return;
    try {
      this.onEvent?.(ev);
    } catch {
      // a listener's failure (e.g. a closed socket) must not stop the batch
    }
    if (ev.finishReason && --this.remaining === 0) {
      this.settled = true;
      this.resolveFn(this.seqs.map((s) => ({ tokens: s.tokens, text: s.text, finishReason: s.finish!, promptTokens: s.spec.prompt.length })));
    }
  }

  /** @internal */
  fail(err: unknown): void {
    if (this.settled) return;
    this.settled = true;
    this.rejectFn(err);
  }
}

interface Row {
  seq: Sequence;
}

/** A new row and where its keys are: row `row` of `cache`. */
interface Source {
  seq: Sequence;
  cache: KVCache;
  row: number;
}

export class Scheduler {
  readonly model: CausalLM;
  readonly maxBatch: number;
  readonly maxQueue: number;
  private readonly tokenizer: Tokenizer;
  private readonly setRowAdapters: RowAdapterSetter;
  private readonly prefillBudget: number;
  private readonly queue: Job[] = [];
  /** running rows, in the order of the batch cache's rows */
  private rows: Row[] = [];
  private cache: KVCache;
  private looping = false;
  private accepting = true;
  private idleWaiters: (() => void)[] = [];
  private readonly counters = { steps: 0, decodedRows: 0, prefillTokens: 0, generatedTokens: 0, cacheRebuilds: 0, inPlaceJoins: 0 };

  constructor(model: CausalLM, opts: SchedulerOptions) {
    this.model = model;
    this.tokenizer = opts.tokenizer;
    this.setRowAdapters = opts.setRowAdapters ?? (() => undefined);
    this.maxBatch = opts.maxBatch ?? 16;
    this.maxQueue = opts.maxQueue ?? 64;
    this.prefillBudget = opts.prefillBudget ?? 2048;
    if (!(Number.isInteger(this.maxBatch) && this.maxBatch >= 1)) throw new RangeError(`Scheduler: maxBatch must be an integer ≥ 1, got ${this.maxBatch}`);
    if (!(Number.isInteger(this.maxQueue) && this.maxQueue >= 0)) throw new RangeError(`Scheduler: maxQueue must be an integer ≥ 0, got ${this.maxQueue}`);
    this.cache = model.createCache();
    model.eval();
  }

  get stats(): SchedulerStats {
    return { ...this.counters, running: this.rows.length, queued: this.queue.length };
  }

  /** sequences running plus sequences waiting */
  get load(): number {
    let n = this.rows.length;
    for (const j of this.queue) n += j.size;
    return n;
  }

  /**
   * Queues a job (its sequences join the batch together). Throws ApiError 429 when the
   * queue is full, 503 while shutting down, 400 when the job is larger than the batch.
   */
  submit(specs: readonly SequenceSpec[], onEvent?: (ev: SequenceEvent) => void): Job {
    if (!this.accepting) throw new ApiError(503, 'the server is shutting down', { code: 'shutting_down' });
    if (specs.length === 0) throw new ApiError(400, 'nothing to generate');
    if (specs.length > this.maxBatch) throw new ApiError(400, `this request needs ${specs.length} sequences (prompts × n); the server decodes at most ${this.maxBatch} together`, { param: 'n' });
    if (this.queue.length >= this.maxQueue) {
      throw new ApiError(429, `the server is busy: ${this.queue.length} requests are waiting (the limit); retry later`, { code: 'queue_full', headers: { 'Retry-After': '1' } });
    }
    const V = this.model.info.vocabSize;
    for (const s of specs) {
      if (s.prompt.length === 0) throw new ApiError(400, 'the prompt is empty (it needs at least one token)', { param: 'prompt' });
      for (const id of s.prompt) if (!(Number.isInteger(id) && id >= 0 && id < V)) throw new ApiError(400, `prompt token ${id} is outside the vocabulary 0..${V - 1}`, { param: 'prompt' });
      if (!(Number.isInteger(s.maxTokens) && s.maxTokens >= 1)) throw new ApiError(400, `max_tokens must be an integer ≥ 1, got ${s.maxTokens}`, { param: 'max_tokens' });
    }
    const job = new Job(this, specs, this.tokenizer);
    if (onEvent) job.onEvent = onEvent;
    this.queue.push(job);
    this.kick();
    return job;
  }

  /** @internal called by Job.cancel: drops a queued job now; running rows leave at the next step */
  forget(job: Job): void {
    const i = this.queue.indexOf(job);
    if (i >= 0) this.queue.splice(i, 1);
    this.kick();
  }

  /** Resolves when nothing runs or waits. */
  idle(): Promise<void> {
    if (!this.looping && this.rows.length === 0 && this.queue.length === 0) return Promise.resolve();
    return new Promise((res) => this.idleWaiters.push(res));
  }

  /**
   * Stops accepting jobs, lets the running and queued ones finish for up to graceMs, then
   * fails whatever is left with 503. Resolves when the batch is empty.
   */
  async shutdown(graceMs = 10_000): Promise<void> {
    this.accepting = false;
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<'timeout'>((res) => (timer = setTimeout(() => res('timeout'), Math.max(0, graceMs))));
    const r = await Promise.race([this.idle().then(() => 'idle' as const), deadline]);
    clearTimeout(timer);
    if (r === 'timeout') {
      const err = new ApiError(503, 'the server shut down before this request finished', { code: 'shutting_down' });
      for (const j of this.queue.splice(0)) j.fail(err);
      for (const row of this.rows) row.seq.job.fail(err);
      await this.idle();
    }
  }

  private kick(): void {
    if (this.looping) return;
    this.looping = true;
    setImmediate(() => void this.loop());
  }

  private async loop(): Promise<void> {
    try {
      while (this.rows.length || this.queue.length) {
        try {
          this.step();
        } catch (err) {
          // a failure outside the forward (e.g. building the batch cache): the running
          // requests fail, the queued ones still get their turn
          for (const r of this.rows) r.seq.job.fail(err);
          this.rows = [];
          this.cache = this.model.createCache();
        }
        // a turn for I/O: new requests, disconnects, flushing streamed tokens
        await new Promise<void>((res) => setImmediate(res));
      }
    } finally {
      this.looping = false;
      if (this.rows.length === 0 && this.queue.length === 0) for (const w of this.idleWaiters.splice(0)) w();
      else this.kick();
    }
  }

  /** Admits what fits, then runs one decoding step over the batch. */
  private step(): void {
    // rows of jobs that ended while waiting for this step (cancelled, failed)
    const alive = this.rows.filter((r) => !r.seq.job.settled);
    let changed = alive.length !== this.rows.length;
    if (changed) this.keepRows(alive);

    // admission: whole jobs, first come first served, while they fit
    const joined: Source[] = [];
    let budget = this.prefillBudget;
    let admitted = 0;
    while (this.queue.length) {
      const job = this.queue[0]!;
      if (this.rows.length + joined.length + job.size > this.maxBatch) break;
      const cost = job.seqs.reduce((n, s) => n + s.spec.prompt.length, 0);
      if (admitted > 0 && cost > budget) break;
      this.queue.shift();
      budget -= cost;
      admitted++;
      try {
        joined.push(...this.prefill(job));
      } catch (err) {
        job.fail(err);
      }
    }
    if (joined.length) {
      if (!this.joinInPlace(joined)) this.rebuild(joined);
      changed = true;
    }
    if (this.rows.length === 0) return;
    try {
      this.decode();
    } catch (err) {
      for (const r of this.rows) r.seq.job.fail(err);
      this.rows = [];
      this.cache = this.model.createCache();
    }
  }

  /** Prefills each distinct prompt of a job alone; returns the sequences that go on. */
  private prefill(job: Job): Source[] {
    const out: Source[] = [];
    const V = this.model.info.vocabSize;
    const groups = new Map<string, Sequence[]>();
    for (const s of job.seqs) {
      const key = `${s.spec.adapter ?? ''}\u0000${s.spec.prompt.join(',')}`;
      const g = groups.get(key);
      if (g) g.push(s);
      else groups.set(key, [s]);
    }
    for (const seqs of groups.values()) {
      const { prompt, adapter } = seqs[0]!.spec;
      const L = prompt.length;
      const cache = this.model.createCache();
      this.setRowAdapters([adapter]);
      let logits: Float32Array;
      try {
        logits = withInferenceProducts(() => this.model.forward(Int32Array.from(prompt), 1, L, { cache, lastTokenOnly: true })).slice(0, V);
      } finally {
        this.setRowAdapters(null);
      }
      this.counters.prefillTokens += L;
      for (const s of seqs) {
        s.cached = L;
        const ev = s.choose(logits.slice());
        this.counters.generatedTokens++;
        job.emit(ev);
        if (!s.finish && !job.settled) out.push({ seq: s, cache, row: 0 });
      }
    }
    return job.settled ? [] : out;
  }

  /** One token for every running row. */
  private decode(): void {
    const rows = this.rows;
    const B = rows.length;
    const S = this.cache.length;
    const V = this.model.info.vocabSize;
    const ids = new Int32Array(B);
    const positions = new Int32Array(B);
    const mask = new Uint8Array(B * (S + 1));
    rows.forEach((r, j) => {
      const c = r.seq.cached;
      ids[j] = r.seq.last;
      positions[j] = c;
      mask.fill(1, j * (S + 1) + (S - c), (j + 1) * (S + 1));
    });
    this.setRowAdapters(rows.map((r) => r.seq.spec.adapter));
    let logits: Float32Array;
    try {
      logits = withInferenceProducts(() => this.model.forward(ids, B, 1, { attentionMask: mask, positionIds: positions, cache: this.cache, lastTokenOnly: true }));
    } finally {
      this.setRowAdapters(null);
    }
    this.counters.steps++;
    this.counters.decodedRows += B;
    const keep: Row[] = [];
    rows.forEach((r, j) => {
      const s = r.seq;
      s.cached++;
      if (s.job.settled) return; // cancelled by a listener during this step
      const ev = s.choose(logits.slice(j * V, (j + 1) * V));
      this.counters.generatedTokens++;
      s.job.emit(ev);
      if (!s.finish && !s.job.settled) keep.push(r);
    });
    if (keep.length !== B) this.keepRows(keep);
  }

  /** Keeps the given rows (a subsequence of this.rows) and drops columns every row masks. */
  private keepRows(keep: Row[]): void {
    const index = new Map(this.rows.map((r, j) => [r, j]));
    if (keep.length === 0) {
      this.rows = [];
      this.cache = this.model.createCache();
      return;
    }
    this.cache.select(keep.map((r) => index.get(r)!));
    this.rows = keep;
    const S = this.cache.length;
    const longest = Math.max(...keep.map((r) => r.seq.cached));
    if (S - longest >= Math.max(1, S / 4)) this.rebuild([]);
  }

  /**
   * A fresh batch cache holding the running rows, then the joining ones, each row's real
   * slots right-aligned to the longest row (S = max cached).
   */
  private rebuild(joined: Source[]): void {
    const sources: Source[] = [...this.rows.map((r, j) => ({ seq: r.seq, cache: this.cache, row: j })), ...joined];
    const S = Math.max(...sources.map((s) => s.seq.cached));
    const B = sources.length;
    const next = this.model.createCache();
    const nLayers = next.layers.length;
    for (let i = 0; i < nLayers; i++) {
      const any = sources.find((s) => s.cache.layers[i]!.length > 0);
      if (!any) continue;
      const W = any.cache.layers[i]!.kvDim;
      // a sliding layer holds only its last slots (LayerKVCache.start): each row brings what
      // its cache still holds of its sequence, right-aligned to the H slots the new cache holds
      const held = (src: Source): number => Math.min(src.seq.cached, src.cache.layers[i]!.held);
      const H = Math.max(...sources.map(held));
      const cap = H + 16; // room for a few steps before the cache grows itself
      // buffers for maxBatch rows, viewed as B: later rows can join without a copy
      const rowsRoom = Math.max(B, this.maxBatch);
      const be = getBackend();
      const k = be.memory.alloc(rowsRoom * cap * W).subarray(0, B * cap * W);
      const v = be.memory.alloc(rowsRoom * cap * W).subarray(0, B * cap * W);
      sources.forEach((src, j) => {
        const l = src.cache.layers[i]!;
        const c = held(src);
        const g = { rows: 1, cols: c * W, srcOffset: (src.row * l.capacity + (l.held - c)) * W, dstOffset: (j * cap + H - c) * W };
        if (c > 0) {
          be.copy2d(k, l.k, g);
          be.copy2d(v, l.v, g);
        }
      });
      // LayerKVCache's fields are public: set the filled cache directly
      Object.assign(next.layers[i]!, { batch: B, kvDim: W, capacity: cap, length: S, start: S - H, k, v, rowRoom: rowsRoom });
    }
    this.cache = next;
    this.rows = sources.map((s) => ({ seq: s.seq }));
    this.counters.cacheRebuilds++;
  }

  /**
   * Appends joining rows after the running ones without copying those, when each fits the
   * current length (c ≤ S) and every layer's buffers have room for the rows. Returns false
   * (nothing changed) otherwise.
   */
  private joinInPlace(joined: Source[]): boolean {
    const S = this.cache.length;
    const B0 = this.rows.length;
    const B = B0 + joined.length;
    if (B0 === 0 || joined.some((j) => j.seq.cached > S)) return false;
    const layers = this.cache.layers;
    for (const l of layers) {
      // rebuild() allocates for maxBatch rows; a cache that grew itself (reserve) has room for
      // its own rows only. The room is the layer's record (LayerKVCache.rowRoom), never
      // k.buffer's size: on wasm that is the whole heap, and rows written past the allocation
      // overwrote other buffers (a joined row's answer then differed from offline generation)
      if (l.length !== S || l.batch !== B0 || l.rowRoom < B) return false;
    }
    const be = getBackend();
    layers.forEach((l, i) => {
      const { capacity: cap, kvDim: W } = l;
      const k = new Float32Array(l.k.buffer, l.k.byteOffset, B * cap * W);
      const v = new Float32Array(l.v.buffer, l.v.byteOffset, B * cap * W);
      const H = l.held; // fewer than S in a sliding layer (LayerKVCache.start)
      joined.forEach((src, jj) => {
        const j = B0 + jj;
        const sl = src.cache.layers[i]!;
        const c = Math.min(src.seq.cached, sl.held, H);
        const from = (src.row * sl.capacity + (sl.held - c)) * W;
        // the padding in front is masked (or outside the window); cleared so no stale value can reach a product
        k.fill(0, j * cap * W, (j * cap + H - c) * W);
        v.fill(0, j * cap * W, (j * cap + H - c) * W);
        if (c > 0) {
          const g = { rows: 1, cols: c * W, srcOffset: from, dstOffset: (j * cap + H - c) * W };
          be.copy2d(k, sl.k, g);
          be.copy2d(v, sl.v, g);
        }
      });
      Object.assign(l, { batch: B, k, v });
    });
    for (const src of joined) this.rows.push({ seq: src.seq });
    this.counters.inPlaceJoins++;
    return true;
  }
}

