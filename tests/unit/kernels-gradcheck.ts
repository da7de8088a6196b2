// Gradient checks of the reference backward kernels against central finite differences of
// their forward kernels. The ref kernels run on Float64Arrays here (see f64()), so the
// differences are accurate to ~1e-9 and the tolerances can be tight: these tests prove
// the oracle right.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { refBackend as ref } from '../../src/backend/ref/index.js';
import type { AttentionArgs } from '../../src/backend/types.js';
import { assertClose, f64, randInts, randn, rng } from './kernels-util.js';

/** Σ g·y in f64 */
function dot(g: ArrayLike<number>, y: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < g.length; i++) s += g[i]! * y[i]!;
  return s;
}

/**
 * Central differences of loss() with respect to every element of x (a Float64Array or a
 * Float32Array; the step actually stored is what divides), compared with `analytic`.
 */
function checkGrad(what: string, x: Float32Array, analytic: ArrayLike<number>, loss: () => number, h = 1e-5, rtol = 1e-6, atol = 1e-8): void {
  const fd = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const x0 = x[i]!;
    x[i] = x0 + h;
    const xp = x[i]!;
    const lp = loss();
    x[i] = x0 - h;
    const xm = x[i]!;
    const lm = loss();
    x[i] = x0;
    fd[i] = (lp - lm) / (xp - xm);
  }
  assertClose(analytic, fd, what, rtol, atol);
}

