// Gradient tests for src/nn: every layer's backward against central finite differences of
// the scalar loss L = Σ y·r (r fixed and random, so dL/dy = r), for input and parameter
// gradients; frozen parameters, computeInputGrad, half-precision weights, the KV cache
// and gradient checkpointing. Runs on the ref backend and on the native one when present.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { alignedFloat32Array, getBackend, type Backend } from '../../src/backend/index.js';
import { nativeBackend, setBackend } from '../../src/backend/native/select.js';
import { loadAddon } from '../../src/backend/native/index.js';
import { TiedLMHead } from '../../src/models/decoder.js';
import { ShapeError, Tensor } from '../../src/tensor/tensor.js';
import {
  ArenaBuffers,
  Buffers,
  ScratchArena,
  AttentionCore,
  Dropout,
  Embedding,
  GatedMLP,
  GELU,
  GeluMLP,
  GradientCheckpointing,
  KVCache,
  LayerNorm,
  Linear,
  Module,
  ModuleList,
  MultiHeadAttention,
  RMSNorm,
  addInputGrad,
  Rope,
  SiLU,
  SwiGLU,
  retainedBytes,
  ropeInvFreq,
  type AttnContext,
  type CheckpointBlock,
  type RowLayer,
} from '../../src/nn/index.js';
import { Rng } from '../../src/tensor/rng.js';

// ---------------------------------------------------------------------------------------
// helpers

function rand(rng: Rng, n: number, scale = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = (rng.nextFloat() * 2 - 1) * scale;
  return a;
}

function dot(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

/** Fills every parameter below m with uniform values (norm weights around 1). */
function initParams(m: Module, rng: Rng, scale = 0.5): void {
  for (const [name, p] of m.namedParameters()) {
    const n = p.value.size;
    const v = rand(rng, n, scale);
    if (/norm|ln_/.test(name) && name.endsWith('weight')) for (let i = 0; i < n; i++) v[i] = 1 + v[i]! * 0.4;
    p.value.set(v);
  }
}

interface GradTarget {
  name: string;
  /** the array the forward reads (perturbed in place) */
  data: Float32Array;
  /** the analytic gradient after backward (copied right after backward) */
  grad: () => Float32Array | null;
}

/**
 * Checks analytic gradients against central differences. `run` runs the forward from the
 * current data and returns y; `back(dy)` runs the backward. Up to `maxPerTarget` entries
 * of each target are checked (all of them for small targets).
 */
function gradCheck(
  what: string,
  run: () => Float32Array,
  back: (dy: Float32Array) => void,
  targets: GradTarget[],
  opts: { eps?: number; rtol?: number; atol?: number; maxPerTarget?: number; zeroGrad?: () => void } = {},
): void {
  const eps = opts.eps ?? 1e-2;
  const rtol = opts.rtol ?? 1e-2;
  const atol = opts.atol ?? 2e-3;
  const rng = new Rng(1234);
  const y0 = run();
  const r = rand(rng, y0.length);
  opts.zeroGrad?.();
  back(r);
  const analytic = targets.map((t) => {
    const g = t.grad();
    assert.ok(g, `${what}: no gradient for ${t.name}`);
    assert.equal(g.length, t.data.length, `${what}: gradient of ${t.name} has the wrong length`);
    return g.slice();
  });
  const maxPer = opts.maxPerTarget ?? 150;
  targets.forEach((t, ti) => {
    const n = t.data.length;
    const idx = n <= maxPer ? Array.from({ length: n }, (_, i) => i) : Array.from({ length: maxPer }, () => rng.nextInt(n));
    let maxAbs = 0;
    for (const g of analytic[ti]!) maxAbs = Math.max(maxAbs, Math.abs(g));
    assert.ok(maxAbs > 0, `${what}: gradient of ${t.name} is all zeros (the test would be vacuous)`);
    for (const i of idx) {
      const old = t.data[i]!;
      t.data[i] = old + eps;
      const lp = dot(run(), r);
      t.data[i] = old - eps;
      const lm = dot(run(), r);
      t.data[i] = old;
      const num = (lp - lm) / (2 * eps);
      const ana = analytic[ti]![i]!;
      const tol = atol + rtol * Math.max(Math.abs(num), Math.abs(ana));
      assert.ok(Math.abs(num - ana) <= tol, `${what}: d/d${t.name}[${i}] analytic ${ana} vs numeric ${num}`);
    }
  });
}

function paramTarget(m: Module, name: string): GradTarget {
  const p = new Map(m.namedParameters()).get(name);
  if (!p) throw new Error(`no parameter ${name}`);
  return { name, data: p.data, grad: () => p.grad };
}

function allParamTargets(m: Module): GradTarget[] {
  return m.namedParameters().map(([name]) => paramTarget(m, name));
}

function assertClose(a: Float32Array, b: Float32Array, tol: number, what: string): void {
  assert.equal(a.length, b.length, `${what}: lengths differ`);
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    assert.ok(d <= tol * (1 + Math.abs(b[i]!)), `${what}[${i}]: ${a[i]} vs ${b[i]}`);
  }
}

// a RowLayer wrapper like a LoRA adapter: y = 2·base(x) + dropout(x)·0.5 summed into the first
// column; the dropout sits inside a Map of plain objects (as adapters keep it), with its own Rng
class Wrapped extends Module implements RowLayer {
  readonly inFeatures: number;
  readonly outFeatures: number;
  computeInputGrad = true;
  calls = 0;
  private readonly adapters: Map<string, { dropout: Dropout }>;
  private N = 0;
  constructor(readonly base: RowLayer, dropoutP = 0, seed = 0) {
    super();
    this.inFeatures = base.inFeatures;
    this.outFeatures = base.outFeatures;
    this.adapters = new Map([['default', { dropout: new Dropout(dropoutP, new Rng(seed)) }]]);
  }
  forward(x: Float32Array, N: number): Float32Array {
    this.calls++;
    this.N = N;
    const y = this.base.forward(x, N);
    const out = this.buffers.get('out', y.length);
    for (let i = 0; i < y.length; i++) out[i] = y[i]! * 2;
    const xd = this.adapters.get('default')!.dropout.forward(x);
    for (let n = 0; n < N; n++) for (let k = 0; k < this.inFeatures; k++) out[n * this.outFeatures] += 0.5 * xd[n * this.inFeatures + k]!;
    return out;
  }
  backward(dy: Float32Array): Float32Array | null {
    const d = this.buffers.get('d', dy.length);
    for (let i = 0; i < dy.length; i++) d[i] = dy[i]! * 2;
    this.base.computeInputGrad = this.computeInputGrad;
    const dxBase = this.base.backward(d);
    if (!dxBase) return null;
    const dxd = this.buffers.get('dxd', this.N * this.inFeatures);
    for (let n = 0; n < this.N; n++) for (let k = 0; k < this.inFeatures; k++) dxd[n * this.inFeatures + k] = 0.5 * dy[n * this.outFeatures]!;
    const dx = this.buffers.get('dx', dxd.length);
    getBackend().add(dx, dxBase, this.adapters.get('default')!.dropout.backward(dxd));
    return dx;
  }
}

