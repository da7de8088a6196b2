// Autoregressive generation for a batch of prompts of different lengths: prompts are left-
// padded under an attention mask, the KV cache holds every earlier key (or, with useCache
// false, the whole sequence is recomputed each step), finished rows are dropped from the
// batch, and tokens are streamed as they come.
//
// Letters: B rows still generating, L columns so far (padding + prompt + generated), V vocab.
import { getBackend, withInferenceProducts } from '../backend/index.js';
import type { StreamDecoder, Tokenizer } from '../io/tokenizer.js';
import type { CausalLM } from '../models/causal-lm.js';
import { Rng } from '../tensor/rng.js';
import { checkSamplingOptions, sampleToken, type SamplingOptions } from './sampling.js';
import { firstStop, heldBack } from './stops.js';

export interface GenerateOptions extends SamplingOptions {
  /** tokens to generate at most per prompt (default 32) */
  maxNewTokens?: number;
  /** a row stops after producing one of these (included in its tokens); default: the tokenizer's EOS ids, else none */
  stopTokenIds?: readonly number[];
  /** a row stops once its generated text contains one of these (needs a tokenizer); the text is cut before it */
  stopStrings?: readonly string[];
  /** seed of the sampling stream (default 0); ignored when rng is given */
  seed?: number;
  rng?: Rng;
  /** reuse keys and values through a KV cache (default true); false recomputes the full sequence each step */
  useCache?: boolean;
  /**
   * every product in f32 as training computes it (true), instead of the backend's inference
   * products (default: a prompt's products with half or quantized weights may round the
   * activations to bf16, as llama.cpp does; docs/ARCHITECTURE.md §Decoding). Parity tests set it.
   */
  exactProducts?: boolean;
  /** decodes streamed text and checks stop strings */
  tokenizer?: Tokenizer;
  /** skip special tokens when decoding text (default true) */
  skipSpecialTokens?: boolean;
  /** id placed in padding columns (never attended to); default the tokenizer's pad id, else 0 */
  padTokenId?: number;
  /** called for every generated token, in order */
  onToken?: (event: TokenEvent) => void;
}

export type FinishReason = 'stop_token' | 'stop_string' | 'length';

export interface TokenEvent {
  /** index of the prompt this token continues */
  row: number;
  token: number;
  /** new text completed by this token (with a tokenizer; '' while a character is incomplete) */
  text: string;
  /** set on a row's last token */
  finishReason?: FinishReason;
}

export interface GenerationResult {
  /** generated tokens (a stop token included) */
  tokens: number[];
  /** generated text (with a tokenizer), cut before a stop string */
  text: string;
  finishReason: FinishReason;
}

interface RowState {
  prompt: readonly number[];
  tokens: number[];
  text: string;
  /** characters of text already streamed */
  sent: number;
  decoder: StreamDecoder | null;
  finish: FinishReason | null;
}

/**
 * What the decoding loop asks of its driver after each forward: the host's copy of the logits
 * [B, V] (the handle itself on a host-visible backend; read back from a device backend, which
 * only an asynchronous driver can do: docs/ARCHITECTURE.md §Backend memory).
 */
interface LogitsRead {
  read: Float32Array;
}

/**
 * Generates continuations of each prompt. Yields token events as they are chosen;
 * the return value holds each prompt's result, in prompt order. Synchronous, so the logits
 * must be host-visible (ref, native, wasm); on a device backend use streamGenerate.
 */
export function* generateSteps(model: CausalLM, prompts: readonly (readonly number[])[], opts: GenerateOptions = {}): Generator<TokenEvent, GenerationResult[]> {
  const it = decodeLoop(model, prompts, opts);
  try {
    for (let r = it.next(); ; ) {
      if (r.done) return r.value;
      if ('read' in r.value) {
        if (!getBackend().memory.hostVisible) throw new Error(`generate: the logits live on the device (the ${getBackend().name} backend); use streamGenerate, which reads them back`);
        r = it.next(r.value.read);
      } else {
        yield r.value;
        r = it.next();
      }
    }
  } finally {
    it.return([]); // a consumer that stopped early: end the loop (restoring the model's mode)
  }
}

