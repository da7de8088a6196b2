// silu and swiglu forward outputs of the native backend on inputs that reach every path of
// the kernels (tails, the exp's clamps, NaN, infinities, subnormals), as base64 of their
// bits. Run as a script (kernels.test.ts, with LORAKIT_NO_AVX512=1) it prints them.
import { fileURLToPath } from 'node:url';
import type { Backend } from '../../src/backend/index.js';
import { nativeBackend } from '../../src/backend/native/select.js';

export function siluOutputs(be: Backend): string {
  const n = 4099; // a tail of 3 after the 16-wide blocks
  const x = new Float32Array(n);
  const u = new Float32Array(n);
  let s = 12345;
  const rnd = (): number => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32) * 2 - 1;
  for (let i = 0; i < n; i++) {
    x[i] = rnd() * (i % 7 === 0 ? 120 : 12);
    u[i] = rnd() * 3;
  }
  x.set([0, -0, 88, 88.8, -87.2, -87.4, -100, 100, NaN, Infinity, -Infinity, 1e-40, -1e-40, 17.329, -17.329]);
  const a = new Float32Array(n);
  const b = new Float32Array(n);
  be.siluForward(a, x);
  be.swigluForward(b, x, u);
  return Buffer.concat([Buffer.from(a.buffer), Buffer.from(b.buffer)]).toString('base64');
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const nat = nativeBackend();
  if (!nat) throw new Error('the native addon did not load');
  console.log(`SILU ${siluOutputs(nat)}`);
}