export function registerGradChecks(): void {
  describe('ref backward kernels agree with finite differences', () => {
    it('rmsnorm: dinp (f64) and dweight (f32 weight)', () => {
      const r = rng(1);
      const N = 3;
      const C = 17;
      const x = f64(randn(r, N * C, -2, 2));
      const w = randn(r, C, 0.5, 1.5);
      const g = randn(r, N * C);
      const out = f64(N * C);
      const rstd = f64(N);
      const loss = (): number => {
        ref.rmsnormForward(out, rstd, x, w, N, C, 1e-5);
        return dot(g, out);
      };
      loss();
      const dx = f64(N * C);
      const dw = f64(C);
      ref.rmsnormBackward(dx, dw, f64(g), x, w, rstd, N, C);
      checkGrad('rmsnorm dinp', x, dx, loss);
      checkGrad('rmsnorm dweight', w, dw, loss, 1e-3, 1e-6, 1e-8);
    });

    it('layernorm: dinp, dweight, dbias', () => {
      const r = rng(2);
      const N = 3;
      const C = 17;
      const x = f64(randn(r, N * C, -2, 2));
      const w = randn(r, C, 0.5, 1.5);
      const b = randn(r, C);
      const g = randn(r, N * C);
      const out = f64(N * C);
      const mean = f64(N);
      const rstd = f64(N);
      const loss = (): number => {
        ref.layernormForward(out, mean, rstd, x, w, b, N, C, 1e-5);
        return dot(g, out);
      };
      loss();
      const dx = f64(N * C);
      const dw = f64(C);
      const db = f64(C);
      ref.layernormBackward(dx, dw, db, f64(g), x, w, mean, rstd, N, C);
      checkGrad('layernorm dinp', x, dx, loss);
      checkGrad('layernorm dweight', w, dw, loss, 1e-3);
      checkGrad('layernorm dbias', b, db, loss, 1e-3);
    });

    for (const approx of ['none', 'tanh'] as const) {
      it(`gelu (${approx})`, () => {
        const r = rng(3);
        const n = 65;
        const x = f64(randn(r, n, -6, 6));
        const g = randn(r, n);
        const out = f64(n);
        const loss = (): number => {
          ref.geluForward(out, x, approx);
          return dot(g, out);
        };
        const dx = f64(n);
        ref.geluBackward(dx, x, f64(g), approx);
        checkGrad(`gelu ${approx}`, x, dx, loss);
      });
    }

    it('silu and swiglu', () => {
      const r = rng(4);
      const n = 65;
      const gate = f64(randn(r, n, -6, 6));
      const up = f64(randn(r, n, -2, 2));
      const g = randn(r, n);
      const out = f64(n);
      const siluLoss = (): number => {
        ref.siluForward(out, gate);
        return dot(g, out);
      };
      const dsilu = f64(n);
      ref.siluBackward(dsilu, gate, f64(g));
      checkGrad('silu', gate, dsilu, siluLoss);
      const loss = (): number => {
        ref.swigluForward(out, gate, up);
        return dot(g, out);
      };
      const dgate = f64(n);
      const dup = f64(n);
      ref.swigluBackward(dgate, dup, f64(g), gate, up);
      checkGrad('swiglu dgate', gate, dgate, loss);
      checkGrad('swiglu dup', up, dup, loss);
    });

    for (const interleaved of [false, true]) {
      it(`rope (${interleaved ? 'interleaved' : 'half-split'}): backward is the inverse rotation`, () => {
        const r = rng(5);
        const B = 2;
        const T = 3;
        const H = 3;
        const D = 8;
        const P = 11;
        const cos = new Float32Array(P * (D / 2));
        const sin = new Float32Array(P * (D / 2));
        for (let p = 0; p < P; p++) {
          for (let i = 0; i < D / 2; i++) {
            const a = p * 10000 ** (-(2 * i) / D);
            cos[p * (D / 2) + i] = Math.cos(a);
            sin[p * (D / 2) + i] = Math.sin(a);
          }
        }
        const pos = randInts(r, B * T, P);
        const x = f64(randn(r, B * T * H * D));
        const g = randn(r, B * T * H * D);
        const y = f64(x.length);
        const loss = (): number => {
          y.set(x);
          ref.rope(y, cos, sin, pos, B, T, H, D, interleaved, false);
          return dot(g, y);
        };
        const dx = f64(g);
        ref.rope(dx, cos, sin, pos, B, T, H, D, interleaved, true);
        checkGrad('rope', x, dx, loss);
      });
    }

    it('cross-entropy, with an ignored row and a gradient scale', () => {
      const r = rng(6);
      const N = 4;
      const V = 17;
      const logits = f64(randn(r, N * V, -4, 4));
      const targets = Int32Array.from([3, -100, 16, 0]);
      const losses = f64(N);
      const gs = 0.37;
      const loss = (): number => {
        ref.crossEntropyForward(losses, logits, targets, N, V, -100);
        let s = 0;
        for (let n = 0; n < N; n++) s += gs * losses[n]!;
        return s;
      };
      loss();
      assert.equal(losses[1], 0);
      const dl = f64(N * V);
      ref.crossEntropyBackward(dl, logits, targets, N, V, gs, -100);
      checkGrad('cross-entropy dlogits', logits, dl, loss);
    });

    it('embedding: dtable (repeated ids accumulate)', () => {
      const r = rng(7);
      const V = 5;
      const C = 3;
      const N = 7;
      const table = randn(r, V * C);
      const ids = Int32Array.from([0, 4, 4, 2, 0, 4, 1]);
      const g = randn(r, N * C);
      const out = f64(N * C);
      const loss = (): number => {
        ref.embeddingForward(out, ids, table, N, C);
        return dot(g, out);
      };
      const dt = f64(V * C);
      ref.embeddingBackward(dt, f64(g), ids, N, C);
      checkGrad('embedding dtable', table, dt, loss, 1e-3);
    });

    const cases: { name: string; a: Omit<AttentionArgs, 'mask' | 'scale'>; mask: 'none' | 'keys' | 'full' }[] = [
      { name: 'causal, GQA, S > T, full mask with a fully hidden row', a: { B: 2, T: 3, S: 5, Hq: 6, Hkv: 2, D: 4, causal: true }, mask: 'full' },
      { name: 'not causal, key-padding mask', a: { B: 2, T: 3, S: 4, Hq: 2, Hkv: 1, D: 5, causal: false }, mask: 'keys' },
      { name: 'causal, no mask, MHA', a: { B: 1, T: 4, S: 4, Hq: 2, Hkv: 2, D: 3, causal: true }, mask: 'none' },
    ];
    for (const c of cases) {
      it(`attention: ${c.name}`, () => {
        const r = rng(8);
        const { B, T, S, Hq, Hkv, D } = c.a;
        let mask: Float32Array | null = null;
        if (c.mask === 'keys') {
          mask = new Float32Array(B * S);
          mask[S - 1] = -Infinity; // batch 0 hides its last key
          mask[S + 1] = -0.5; // batch 1 damps key 1
        } else if (c.mask === 'full') {
          mask = randn(r, B * T * S, -1, 0);
          mask[1] = -Infinity;
          mask.fill(-Infinity, (T + 1) * S, (T + 2) * S); // batch 1, query 1: every key hidden
        }
        const args: AttentionArgs = { ...c.a, scale: 1 / Math.sqrt(D), mask };
        const q = f64(randn(r, B * T * Hq * D));
        const k = f64(randn(r, B * S * Hkv * D));
        const v = f64(randn(r, B * S * Hkv * D));
        const g = randn(r, B * T * Hq * D);
        const out = f64(B * T * Hq * D);
        const lse = f64(B * Hq * T);
        const loss = (): number => {
          ref.attentionForward(out, lse, q, k, v, args);
          return dot(g, out);
        };
        loss();
        for (const x of out) assert.ok(Number.isFinite(x), 'attention output is finite');
        if (c.mask === 'full') {
          // batch 1, query 1 sees no key: zeros
          for (let h = 0; h < Hq; h++) for (let d = 0; d < D; d++) assert.equal(out[(T + 1) * Hq * D + h * D + d], 0);
        }
        const dq = f64(q.length);
        const dk = f64(k.length);
        const dv = f64(v.length);
        ref.attentionBackward(dq, dk, dv, f64(g), q, k, v, out, lse, args);
        checkGrad('attention dq', q, dq, loss);
        checkGrad('attention dk', k, dk, loss);
        checkGrad('attention dv', v, dv, loss);
      });
    }
  });
}
