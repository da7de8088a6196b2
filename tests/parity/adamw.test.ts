// Training steps against an independent oracle: torch.optim.AdamW (weight decay in groups),
// torch.nn.utils.clip_grad_norm_ and a warmup + cosine schedule, on a plain LoRA and a DoRA
// adapter of a Linear with a bias (tests/reference/adamw.py → tests/fixtures/adamw/steps.json).
// lorakit's own pieces run the same 8 steps: LoraLinear forward/backward, clipGradNorm,
// createOptimizer's AdamW and groups, makeSchedule. Every step's loss and gradient norm, and
// the final A, B and magnitude, must match.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { LoraLinear } from '../../src/lora/lora-linear.js';
import { Linear } from '../../src/nn/linear.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { clipGradNorm } from '../../src/train/clip.js';
import { createOptimizer } from '../../src/train/optimizer.js';
import { makeSchedule } from '../../src/train/schedule.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

interface Case {
  dora: boolean;
  init: { W: number[]; bias: number[]; x: number[]; target: number[]; A: number[]; B: number[]; magnitude?: number[] };
  steps: { loss: number; grad_norm: number; lr: number }[];
  final: { A: number[]; B: number[]; magnitude?: number[] };
}
const fx = JSON.parse(fs.readFileSync(path.join(ROOT, 'tests/fixtures/adamw/steps.json'), 'utf8')) as {
  O: number; I: number; r: number; alpha: number; N: number; steps: number; warmup: number; lr: number; weight_decay: number; max_grad_norm: number; cases: Case[];
};

function maxDiff(a: ArrayLike<number>, b: readonly number[]): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < b.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

describe('training steps against torch.optim.AdamW (weight decay, clipping, warmup + cosine)', () => {
  for (const c of fx.cases) {
    it(`${c.dora ? 'DoRA' : 'plain LoRA'} on a Linear with a bias: ${fx.steps} steps, every loss and gradient norm, the final parameters`, () => {
      const { O, I, N } = fx;
      const base = new Linear(I, O, { bias: true });
      base.weight.value = Tensor.fromValues(c.init.W, [O, I]);
      base.bias!.value = Tensor.fromValues(c.init.bias, [O]);
      const l = new LoraLinear(base, { path: 'layer' });
      const a = l.addAdapter('default', { r: fx.r, alpha: fx.alpha, init: false, useDora: c.dora });
      l.setActive(['default']);
      a.A.data.set(c.init.A);
      a.B.data.set(c.init.B);
      if (c.dora) {
        // the magnitude PEFT starts from: ‖W + s·B·A‖ per row of these A, B, computed in torch
        a.magnitude!.data.set(c.init.magnitude!);
      }
      const named = a.namedParameters();
      const params = named.map(([, p]) => p);
      const optimizer = createOptimizer(named, { lr: fx.lr, weightDecay: fx.weight_decay });
      const schedule = makeSchedule({ kind: 'cosine', lr: fx.lr, warmupSteps: fx.warmup, totalSteps: fx.steps });
      const x = Float32Array.from(c.init.x);
      for (let step = 0; step < fx.steps; step++) {
        const ref = c.steps[step]!;
        optimizer.lr = schedule(step);
        assert.ok(Math.abs(optimizer.lr - ref.lr) < 1e-12, `step ${step}: lr ${optimizer.lr} vs ${ref.lr}`);
        optimizer.zeroGrad();
        const y = l.forward(x, N);
        let loss = 0;
        const dy = new Float32Array(N * O);
        for (let i = 0; i < N * O; i++) {
          const d = y[i]! - c.init.target[i]!;
          loss += d * d;
          dy[i] = (2 * d) / (N * O);
        }
        loss /= N * O;
        l.backward(dy);
        const norm = clipGradNorm(params, fx.max_grad_norm);
        assert.ok(Math.abs(loss - ref.loss) < 1e-5 * Math.max(1, ref.loss), `step ${step}: loss ${loss} vs torch ${ref.loss}`);
        assert.ok(Math.abs(norm - ref.grad_norm) < 1e-5 * Math.max(1, ref.grad_norm), `step ${step}: gradient norm ${norm} vs torch ${ref.grad_norm}`);
        optimizer.step();
      }
      assert.ok(maxDiff(a.A.data, c.final.A) < 1e-5, `A: ${maxDiff(a.A.data, c.final.A)}`);
      assert.ok(maxDiff(a.B.data, c.final.B) < 1e-5, `B: ${maxDiff(a.B.data, c.final.B)}`);
      if (c.dora) assert.ok(maxDiff(a.magnitude!.data, c.final.magnitude!) < 1e-5, `magnitude: ${maxDiff(a.magnitude!.data, c.final.magnitude!)}`);
      // and the optimizer moved them: far from where they started
      assert.ok(maxDiff(a.A.data, c.init.A) > 1e-2);
    });
  }
});