// ---------------------------------------------------------------------------------------
// a pre-norm decoder block, as a model would compose one, for the checkpointing test

class TestBlock extends Module implements CheckpointBlock<AttnContext> {
  readonly C: number;
  private N = 0;
  constructor(C: number, rope: Rope, dropRng: Rng) {
    super();
    this.C = C;
    this.registerModule('input_layernorm', new RMSNorm(C));
    this.registerModule('self_attn', new MultiHeadAttention(C, { nHeads: 4, nKvHeads: 2, headDim: 6, rope }));
    this.registerModule('dropout', new Dropout(0.2, dropRng));
    this.registerModule('post_attention_layernorm', new RMSNorm(C));
    this.registerModule('mlp', new GatedMLP(C, 14));
  }
  private get n1(): RMSNorm {
    return this.getModule('input_layernorm') as RMSNorm;
  }
  private get n2(): RMSNorm {
    return this.getModule('post_attention_layernorm') as RMSNorm;
  }
  private get attn(): MultiHeadAttention {
    return this.getModule('self_attn') as MultiHeadAttention;
  }
  private get drop(): Dropout {
    return this.getModule('dropout') as Dropout;
  }
  private get mlp(): GatedMLP {
    return this.getModule('mlp') as GatedMLP;
  }
  // h = x + drop(attn(n1(x))); y = h + mlp(n2(h))
  forward(x: Float32Array, ctx: AttnContext): Float32Array {
    const N = ctx.B * ctx.T;
    const be = getBackend();
    const a = this.drop.forward(this.attn.forward(this.n1.forward(x, N), ctx));
    const h = this.buffers.get('h', N * this.C);
    be.add(h, x, a);
    const m = this.mlp.forward(this.n2.forward(h, N), N);
    const y = this.buffers.get('y', N * this.C);
    be.add(y, h, m);
    this.N = N;
    return y;
  }
  backward(dy: Float32Array): Float32Array | null {
    const be = getBackend();
    const dh = this.buffers.get('dh', this.N * this.C);
    dh.set(dy);
    const dmlp = this.mlp.backward(dy)!;
    be.add(dh, dh, this.n2.backward(dmlp)!);
    const da = this.attn.backward(this.drop.backward(dh))!;
    const dx = this.buffers.get('dx', this.N * this.C);
    be.add(dx, dh, this.n1.backward(da)!);
    return dx;
  }
}

// ---------------------------------------------------------------------------------------

const backends: ('ref' | 'native')[] = ['ref'];
if (nativeBackend()) backends.push('native');

