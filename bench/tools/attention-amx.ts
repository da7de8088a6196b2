// A prompt's attention on its own (issue 24): the addon's f32 attentionForward and its AMX-BF16
// attentionInference (native/src/attention_amx.cc) on the same inputs, alternating, best of
// --rounds rounds of 5 calls each. Default shape: the generate bench's llama (12 heads of 64)
// on a 512-token prompt into an empty cache (causal, T = S = 512); --cache N puts N earlier
// keys before it, --kv H makes it grouped-query (H key/value heads).
//
//   node dist/bench/tools/attention-amx.js [--tokens 512] [--cache 0] [--heads 12] [--kv 12] [--dim 64] [--rounds 8]
//   LORAKIT_THREADS=1 node dist/bench/tools/attention-amx.js
import { loadAddon } from '../../src/backend/native/index.js';
import { Rng } from '../../src/tensor/rng.js';

const args = process.argv.slice(2);
const num = (n: string, d: number): number => (args.indexOf(n) >= 0 ? Number(args[args.indexOf(n) + 1]) : d);
const T = num('--tokens', 512), S = T + num('--cache', 0), Hq = num('--heads', 12), Hkv = num('--kv', Hq), D = num('--dim', 64);
const rounds = num('--rounds', 8);
const addon = loadAddon().addon as unknown as Record<string, (...a: unknown[]) => unknown> | null;
if (!addon) throw new Error(`the native addon did not load: ${loadAddon().error}`);
const r = new Rng(1);
const fill = (n: number): Float32Array => Float32Array.from({ length: n }, () => r.uniform(-1, 1));
const q = fill(T * Hq * D), k = fill(S * Hkv * D), v = fill(S * Hkv * D);
const out = new Float32Array(T * Hq * D), lse = new Float32Array(Hq * T);
const dims = Float64Array.of(1, T, S, Hq, Hkv, D, 1, 1 / Math.sqrt(D), 0);
const amx = addon['attentionInference']!(out, lse, q, k, v, null, dims) === true;
const kernels: [string, () => void][] = [['attentionForward (f32)', () => addon['attentionForward']!(out, lse, q, k, v, null, dims)]];
if (amx) kernels.push(['attentionInference (AMX-BF16)', () => addon['attentionInference']!(out, lse, q, k, v, null, dims)]);
const best = kernels.map(() => Infinity);
for (let round = 0; round < rounds; round++)
  kernels.forEach(([, f], i) => {
    const t0 = performance.now();
    for (let j = 0; j < 5; j++) f();
    best[i] = Math.min(best[i]!, (performance.now() - t0) / 5);
  });
// q·kᵀ and p·v over the keys each row sees
const flop = 4 * D * Hq * Array.from({ length: T }, (_, t) => t + S - T + 1).reduce((a, b) => a + b, 0);
console.log(`attention T=${T} S=${S} heads ${Hq}/${Hkv} D=${D}, causal, ${addon.threads!()} threads`);
kernels.forEach(([name], i) => console.log(`  ${name.padEnd(32)} ${best[i]!.toFixed(2).padStart(7)} ms  ${(flop / best[i]! / 1e6).toFixed(0).padStart(4)} GFLOP/s`));
if (amx) console.log(`  AMX / f32: ${(best[0]! / best[1]!).toFixed(2)}×`);
else console.log('  attentionInference declined: no AMX here (CPU, kernel permission), LORAKIT_AMX=0 or LORAKIT_AMX_ATTENTION=0');
