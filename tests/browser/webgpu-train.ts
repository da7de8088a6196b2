// The training tests on the WebGPU backend, in the page (tests/browser/webgpu-page.ts): the
// training loop of src/train/trainer.ts on a tiny llama with a LoRA adapter, every kernel on
// the device and one readback per step. The comparison with the native backend (20 steps, same
// seed) runs from the Node side through `lorakitTrainCase` (tests/unit/webgpu.test.ts).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setBackend } from '../../src/backend/index.js';
import type { WebGpuBackend } from '../../src/backend/webgpu/index.js';
import { runTrainCase, type TrainCaseArgs } from '../helpers/train-case.js';

export function registerWebGpuTraining(be: WebGpuBackend): void {
  (globalThis as unknown as { lorakitTrainCase: unknown }).lorakitTrainCase = (a: TrainCaseArgs) => {
    setBackend(be);
    return runTrainCase(a);
  };
  describe('webgpu training loop', () => {
    it('trains a LoRA adapter on a tiny llama and the held-out loss falls clearly', async () => {
      setBackend(be);
      const r = await runTrainCase({ steps: 30, seed: 4, lr: 5e-2 });
      assert.equal(r.backend, 'webgpu');
      assert.equal(r.losses.length, 30);
      assert.ok(r.losses.every(Number.isFinite) && r.gradNorms.every((g) => Number.isFinite(g) && g > 0), `losses ${r.losses}, norms ${r.gradNorms}`);
      assert.ok(r.after < 0.6 * r.before, `held-out loss ${r.before.toFixed(3)} -> ${r.after.toFixed(3)}`);
    });
    it('accumulating 2 micro-batches of 2 gives the update of one batch of 4', async () => {
      setBackend(be);
      const one = await runTrainCase({ steps: 2, seed: 7, lr: 1e-2, batch: 4 });
      const two = await runTrainCase({ steps: 2, seed: 7, lr: 1e-2, batch: 2, gradAccum: 2 });
      for (const [name, w] of Object.entries(one.adapter)) {
        const v = two.adapter[name]!;
        const worst = Math.max(...w.map((x, i) => Math.abs(x - v[i]!)));
        assert.ok(worst < 2e-5, `${name}: differs by ${worst}`);
      }
    });
  });
}
