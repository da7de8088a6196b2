// Choosing the next token from one row of logits [V], with transformers' semantics and order:
// repetition penalty → temperature → top-k → top-p → sample (or argmax when not sampling).
import type { Rng } from '../tensor/rng.js';

export interface SamplingOptions {
  /** 0 (default): greedy (argmax); > 0: sample from softmax(logits / temperature) */
  temperature?: number;
  /** false forces greedy decoding whatever the temperature (transformers' do_sample); default: temperature > 0 */
  doSample?: boolean;
  /** keep the k most likely tokens (0: off) */
  topK?: number;
  /** keep the smallest set of most likely tokens whose probability reaches p (1: off) */
  topP?: number;
  /** > 1 discourages tokens already in the context: positive logits divided, negative multiplied (1: off) */
  repetitionPenalty?: number;
}

/** Checks sampling options; throws naming the option and the valid range. */
export function checkSamplingOptions(o: SamplingOptions): void {
  const t = o.temperature ?? 0;
  if (!(Number.isFinite(t) && t >= 0)) throw new RangeError(`temperature must be a finite number ≥ 0, got ${t}`);
  const k = o.topK ?? 0;
  if (!(Number.isInteger(k) && k >= 0)) throw new RangeError(`topK must be an integer ≥ 0 (0: off), got ${k}`);
  const p = o.topP ?? 1;
  if (!(p > 0 && p <= 1)) throw new RangeError(`topP must be in (0, 1], got ${p}`);
  const r = o.repetitionPenalty ?? 1;
  if (!(Number.isFinite(r) && r > 0)) throw new RangeError(`repetitionPenalty must be a positive number, got ${r}`);
}

/** In place: for each distinct token in context, logit > 0 → logit / penalty, else logit · penalty. */
export function applyRepetitionPenalty(logits: Float32Array, context: Iterable<number>, penalty: number): void {
  if (penalty === 1) return;
  const seen = new Set<number>();
  for (const id of context) {
    if (seen.has(id) || id < 0 || id >= logits.length) continue;
    seen.add(id);
    const l = logits[id]!;
    logits[id] = l > 0 ? l / penalty : l * penalty;
  }
}

/** The first index of the largest value (torch.argmax). */
export function argmax(x: Float32Array): number {
  let best = 0;
  let bv = -Infinity;
  for (let i = 0; i < x.length; i++) {
    const v = x[i]!;
    if (v > bv) {
      bv = v;
      best = i;
    }
  }
  return best;
}

/**
 * In place: logits of tokens outside the top k (ties at the k-th value kept, as transformers'
 * TopKLogitsWarper does) and outside the top-p nucleus become −∞.
 */
export function filterTopKTopP(logits: Float32Array, topK: number, topP: number): void {
  const V = logits.length;
  if (topK > 0 && topK < V) {
    const sorted = Float32Array.from(logits).sort();
    const kth = sorted[V - topK]!;
    for (let i = 0; i < V; i++) if (logits[i]! < kth) logits[i] = -Infinity;
  }
  if (topP < 1) {
    const order = Array.from({ length: V }, (_, i) => i).sort((a, b) => logits[b]! - logits[a]! || a - b);
    const probs = softmax(logits);
    // keep the most likely tokens until their total reaches topP (at least one)
    let cum = 0;
    let keep = 0;
    while (keep < V) {
      cum += probs[order[keep]!]!;
      keep++;
      if (cum >= topP) break;
    }
    for (let j = keep; j < V; j++) logits[order[j]!] = -Infinity;
  }
}

/** softmax in f64 */
export function softmax(logits: Float32Array): Float64Array {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i]! > max) max = logits[i]!;
  const out = new Float64Array(logits.length);
  let sum = 0;
  for (let i = 0; i < logits.length; i++) {
    const e = logits[i]! === -Infinity ? 0 : Math.exp(logits[i]! - max);
    out[i] = e;
    sum += e;
  }
  for (let i = 0; i < out.length; i++) out[i] = out[i]! / sum;
  return out;
}

/**
 * The next token from logits [V] (modified in place). `context` is what the repetition
 * penalty looks at (the prompt and the tokens generated so far).
 */
export function sampleToken(logits: Float32Array, context: Iterable<number>, o: SamplingOptions, rng: Rng): number {
  applyRepetitionPenalty(logits, context, o.repetitionPenalty ?? 1);
  const t = o.temperature ?? 0;
  if (t === 0 || o.doSample === false) return argmax(logits);
  if (t !== 1) for (let i = 0; i < logits.length; i++) logits[i] = logits[i]! / t;
  filterTopKTopP(logits, o.topK ?? 0, o.topP ?? 1);
  const probs = softmax(logits);
  const u = rng.nextDouble();
  let cum = 0;
  let lastNonZero = 0;
  for (let i = 0; i < probs.length; i++) {
    const p = probs[i]!;
    if (p === 0) continue;
    lastNonZero = i;
    cum += p;
    if (u < cum) return i;
  }
  return lastNonZero; // rounding left cum a hair below 1
}
