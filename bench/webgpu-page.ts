// The WebGPU bench's page (bundled by bench/webgpu.ts): the step bench on the WebGPU backend,
// with the GPU time of each kernel from timestamp queries.
import { setBackend } from '../src/backend/index.js';
import { requestWebGpuBackend } from '../src/backend/webgpu/index.js';
import { runStepBench, type StepBenchArgs } from './webgpu-step.js';

const g = globalThis as unknown as Record<string, unknown>;
try {
  const be = await requestWebGpuBackend({ allowFallback: true });
  g['lorakitBench'] = async (a: StepBenchArgs) => {
    setBackend(be);
    await runStepBench({ ...a, steps: 2 }); // compiles the pipelines
    const times = be.context.device.features.has('timestamp-query') ? be.context.startTiming() : null;
    const r = await runStepBench(a);
    await be.context.settleTiming();
    const kernels = times ? [...times.totals].map(([name, [passes, ns]]) => ({ name, passes, ms: ns / 1e6 })) : [];
    return { ...r, adapter: be.adapter, fallback: be.fallback, kernels };
  };
  g['lorakitTests'] = { adapter: be.adapter, fallback: be.fallback };
} catch (e) {
  g['lorakitTests'] = { error: e instanceof Error ? e.message : String(e) };
}