for (const bname of backends) {
  describe(`nn layers on the ${bname} backend`, () => {
    let saved: Backend;
    before(() => {
      saved = getBackend();
      setBackend(bname);
    });
    after(() => {
      setBackend(saved);
    });

    // ---------------- Rng
    it('Rng: seeded, replayable through state()/setState()', () => {
      const a = new Rng(42);
      const b = new Rng(42);
      const c = new Rng(43);
      const xs = Array.from({ length: 8 }, () => a.nextU32());
      assert.deepEqual(Array.from({ length: 8 }, () => b.nextU32()), xs);
      assert.notDeepEqual(Array.from({ length: 8 }, () => c.nextU32()), xs);
      const st = a.state();
      const next = Array.from({ length: 5 }, () => a.nextFloat());
      a.setState(st);
      assert.deepEqual(Array.from({ length: 5 }, () => a.nextFloat()), next);
      for (const f of next) assert.ok(f >= 0 && f < 1);
      assert.throws(() => a.setState([0, 0, 0, 0]), /all-zero/);
      let sum = 0;
      for (let i = 0; i < 20000; i++) sum += a.nextFloat();
      assert.ok(Math.abs(sum / 20000 - 0.5) < 0.01);
    });

    // ---------------- Linear
    it('Linear: input, weight and bias gradients (plain and Conv1D layout)', () => {
      for (const transposed of [false, true]) {
        const rng = new Rng(1);
        const lin = new Linear(5, 7, { bias: true, transposed }).requiresGrad(true);
        initParams(lin, rng);
        const N = 3;
        const x = rand(rng, N * 5);
        let dx = new Float32Array(0);
        gradCheck(`Linear transposed=${transposed}`, () => lin.forward(x, N), (dy) => void (dx = lin.backward(dy)!.slice()), [
          { name: 'x', data: x, grad: () => dx },
          ...allParamTargets(lin),
        ], { zeroGrad: () => lin.zeroGrad() });
      }
    });

    it('Linear: frozen weights get no gradient buffer; computeInputGrad=false returns null', () => {
      const rng = new Rng(2);
      const lin = new Linear(5, 7, { bias: true });
      initParams(lin, rng);
      const x = rand(rng, 15);
      lin.forward(x, 3);
      assert.equal(lin.weight.grad, null);
      const dx = lin.backward(rand(rng, 21));
      assert.ok(dx && dx.length === 15);
      lin.computeInputGrad = false;
      lin.forward(x, 3);
      assert.equal(lin.backward(rand(rng, 21)), null);
      assert.equal(lin.weight.grad, null);
      assert.equal(lin.bias!.grad, null);
    });

    it('Linear: bf16 and f16 weights give the same results as f32 weights holding the rounded values', () => {
      for (const dtype of ['bf16', 'f16'] as const) {
        for (const transposed of [false, true]) {
          const rng = new Rng(3);
          const half = new Linear(9, 11, { bias: true, transposed, dtype });
          initParams(half, rng);
          assert.equal(half.weight.value.dtype, dtype);
          const full = new Linear(9, 11, { bias: true, transposed });
          full.loadStateDict(new Map(half.namedParameters().map(([n, p]) => [n, p.value.toF32()])));
          const x = rand(rng, 5 * 9);
          const dy = rand(rng, 5 * 11);
          assertClose(half.forward(x, 5).slice(), full.forward(x, 5).slice(), 1e-6, `${dtype} forward`);
          assertClose(half.backward(dy)!.slice(), full.backward(dy)!.slice(), 1e-6, `${dtype} dx`);
        }
      }
    });

    // ---------------- Embedding
    it('Embedding: scatter-add gradient (repeated ids), range errors name the id and vocab size', () => {
      const rng = new Rng(4);
      const emb = new Embedding(7, 5).requiresGrad(true);
      initParams(emb, rng);
      const ids = Int32Array.from([3, 0, 3, 6]);
      gradCheck('Embedding', () => emb.forward(ids), (dy) => emb.backward(dy), [paramTarget(emb, 'weight')], { zeroGrad: () => emb.zeroGrad() });
      // rows never looked up get exactly zero gradient
      emb.zeroGrad();
      emb.forward(ids);
      emb.backward(rand(rng, 20));
      for (const row of [1, 2, 4, 5]) for (let c = 0; c < 5; c++) assert.equal(emb.weight.grad![row * 5 + c], 0);
      assert.throws(() => emb.forward(Int32Array.from([1, 7])), (e: Error) => e instanceof RangeError && /ids\[1\] = 7/.test(e.message) && /vocabulary of 7/.test(e.message));
      assert.throws(() => emb.forward(Int32Array.from([-1])), /-1/);
      const frozen = new Embedding(7, 5);
      frozen.forward(ids);
      frozen.backward(rand(rng, 20));
      assert.equal(frozen.weight.grad, null);
    });

    // ---------------- norms
    it('RMSNorm: input and weight gradients', () => {
      const rng = new Rng(5);
      const norm = new RMSNorm(5, { eps: 1e-5 }).requiresGrad(true);
      initParams(norm, rng);
      const x = rand(rng, 15);
      let dx = new Float32Array(0);
      gradCheck('RMSNorm', () => norm.forward(x, 3), (dy) => void (dx = norm.backward(dy)!.slice()), [{ name: 'x', data: x, grad: () => dx }, paramTarget(norm, 'weight')], {
        zeroGrad: () => norm.zeroGrad(),
      });
      assert.throws(() => norm.forward(rand(rng, 14), 3), (e: Error) => e instanceof ShapeError && /RMSNorm\.forward: x has 14 elements, expected \[3, 5\]/.test(e.message));
    });

    it('LayerNorm: input, weight and bias gradients; without bias', () => {
      for (const bias of [true, false]) {
        const rng = new Rng(6);
        const norm = new LayerNorm(5, { bias }).requiresGrad(true);
        initParams(norm, rng);
        const x = rand(rng, 15, 2);
        let dx = new Float32Array(0);
        gradCheck(`LayerNorm bias=${bias}`, () => norm.forward(x, 3), (dy) => void (dx = norm.backward(dy)!.slice()), [{ name: 'x', data: x, grad: () => dx }, ...allParamTargets(norm)], {
          zeroGrad: () => norm.zeroGrad(),
        });
        assert.equal(norm.bias === null, !bias);
      }
    });

    it('norms: frozen weights get no gradient; computeInputGrad=false returns null', () => {
      const rng = new Rng(7);
      for (const norm of [new RMSNorm(5), new LayerNorm(5)]) {
        const x = rand(rng, 15);
        norm.forward(x, 3);
        assert.ok(norm.backward(rand(rng, 15)));
        norm.computeInputGrad = false;
        norm.forward(x, 3);
        assert.equal(norm.backward(rand(rng, 15)), null);
        for (const p of norm.parameters()) assert.equal(p.grad, null);
      }
    });

    // ---------------- activations
    it('GELU (exact and tanh), SiLU, SwiGLU: gradients', () => {
      const rng = new Rng(8);
      for (const approx of ['none', 'tanh'] as const) {
        const g = new GELU(approx);
        const x = rand(rng, 15, 3);
        let dx = new Float32Array(0);
        gradCheck(`GELU ${approx}`, () => g.forward(x), (dy) => void (dx = g.backward(dy).slice()), [{ name: 'x', data: x, grad: () => dx }]);
      }
      const s = new SiLU();
      const x = rand(rng, 15, 3);
      let dx = new Float32Array(0);
      gradCheck('SiLU', () => s.forward(x), (dy) => void (dx = s.backward(dy).slice()), [{ name: 'x', data: x, grad: () => dx }]);
      const sw = new SwiGLU();
      const gate = rand(rng, 15, 3);
      const up = rand(rng, 15, 2);
      let dg = new Float32Array(0);
      let du = new Float32Array(0);
      gradCheck(
        'SwiGLU',
        () => sw.forward(gate, up),
        (dy) => {
          const r = sw.backward(dy);
          dg = r.dgate.slice();
          du = r.dup.slice();
        },
        [
          { name: 'gate', data: gate, grad: () => dg },
          { name: 'up', data: up, grad: () => du },
        ],
      );
    });

    // ---------------- dropout
    it('Dropout: inverted mask in training, identity in eval, same mask in backward, seeded', () => {
      const p = 0.3;
      const n = 10000;
      const rng = new Rng(9);
      const x = rand(new Rng(10), n);
      const d = new Dropout(p, rng);
      const st = rng.state();
      const y = d.forward(x).slice();
      let dropped = 0;
      for (let i = 0; i < n; i++) {
        if (y[i] === 0) dropped++;
        else assert.ok(Math.abs(y[i]! - x[i]! / (1 - p)) <= 1e-6 * (1 + Math.abs(x[i]!)), `kept value ${i}`);
      }
      assert.ok(Math.abs(dropped / n - p) < 0.03, `dropped fraction ${dropped / n}`);
      const dy = rand(new Rng(11), n);
      const dx = d.backward(dy);
      for (let i = 0; i < n; i++) {
        const want = y[i] === 0 && x[i] !== 0 ? 0 : Math.fround(dy[i]! * Math.fround(1 / (1 - p)));
        assert.ok(dx[i] === want, `dx[${i}] = ${dx[i]}, expected ${want}`); // === : -0 and 0 both mean dropped
      }
      // the same Rng state draws the same mask
      rng.setState(st);
      assert.deepEqual(d.forward(x), y);
      d.eval();
      assert.equal(d.forward(x), x);
      assert.equal(d.backward(dy), dy);
      assert.throws(() => new Dropout(1), RangeError);
      // finite differences with the mask held fixed (the Rng restored before each forward)
      d.train();
      const xs = rand(new Rng(12), 15);
      let dxs = new Float32Array(0);
      gradCheck('Dropout', () => (rng.setState(st), d.forward(xs)), (g) => void (dxs = d.backward(g).slice()), [{ name: 'x', data: xs, grad: () => dxs }]);
    });

    // ---------------- MLPs
    it('GatedMLP: input and parameter gradients; default and custom child names', () => {
      const rng = new Rng(13);
      const mlp = new GatedMLP(5, 7, { bias: true }).requiresGrad(true);
      assert.deepEqual(mlp.namedParameters().map(([n]) => n), ['gate_proj.weight', 'gate_proj.bias', 'up_proj.weight', 'up_proj.bias', 'down_proj.weight', 'down_proj.bias']);
      initParams(mlp, rng);
      const x = rand(rng, 15);
      let dx = new Float32Array(0);
      gradCheck('GatedMLP', () => mlp.forward(x, 3), (dy) => void (dx = mlp.backward(dy)!.slice()), [{ name: 'x', data: x, grad: () => dx }, ...allParamTargets(mlp)], {
        zeroGrad: () => mlp.zeroGrad(),
      });
      const named = new GatedMLP(5, 7, { names: { gate: 'w1', up: 'w3', down: 'w2' } });
      assert.deepEqual(named.namedParameters().map(([n]) => n), ['w1.weight', 'w3.weight', 'w2.weight']);
    });

    it('GeluMLP: gradients with Conv1D weights (GPT-2 names, tanh) and plain fc1/fc2 (exact)', () => {
      for (const [transposed, approx, names] of [
        [true, 'tanh', { fc: 'c_fc', proj: 'c_proj' }],
        [false, 'none', undefined],
      ] as const) {
        const rng = new Rng(14);
        const mlp = new GeluMLP(5, 7, { transposed, approx, ...(names ? { names } : {}) }).requiresGrad(true);
        assert.equal(mlp.namedParameters()[0]![0], names ? 'c_fc.weight' : 'fc1.weight');
        assert.deepEqual(mlp.namedParameters()[0]![1].shape, transposed ? [5, 7] : [7, 5]);
        initParams(mlp, rng);
        const x = rand(rng, 15);
        let dx = new Float32Array(0);
        gradCheck(`GeluMLP ${approx}`, () => mlp.forward(x, 3), (dy) => void (dx = mlp.backward(dy)!.slice()), [{ name: 'x', data: x, grad: () => dx }, ...allParamTargets(mlp)], {
          zeroGrad: () => mlp.zeroGrad(),
        });
      }
    });

    it('MLP: frozen children get no gradient work, computeInputGrad=false returns null', () => {
      const rng = new Rng(15);
      const mlp = new GatedMLP(5, 7);
      initParams(mlp, rng);
      (mlp.getModule('down_proj') as Linear).requiresGrad(true);
      const x = rand(rng, 15);
      mlp.computeInputGrad = false;
      mlp.forward(x, 3);
      assert.equal(mlp.backward(rand(rng, 15)), null);
      assert.equal((mlp.getModule('gate_proj') as Linear).weight.grad, null);
      const gdown = (mlp.getModule('down_proj') as Linear).weight.grad!;
      assert.ok(gdown.some((v) => v !== 0));
      // the trainable down_proj gets the same gradient as with input gradients on
      const dy = rand(new Rng(115), 15);
      mlp.zeroGrad();
      mlp.forward(x, 3);
      assert.equal(mlp.backward(dy), null);
      const g1 = gdown.slice();
      mlp.zeroGrad();
      mlp.computeInputGrad = true;
      mlp.forward(x, 3);
      assert.ok(mlp.backward(dy));
      assert.deepEqual(gdown, g1);
      const all = new GeluMLP(5, 7);
      all.computeInputGrad = false;
      all.forward(x, 3);
      assert.equal(all.backward(rand(rng, 15)), null);
    });

    it('GatedMLP and MultiHeadAttention with bf16 weights match f32 weights holding the rounded values', () => {
      const rng = new Rng(27);
      const C = 8;
      const x = rand(rng, 2 * 3 * C);
      const dy = rand(rng, 2 * 3 * C);
      const pairs: [GatedMLP | MultiHeadAttention, GatedMLP | MultiHeadAttention][] = [
        [new GatedMLP(C, 12, { dtype: 'bf16' }), new GatedMLP(C, 12)],
        [new MultiHeadAttention(C, { nHeads: 4, nKvHeads: 2, headDim: 6, bias: true, dtype: 'bf16', rope: new Rope(6) }), new MultiHeadAttention(C, { nHeads: 4, nKvHeads: 2, headDim: 6, bias: true, rope: new Rope(6) })],
      ];
      for (const [half, full] of pairs) {
        initParams(half, rng);
        for (const [, p] of half.namedParameters()) assert.equal(p.value.dtype, 'bf16');
        full.loadStateDict(new Map(half.namedParameters().map(([n, p]) => [n, p.value.toF32()])));
        const ctx = { B: 2, T: 3 };
        const run = (m: GatedMLP | MultiHeadAttention): Float32Array => (m instanceof GatedMLP ? m.forward(x, 6) : m.forward(x, ctx)).slice();
        assertClose(run(half), run(full), 1e-5, `${half.constructor.name} bf16 forward`);
        assertClose(half.backward(dy)!.slice(), full.backward(dy)!.slice(), 1e-5, `${half.constructor.name} bf16 dx`);
      }
    });

    it('frozen layers with computeInputGrad=false do no kernel work in backward', () => {
      const inner = getBackend();
      const calls: string[] = [];
      const counting = Object.fromEntries(
        Object.entries(inner).map(([k, v]) => [k, typeof v === 'function' ? (...a: unknown[]) => (calls.push(k), (v as (...b: unknown[]) => unknown).apply(inner, a)) : v]),
      ) as unknown as Backend;
      const rng = new Rng(28);
      const C = 8;
      const x = rand(rng, 6 * C);
      const dy = rand(rng, 6 * C);
      const ctx = { B: 2, T: 3 };
      const mha = new MultiHeadAttention(C, { nHeads: 4, nKvHeads: 2, headDim: 6, rope: new Rope(6) });
      const layers: [string, Module & { computeInputGrad: boolean; backward(d: Float32Array): Float32Array | null }][] = [
        ['Linear', new Linear(C, C)],
        ['RMSNorm', new RMSNorm(C)],
        ['LayerNorm', new LayerNorm(C)],
        ['GatedMLP', new GatedMLP(C, 12)],
        ['GeluMLP', new GeluMLP(C, 12)],
        ['MultiHeadAttention', mha],
      ];
      for (const [name, layer] of layers) {
        initParams(layer, rng);
        if (layer instanceof MultiHeadAttention) layer.forward(x, ctx);
        else (layer as unknown as RowLayer).forward(x, 6);
        layer.computeInputGrad = false;
        setBackend(counting);
        calls.length = 0;
        try {
          assert.equal(layer.backward(dy), null, name);
        } finally {
          setBackend(inner);
        }
        assert.deepEqual(calls, [], `${name} backward called ${calls.join(', ')}`);
      }
      // only o_proj trainable: one GEMM for its weight gradient, no attention backward
      (mha.getModule('o_proj') as Linear).requiresGrad(true);
      mha.forward(x, ctx);
      setBackend(counting);
      calls.length = 0;
      try {
        assert.equal(mha.backward(dy), null);
      } finally {
        setBackend(inner);
      }
      assert.deepEqual(calls, ['gemm']);
    });

    // ---------------- rope
    it('ropeInvFreq matches f32 PyTorch rounding; tables grow on demand; rotation is undone by inverse', () => {
      const inv = ropeInvFreq(6, 10000);
      const f = Math.fround;
      for (let i = 0; i < 3; i++) assert.equal(inv[i], f(1 / f(10000 ** f((2 * i) / 6))));
      assert.equal(inv[0], 1);
      const rope = new Rope(6, { layout: 'half' });
      assert.equal(rope.positions, 0);
      const x = rand(new Rng(16), 2 * 3 * 2 * 6);
      const y = x.slice();
      rope.apply(y, Int32Array.from([0, 1, 200, 3, 4, 5]), 2, 3, 2);
      assert.ok(rope.positions >= 201);
      // position 0 is the identity, angles of position p are fround(p·invFreq)
      assertClose(y.subarray(0, 12), x.subarray(0, 12), 1e-7, 'pos 0');
      assert.equal(rope.cos[200 * 3 + 1], f(Math.cos(f(200 * inv[1]!))));
      rope.apply(y, Int32Array.from([0, 1, 200, 3, 4, 5]), 2, 3, 2, true);
      assertClose(y, x, 1e-5, 'inverse');
      const scaled = new Rope(6, { attentionScaling: 1.5, maxPositions: 8 });
      assert.equal(scaled.cos[3 * 3 + 2], f(f(Math.cos(f(3 * inv[2]!))) * 1.5));
      assert.throws(() => new Rope(6, { invFreq: new Float32Array(2) }), ShapeError);
    });

    // ---------------- attention core
    const attnCases: { name: string; causal: boolean; mask: 'none' | 'pad' | 'full'; layout: 'half' | 'interleaved' | null }[] = [
      { name: 'causal, rope half', causal: true, mask: 'none', layout: 'half' },
      { name: 'causal, rope interleaved, padding mask', causal: true, mask: 'pad', layout: 'interleaved' },
      { name: 'non-causal, padding mask, no rope', causal: false, mask: 'pad', layout: null },
      { name: 'non-causal, full [B,T,S] mask, rope half', causal: false, mask: 'full', layout: 'half' },
    ];
    for (const c of attnCases) {
      it(`AttentionCore gradients (GQA Hq=4 Hkv=2 D=6): ${c.name}`, () => {
        const rng = new Rng(17);
        const B = 2;
        const T = 5;
        const Hq = 4;
        const Hkv = 2;
        const D = 6;
        const rope = c.layout ? new Rope(D, { layout: c.layout, theta: 100 }) : null;
        const core = new AttentionCore({ nHeads: Hq, nKvHeads: Hkv, headDim: D, causal: c.causal, rope });
        const q = rand(rng, B * T * Hq * D);
        const k = rand(rng, B * T * Hkv * D);
        const v = rand(rng, B * T * Hkv * D);
        let mask: Float32Array | null = null;
        if (c.mask === 'pad') {
          mask = new Float32Array(B * T);
          mask[T + 0] = -Infinity; // row 1: the first key is padding (left padding)
          mask[T + 1] = -Infinity;
        } else if (c.mask === 'full') {
          mask = rand(rng, B * T * T);
          mask[3] = -Infinity;
        }
        const positions = Int32Array.from([0, 1, 2, 3, 4, 0, 0, 0, 1, 2]);
        const ctx: AttnContext = { B, T, positions, mask };
        let g = { dq: new Float32Array(0), dk: new Float32Array(0), dv: new Float32Array(0) };
        gradCheck(
          `AttentionCore ${c.name}`,
          () => core.forward(q, k, v, ctx),
          (dy) => {
            const r = core.backward(dy);
            g = { dq: r.dq.slice(), dk: r.dk.slice(), dv: r.dv.slice() };
          },
          [
            { name: 'q', data: q, grad: () => g.dq },
            { name: 'k', data: k, grad: () => g.dk },
            { name: 'v', data: v, grad: () => g.dv },
          ],
        );
        // the inputs were not modified by rope (it works on copies)
        const q2 = q.slice();
        core.forward(q, k, v, ctx);
        assert.deepEqual(q, q2);
      });
    }

    it('AttentionCore: causal attention ignores later tokens; padding mask hides keys', () => {
      const rng = new Rng(18);
      const core = new AttentionCore({ nHeads: 2, headDim: 4, causal: true, rope: new Rope(4) });
      const q = rand(rng, 5 * 8);
      const k = rand(rng, 5 * 8);
      const v = rand(rng, 5 * 8);
      const out1 = core.forward(q, k, v, { B: 1, T: 5 }).slice();
      k.fill(7, 4 * 8);
      v.fill(-3, 4 * 8);
      const out2 = core.forward(q, k, v, { B: 1, T: 5 }).slice();
      assertClose(out2.subarray(0, 4 * 8), out1.subarray(0, 4 * 8), 1e-6, 'causal prefix');
      assert.throws(() => core.forward(q, k, v, { B: 1, T: 5, mask: new Float32Array(4) }), /mask has 4 elements, expected \[1, 5\]/);
      assert.throws(() => core.forward(q.subarray(1), k, v, { B: 1, T: 5 }), (e: Error) => e instanceof ShapeError && /AttentionCore\.forward: q has 39 elements/.test(e.message));
    });

    // ---------------- multi-head attention
    for (const fused of [false, true]) {
      it(`MultiHeadAttention gradients (x and all params, GQA, rope, padding)${fused ? ' with a fused qkv projection' : ''}`, () => {
        const rng = new Rng(19);
        const B = 2;
        const T = 5;
        const C = 8;
        const mha = new MultiHeadAttention(C, {
          nHeads: 4,
          nKvHeads: 2,
          headDim: 6,
          bias: true,
          oBias: false,
          rope: new Rope(6, { theta: 500 }),
          ...(fused ? { names: { qkv: 'c_attn', o: 'c_proj' }, transposed: true } : {}),
        }).requiresGrad(true);
        assert.deepEqual(
          mha.namedParameters().map(([n]) => n),
          fused ? ['c_attn.weight', 'c_attn.bias', 'c_proj.weight'] : ['q_proj.weight', 'q_proj.bias', 'k_proj.weight', 'k_proj.bias', 'v_proj.weight', 'v_proj.bias', 'o_proj.weight'],
        );
        initParams(mha, rng);
        const x = rand(rng, B * T * C);
        const mask = new Float32Array(B * T);
        mask[T] = -Infinity;
        const ctx: AttnContext = { B, T, mask, positions: Int32Array.from([0, 1, 2, 3, 4, 0, 0, 1, 2, 3]) };
        let dx = new Float32Array(0);
        gradCheck(`MHA fused=${fused}`, () => mha.forward(x, ctx), (dy) => void (dx = mha.backward(dy)!.slice()), [{ name: 'x', data: x, grad: () => dx }, ...allParamTargets(mha)], {
          zeroGrad: () => mha.zeroGrad(),
          maxPerTarget: 60,
        });
      });
    }

    it('MultiHeadAttention gradients with per-head q/k norms (Qwen3) and a sliding window; a frozen q_proj under a learning q_norm', () => {
      const rng = new Rng(29);
      const B = 2;
      const T = 7;
      const C = 8;
      const mha = new MultiHeadAttention(C, { nHeads: 4, nKvHeads: 2, headDim: 6, bias: true, rope: new Rope(6, { theta: 500 }), qkNorm: { eps: 1e-6 }, window: 3 }).requiresGrad(true);
      assert.deepEqual(mha.namedParameters().map(([n]) => n).filter((n) => n.includes('norm')), ['q_norm.weight', 'k_norm.weight']);
      initParams(mha, rng);
      const x = rand(rng, B * T * C);
      const ctx: AttnContext = { B, T };
      let dx = new Float32Array(0);
      gradCheck('MHA qk-norm', () => mha.forward(x, ctx), (dy) => void (dx = mha.backward(dy)!.slice()), [{ name: 'x', data: x, grad: () => dx }, ...allParamTargets(mha)], {
        zeroGrad: () => mha.zeroGrad(),
        maxPerTarget: 40,
      });
      // only the norms learn and no input gradient is wanted: they still get theirs
      mha.requiresGrad(false);
      mha.qNorm.weight.requiresGrad = true;
      mha.qNorm.weight.grad = new Float32Array(6);
      mha.computeInputGrad = false;
      mha.forward(x, ctx);
      assert.equal(mha.backward(rand(rng, B * T * C)), null);
      assert.ok(mha.qNorm.weight.grad.some((g) => g !== 0), 'q_norm learns');
    });

    it('MultiHeadAttention: fused qkv gives the same result as split projections with the same weights', () => {
      const rng = new Rng(20);
      const C = 8;
      const opts = { nHeads: 4, nKvHeads: 2, headDim: 6, bias: true, rope: new Rope(6) };
      const split = new MultiHeadAttention(C, opts);
      initParams(split, rng);
      const fused = new MultiHeadAttention(C, { ...opts, names: { qkv: 'qkv' } });
      const sp = new Map(split.namedParameters().map(([n, p]) => [n, p.data]));
      const w = new Float32Array(48 * C);
      w.set(sp.get('q_proj.weight')!, 0);
      w.set(sp.get('k_proj.weight')!, 24 * C);
      w.set(sp.get('v_proj.weight')!, 36 * C);
      const b = new Float32Array(48);
      b.set(sp.get('q_proj.bias')!, 0);
      b.set(sp.get('k_proj.bias')!, 24);
      b.set(sp.get('v_proj.bias')!, 36);
      fused.loadStateDict(new Map([
        ['qkv.weight', Tensor.fromF32(w, [48, C])],
        ['qkv.bias', Tensor.fromF32(b, [48])],
        ['o_proj.weight', Tensor.fromF32(sp.get('o_proj.weight')!, [C, 24])],
        ['o_proj.bias', Tensor.fromF32(sp.get('o_proj.bias')!, [C])],
      ]));
      const x = rand(rng, 2 * 3 * C);
      const ctx = { B: 2, T: 3 };
      assertClose(fused.forward(x, ctx).slice(), split.forward(x, ctx).slice(), 1e-6, 'fused vs split');
      const dy = rand(rng, 2 * 3 * C);
      assertClose(fused.backward(dy)!.slice(), split.backward(dy)!.slice(), 1e-6, 'fused vs split dx');
    });

    it('MultiHeadAttention: frozen projections get no gradient; computeInputGrad=false; children replaceable via setModule', () => {
      const rng = new Rng(21);
      const C = 8;
      const mha = new MultiHeadAttention(C, { nHeads: 4, nKvHeads: 2, headDim: 6, rope: new Rope(6) });
      initParams(mha, rng);
      const x = rand(rng, 2 * 3 * C);
      const ctx = { B: 2, T: 3 };
      mha.forward(x, ctx);
      const dx = mha.backward(rand(rng, 2 * 3 * C));
      assert.ok(dx);
      for (const p of mha.parameters()) assert.equal(p.grad, null);
      mha.computeInputGrad = false;
      mha.forward(x, ctx);
      assert.equal(mha.backward(rand(rng, 2 * 3 * C)), null);

      // swap v_proj for a wrapper (as LoRA injection does) that doubles its output
      const old = mha.getModule('v_proj') as Linear;
      const y0 = mha.forward(x, ctx).slice();
      const w = new Wrapped(old);
      mha.setModule('v_proj', w);
      old.requiresGrad(true);
      mha.computeInputGrad = true;
      const y1 = mha.forward(x, ctx).slice();
      assert.equal(w.calls, 1);
      assert.notDeepEqual(y1, y0);
      // the wrapper's output reaches the layer output (exact expectations are in the checkpoint test)
      assert.ok(y1.some((v, i) => Math.abs(v - y0[i]!) > 1e-3));
      mha.backward(rand(rng, 2 * 3 * C));
      assert.ok(old.weight.grad!.some((v) => v !== 0));
      assert.equal((mha.getModule('q_proj') as Linear).weight.grad, null);
    });

    // ---------------- KV cache
    it('KV cache: token-by-token (and chunked) forward equals the full-sequence forward; growth; backward refused', () => {
      const rng = new Rng(22);
      const C = 8;
      const B = 2;
      const T = 6;
      for (const layout of ['half', 'interleaved'] as const) {
        const mha = new MultiHeadAttention(C, { nHeads: 4, nKvHeads: 2, headDim: 6, bias: true, rope: new Rope(6, { layout }) });
        initParams(mha, rng);
        const x = rand(rng, B * T * C);
        const full = mha.forward(x, { B, T }).slice();
        const cache = new KVCache(1, { capacity: 2 }); // grows on the way
        const chunks = [[0, 3], [3, 4], [4, 5], [5, 6]];
        const got = new Float32Array(B * T * C);
        for (const [t0, t1] of chunks) {
          const n = t1! - t0!;
          const xs = new Float32Array(B * n * C);
          for (let b = 0; b < B; b++) xs.set(x.subarray((b * T + t0!) * C, (b * T + t1!) * C), b * n * C);
          const y = mha.forward(xs, { B, T: n, cache: cache.layer(0) });
          for (let b = 0; b < B; b++) got.set(y.subarray(b * n * C, (b + 1) * n * C), (b * T + t0!) * C);
          if (t0! > 0) assert.throws(() => mha.backward(new Float32Array(B * n * C)), /earlier keys from a KV cache/);
        }
        assert.equal(cache.length, T);
        assert.ok(cache.layer(0).capacity >= T);
        assertClose(got, full, 1e-5, `cache ${layout}`);
        cache.reset();
        assert.equal(cache.length, 0);
      }
    });

    it('KV cache of a sliding-window layer: keeps only its window, and token-by-token, chunked and padded forwards equal the full one', () => {
      const rng = new Rng(31);
      const C = 8;
      const B = 2;
      const T = 23;
      const W = 4;
      const mha = new MultiHeadAttention(C, { nHeads: 4, nKvHeads: 2, headDim: 6, rope: new Rope(6), window: W });
      initParams(mha, rng);
      const x = rand(rng, B * T * C);
      const full = mha.forward(x, { B, T }).slice();
      // the window changes the result (keys more than W − 1 back are hidden)
      const wide = new MultiHeadAttention(C, { nHeads: 4, nKvHeads: 2, headDim: 6, rope: new Rope(6) });
      wide.loadStateDict(new Map(mha.namedParameters().map(([n, p]) => [n, p.value])));
      const wideOut = wide.forward(x, { B, T });
      assert.ok(wideOut.some((v, i) => Math.abs(v - full[i]!) > 1e-3), 'the window hides something');
      for (const chunks of [Array.from({ length: T }, (_, t) => [t, t + 1]), [[0, 5], [5, 6], [6, 13], [13, 14], [14, 23]]]) {
        const cache = new KVCache(1, { windows: [W] });
        const layer = cache.layer(0);
        const got = new Float32Array(B * T * C);
        for (const [t0, t1] of chunks) {
          const n = t1! - t0!;
          const xs = new Float32Array(B * n * C);
          for (let b = 0; b < B; b++) xs.set(x.subarray((b * T + t0!) * C, (b * T + t1!) * C), b * n * C);
          const y = mha.forward(xs, { B, T: n, cache: layer });
          for (let b = 0; b < B; b++) got.set(y.subarray(b * n * C, (b + 1) * n * C), (b * T + t0!) * C);
          assert.ok(layer.held <= 2 * W + n, `held ${layer.held} slots for a window of ${W}`);
        }
        assert.equal(layer.length, T, 'length counts every slot appended');
        assert.ok(layer.start > 0 && layer.held < T, 'old slots were dropped');
        assert.ok(layer.capacity <= 2 * (2 * W + 9), `capacity ${layer.capacity} stays near the window (grown by doubling)`);
        assertClose(got, full, 1e-5, `windowed cache, chunks ${JSON.stringify(chunks.slice(0, 2))}…`);
      }
      // a [B, S] padding mask over every slot: the columns of dropped slots are skipped
      const cache = new KVCache(1, { windows: [W] });
      const mask = new Float32Array(B * T);
      mask[0] = -Infinity; // row 0: one pad slot in front (hidden)
      const maskedFull = mha.forward(x, { B, T, mask }).slice();
      const got = new Float32Array(B * T * C);
      for (let t = 0; t < T; t++) {
        const xs = new Float32Array(B * C);
        for (let b = 0; b < B; b++) xs.set(x.subarray((b * T + t) * C, (b * T + t + 1) * C), b * C);
        const m = new Float32Array(B * (t + 1));
        m[0] = -Infinity;
        const y = mha.forward(xs, { B, T: 1, mask: m, cache: cache.layer(0) });
        for (let b = 0; b < B; b++) got.set(y.subarray(b * C, (b + 1) * C), (b * T + t) * C);
      }
      // row 0, token 0 sees no key at all: its output is zeros in both
      assertClose(got, maskedFull, 1e-5, 'windowed cache with a padding mask');
      assert.throws(() => mha.forward(x.subarray(0, B * C), { B, T: 1, cache: new KVCache(1).layer(0) }), /window of 0, the layer attends with 4/);
    });

    it('KV cache: select(rows) drops finished rows and the rest continue as if alone; padding mask with the cache', () => {
      const rng = new Rng(23);
      const C = 8;
      const T = 4;
      const mha = new MultiHeadAttention(C, { nHeads: 4, nKvHeads: 2, headDim: 6, rope: new Rope(6) });
      initParams(mha, rng);
      const x3 = rand(rng, 3 * T * C); // three sequences of T tokens
      // reference: each sequence alone, full forward
      const ref = [0, 1, 2].map((b) => mha.forward(x3.slice(b * T * C, (b + 1) * T * C), { B: 1, T }).slice());
      const cache = new KVCache(2);
      const first = new Float32Array(3 * 2 * C);
      for (let b = 0; b < 3; b++) first.set(x3.subarray(b * T * C, (b * T + 2) * C), b * 2 * C);
      mha.forward(first, { B: 3, T: 2, cache: cache.layer(1) });
      for (const rows of [[0, 2], [2, 0]]) {
        const c2 = new KVCache(2);
        mha.forward(first, { B: 3, T: 2, cache: c2.layer(1) });
        c2.select(rows);
        assert.equal(c2.batch, 2);
        for (let t = 2; t < T; t++) {
          const xs = new Float32Array(2 * C);
          rows.forEach((b, j) => xs.set(x3.subarray((b * T + t) * C, (b * T + t + 1) * C), j * C));
          const y = mha.forward(xs, { B: 2, T: 1, cache: c2.layer(1) });
          rows.forEach((b, j) => assertClose(y.slice(j * C, (j + 1) * C), ref[b]!.slice(t * C, (t + 1) * C), 1e-5, `select ${rows} row ${b} t ${t}`));
        }
      }
      // left padding: sequence 1 has one pad token in front; explicit positions and a [B, S] mask
      const pad = new Float32Array(2 * (T + 1) * C);
      pad.set(x3.subarray(0, T * C), C); // row 0: [pad, seq0]
      pad.set(x3.subarray(0, T * C), (T + 1) * C + C); // row 1: same, for symmetry
      const cacheP = new KVCache(1);
      const S = T + 1;
      const maskFull = new Float32Array(2 * S);
      maskFull[0] = -Infinity;
      maskFull[S] = -Infinity;
      const positions = Int32Array.from([0, 0, 1, 2, 3, 0, 0, 1, 2, 3]);
      const yPad = mha.forward(pad, { B: 2, T: S, positions, mask: maskFull, cache: cacheP.layer(0) }).slice();
      assertClose(yPad.subarray(C, S * C), ref[0]!, 1e-5, 'left-padded prefill');
      // one more token via the cache matches a fresh full forward with the same padding
      const xNext = rand(rng, 2 * C);
      const mask2 = new Float32Array(2 * (S + 1));
      mask2[0] = -Infinity;
      mask2[S + 1] = -Infinity;
      const yNext = mha.forward(xNext, { B: 2, T: 1, positions: Int32Array.from([4, 4]), mask: mask2, cache: cacheP.layer(0) }).slice();
      const whole = new Float32Array(2 * (S + 1) * C);
      for (let b = 0; b < 2; b++) {
        whole.set(pad.subarray(b * S * C, (b + 1) * S * C), b * (S + 1) * C);
        whole.set(xNext.subarray(b * C, (b + 1) * C), (b * (S + 1) + S) * C);
      }
      const yWhole = mha.forward(whole, { B: 2, T: S + 1, positions: Int32Array.from([0, 0, 1, 2, 3, 4, 0, 0, 1, 2, 3, 4]), mask: mask2 });
      for (let b = 0; b < 2; b++) assertClose(yNext.subarray(b * C, (b + 1) * C), yWhole.slice((b * (S + 1) + S) * C, (b * (S + 1) + S + 1) * C), 1e-5, `decode after pad row ${b}`);
    });

    // ---------------- gradient checkpointing
    it('gradient checkpointing: identical gradients (with dropout), much smaller retained buffers', () => {
      const C = 8;
      const B = 2;
      const T = 5;
      const L = 4;
      const build = (): { blocks: ModuleList<TestBlock>; rng: Rng } => {
        const dropRng = new Rng(99);
        const rope = new Rope(6);
        const blocks = new ModuleList<TestBlock>(Array.from({ length: L }, () => new TestBlock(C, rope, dropRng)));
        initParams(blocks, new Rng(24));
        blocks.requiresGrad(true);
        return { blocks, rng: dropRng };
      };
      const x = rand(new Rng(25), B * T * C);
      const dy = rand(new Rng(26), B * T * C);
      const ctx: AttnContext = { B, T, mask: Float32Array.from([0, 0, 0, 0, 0, -Infinity, 0, 0, 0, 0]) };
      const runModel = (enabled: boolean): { grads: Float32Array[]; dx: Float32Array; y: Float32Array; bytes: number; maxBlockBytes: number; rngState: number[] } => {
        const { blocks, rng } = build();
        const ck = new GradientCheckpointing(enabled);
        let y: Float32Array = new Float32Array(0);
        let dx: Float32Array | null = null;
        for (let step = 0; step < 2; step++) {
          if (step === 1) {
            // adapters injected between steps are picked up (the wrapper's base stays trainable)
            [...blocks].forEach((blk, i) => blk.setModule('self_attn.q_proj', new Wrapped(blk.getModule('self_attn.q_proj') as Linear, 0.25, 100 + i)));
          }
          blocks.zeroGrad();
          let h = x;
          for (const blk of blocks) h = ck.forward(blk, h, ctx);
          y = h.slice();
          let d: Float32Array | null = dy;
          for (let i = L - 1; i >= 0; i--) d = ck.backward(blocks.at(i), d!);
          dx = d;
        }
        if (enabled) for (const [path, m] of blocks.namedModules()) if (path.includes('.')) assert.ok(m.buffers instanceof ArenaBuffers, `${path} draws from the arena`);
        return { grads: blocks.parameters().map((p) => p.grad!.slice()), dx: dx!.slice(), y, bytes: retainedBytes(blocks, ck), maxBlockBytes: Math.max(...[...blocks].map((b) => retainedBytes(b))), rngState: rng.state() };
      };
      const plain = runModel(false);
      const ckpt = runModel(true);
      assert.deepEqual(ckpt.y, plain.y);
      assert.deepEqual(ckpt.dx, plain.dx);
      assert.equal(ckpt.grads.length, plain.grads.length);
      ckpt.grads.forEach((g, i) => assert.deepEqual(g, plain.grads[i], `grad ${i}`));
      assert.deepEqual(ckpt.rngState, plain.rngState, 'the dropout stream ends where it would without checkpointing');
      assert.ok(plain.grads.some((g) => g.some((v) => v !== 0)));
      // L blocks' activations become one block's (the largest), plus one saved input per block and 3 shared rows
      const rowBytes = B * T * C * 4;
      assert.ok(ckpt.bytes <= plain.maxBlockBytes + (L + 3) * rowBytes, `checkpointed ${ckpt.bytes} bytes vs plain ${plain.bytes}`);
      assert.ok(ckpt.bytes < plain.bytes / 2);
    });
  });
}