function* decodeLoop(model: CausalLM, prompts: readonly (readonly number[])[], opts: GenerateOptions): Generator<TokenEvent | LogitsRead, GenerationResult[], Float32Array | undefined> {
  checkSamplingOptions(opts);
  const maxNew = opts.maxNewTokens ?? 32;
  if (!(Number.isInteger(maxNew) && maxNew >= 0)) throw new RangeError(`generate: maxNewTokens must be an integer ≥ 0, got ${maxNew}`);
  if (prompts.length === 0) return [];
  const V = model.info.vocabSize;
  // learned positions (GPT-2's n_positions) end somewhere: a row stops there ('length')
  const positions = model.info.maxPositions;
  prompts.forEach((p, i) => {
    if (p.length === 0) throw new RangeError(`generate: prompt ${i} is empty (it needs at least one token, e.g. BOS)`);
    if (p.length > positions) throw new RangeError(`generate: prompt ${i} has ${p.length} tokens, more than the model's ${positions} positions (n_positions / max_position_embeddings)`);
    p.forEach((id, j) => {
      if (!Number.isInteger(id) || id < 0 || id >= V) throw new RangeError(`generate: prompt ${i} token ${j} is ${id}, outside the vocabulary 0..${V - 1}`);
    });
  });
  const tok = opts.tokenizer;
  const stopIds = new Set(opts.stopTokenIds ?? tok?.eosTokenIds ?? []);
  const stopStrings = opts.stopStrings ?? [];
  if (stopStrings.length && !tok) throw new Error('generate: stopStrings need a tokenizer to decode the text');
  const rng = opts.rng ?? new Rng(opts.seed ?? 0);
  const pad = opts.padTokenId ?? tok?.padTokenId ?? 0;
  const useCache = opts.useCache ?? true;
  const decodeOpts = { skipSpecialTokens: opts.skipSpecialTokens ?? true };

  const rows: RowState[] = prompts.map((p) => ({ prompt: p, tokens: [], text: '', sent: 0, decoder: tok ? tok.streamDecoder(decodeOpts) : null, finish: null }));
  if (maxNew === 0) return rows.map(() => ({ tokens: [], text: '', finishReason: 'length' as FinishReason }));

  // active[j] = prompt index of batch row j; seq: [B, L] ids; mask: [B, L] 0/1
  let active = prompts.map((_, i) => i);
  let L = Math.max(...prompts.map((p) => p.length));
  let seq: number[][] = prompts.map((p) => [...new Array<number>(L - p.length).fill(pad), ...p]);
  let mask: number[][] = prompts.map((p) => [...new Array<number>(L - p.length).fill(0), ...new Array<number>(p.length).fill(1)]);
  // without padding the mask is all ones: no mask gives the same positions and scores
  // (a zero added to each), and the attention kernels their unmasked path
  const padded = prompts.some((p) => p.length < L);
  const cache = useCache ? model.createCache() : null;
  const wasTraining = model.training;
  model.eval();
  try {
    for (let step = 0; step < maxNew && active.length; step++) {
      const B = active.length;
      // with a cache, only the columns it has not seen yet go in
      const T = cache && step > 0 ? 1 : L;
      const ids = new Int32Array(B * T);
      for (let j = 0; j < B; j++) for (let t = 0; t < T; t++) ids[j * T + t] = seq[j]![L - T + t]!;
      let m: Int32Array | undefined;
      if (padded) {
        m = new Int32Array(B * L);
        for (let j = 0; j < B; j++) m.set(mask[j]!, j * L);
      }
      const fwd = (): Float32Array => model.forward(ids, B, T, { attentionMask: m, cache, lastTokenOnly: true });
      const logits = (yield { read: opts.exactProducts ? fwd() : withInferenceProducts(fwd) })!;
      const keep: number[] = [];
      for (let j = 0; j < B; j++) {
        const r = rows[active[j]!]!;
        const row = logits.slice(j * V, (j + 1) * V);
        const next = sampleToken(row, contextOf(r), opts, rng);
        r.tokens.push(next);
        seq[j]!.push(next);
        mask[j]!.push(1);
        if (r.decoder) r.text += r.decoder.push(next);
        if (stopIds.has(next)) r.finish = 'stop_token';
        else if (stopStrings.length) {
          const cut = firstStop(r.text, stopStrings);
          if (cut >= 0) {
            r.text = r.text.slice(0, cut);
            r.finish = 'stop_string';
          }
        }
        if (!r.finish && (r.tokens.length >= maxNew || r.prompt.length + r.tokens.length >= positions)) r.finish = 'length';
        if (r.finish && r.decoder && r.finish !== 'stop_string') r.text += r.decoder.flush();
        // stream what is settled: while running, hold back a tail that may begin a stop string
        const upTo = r.finish ? r.text.length : r.text.length - heldBack(r.text, stopStrings);
        const text = upTo > r.sent ? r.text.slice(r.sent, upTo) : '';
        r.sent = Math.max(r.sent, upTo);
        const ev: TokenEvent = { row: active[j]!, token: next, text };
        if (r.finish) ev.finishReason = r.finish;
        opts.onToken?.(ev);
        yield ev;
        if (!r.finish) keep.push(j);
      }
      L += 1;
      if (keep.length < B) {
        active = keep.map((j) => active[j]!);
        seq = keep.map((j) => seq[j]!);
        mask = keep.map((j) => mask[j]!);
        if (cache && keep.length) cache.select(keep);
      }
    }
  } finally {
    cache?.release(); // its arrays go to the model's pool for the next generation
    if (wasTraining) model.train();
  }
  return rows.map((r) => ({ tokens: r.tokens, text: r.text, finishReason: r.finish ?? 'length' }));
}

