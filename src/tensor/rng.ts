// lorakit's one seedable PRNG: xoshiro128** (Blackman & Vigna), 128 bits of state in four
// uint32 words, for weight init, dropout masks, sampling and data order alike (it sits at
// the bottom of the stack so that nn and data share it). state()/setState() let training
// checkpoint and resume the exact stream. Seeding expands one 32-bit (or 53-bit) seed with
// splitmix32 so nearby seeds diverge; mixSeed folds several numbers (seed, epoch) into one.

export type RngState = [number, number, number, number];

function splitmix32(s: number): [number, number] {
  s = (s + 0x9e3779b9) >>> 0;
  let z = s;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
  z = (z ^ (z >>> 16)) >>> 0;
  return [s, z];
}

/** Mixes a list of non-negative integers (seed, epoch, stream…) into one 32-bit seed. */
export function mixSeed(...parts: number[]): number {
  let h = 0x6a09e667;
  for (const p of parts) {
    if (!Number.isInteger(p) || p < 0) throw new RangeError(`mixSeed: parts must be non-negative integers, got ${p}`);
    const lo = p >>> 0;
    const hi = Math.floor(p / 0x100000000) >>> 0;
    h = splitmix32((h ^ lo) >>> 0)[1];
    h = splitmix32((h ^ hi) >>> 0)[1];
  }
  return h;
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

export class Rng {
  private s0 = 0;
  private s1 = 0;
  private s2 = 0;
  private s3 = 0;

  constructor(seed = 0) {
    this.seed(seed);
  }

  /** Resets the stream from a seed (an integer; the high bits of a 53-bit seed are mixed in). */
  seed(seed: number): void {
    if (!Number.isFinite(seed)) throw new Error(`Rng.seed: seed must be a finite number, got ${seed}`);
    const lo = seed >>> 0;
    const hi = Math.floor(Math.abs(seed) / 0x100000000) >>> 0;
    let st = (lo ^ Math.imul(hi, 0x27d4eb2d)) >>> 0;
    const words: number[] = [];
    for (let i = 0; i < 4; i++) {
      const [next, z] = splitmix32(st);
      st = next;
      words.push(z);
    }
    [this.s0, this.s1, this.s2, this.s3] = words as RngState;
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1; // the all-zero state is a fixed point
  }

  /** The four state words (a copy); setState() of it replays the same stream. */
  state(): RngState {
    return [this.s0, this.s1, this.s2, this.s3];
  }

  setState(st: readonly number[]): void {
    if (st.length !== 4 || st.some((w) => !Number.isInteger(w) || w < 0 || w > 0xffffffff)) {
      throw new Error(`Rng.setState: expected four uint32 words, got [${st.join(', ')}]`);
    }
    if ((st[0]! | st[1]! | st[2]! | st[3]!) === 0) throw new Error('Rng.setState: the all-zero state is invalid');
    [this.s0, this.s1, this.s2, this.s3] = [st[0]!, st[1]!, st[2]!, st[3]!];
  }

  /** A uniform uint32. */
  nextU32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5) >>> 0, 7), 9) >>> 0;
    const t = (this.s1 << 9) >>> 0;
    this.s2 = (this.s2 ^ this.s0) >>> 0;
    this.s3 = (this.s3 ^ this.s1) >>> 0;
    this.s1 = (this.s1 ^ this.s2) >>> 0;
    this.s0 = (this.s0 ^ this.s3) >>> 0;
    this.s2 = (this.s2 ^ t) >>> 0;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** A uniform float in [0, 1) with 24 random bits (exactly representable in f32). */
  nextFloat(): number {
    return (this.nextU32() >>> 8) * 2 ** -24;
  }

  /** A uniform float in [0, 1) with 53 random bits. */
  nextDouble(): number {
    const hi = this.nextU32() >>> 5; // 27 bits
    const lo = this.nextU32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) * 2 ** -53;
  }

  /** A uniform integer in [0, n) (n ≤ 2^32), without modulo bias. */
  nextInt(n: number): number {
    if (!Number.isInteger(n) || n <= 0 || n > 0x100000000) throw new RangeError(`Rng.nextInt: n must be an integer in [1, 2^32], got ${n}`);
    const limit = 0x100000000 - (0x100000000 % n);
    for (;;) {
      const x = this.nextU32();
      if (x < limit) return x % n;
    }
  }

  /** A uniform float in [lo, hi). */
  uniform(lo = 0, hi = 1): number {
    return lo + (hi - lo) * this.nextDouble();
  }

  /** A standard normal sample (Box–Muller). */
  normal(mean = 0, std = 1): number {
    let u = this.nextDouble();
    while (u === 0) u = this.nextDouble();
    const v = this.nextDouble();
    return mean + std * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }

  /** Fills an array with uniform values in [lo, hi). */
  fillUniform(out: Float32Array, lo = 0, hi = 1): Float32Array {
    for (let i = 0; i < out.length; i++) out[i] = this.uniform(lo, hi);
    return out;
  }

  /** Shuffles `arr` in place (Fisher–Yates) and returns it. */
  shuffle<T>(arr: T[]): T[] {
    for (let i = arr.length - 1; i > 0; i--) {
      const j = this.nextInt(i + 1);
      const tmp = arr[i]!;
      arr[i] = arr[j]!;
      arr[j] = tmp;
    }
    return arr;
  }

  /** A random permutation of 0..n-1. */
  permutation(n: number): number[] {
    return this.shuffle(Array.from({ length: n }, (_, i) => i));
  }

  /** Fills an array with normal samples. */
  fillNormal(out: Float32Array, mean = 0, std = 1): Float32Array {
    for (let i = 0; i < out.length; i++) out[i] = this.normal(mean, std);
    return out;
  }

  /**
   * Fills an array with normal samples from 32-bit uniforms, two values per Box–Muller pair
   * (a quarter of normal()'s draws), for initialising large weights: normal() over a
   * 100M-parameter model takes a minute.
   */
  fillNormalFast(out: Float32Array, mean = 0, std = 1): Float32Array {
    const twoPi = 2 * Math.PI;
    for (let i = 0; i < out.length; i += 2) {
      const u = (this.nextU32() + 1) / 4294967297; // (0, 1)
      const v = this.nextU32() / 4294967296;
      const r = std * Math.sqrt(-2 * Math.log(u));
      out[i] = mean + r * Math.cos(twoPi * v);
      if (i + 1 < out.length) out[i + 1] = mean + r * Math.sin(twoPi * v);
    }
    return out;
  }
}
