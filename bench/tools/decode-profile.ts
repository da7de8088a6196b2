// Where a decoding step's time goes, per kernel (issue 24): the generate bench's llama
// (bench/generate.ts) exported to GGUF at one precision, loaded as the bench loads it, a
// 16-token prompt, then --tokens greedy tokens one forward at a time (generate's calls),
// first untimed (tokens/s, CPU time per token), then with every kernel of the backend
// wrapped in a timer. Prints each kernel (GEMMs by shape and weight dtype) with its calls
// per token, microseconds per token and share; what is left is JavaScript between kernels.
//
//   node dist/bench/tools/decode-profile.js [--type f32|bf16|f16|q8_0] [--tokens N] [--file F.gguf]
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { getBackend, setBackend } from '../../src/backend/index.js';
import type { GemmArgs } from '../../src/backend/types.js';
import { installNodePlatform } from '../../src/platform.node.js';
import { GENERATE_BENCH_CONFIG } from '../generate.js';
import { timedBackend } from './timed-backend.js';

await installNodePlatform();
const args = process.argv.slice(2);
const val = (n: string, d: string): string => (args.indexOf(n) >= 0 ? args[args.indexOf(n) + 1]! : d);
const type = val('--type', 'q8_0');
const N = Number(val('--tokens', '128'));
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

const { createModel } = await import('../../src/models/index.js');
const { saveModel, loadModel } = await import('../../src/models/index.node.js');
const given = args.indexOf('--file') >= 0 ? val('--file', '') : '';
const dir = given ? '' : fs.mkdtempSync(path.join(os.tmpdir(), 'lorakit-dprof-'));
try {
  let file = given;
  if (!file) {
    const folder = path.join(dir, 'model');
    await saveModel(createModel(GENERATE_BENCH_CONFIG, { seed: 0, dtype: 'f32' }), folder);
    for (const f of ['tokenizer.json', 'tokenizer_config.json']) fs.copyFileSync(path.join(ROOT, 'models', 'brown-llama', f), path.join(folder, f));
    file = path.join(dir, `m-${type}.gguf`);
    const r = spawnSync(process.execPath, [path.join(ROOT, 'bin', 'lorakit.js'), 'export', '--format', 'gguf', '--model', folder, '--type', type, '--out', file], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`export failed: ${r.stderr}`);
  }
  const base = getBackend();
  const time = new Map<string, { calls: number; ms: number }>();
  let timing = false;
  setBackend(
    timedBackend(base, () => timing, (key, a, ms) => {
      let label = key;
      if (key === 'gemm') {
        const g = a[3] as GemmArgs;
        label = `gemm ${g.M}×${g.K}·${g.K}×${g.N}${g.transB ? ' Bᵀ' : ''} B ${g.bDtype ?? 'f32'}`;
      }
      const e = time.get(label) ?? { calls: 0, ms: 0 };
      e.calls++;
      e.ms += ms;
      time.set(label, e);
    }),
  );
  const model = loadModel(file, { dtype: type === 'f32' ? 'f32' : 'keep' });
  const prompt = Int32Array.from({ length: 16 }, (_, i) => 1 + ((i * 104729 + 7919 + 2) % 4095));
  const argmax = (x: Float32Array): number => {
    let b = 0;
    for (let i = 1; i < x.length; i++) if (x[i]! > x[b]!) b = i;
    return b;
  };
  const decode = (): number => {
    const kv = model.createCache();
    let ids = prompt;
    let t0 = 0;
    for (let s = 0; s <= N; s++) {
      if (s === 1) t0 = performance.now();
      const logits = model.forward(ids, 1, ids.length, { cache: kv, lastTokenOnly: true });
      ids = Int32Array.of(argmax(logits));
    }
    return (performance.now() - t0) / N;
  };
  decode(); // warm-up
  const c0 = process.cpuUsage();
  const ms = decode();
  const cpu = process.cpuUsage(c0);
  console.log(`decode ${N} tokens, ${type}, ${base.threads} threads: ${ms.toFixed(2)} ms per token (${(1000 / ms).toFixed(1)} tok/s), CPU ${((cpu.user + cpu.system) / 1000 / N).toFixed(2)} ms per token`);
  timing = true;
  const msT = decode();
  timing = false;
  let sum = 0;
  for (const [k, e] of [...time.entries()].sort((p, q) => q[1].ms - p[1].ms)) {
    const per = e.ms / (N + 1);
    sum += per;
    console.log(`  ${k.padEnd(44)} ${(e.calls / (N + 1)).toFixed(0).padStart(4)} calls ${(per * 1000).toFixed(0).padStart(7)} µs ${((100 * per) / msT).toFixed(1).padStart(5)}%`);
  }
  console.log(`  ${'(JavaScript between kernels)'.padEnd(44)} ${''.padStart(10)} ${((msT - sum) * 1000).toFixed(0).padStart(7)} µs ${((100 * (msT - sum)) / msT).toFixed(1).padStart(5)}%   (timed: ${msT.toFixed(2)} ms per token)`);
} finally {
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
}
