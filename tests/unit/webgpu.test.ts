// The WebGPU backend (issue 22) in headless Chromium: one browser launch runs a page with
// every kernel comparison against the reference backend and the training tests
// (tests/browser/webgpu-page.ts, bundled here with esbuild). Chromium gives a WebGPU adapter
// with --enable-unsafe-webgpu: on a machine without a GPU that is SwiftShader, a CPU
// emulation, so this checks correctness, not speed. Each test of the page is reported as a
// subtest. Without /usr/bin/chromium, or without an adapter, it skips saying so; under
// CI=true that is a failure.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { getBackend } from '../../src/backend/index.js';
import { runTrainCase, type TrainCaseArgs, type TrainCaseResult } from '../helpers/train-case.js';
import { launchWebGpuPage } from '../helpers/webgpu-page.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const CHROMIUM = '/usr/bin/chromium';
const haveChromium = fs.existsSync(CHROMIUM);
if (!haveChromium && process.env.CI === 'true') throw new Error(`webgpu test: ${CHROMIUM} is missing under CI=true (.ci/run installs it with apt-get install -y chromium)`);
const skip = haveChromium ? false : `no ${CHROMIUM} (apt-get install -y chromium); the WebGPU tests are skipped`;

it('webgpu backend in chromium: kernels match ref, training matches', { skip }, async (t) => {
  const page = await launchWebGpuPage(path.join(ROOT, 'tests/browser/webgpu-page.ts'), CHROMIUM);
  try {
    const info = await page.info();
    if (info.error) {
      if (process.env.CI === 'true') assert.fail(`no WebGPU adapter in chromium: ${info.error}`);
      t.skip(`no WebGPU adapter in chromium: ${info.error}`);
      return;
    }
    console.log(`# adapter: ${info.adapter}${info.fallback ? ' (fallback adapter: correctness only)' : ''}`);
    const results = await page.run(process.env.LORAKIT_WEBGPU_FILTER ?? '');
    assert.ok(results.length > 0, 'the page registered no tests');
    const slow = [...results].sort((a, b) => b.ms - a.ms).slice(0, 5);
    console.log(`# page time ${(results.reduce((s, r) => s + r.ms, 0) / 1000).toFixed(1)} s; slowest: ${slow.map((r) => `${r.name.split(' > ').pop()!.slice(0, 40)} ${(r.ms / 1000).toFixed(1)} s`).join('; ')}`);
    for (const r of results) {
      await t.test(r.name, r.skip ? { skip: r.skip } : {}, () => {
        if (!r.ok) assert.fail(r.error);
      });
    }
    // the same LoRA run, 20 steps with one seed, on WebGPU (the page) and on this process's
    // backend (native): losses to 1e-3 relative; every adapter entry within 1e-3 of the
    // largest entry of its tensor (the sums run in other orders, and AdamW's first steps
    // amplify last-bit differences of small gradients)
    await t.test(`20 steps on webgpu match the ${getBackend().name} backend (same seed)`, async () => {
      const args: TrainCaseArgs = { steps: 20, seed: 11, lr: 2e-2, generate: 8 };
      const gpu = await page.call<TrainCaseResult>('lorakitTrainCase', args);
      const cpu = await runTrainCase(args);
      assert.equal(gpu.backend, 'webgpu');
      assert.equal(gpu.losses.length, 20);
      gpu.losses.forEach((l, i) => assert.ok(Math.abs(l - cpu.losses[i]!) <= 1e-3 * Math.abs(cpu.losses[i]!), `step ${i + 1}: loss ${l} on webgpu, ${cpu.losses[i]} on ${cpu.backend}`));
      let worst = 0;
      for (const [name, w] of Object.entries(cpu.adapter)) {
        const g = gpu.adapter[name];
        assert.ok(g && g.length === w.length, `${name}: missing or of another size on webgpu`);
        const scale = Math.max(...w.map(Math.abs));
        const diff = Math.max(...w.map((x, i) => Math.abs(x - g[i]!)));
        worst = Math.max(worst, diff / scale);
        assert.ok(diff <= 1e-3 * scale, `${name}: differs by ${diff} (largest entry ${scale})`);
      }
      // the trained model's greedy continuation (KV cache; logits read back per token) is the same
      assert.deepEqual(gpu.generated, cpu.generated, 'greedy tokens after training');
      console.log(`# 20 steps: last loss ${gpu.losses[19]!.toFixed(6)} (webgpu) vs ${cpu.losses[19]!.toFixed(6)} (${cpu.backend}); adapters differ by at most ${worst.toExponential(2)} of each tensor's largest entry`);
    });
    // frozen base weights as a model loaded from files has them (host arrays, uploaded by every
    // kernel call that reads them) and made resident (uploaded once): the same losses, and the
    // bytes a step uploads drop by at least the weights' size
    await t.test('frozen weights made resident are not uploaded again each step', async () => {
      const base: TrainCaseArgs = { steps: 2, seed: 3, lr: 1e-2 };
      const host = await page.call<TrainCaseResult>('lorakitTrainCase', { ...base, weights: 'host' });
      const resident = await page.call<TrainCaseResult>('lorakitTrainCase', { ...base, weights: 'resident' });
      assert.deepEqual(resident.losses, host.losses);
      const weightBytes = 4 * (48 * 32 * 2 + 2 * (32 * 32 * 2 + 32 * 16 * 2 + 3 * 32 * 64 + 2 * 32) + 32);
      const saved = host.uploadBytesPerStep! - resident.uploadBytesPerStep!;
      assert.ok(saved >= weightBytes, `a step uploads ${host.uploadBytesPerStep} bytes with host weights, ${resident.uploadBytesPerStep} resident: saves ${saved}, less than the weights' ${weightBytes}`);
      console.log(`# bytes uploaded per training step: ${host.uploadBytesPerStep} with host weights, ${resident.uploadBytesPerStep} with resident weights (the tiny llama's weights: ${weightBytes} bytes)`);
    });
    assert.deepEqual(page.errors, [], 'console errors in the page');
  } finally {
    await page.close();
  }
});
