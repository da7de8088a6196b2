// The WebGPU tests' page (bundled by tests/unit/webgpu.test.ts, node:test and node:assert
// aliased to the shims beside this file): every kernel comparison of kernels-compare.ts on the
// WebGPU backend against the reference backend, through deviceAsHost (host arrays uploaded
// and read back around each kernel), then the training tests of webgpu-train.ts.
import { requestWebGpuBackend } from '../../src/backend/webgpu/index.js';
import { deviceAsHost } from '../helpers/device-as-host.js';
import { registerComparisons } from '../unit/kernels-compare.js';
import { registerWebGpuTraining } from './webgpu-train.js';
import { runAll } from './node-test-shim.js';

const g = globalThis as unknown as { lorakitTests: unknown };
try {
  const be = await requestWebGpuBackend({ allowFallback: true });
  registerComparisons(deviceAsHost(be), 'webgpu');
  registerWebGpuTraining(be);
  g.lorakitTests = { runAll, adapter: be.adapter, fallback: be.fallback };
} catch (e) {
  g.lorakitTests = { error: e instanceof Error ? e.message : String(e) };
}
