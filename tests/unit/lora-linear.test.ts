// LoraLinear against an f64 reference written from the formulas (PEFT semantics), and its
// gradients against central finite differences of that reference.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { Linear } from '../../src/nn/linear.js';
import { Rng } from '../../src/tensor/rng.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { kaimingUniformBound } from '../../src/lora/init.js';
import { LoraLinear, LoraContext, type LoraAdapter } from '../../src/lora/lora-linear.js';
import { loraScaling } from '../../src/lora/config.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

interface RefAdapter {
  A: Float64Array; // [R, I]
  B: Float64Array; // [O, R]
  r: number;
  s: number;
  m?: Float64Array | undefined; // [O]
  lb?: Float64Array | undefined; // [O]
  mask?: Float64Array | undefined; // [N, I] (dropout scale per element)
  norm?: Float64Array | undefined; // frozen DoRA norm
}

function f64(a: Float32Array | Uint16Array | ArrayLike<number>): Float64Array {
  return Float64Array.from(a as ArrayLike<number>);
}

function rowNorm(W: Float64Array, a: RefAdapter, O: number, I: number): Float64Array {
  const n = new Float64Array(O);
  for (let o = 0; o < O; o++) {
    let ss = 0;
    for (let i = 0; i < I; i++) {
      let ba = 0;
      for (let k = 0; k < a.r; k++) ba += a.B[o * a.r + k]! * a.A[k * I + i]!;
      const v = W[o * I + i]! + a.s * ba;
      ss += v * v;
    }
    n[o] = Math.sqrt(ss);
  }
  return n;
}

/** y = x·Wᵀ + b, then each adapter as PEFT applies it (W given [O, I]). */
function refForward(x: Float64Array, N: number, W: Float64Array, b: Float64Array | null, ads: RefAdapter[], I: number, O: number): Float64Array {
  const y = new Float64Array(N * O);
  for (let n = 0; n < N; n++) for (let o = 0; o < O; o++) {
    let acc = b ? b[o]! : 0;
    for (let i = 0; i < I; i++) acc += x[n * I + i]! * W[o * I + i]!;
    y[n * O + o] = acc;
  }
  for (const a of ads) {
    const xd = a.mask ? x.map((v, i) => v * a.mask![i]!) : x;
    const lora = new Float64Array(N * O);
    for (let n = 0; n < N; n++) {
      const h = new Float64Array(a.r);
      for (let k = 0; k < a.r; k++) for (let i = 0; i < I; i++) h[k]! += xd[n * I + i]! * a.A[k * I + i]!;
      for (let o = 0; o < O; o++) {
        let acc = 0;
        for (let k = 0; k < a.r; k++) acc += h[k]! * a.B[o * a.r + k]!;
        lora[n * O + o] = a.s * (acc + (a.lb ? a.lb[o]! : 0));
      }
    }
    if (!a.m) {
      for (let j = 0; j < y.length; j++) y[j]! += lora[j]!;
      continue;
    }
    const norm = a.norm ?? rowNorm(W, a, O, I);
    for (let n = 0; n < N; n++) for (let o = 0; o < O; o++) {
      const g = a.m[o]! / norm[o]!;
      const j = n * O + o;
      if (a.mask) {
        let wx = 0;
        for (let i = 0; i < I; i++) wx += xd[n * I + i]! * W[o * I + i]!;
        y[j] = y[j]! + (g - 1) * wx + g * lora[j]!;
      } else {
        const bo = b ? b[o]! : 0;
        y[j] = y[j]! + (g - 1) * (y[j]! - bo) + g * lora[j]!;
      }
    }
  }
  return y;
}

function randn(n: number, rng: Rng, scale = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.normal(0, scale);
  return a;
}

function makeBase(I: number, O: number, opts: { bias?: boolean; transposed?: boolean; dtype?: 'f32' | 'bf16' | 'f16' }, rng: Rng): Linear {
  const lin = new Linear(I, O, { bias: opts.bias ?? false, transposed: opts.transposed ?? false, dtype: opts.dtype ?? 'f32' });
  lin.weight.value = Tensor.fromValues(randn(I * O, rng, 0.3), lin.weight.shape, opts.dtype ?? 'f32');
  if (lin.bias) lin.bias.value = Tensor.fromValues(randn(O, rng, 0.3), [O], opts.dtype ?? 'f32');
  return lin;
}

/** W as f64 [O, I] whatever the layout. */
function weightOI(l: LoraLinear): Float64Array {
  return l.weightMatrix64();
}

