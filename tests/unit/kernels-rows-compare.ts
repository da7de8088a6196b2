// The accumulator, copy, row/column, mask, tanh and SGD kernels of a backend against the
// reference (src/backend/ref/rows.ts), on odd shapes, half operands, aliasing and
// accumulation; and the backend's memory (docs/ARCHITECTURE.md §Backend memory).
// Registered by kernels-compare.ts, so every backend the kernel tests cover runs these.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { refBackend as ref } from '../../src/backend/ref/index.js';
import type { KernelsUnderTest } from '../helpers/device-as-host.js';
import { assertClose, randn, rng, toHalf } from './kernels-util.js';

// (N, C) pairs: single rows and columns, sizes around SIMD widths, one large enough to be threaded
const SHAPES: [number, number][] = [
  [1, 1],
  [3, 17],
  [17, 3],
  [7, 65],
  [129, 33],
  [1031, 67],
];

function two(x: Float32Array): [Float32Array, Float32Array] {
  return [x.slice(), x.slice()];
}

export function registerRowComparisons(nat: KernelsUnderTest, label: string): void {
  describe(`${label} row kernels and memory match ref`, () => {
    it('memory: alloc zeroed, view, write, read, accumulators', async () => {
      const m = nat.memory;
      const h = m.alloc(5000);
      assert.equal(h.length, 5000);
      // host-visible memory (CPU, wasm) is viewed in place; a device's is read back
      const now = async (): Promise<Float32Array> => (m.hostVisible ? m.view(h) : m.read(h));
      assert.ok((await now()).every((x) => x === 0));
      if (!m.hostVisible) assert.throws(() => m.view(h), /read them back/);
      m.write(h, [1, 2, 3], 10);
      assert.deepEqual([...(await now()).subarray(9, 14)], [0, 1, 2, 3, 0]);
      const back = await m.read(h);
      assert.deepEqual([...back.subarray(10, 13)], [1, 2, 3]);
      back[10] = 99; // a copy: the buffer keeps its value
      assert.equal((await now())[10], 1);
      const half = m.allocHalf(7, 'bf16');
      assert.equal(half.length, 7);
      const acc = m.allocAccumulator(3);
      await nat.sumInto(acc, 1, Float32Array.of(1, 2, 3.5));
      await nat.sumSquaresInto(acc, 2, Float32Array.of(3, 4));
      assert.deepEqual([...(await m.readAccumulator(acc))], [0, 6.5, 25]);
      m.clearAccumulator(acc);
      assert.deepEqual([...(await m.readAccumulator(acc))], [0, 0, 0]);
    });

    it('sumInto (ranges), sumSquaresInto, clipByNorm', async () => {
      const r = rng(41);
      for (const n of [1, 3, 17, 65, 40_001]) {
        const x = randn(r, n, -3, 3);
        const a1 = new Float64Array(2);
        const a2 = new Float64Array(2);
        for (const [off, len] of [[0, undefined], [Math.floor(n / 3), Math.ceil(n / 2) - Math.floor(n / 3)]] as [number, number | undefined][]) {
          await nat.sumInto(a1, 0, x, off, len);
          ref.sumInto(a2, 0, x, off, len);
        }
        assert.ok(Math.abs(a1[0]! - a2[0]!) <= 1e-12 * Math.abs(a2[0]!) + 1e-12, `sumInto n=${n}: ${a1[0]} vs ${a2[0]}`);
        await nat.sumSquaresInto(a1, 1, x);
        ref.sumSquaresInto(a2, 1, x);
        assert.ok(Math.abs(a1[1]! - a2[1]!) <= 1e-12 * a2[1]!, `sumSquaresInto n=${n}`);
        for (const maxNorm of [0.5, 1e9]) {
          const [g1, g2] = two(x);
          await nat.clipByNorm(g1, a1, 1, maxNorm);
          ref.clipByNorm(g2, a2, 1, maxNorm);
          assertClose(g1, g2, `clipByNorm n=${n} max=${maxNorm}`, 1e-6, 1e-7);
          if (maxNorm > 1e8) assertClose(g1, x, 'clipByNorm below the limit leaves x', 0, 0);
        }
        const [g1, g2] = two(x);
        const bad = Float64Array.of(0, NaN);
        await nat.clipByNorm(g1, bad, 1, 1);
        ref.clipByNorm(g2, bad, 1, 1);
        assertClose(g1, x, 'clipByNorm with a NaN norm leaves x', 0, 0);
        assertClose(g2, x, 'ref clipByNorm with a NaN norm leaves x', 0, 0);
      }
    });

    it('copy2d: strided, offset, broadcast row (src stride 0), accumulate', async () => {
      const r = rng(42);
      // and long rows, split among the threads in chunks that start and end inside a row
      // (a prompt's keys into the KV cache: one row of T·kvDim floats)
      for (const [N, C] of [...SHAPES, [1, 40000], [3, 20001]] as [number, number][]) {
        const src = randn(r, (N + 2) * (C + 3));
        for (const acc of [false, true]) {
          const base = randn(r, (N + 1) * (C + 5) + 4);
          const [d1, d2] = two(base);
          const g = { rows: N, cols: C, dstOffset: 4, dstStride: C + 5, srcOffset: 2, srcStride: C + 3, accumulate: acc };
          await nat.copy2d(d1, src, g);
          ref.copy2d(d2, src, g);
          assertClose(d1, d2, `copy2d [${N}, ${C}] acc=${acc}`, 0, 0);
          const [b1, b2] = two(base);
          await nat.copy2d(b1, src, { rows: N, cols: C, srcStride: 0, dstStride: C + 5, accumulate: acc });
          ref.copy2d(b2, src, { rows: N, cols: C, srcStride: 0, dstStride: C + 5, accumulate: acc });
          assertClose(b1, b2, `copy2d broadcast [${N}, ${C}] acc=${acc}`, 0, 0);
        }
        const [p1, p2] = two(new Float32Array(N * C));
        await nat.copy2d(p1, src, { rows: N, cols: C });
        ref.copy2d(p2, src, { rows: N, cols: C });
        assertClose(p1, p2, `copy2d packed [${N}, ${C}]`, 0, 0);
      }
    });

    it('mul, div (also aliased)', async () => {
      const r = rng(43);
      for (const n of [1, 3, 17, 65, 40_001]) {
        const a = randn(r, n);
        const b = randn(r, n, 0.5, 2);
        for (const k of ['mul', 'div'] as const) {
          const [o1, o2] = two(new Float32Array(n));
          await nat[k](o1, a, b);
          ref[k](o2, a, b);
          assertClose(o1, o2, `${k} n=${n}`, 0, 0);
          const [x1, x2] = two(a);
          await nat[k](x1, x1, b);
          ref[k](x2, x2, b);
          assertClose(x1, x2, `${k} aliased n=${n}`, 0, 0);
        }
      }
    });

    it('addRowVector, scaleColumns (also in place), columnSums (with and without v), columnDots', async () => {
      const r = rng(44);
      for (const [N, C] of SHAPES) {
        const x = randn(r, N * C);
        const v = randn(r, C, 0.5, 1.5);
        const [o1, o2] = two(randn(r, N * C));
        await nat.addRowVector(o1, v, -0.37, N, C);
        ref.addRowVector(o2, v, -0.37, N, C);
        assertClose(o1, o2, `addRowVector [${N}, ${C}]`, 1e-6, 1e-7);
        for (const shift of [0, -1]) {
          const [s1, s2] = two(new Float32Array(N * C));
          await nat.scaleColumns(s1, x, v, shift, N, C);
          ref.scaleColumns(s2, x, v, shift, N, C);
          assertClose(s1, s2, `scaleColumns [${N}, ${C}] shift=${shift}`, 1e-6, 1e-7);
          const [i1, i2] = two(x);
          await nat.scaleColumns(i1, i1, v, shift, N, C);
          ref.scaleColumns(i2, i2, v, shift, N, C);
          assertClose(i1, i2, `scaleColumns in place [${N}, ${C}]`, 1e-6, 1e-7);
        }
        for (const [vv, shift, alpha] of [[null, 0, 0.25], [v, -1, -1]] as const) {
          const [c1, c2] = two(randn(r, C));
          await nat.columnSums(c1, x, vv, shift, alpha, N, C);
          ref.columnSums(c2, x, vv, shift, alpha, N, C);
          assertClose(c1, c2, `columnSums [${N}, ${C}] v=${vv ? 'given' : 'null'}`, 1e-5, 1e-6);
        }
        const y = randn(r, N * C);
        const [d1, d2] = two(randn(r, C));
        await nat.columnDots(d1, x, y, v, N, C);
        ref.columnDots(d2, x, y, v, N, C);
        assertClose(d1, d2, `columnDots [${N}, ${C}]`, 1e-5, 1e-6);
      }
    });

    it('doraCombine: with W·xd, with a bias of each dtype, without a bias', async () => {
      const r = rng(45);
      for (const [N, O] of SHAPES) {
        const g = randn(r, O, 0.5, 1.5);
        const out0 = randn(r, N * O);
        const P0 = randn(r, N * O);
        const wx = randn(r, N * O);
        const biasF = randn(r, O);
        const cases: [string, Float32Array | Uint16Array | null, 'f32' | 'f16' | 'bf16', Float32Array | null][] = [
          ['wx', null, 'f32', wx],
          ['no bias', null, 'f32', null],
          ['f32 bias', biasF, 'f32', null],
          ['f16 bias', toHalf(biasF, 'f16'), 'f16', null],
          ['bf16 bias', toHalf(biasF, 'bf16'), 'bf16', null],
        ];
        for (const [what, bias, bd, w] of cases) {
          const [o1, o2] = two(out0);
          const [p1, p2] = two(P0);
          await nat.doraCombine(o1, p1, w, g, bias, N, O, bd);
          ref.doraCombine(o2, p2, w, g, bias, N, O, bd);
          assertClose(o1, o2, `doraCombine out [${N}, ${O}] ${what}`, 1e-6, 1e-6);
          assertClose(p1, p2, `doraCombine P [${N}, ${O}] ${what}`, 1e-6, 1e-6);
        }
      }
    });

    it('weightRowNorms (f32 and half, both layouts, with and without delta, a block of rows), scaleWeightRows', async () => {
      const r = rng(46);
      for (const [O, I] of SHAPES) {
        const wF = randn(r, O * I);
        const o0 = Math.floor(O / 3);
        const rows = O - o0;
        const delta = randn(r, rows * I, -0.1, 0.1);
        for (const dt of ['f32', 'f16', 'bf16'] as const) {
          const w = dt === 'f32' ? wF : toHalf(wF, dt);
          for (const tr of [false, true]) {
            for (const d of [null, delta]) {
              const [n1, n2] = two(randn(r, O)); // rows before o0 are left as they are
              await nat.weightRowNorms(n1, w, dt, tr, d, o0, rows, O, I);
              ref.weightRowNorms(n2, w, dt, tr, d, o0, rows, O, I);
              assertClose(n1, n2, `weightRowNorms [${O}, ${I}] ${dt} transposed=${tr} delta=${d ? 'yes' : 'no'}`, 1e-6, 1e-7);
            }
          }
        }
        const num = randn(r, O, 0.5, 1.5);
        const den = randn(r, O, 0.5, 1.5);
        for (const tr of [false, true]) {
          const [w1, w2] = two(wF);
          await nat.scaleWeightRows(w1, num, den, tr, O, I);
          ref.scaleWeightRows(w2, num, den, tr, O, I);
          assertClose(w1, w2, `scaleWeightRows [${O}, ${I}] transposed=${tr}`, 0, 0);
        }
      }
    });

    it('additiveMask (key padding), addMasks ([B, S] and [B, T, S] own)', async () => {
      const r = rng(47);
      for (const [B, T, S] of [[1, 1, 1], [2, 3, 5], [3, 4, 9], [1, 7, 7]] as const) {
        const mask = new Uint8Array(B * S);
        for (let i = 0; i < mask.length; i++) mask[i] = r() < 0.7 ? 1 : 0;
        const [a1, a2] = two(new Float32Array(B * S));
        await nat.additiveMask(a1, mask, B, S);
        ref.additiveMask(a2, mask, B, S);
        assertClose(a1, a2, `additiveMask B=${B} S=${S}`, 0, 0);
        const bias = randn(r, B * T * S);
        for (const own of [randn(r, B * S), randn(r, B * T * S)]) {
          const [o1, o2] = two(new Float32Array(B * T * S));
          await nat.addMasks(o1, bias, own, B, T, S);
          ref.addMasks(o2, bias, own, B, T, S);
          assertClose(o1, o2, `addMasks B=${B} T=${T} S=${S} own=${own.length}`, 0, 0);
        }
      }
    });

    it('tanhForward (also in place), tanhBackward', async () => {
      const r = rng(48);
      for (const n of [1, 3, 17, 65, 40_001]) {
        const x = randn(r, n, -4, 4);
        const [y1, y2] = two(new Float32Array(n));
        await nat.tanhForward(y1, x);
        ref.tanhForward(y2, x);
        assertClose(y1, y2, `tanhForward n=${n}`, 1e-6, 1e-7);
        const [i1, i2] = two(x);
        await nat.tanhForward(i1, i1);
        ref.tanhForward(i2, i2);
        assertClose(i1, i2, `tanhForward in place n=${n}`, 1e-6, 1e-7);
        const dy = randn(r, n);
        const [d1, d2] = two(randn(r, n));
        await nat.tanhBackward(d1, y2, dy);
        ref.tanhBackward(d2, y2, dy);
        assertClose(d1, d2, `tanhBackward n=${n}`, 1e-6, 1e-7);
      }
    });

    it('sgd: plain, momentum (first and later steps), dampening, nesterov, weight decay', async () => {
      const r = rng(49);
      for (const n of [1, 3, 17, 65, 40_001]) {
        const g = randn(r, n);
        const opts = [
          { lr: 0.1, momentum: 0, dampening: 0, weightDecay: 0, nesterov: false },
          { lr: 0.05, momentum: 0.9, dampening: 0.1, weightDecay: 0.01, nesterov: false },
          { lr: 0.05, momentum: 0.9, dampening: 0, weightDecay: 0.001, nesterov: true },
        ];
        for (const o of opts) {
          const [w1, w2] = two(randn(r, n));
          const [b1, b2] = two(new Float32Array(n));
          for (const first of [true, false]) {
            await nat.sgd(w1, g, o.momentum ? b1 : null, { ...o, first });
            ref.sgd(w2, g, o.momentum ? b2 : null, { ...o, first });
          }
          assertClose(w1, w2, `sgd param n=${n} ${JSON.stringify(o)}`, 1e-6, 1e-7);
          assertClose(b1, b2, `sgd momentum n=${n} ${JSON.stringify(o)}`, 1e-6, 1e-7);
        }
      }
    });
  });
}
