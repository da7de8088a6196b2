// `npm run bench -- --only train --backend webgpu --browser` (issue 22): the LoRA training step
// on the WebGPU backend in Chromium (headless, --enable-unsafe-webgpu) next to the native
// backend in this process, same model shape and rows: tokens/s (median after the first
// step, min–max) and the WebGPU step split into kernels by GPU time (timestamp queries).
// On a machine without a GPU the adapter is SwiftShader (a CPU emulation): its figures check
// that the bench runs and are no measure of WebGPU speed; the table says so.
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { launchWebGpuPage } from '../tests/helpers/webgpu-page.js';
import { stat } from './train.js';
import { runStepBench, type StepBenchArgs, type StepBenchResult } from './webgpu-step.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export async function runWebGpuTrainBench(opts: { quick?: boolean; log?: (l: string) => void } = {}): Promise<void> {
  const log = opts.log ?? console.log;
  const shape: StepBenchArgs = opts.quick
    ? { hidden: 64, layers: 2, heads: 4, kvHeads: 2, vocab: 256, B: 2, T: 32, steps: 4 }
    : { hidden: 256, layers: 4, heads: 8, kvHeads: 4, vocab: 2048, B: 4, T: 128, steps: 6 };
  log(`shape: hidden ${shape.hidden}, ${shape.layers} layers, heads ${shape.heads}/${shape.kvHeads}, vocab ${shape.vocab}, B ${shape.B} × T ${shape.T}, LoRA r 8 on every projection, ${shape.steps} steps`);
  const page = await launchWebGpuPage(path.join(ROOT, 'bench/webgpu-page.ts'), '/usr/bin/chromium');
  try {
    const info = await page.info();
    if (info.error) throw new Error(`no WebGPU adapter in chromium: ${info.error}`);
    const gpu = await page.call<StepBenchResult & { adapter: string; fallback: boolean; kernels: { name: string; passes: number; ms: number }[] }>('lorakitBench', shape);
    const cpu = await runStepBench(shape);
    const row = (name: string, r: StepBenchResult): string => {
      const s = stat(name, 'tok/s', r.tps);
      return `| ${name} | ${s.median.toFixed(0)} | ${s.min.toFixed(0)}–${s.max.toFixed(0)} |`;
    };
    log(`adapter: ${gpu.adapter}${gpu.fallback ? ' — a fallback (software) adapter: these WebGPU figures are correctness-only, no measure of GPU speed' : ''}`);
    log('| backend | tokens/s (median) | min–max |');
    log('|---|---|---|');
    log(row(`webgpu (${gpu.adapter})`, gpu));
    log(row(cpu.backend, cpu));
    const total = gpu.kernels.reduce((s, k) => s + k.ms, 0);
    if (total > 0) {
      const steps = shape.steps;
      log(`\nWebGPU GPU time per step by kernel (timestamp queries, ${steps} steps):`);
      log('| kernel | passes/step | ms/step | share |');
      log('|---|---|---|---|');
      for (const k of [...gpu.kernels].sort((a, b) => b.ms - a.ms)) log(`| ${k.name} | ${(k.passes / steps).toFixed(0)} | ${(k.ms / steps).toFixed(2)} | ${((100 * k.ms) / total).toFixed(1)}% |`);
    }
  } finally {
    await page.close();
  }
}