function refAdapter(a: LoraAdapter, mask?: Float64Array): RefAdapter {
  return { A: f64(a.A.data), B: f64(a.B.data), r: a.r, s: a.scaling, m: a.magnitude ? f64(a.magnitude.data) : undefined, lb: a.bias ? f64(a.bias.data) : undefined, mask };
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

function randomizeB(l: LoraLinear, name: string, rng: Rng): void {
  const B = l.adapter(name).B.data;
  B.set(randn(B.length, rng, 0.5));
}

interface Case {
  title: string;
  I: number;
  O: number;
  N: number;
  bias?: boolean;
  transposed?: boolean;
  dtype?: 'f32' | 'bf16';
  adapters: { name: string; r: number; alpha: number; rslora?: boolean; dora?: boolean; loraBias?: boolean; dropout?: number }[];
}

const cases: Case[] = [
  { title: 'plain LoRA', I: 7, O: 5, N: 3, adapters: [{ name: 'a', r: 3, alpha: 6 }] },
  { title: 'rsLoRA with a bias', I: 6, O: 4, N: 4, bias: true, adapters: [{ name: 'a', r: 4, alpha: 5, rslora: true }] },
  { title: 'Conv1D (transposed) base', I: 5, O: 9, N: 3, bias: true, transposed: true, adapters: [{ name: 'a', r: 2, alpha: 4 }] },
  { title: 'two adapters summed, one with lora_bias', I: 6, O: 5, N: 2, bias: true, adapters: [{ name: 'a', r: 2, alpha: 2 }, { name: 'b', r: 3, alpha: 9, loraBias: true }] },
  { title: 'DoRA', I: 6, O: 5, N: 3, bias: true, adapters: [{ name: 'a', r: 2, alpha: 4, dora: true }] },
  { title: 'DoRA on Conv1D', I: 5, O: 6, N: 2, bias: true, transposed: true, adapters: [{ name: 'a', r: 3, alpha: 3, dora: true }] },
  { title: 'DoRA after a plain adapter', I: 4, O: 5, N: 3, bias: true, adapters: [{ name: 'a', r: 2, alpha: 2 }, { name: 'b', r: 2, alpha: 8, dora: true }] },
  { title: 'LoRA with dropout', I: 8, O: 4, N: 5, adapters: [{ name: 'a', r: 3, alpha: 6, dropout: 0.3 }] },
  { title: 'DoRA with dropout', I: 8, O: 5, N: 4, bias: true, adapters: [{ name: 'a', r: 3, alpha: 6, dora: true, dropout: 0.25 }] },
  { title: 'two adapters, dropout on one (dx: one part through the mask, one straight)', I: 7, O: 4, N: 3, adapters: [{ name: 'a', r: 2, alpha: 4, dropout: 0.4 }, { name: 'b', r: 3, alpha: 6 }] },
  { title: 'two adapters, both with dropout', I: 6, O: 5, N: 4, bias: true, adapters: [{ name: 'a', r: 3, alpha: 3, dropout: 0.3 }, { name: 'b', r: 2, alpha: 8, dropout: 0.2 }] },
  { title: 'bf16 base weights', I: 6, O: 5, N: 3, bias: true, dtype: 'bf16', adapters: [{ name: 'a', r: 2, alpha: 4 }] },
];

function build(c: Case, seed: number): { layer: LoraLinear; rng: Rng; dropRng: Rng } {
  const rng = new Rng(seed);
  const base = makeBase(c.I, c.O, { bias: c.bias ?? false, transposed: c.transposed ?? false, dtype: c.dtype ?? 'f32' }, rng);
  const layer = new LoraLinear(base, { context: new LoraContext() });
  const dropRng = new Rng(seed + 1000);
  for (const a of c.adapters) {
    layer.addAdapter(a.name, { r: a.r, alpha: a.alpha, useRslora: a.rslora ?? false, useDora: a.dora ?? false, loraBias: a.loraBias ?? false, dropout: a.dropout ?? 0, rng: dropRng });
    randomizeB(layer, a.name, rng);
    const ad = layer.adapter(a.name);
    if (ad.bias) ad.bias.data.set(randn(c.O, rng, 0.5));
    if (ad.magnitude) for (let o = 0; o < c.O; o++) ad.magnitude.data[o] = ad.magnitude.data[o]! * (1 + 0.3 * rng.normal());
  }
  layer.setActive(c.adapters.map((a) => a.name));
  return { layer, rng, dropRng };
}

/** Dropout masks as the layer drew them: replay the stream (inverted dropout, one draw per element). */
function replayMasks(c: Case, state: readonly number[], N: number): (Float64Array | undefined)[] {
  const r = new Rng();
  r.setState(state);
  return c.adapters.map((a) => {
    const p = a.dropout ?? 0;
    if (p === 0) return undefined;
    const m = new Float64Array(N * c.I);
    for (let i = 0; i < m.length; i++) m[i] = r.nextFloat() < p ? 0 : 1 / (1 - p);
    return m;
  });
}

describe('LoraLinear forward', () => {
  it('a fresh adapter (B = 0) changes nothing', () => {
    const rng = new Rng(1);
    const base = makeBase(9, 6, { bias: false }, rng);
    const x = randn(4 * 9, rng);
    const y0 = base.forward(x, 4).slice();
    const l = new LoraLinear(base);
    l.addAdapter('default', { r: 4, alpha: 8, rng });
    l.setActive(['default']);
    assert.ok(l.adapter('default').A.data.some((v) => v !== 0), 'A is initialised');
    assert.ok(l.adapter('default').B.data.every((v) => v === 0), 'B starts at zero');
    assert.deepEqual(l.forward(x, 4), y0);
  });

  it('initialises A as torch.nn.init.kaiming_uniform_(a=√5): bound 1/√in', () => {
    assert.ok(Math.abs(kaimingUniformBound(512) - 1 / Math.sqrt(512)) < 1e-15);
    const rng = new Rng(2);
    const l = new LoraLinear(makeBase(400, 3, {}, rng));
    const a = l.addAdapter('a', { r: 8, alpha: 8, rng });
    const b = 1 / Math.sqrt(400);
    const A = a.A.data;
    assert.ok(A.every((v) => Math.abs(v) <= b));
    assert.ok(Math.max(...A) > 0.9 * b && Math.min(...A) < -0.9 * b, 'fills the whole range');
    const g = l.addAdapter('g', { r: 8, alpha: 8, rng, init: 'gaussian' });
    let ss = 0;
    for (const v of g.A.data) ss += v * v;
    const std = Math.sqrt(ss / g.A.data.length);
    assert.ok(Math.abs(std - 1 / 8) < 0.01, `gaussian std ${std} ≈ 1/r`);
    assert.ok(g.B.data.every((v) => v === 0));
    const f = l.addAdapter('f', { r: 8, alpha: 8, rng, init: false });
    assert.ok(f.B.data.some((v) => v !== 0), 'init false: B random');
    assert.ok(f.B.data.every((v) => Math.abs(v) <= 1 / Math.sqrt(8)));
  });

  for (const c of cases) {
    it(`matches the f64 reference: ${c.title}`, () => {
      const { layer, rng, dropRng } = build(c, 11);
      const x = randn(c.N * c.I, rng);
      const state = dropRng.state();
      const y = layer.forward(x, c.N);
      const masks = replayMasks(c, state, c.N);
      const b = layer.bias ? f64(layer.bias.value.toF32Array()) : null;
      const ref = refForward(f64(x), c.N, weightOI(layer), b, c.adapters.map((a, k) => refAdapter(layer.adapter(a.name), masks[k])), c.I, c.O);
      assert.ok(maxAbsDiff(y, ref) < 2e-5, `max diff ${maxAbsDiff(y, ref)}`);
    });
  }

  it('scales by alpha/r, or alpha/√r with rsLoRA', () => {
    assert.equal(loraScaling(16, 4, false), 4);
    assert.equal(loraScaling(16, 4, true), 8);
  });
});

describe('LoraLinear backward vs finite differences', () => {
  for (const c of cases) {
    it(c.title, () => {
      const { layer, rng, dropRng } = build(c, 23);
      const x = randn(c.N * c.I, rng);
      const cvec = randn(c.N * c.O, rng); // L = Σ c ⊙ y
      if (layer.bias) layer.bias.requiresGrad = true;
      layer.zeroGrad();
      // the base weight stays frozen: no gradient buffer, no work
      assert.equal(layer.weight.grad, null);
      const state = dropRng.state();
      layer.forward(x, c.N);
      const dx = layer.backward(cvec)!.slice();
      const masks = replayMasks(c, state, c.N);
      const W = weightOI(layer);
      const b = layer.bias ? f64(layer.bias.value.toF32Array()) : null;
      const refs = c.adapters.map((a, k) => {
        const r = refAdapter(layer.adapter(a.name), masks[k]);
        if (r.m) r.norm = rowNorm(W, r, c.O, c.I); // DoRA: the norm is detached
        return r;
      });
      const loss = (xx: Float64Array, bb: Float64Array | null): number => {
        const y = refForward(xx, c.N, W, bb, refs, c.I, c.O);
        let s = 0;
        for (let j = 0; j < y.length; j++) s += y[j]! * cvec[j]!;
        return s;
      };
      const x64 = f64(x);
      const fd = (arr: Float64Array, i: number, f: () => number): number => {
        const h = 1e-5;
        const v = arr[i]!;
        arr[i] = v + h;
        const up = f();
        arr[i] = v - h;
        const dn = f();
        arr[i] = v;
        return (up - dn) / (2 * h);
      };
      const tol = (g: number): number => 2e-4 * Math.max(1, Math.abs(g));
      for (let i = 0; i < x64.length; i++) {
        const g = fd(x64, i, () => loss(x64, b));
        assert.ok(Math.abs(dx[i]! - g) < tol(g), `dx[${i}] ${dx[i]} vs ${g}`);
      }
      c.adapters.forEach((spec, k) => {
        const a = layer.adapter(spec.name);
        const r = refs[k]!;
        const check = (what: string, arr: Float64Array, grad: Float32Array | null): void => {
          assert.ok(grad, `${what} has a gradient buffer`);
          for (let i = 0; i < arr.length; i++) {
            const g = fd(arr, i, () => loss(x64, b));
            assert.ok(Math.abs(grad[i]! - g) < tol(g), `${spec.name}.${what}[${i}] ${grad[i]} vs ${g}`);
          }
        };
        check('A', r.A, a.A.grad);
        check('B', r.B, a.B.grad);
        if (r.m) check('m', r.m, a.magnitude!.grad);
        if (r.lb) check('lora_bias', r.lb, a.bias!.grad);
      });
      if (b && layer.bias!.grad) {
        const bias = b;
        for (let i = 0; i < bias.length; i++) {
          const g = fd(bias, i, () => loss(x64, bias));
          assert.ok(Math.abs(layer.bias!.grad[i]! - g) < tol(g), `bias[${i}] ${layer.bias!.grad[i]} vs ${g}`);
        }
      }
    });
  }

  it('adds into gradients (two backwards double them) and skips dx when not wanted', () => {
    const c = cases[0]!;
    const { layer, rng } = build(c, 5);
    const x = randn(c.N * c.I, rng);
    const dy = randn(c.N * c.O, rng);
    layer.zeroGrad();
    layer.forward(x, c.N);
    layer.backward(dy);
    const once = layer.adapter('a').A.grad!.slice();
    layer.forward(x, c.N);
    layer.computeInputGrad = false;
    assert.equal(layer.backward(dy), null);
    const twice = layer.adapter('a').A.grad!;
    assert.ok(maxAbsDiff(twice, once.map((v) => 2 * v)) < 1e-5);
  });
});

describe('LoraLinear merge', () => {
  // (a DoRA adapter merged after another one is normalised with the merged weight, as in PEFT, so that case is left out)
  for (const c of cases.filter((k) => !k.adapters.some((a) => a.dropout) && k.title !== 'DoRA after a plain adapter')) {
    it(`merged output equals unmerged, unmerge restores W: ${c.title}`, () => {
      const { layer, rng } = build(c, 31);
      layer.eval();
      const x = randn(c.N * c.I, rng);
      const y = layer.forward(x, c.N).slice();
      const W0 = layer.weight.value.clone();
      const b0 = layer.bias?.value.clone();
      layer.merge();
      assert.deepEqual(layer.merged, c.adapters.map((a) => a.name));
      const ym = layer.forward(x, c.N);
      const tolY = c.dtype === 'bf16' ? 0.05 : 2e-5;
      assert.ok(maxAbsDiff(ym, y) < tolY, `merged vs unmerged ${maxAbsDiff(ym, y)}`);
      layer.unmerge();
      assert.deepEqual(layer.merged, []);
      if (c.dtype === 'bf16') {
        assert.deepEqual(layer.weight.value.data, W0.data, 'half weights are restored exactly');
      } else {
        assert.ok(maxAbsDiff(layer.weight.value.f32, W0.f32) < 1e-6, `W restored ${maxAbsDiff(layer.weight.value.f32, W0.f32)}`);
      }
      if (b0) assert.ok(maxAbsDiff(layer.bias!.value.toF32Array(), b0.toF32Array()) < 1e-6);
      assert.ok(maxAbsDiff(layer.forward(x, c.N), y) < 1e-5);
    });
  }

  it('merges W += s·B·A in the Conv1D layout', () => {
    const c = cases[2]!;
    const { layer } = build(c, 3);
    const a = layer.adapter('a');
    const W0 = layer.weight.value.f32.slice();
    layer.merge();
    const W1 = layer.weight.value.f32;
    // W stored [I, O]: W[i, o] += s·Σ_k B[o, k]·A[k, i]
    for (let i = 0; i < c.I; i++) for (let o = 0; o < c.O; o++) {
      let d = 0;
      for (let k = 0; k < a.r; k++) d += a.B.data[o * a.r + k]! * a.A.data[k * c.I + i]!;
      assert.ok(Math.abs(W1[i * c.O + o]! - W0[i * c.O + o]! - a.scaling * d) < 1e-5);
    }
  });

  it('safe merge refuses non-finite weights, names adapter and module, and leaves W alone', () => {
    const rng = new Rng(4);
    const l = new LoraLinear(makeBase(4, 3, {}, rng), { path: 'model.layers.0.q_proj' });
    l.addAdapter('bad', { r: 2, alpha: 2, rng });
    l.adapter('bad').B.data[1] = Number.NaN;
    l.setActive(['bad']);
    const W0 = l.weight.value.f32.slice();
    assert.throws(() => l.merge({ safeMerge: true }), /adapter "bad".*NaN\/Inf.*model\.layers\.0\.q_proj/);
    assert.deepEqual(l.weight.value.f32, W0);
    assert.deepEqual(l.merged, []);
  });

  it('PiSSA keeps the layer output and puts the top singular directions in A and B (torch.linalg.svd fixture)', () => {
    // tests/fixtures/pissa/svd.json (tests/reference/pissa.py): W, and torch's U_r·diag(S_r)·Vh_r
    // and residual. s·B·A and the residual do not depend on singular-vector signs, so a wrong
    // direction (the 4th instead of the 3rd, say) misses by the size of a singular value (60%
    // relative here). Randomized subspace iteration converges with the spectrum's gaps: with
    // 16 power steps it is within 1% of torch's exact answer on these matrices.
    const fx = JSON.parse(fs.readFileSync(path.join(ROOT, 'tests/fixtures/pissa/svd.json'), 'utf8')) as { cases: { out: number; in: number; r: number; W: number[]; sBA: number[]; residual: number[] }[] };
    const rng = new Rng(6);
    for (const c of fx.cases) {
      for (const [init, tol] of [['pissa', 1e-5], ['pissa_niter_16', 1e-2]] as const) {
        for (const transposed of [false, true]) {
          const base = makeBase(c.in, c.out, { transposed }, rng);
          const Wt = new Float32Array(c.out * c.in);
          for (let o = 0; o < c.out; o++) for (let i = 0; i < c.in; i++) Wt[transposed ? i * c.out + o : o * c.in + i] = c.W[o * c.in + i]!;
          base.weight.value.f32.set(Wt);
          const x = randn(3 * c.in, rng);
          const y0 = base.forward(x, 3).slice();
          const l = new LoraLinear(base);
          const a = l.addAdapter('p', { r: c.r, alpha: 2 * c.r, init, rng });
          l.setActive(['p']);
          assert.ok(maxAbsDiff(l.forward(x, 3), y0) < 1e-4, `${init} output unchanged`);
          const res = l.weightMatrix64();
          let err = 0;
          let norm = 0;
          let resErr = 0;
          for (let o = 0; o < c.out; o++) {
            for (let i = 0; i < c.in; i++) {
              let v = 0;
              for (let k = 0; k < c.r; k++) v += a.scaling * a.B.data[o * c.r + k]! * a.A.data[k * c.in + i]!;
              err += (v - c.sBA[o * c.in + i]!) ** 2;
              norm += c.sBA[o * c.in + i]! ** 2;
              resErr = Math.max(resErr, Math.abs(res[o * c.in + i]! - c.residual[o * c.in + i]!));
            }
          }
          const rel = Math.sqrt(err / norm);
          assert.ok(rel < tol, `${init} ${c.out}×${c.in} r=${c.r}${transposed ? ' transposed' : ''}: s·B·A is ${rel} (relative) from torch's top-${c.r} part`);
          assert.ok(resErr < Math.max(1e-5, 4 * tol), `${init}: residual differs from torch's by ${resErr}`);
        }
      }
    }
  });
});