describe('input gradients added into a given buffer (backward(dy, into))', () => {
  const close = (got: Float32Array, want: Float32Array, what: string): void => {
    for (let i = 0; i < want.length; i++) assert.ok(Math.abs(got[i]! - want[i]!) <= 1e-5 * (1 + Math.abs(want[i]!)), `${what}[${i}]: ${got[i]} vs ${want[i]}`);
  };
  it('Linear, TiedLMHead, RMSNorm and LayerNorm add dx into `into` and return it', () => {
    const rng = new Rng(31);
    const N = 5, I = 7, O = 4;
    const lin = new Linear(I, O, { bias: true });
    initParams(lin, rng);
    const rms = new RMSNorm(I);
    const ln = new LayerNorm(I);
    initParams(rms, rng);
    initParams(ln, rng);
    const emb = new Embedding(11, I);
    initParams(emb, rng);
    const head = new TiedLMHead(emb);
    const x = rand(rng, N * I);
    const cases: [string, (dy: Float32Array, into?: Float32Array) => Float32Array | null, number][] = [
      ['Linear', (dy, into) => lin.backward(dy, into), (lin.forward(x, N), N * O)],
      ['TiedLMHead', (dy, into) => head.backward(dy, into), (head.forward(x, N), N * 11)],
      ['RMSNorm', (dy, into) => rms.backward(dy, into), (rms.forward(x, N), N * I)],
      ['LayerNorm', (dy, into) => ln.backward(dy, into), (ln.forward(x, N), N * I)],
    ];
    for (const [what, back, ny] of cases) {
      const dy = rand(rng, ny);
      const alone = back(dy)!.slice();
      const start = rand(rng, N * I);
      const into = start.slice();
      assert.equal(back(dy, into), into, `${what} returns into`);
      close(into, start.map((v, i) => v + alone[i]!), what);
      assert.throws(() => back(dy, new Float32Array(N * I + 1)), new RegExp(`${what}\\.backward: into has ${N * I + 1} elements, expected \\[${N}, ${I}\\]`));
    }
  });

  it('addInputGrad adds the dx of a layer that ignores `into`', () => {
    const dx = Float32Array.from([1, 2, 3]);
    const own: RowLayer = { inFeatures: 3, outFeatures: 1, computeInputGrad: true, forward: (x) => x, backward: () => dx };
    const into = Float32Array.from([10, 20, 30]);
    assert.equal(addInputGrad(own, new Float32Array(1), into), into);
    assert.deepEqual([...into], [11, 22, 33]);
    assert.equal(addInputGrad(own, new Float32Array(1), undefined), dx, 'without into: the layer\'s own dx');
  });

  it('Rope.apply from a source array equals rotating a copy in place, and checks the length', () => {
    const rng = new Rng(32);
    const B = 2, T = 3, H = 2, D = 8;
    const rope = new Rope(D);
    const pos = Int32Array.from({ length: B * T }, (_, i) => i % T);
    const src = rand(rng, B * T * H * D);
    const inPlace = src.slice();
    rope.apply(inPlace, pos, B, T, H);
    const out = new Float32Array(src.length);
    const before = src.slice();
    rope.apply(out, pos, B, T, H, false, src);
    assert.deepEqual(out, inPlace);
    assert.deepEqual(src, before, 'src unchanged');
    assert.throws(() => rope.apply(out, pos, B, T, H, false, src.subarray(1)), /Rope\.apply: src has 95 elements, x has 96/);
  });
});

describe('activation arrays on a cache line', () => {
  const addon = loadAddon().addon;
  it('alignedFloat32Array: n zeros, and a 64-byte aligned start for large arrays when the addon is loaded', { skip: addon ? false : 'no native addon' }, () => {
    const where = (a: Float32Array) => addon!['byteAlignment']!(a) as number;
    for (const n of [4096, 4097, 100_000, 1 << 20]) {
      const a = alignedFloat32Array(n);
      assert.equal(a.length, n);
      assert.equal(where(a), 0, `${n} floats start on a line`);
      assert.ok(a.every((x) => x === 0), 'zero-filled');
    }
    const small = alignedFloat32Array(10);
    assert.equal(small.length, 10);
    assert.equal(small.byteOffset, 0, 'small arrays are plain');
  });
  it('Buffers and the scratch arena hand out aligned arrays', { skip: addon ? false : 'no native addon' }, () => {
    const where = (a: Float32Array) => addon!['byteAlignment']!(a) as number;
    const b = new Buffers();
    assert.equal(where(b.get('x', 5000)), 0);
    assert.equal(where(b.get('x', 3000)), 0, 'a shorter view of the same array');
    const s = new ScratchArena();
    assert.equal(where(s.take(70_000)), 0);
  });
});
