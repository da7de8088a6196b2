// The training tests on the WebGPU backend, in the page (tests/browser/webgpu-page.ts): the
// training loop of src/train/trainer.ts on a tiny llama with a LoRA adapter, every kernel on
// the device and one readback per step. The comparison with the native backend (20 steps, same
// seed) runs from the Node side through `lorakitTrainCase` (tests/unit/webgpu.test.ts).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setBackend } from '../../src/backend/index.js';
import { deviceTensor, hostTensor, isDeviceStorage, makeResident } from '../../src/backend/transfer.js';
import type { WebGpuBackend } from '../../src/backend/webgpu/index.js';
import { f32ToBf16, f32ToF16 } from '../../src/tensor/half.js';
import { Tensor } from '../../src/tensor/tensor.js';
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
    it('deviceTensor uploads and hostTensor reads back f32, f16 and bf16 tensors bit for bit', async () => {
      setBackend(be);
      const values = Array.from({ length: 15 }, (_, i) => (i - 7) * 0.37 + 1e-3 * i * i); // an odd count of 16-bit values
      for (const dtype of ['f32', 'f16', 'bf16'] as const) {
        const host = dtype === 'f32' ? Tensor.fromF32(Float32Array.from(values), [3, 5]) : new Tensor(dtype, [3, 5], Uint16Array.from(values, dtype === 'f16' ? f32ToF16 : f32ToBf16));
        const dev = deviceTensor(host);
        assert.ok(isDeviceStorage(dev.data) && !isDeviceStorage(host.data), `${dtype}: uploaded`);
        if (dtype !== 'f32') assert.throws(() => dev.toF32Array(), /storage is on the device; read it back first/);
        const back = await hostTensor(dev);
        assert.equal(back.dtype, dtype);
        assert.deepEqual([...back.data], [...host.data], `${dtype}: the same bits back`);
      }
      // tied weights: two parameters, one tensor, one upload
      const w = Tensor.fromF32(Float32Array.from(values), [15]);
      const params = [{ value: w }, { value: w }];
      assert.equal(makeResident(params), 60);
      assert.ok(params[0]!.value === params[1]!.value && isDeviceStorage(params[0]!.value.data));
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
    it('a sliding-window KV cache on the device: the logits of recomputing the whole sequence', async () => {
      setBackend(be);
      // window 4: the cache trims itself (moving the kept slots to new device buffers) every few tokens
      const model = createModel({ model_type: 'mistral', vocab_size: 32, hidden_size: 16, intermediate_size: 32, num_hidden_layers: 2, num_attention_heads: 2, num_key_value_heads: 1, max_position_embeddings: 64, rms_norm_eps: 1e-6, sliding_window: 4, tie_word_embeddings: false }, { seed: 3 });
      model.eval();
      const seq = [1, 5, 9, 2, 7, 3, 30, 11, 4, 8, 19, 6, 25, 12];
      const cache = model.createCache();
      for (let t = 3; t <= seq.length; t++) {
        const fresh = t === 3 ? seq.slice(0, 3) : [seq[t - 1]!];
        const cached = await be.memory.read(model.forward(Int32Array.from(fresh), 1, fresh.length, { cache, lastTokenOnly: true }));
        const full = await be.memory.read(model.forward(Int32Array.from(seq.slice(0, t)), 1, t, { lastTokenOnly: true }));
        const scale = Math.max(...full.map(Math.abs));
        const diff = Math.max(...full.map((x, i) => Math.abs(x - cached[i]!)));
        assert.ok(diff <= 1e-5 * scale, `after ${t} tokens: the cached logits differ by ${diff} (largest ${scale})`);
      }
      assert.ok(cache.layer(0).start > 0, 'the cache trimmed itself');
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