function* contextOf(r: RowState): Generator<number> {
  yield* r.prompt;
  yield* r.tokens;
}

/** Runs generation to the end; returns each prompt's result in prompt order. */
export function generate(model: CausalLM, prompts: readonly (readonly number[])[], opts: GenerateOptions = {}): GenerationResult[] {
  const it = generateSteps(model, prompts, opts);
  for (;;) {
    const r = it.next();
    if (r.done) return r.value;
  }
}

/**
 * Resolves on the next macrotask, so that other work (I/O, messages) runs between tokens:
 * setImmediate where it exists (Node), else a MessageChannel message (a browser, a worker;
 * setTimeout(0) is clamped to 4 ms there).
 */
function nextTask(): Promise<void> {
  const g = globalThis as { setImmediate?: (f: () => void) => unknown };
  if (typeof g.setImmediate === 'function') return new Promise<void>((res) => g.setImmediate!(res));
  return new Promise<void>((res) => {
    const ch = new MessageChannel();
    ch.port1.onmessage = () => {
      ch.port1.close();
      res();
    };
    ch.port2.postMessage(null);
  });
}

/**
 * Streams token events as an async iterator, giving the event loop a turn between tokens
 * (so a server can flush each one). The results are available from `result` once done.
 * Works on every backend: on a device backend each token's logits are read back.
 */
export function streamGenerate(model: CausalLM, prompts: readonly (readonly number[])[], opts: GenerateOptions = {}): AsyncIterable<TokenEvent> & { result: Promise<GenerationResult[]> } {
  let resolve!: (r: GenerationResult[]) => void;
  let reject!: (e: unknown) => void;
  const result = new Promise<GenerationResult[]>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  result.catch(() => undefined); // the iterator rethrows; an unobserved result must not crash
  async function* run(): AsyncGenerator<TokenEvent> {
    const it = decodeLoop(model, prompts, opts);
    const mem = getBackend().memory;
    try {
      for (let r = it.next(); ; ) {
        if (r.done) {
          resolve(r.value);
          return;
        }
        if ('read' in r.value) {
          // one readback per token on a device backend (all rows' logits at once)
          r = it.next(mem.hostVisible ? r.value.read : await mem.read(r.value.read));
          continue;
        }
        yield r.value;
        await nextTask();
        r = it.next();
      }
    } catch (e) {
      reject(e);
      throw e;
    } finally {
      // the consumer stopped early (break): end the steps (restoring the model's mode)
      it.return([]);
      reject(new Error('streamGenerate: the stream was closed before generation finished'));
    }
  }
  const gen = run();
  return { [Symbol.asyncIterator]: () => gen, result };
}

/** Convenience: encodes prompt texts, generates, and returns texts (and tokens). */
export function generateText(model: CausalLM, tokenizer: Tokenizer, prompts: readonly string[], opts: Omit<GenerateOptions, 'tokenizer'> = {}): GenerationResult[] {
  const ids = prompts.map((p) => tokenizer.encode(p));
  return generate(model, ids, { ...opts, tokenizer });
}
