// Where a prompt's forward time goes, per kernel (issue 24): the generate bench's llama
// (bench/generate.ts: hidden 768, 12 layers, vocab 4096, random weights) exported to GGUF at
// one precision, loaded as the bench loads it, and a prompt of --tokens ids (512) run into an
// empty cache with every kernel of the backend wrapped in a timer. Prints each kernel (GEMMs
// by shape and weight dtype) with its calls, milliseconds and share of the forward, and the
// GEMMs' GFLOP/s; what is left is JavaScript between the kernels.
//
//   node dist/bench/tools/prompt-profile.js [--type f32|bf16|f16|q8_0] [--tokens N] [--reps N]
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { getBackend, setBackend, withInferenceProducts } from '../../src/backend/index.js';
import type { GemmArgs } from '../../src/backend/types.js';
import { installNodePlatform } from '../../src/platform.node.js';
import { GENERATE_BENCH_CONFIG } from '../generate.js';
import { timedBackend } from './timed-backend.js';

await installNodePlatform();
const args = process.argv.slice(2);
const val = (n: string, d: string): string => (args.indexOf(n) >= 0 ? args[args.indexOf(n) + 1]! : d);
const type = val('--type', 'f32');
const T = Number(val('--tokens', '512'));
const reps = Number(val('--reps', '3'));
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

const { createModel } = await import('../../src/models/index.js');
const { saveModel, loadModel } = await import('../../src/models/index.node.js');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lorakit-ppprof-'));
try {
  const folder = path.join(dir, 'model');
  await saveModel(createModel(GENERATE_BENCH_CONFIG, { seed: 0, dtype: 'f32' }), folder);
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) fs.copyFileSync(path.join(ROOT, 'models', 'brown-llama', f), path.join(folder, f));
  const file = path.join(dir, `m-${type}.gguf`);
  const r = spawnSync(process.execPath, [path.join(ROOT, 'bin', 'lorakit.js'), 'export', '--format', 'gguf', '--model', folder, '--type', type, '--out', file], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`export failed: ${r.stderr}`);
  const base = getBackend();
  const time = new Map<string, { calls: number; ms: number; flops: number }>();
  let timing = false;
  // the backend as it was, but with timed kernels
  setBackend(
    timedBackend(base, () => timing, (key, a, ms) => {
      let label = key, flops = 0;
      if (key === 'gemm') {
        const g = a[3] as GemmArgs;
        label = `gemm ${g.M}×${g.K}·${g.K}×${g.N}${g.transB ? ' Bᵀ' : ''} B ${g.bDtype ?? 'f32'}`;
        flops = 2 * g.M * g.N * g.K;
      }
      const e = time.get(label) ?? { calls: 0, ms: 0, flops: 0 };
      e.calls++;
      e.ms += ms;
      e.flops += flops;
      time.set(label, e);
    }),
  );
  const model = loadModel(file, { dtype: type === 'f32' ? 'f32' : 'keep' });
  const ids = Int32Array.from({ length: T }, (_, i) => 1 + ((i * 104729 + 7919 + 13) % 4095));
  model.prepareGeneration(1, T); // warm-up: buffers, kernels' scratch, a cache's arrays (as the generate bench)
  // each prompt into a new cache, released after as generate() releases its own
  const prompt = (): void => {
    const cache = model.createCache();
    withInferenceProducts(() => model.forward(ids, 1, T, { cache, lastTokenOnly: true }));
    cache.release();
  };
  timing = true;
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) prompt();
  const total = (performance.now() - t0) / reps;
  timing = false;
  console.log(`prompt ${T} tokens, ${type}, ${base.threads} threads: ${total.toFixed(1)} ms per forward (${((T / total) * 1000).toFixed(0)} tok/s)`);
  let sum = 0;
  for (const [k, e] of [...time.entries()].sort((p, q) => q[1].ms - p[1].ms)) {
    const ms = e.ms / reps;
    sum += ms;
    const gf = e.flops ? `  ${(e.flops / e.ms / 1e6).toFixed(0)} GFLOP/s` : '';
    console.log(`  ${k.padEnd(44)} ${String(e.calls / reps).padStart(4)} calls ${ms.toFixed(1).padStart(8)} ms ${((100 * ms) / total).toFixed(1).padStart(5)}%${gf}`);
  }
  console.log(`  ${'(JavaScript between kernels)'.padEnd(44)} ${''.padStart(10)} ${(total - sum).toFixed(1).padStart(8)} ms ${((100 * (total - sum)) / total).toFixed(1).padStart(5)}%`);
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
