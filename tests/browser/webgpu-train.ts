// The training tests on the WebGPU backend, in the page (tests/browser/webgpu-page.ts): the
// training loop of src/train/trainer.ts on a tiny llama with a LoRA adapter, every kernel on
// the device and one readback per step. The comparison with the native backend (20 steps, same
// seed) runs from the Node side through `lorakitTrainCase` (tests/unit/webgpu.test.ts).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setBackend } from '../../src/backend/index.js';
import type { WebGpuBackend } from '../../src/backend/webgpu/index.js';
import { generate } from '../../src/generate/generate.js';
import { createModel } from '../../src/models/load.js';
import { installBrowserBackend, registerBrowserBackend, webGpuLoader } from '../../src/web/backend.js';
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
    it('the saved adapter, a checkpoint and KV-cache generation read the device buffers', async () => {
      setBackend(be);
      const r = await runTrainCase({ steps: 3, seed: 5, lr: 1e-2, files: true, generate: 6 });
      const names = Object.keys(r.adapter);
      assert.deepEqual(Object.keys(r.adapterFile!).sort(), [...names].sort());
      assert.deepEqual(Object.keys(r.checkpoint!).sort(), [...names].sort());
      for (const n of names) {
        assert.ok(r.adapter[n]!.some((x) => x !== 0), `${n}: all zero on the device`);
        assert.deepEqual(r.adapterFile![n], r.adapter[n], `${n} in adapter_model.safetensors`);
        assert.deepEqual(r.checkpoint![n], r.adapter[n], `${n} in the checkpoint's trainable.safetensors`);
      }
      assert.deepEqual(r.optimizerTensors, { count: 2 * names.length, finite: true, nonzero: true });
      assert.equal(r.generated!.length, 6);
      assert.deepEqual(r.generated, r.generatedNoCache, 'greedy tokens with the KV cache and without');
      // the synchronous generator cannot read device logits: it says so
      const model = createModel({ model_type: 'llama', vocab_size: 16, hidden_size: 8, intermediate_size: 16, num_hidden_layers: 1, num_attention_heads: 2, num_key_value_heads: 1, max_position_embeddings: 16, rms_norm_eps: 1e-6, tie_word_embeddings: false }, { seed: 1 });
      assert.throws(() => generate(model, [[1, 2]], { maxNewTokens: 1 }), /generate: the logits live on the device \(the webgpu backend\); use streamGenerate/);
    });
    it("the browser entry's 'auto' takes this adapter only when it is not a fallback one, or when asked", async () => {
      try {
        registerBrowserBackend('webgpu', webGpuLoader());
        const auto = await installBrowserBackend('auto');
        if (be.fallback) {
          assert.equal(auto.name, 'ref');
          assert.match(auto.notice, /^lorakit is running on ref: fallback: webgpu: WebGPU: only a fallback adapter \(/);
        } else assert.equal(auto.name, 'webgpu');
        const allowed = await installBrowserBackend('auto', { allowFallbackAdapter: true });
        assert.equal(allowed.name, 'webgpu');
        assert.equal(allowed.adapter, `${be.adapter}${be.fallback ? ', a fallback adapter' : ''}`);
        assert.match(allowed.notice, /^lorakit is running on webgpu \(/);
      } finally {
        setBackend(be);
      }
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
