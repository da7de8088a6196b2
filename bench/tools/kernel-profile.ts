// Where a training step's time goes, per kernel, on one backend: the bench's LoRA step
// (bench/train.ts: GPT-2-small-shaped llama, r 8 on q_proj and v_proj, f32, 4 × 256; --quick:
// 2 layers, 1 × 64) with every kernel of the backend wrapped in a timer. Prints each kernel's
// calls, milliseconds per step and share of the step; what is left is JavaScript between the
// kernels (glue, allocation, the optimizer's bookkeeping). On wasm it also counts the bytes
// WasmHeap.call copied in and out for arrays that are not on the module's heap.
//
//   LORAKIT_BACKEND=wasm node dist/bench/tools/kernel-profile.js [--quick] [--steps N]
//   LORAKIT_BACKEND=native node dist/bench/tools/kernel-profile.js
import { getBackend, setBackend } from '../../src/backend/index.js';
import type { GemmArgs } from '../../src/backend/types.js';
import { WasmHeap } from '../../src/backend/wasm/module.js';
import { installNodePlatform } from '../../src/platform.node.js';
import { trainSteps } from '../train.js';
import { timedBackend } from './timed-backend.js';

await installNodePlatform();
const args = process.argv.slice(2);
const quick = args.includes('--quick');
const si = args.indexOf('--steps');
const steps = si >= 0 ? Number(args[si + 1]) : 2;

/** a GEMM's shape: M×K·K×N, transposes, operand dtypes, accumulate */
function gemmLabel(g: GemmArgs): string {
  return `  gemm ${g.M}×${g.K}·${g.K}×${g.N}${g.transA ? ' Aᵀ' : ''}${g.transB ? ' Bᵀ' : ''}${g.accumulate ? ' +=' : ''}${g.bDtype && g.bDtype !== 'f32' ? ` B ${g.bDtype}` : ''}`;
}

const base = getBackend();
const time = new Map<string, { calls: number; ms: number }>();
let timing = false;
// the backend as it was, but with timed kernels
const timed = timedBackend(base, () => timing, (key, a, ms) => {
  for (const name of key === 'gemm' ? [key, gemmLabel(a[3] as GemmArgs)] : [key]) {
    const e = time.get(name) ?? { calls: 0, ms: 0 };
    e.calls++;
    e.ms += ms;
    time.set(name, e);
  }
});
setBackend(timed);

// bytes copied around wasm kernel calls (arguments not on the heap)
const copied = new Map<string, { calls: number; bytes: number }>();
const call = WasmHeap.prototype.call;
WasmHeap.prototype.call = function (this: WasmHeap, fn: number, name: string, a: readonly unknown[]): number {
  if (timing) {
    let bytes = 0;
    for (const x of a) if (ArrayBuffer.isView(x) && !this.holds(x)) bytes += x.byteLength;
    if (bytes > 0) {
      const e = copied.get(name) ?? { calls: 0, bytes: 0 };
      e.calls++;
      e.bytes += bytes;
      copied.set(name, e);
    }
  }
  return call.call(this, fn, name, a);
};

// one warm-up step, then `steps` timed ones (the wrappers time only those)
const out = trainSteps({ dtype: 'f32', B: quick ? 1 : 4, T: quick ? 64 : 256, checkpointing: false }, steps, quick, 1, (on) => (timing = on));
const stepMs = out.stepSeconds.reduce((x, y) => x + y, 0) * 1000;
console.log(`${base.name} (${base.threads} threads), ${quick ? 'quick shape' : 'GPT-2-small-shaped llama, 4 × 256'}: ${steps} timed steps, ${(stepMs / steps).toFixed(0)} ms per step (${((out.tokensPerStep * steps) / (stepMs / 1000)).toFixed(1)} tokens/s)`);
const rows = [...time.entries()].sort((x, y) => y[1].ms - x[1].ms);
const kernels = rows.reduce((t, [k, e]) => (k.startsWith(' ') ? t : t + e.ms), 0);
console.log(`kernels ${(kernels / steps).toFixed(0)} ms per step; JavaScript between kernels ${((stepMs - kernels) / steps).toFixed(0)} ms per step (${((100 * (stepMs - kernels)) / stepMs).toFixed(1)}%)`);
console.log(`${'kernel (gemm: by shape below it)'.padEnd(40)}${'calls/step'.padStart(12)}${'ms/step'.padStart(10)}${'share'.padStart(8)}${'copied MiB/step'.padStart(18)}`);
for (const [k, e] of rows) {
  if (e.ms / steps < 0.5) continue;
  const c = copied.get(k);
  console.log(`${k.padEnd(40)}${(e.calls / steps).toFixed(0).padStart(12)}${(e.ms / steps).toFixed(1).padStart(10)}${((100 * e.ms) / stepMs).toFixed(1).padStart(7)}%${c ? (c.bytes / steps / 2 ** 20).toFixed(2).padStart(18) : ''.padStart(18)}`);
}
const allCopied = [...copied.entries()].sort((x, y) => y[1].bytes - x[1].bytes);
if (allCopied.length) console.log(`copied per step by WasmHeap.call (arrays off the heap): ${allCopied.map(([k, e]) => `${k} ${(e.bytes / steps / 2 ** 20).toFixed(2)} MiB in ${(e.calls / steps).toFixed(0)} calls`).join('; ')}`);
