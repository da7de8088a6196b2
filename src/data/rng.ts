// A small seedable PRNG for data order: sfc32 (Chris Doty-Humphrey's Small Fast Counting
// generator), 128 bits of state in four uint32 words, seeded through splitmix32.
// src/data may import only io (docs/ARCHITECTURE.md §Layers), so it keeps its own generator instead of nn's.
// state()/setState() let a caller checkpoint and replay the exact stream.

export type DataRngState = [number, number, number, number];

/** splitmix32 step: returns [next counter, output]. */
function splitmix32(s: number): [number, number] {
  s = (s + 0x9e3779b9) >>> 0;
  let z = s;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
  return [s, (z ^ (z >>> 16)) >>> 0];
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

export class DataRng {
  private a = 0;
  private b = 0;
  private c = 0;
  private d = 0;

  constructor(seed = 0) {
    if (!Number.isInteger(seed) || seed < 0) throw new RangeError(`DataRng: seed must be a non-negative integer, got ${seed}`);
    let s = mixSeed(seed);
    const w: number[] = [];
    for (let i = 0; i < 3; i++) {
      const [next, z] = splitmix32(s);
      s = next;
      w.push(z);
    }
    [this.a, this.b, this.c] = [w[0]!, w[1]!, w[2]!];
    this.d = 1; // sfc32's counter
    for (let i = 0; i < 12; i++) this.nextU32(); // warm up, as the reference does
  }

  /** The four state words (a copy). */
  state(): DataRngState {
    return [this.a, this.b, this.c, this.d];
  }

  setState(st: readonly number[]): void {
    if (st.length !== 4 || st.some((w) => !Number.isInteger(w) || w < 0 || w > 0xffffffff)) {
      throw new Error(`DataRng.setState: expected four uint32 words, got [${st.join(', ')}]`);
    }
    [this.a, this.b, this.c, this.d] = [st[0]!, st[1]!, st[2]!, st[3]!];
  }

  /** A uniform uint32. */
  nextU32(): number {
    const t = (((this.a + this.b) >>> 0) + this.d) >>> 0;
    this.d = (this.d + 1) >>> 0;
    this.a = (this.b ^ (this.b >>> 9)) >>> 0;
    this.b = (this.c + (this.c << 3)) >>> 0;
    this.c = ((this.c << 21) | (this.c >>> 11)) >>> 0;
    this.c = (this.c + t) >>> 0;
    return t;
  }

  /** A uniform integer in [0, n), n ≤ 2^32, without modulo bias. */
  nextInt(n: number): number {
    if (!Number.isInteger(n) || n <= 0 || n > 0x100000000) throw new RangeError(`DataRng.nextInt: n must be an integer in [1, 2^32], got ${n}`);
    const limit = 0x100000000 - (0x100000000 % n);
    for (;;) {
      const x = this.nextU32();
      if (x < limit) return x % n;
    }
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
}
