// Kernel tests: the reference backward kernels against finite differences, then every
// native kernel against the reference on odd shapes (the AVX2 path in this process, the
// portable path in a child process with LORAKIT_NO_AVX2=1).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { nativeBackend, nativeError } from '../../src/backend/native/select.js';
import { registerComparisons } from './kernels-compare.js';
import { registerGradChecks } from './kernels-gradcheck.js';
import { siluOutputs } from './kernels-silu.js';
import { loadAddon } from '../../src/backend/native/index.js';

registerGradChecks();

const nat = nativeBackend();
if (!nat) {
  if (process.env.CI) {
    it('native addon loads (required under CI)', () => assert.fail(`the native addon did not load: ${nativeError()}`));
  } else {
    it('native kernels', { skip: `native addon not loaded: ${nativeError()}` }, () => {});
  }
} else {
  describe('native backend', () => {
    it('implements every kernel (nothing falls back to ref)', () => {
      assert.deepEqual(nat.missing, []);
    });
    it('portable path (LORAKIT_NO_AVX2=1, child process) matches ref', () => {
      const child = fileURLToPath(new URL('./kernels-portable.js', import.meta.url));
      const env: NodeJS.ProcessEnv = { ...process.env, LORAKIT_NO_AVX2: '1' };
      delete env.NODE_TEST_CONTEXT; // the child reports on its own, not to this runner
      const r = spawnSync(process.execPath, [child], { env, encoding: 'utf8', timeout: 90_000 });
      const tail = `${r.stdout}\n${r.stderr}`.split('\n').filter((l) => /not ok|error|fail|Error/.test(l)).slice(0, 40).join('\n');
      assert.equal(r.status, 0, `portable kernels failed (status ${r.status}, signal ${r.signal}):\n${tail}`);
      assert.match(r.stdout, /# pass [1-9]/);
      assert.match(r.stdout, /# fail 0/);
    });
  });
  registerComparisons(nat, `native (${nat.avx2fma ? 'AVX2+FMA' : 'portable'})`);

  it('swiglu forward in place (out = gate, as a cached forward runs it) gives the bits of a separate output', () => {
    const n = 4099;
    const g = Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37) * 9);
    const u = Float32Array.from({ length: n }, (_, i) => Math.cos(i * 0.11) * 2);
    const out = new Float32Array(n);
    nat.swigluForward(out, g, u);
    nat.swigluForward(g, g, u);
    assert.deepEqual(g, out);
  });

  // silu and swiglu forward run 16 lanes at a time on AVX-512 with the AVX2 kernel's
  // operations (issue 24): the same bits, tails, clamps and NaN included
  const avx512 = loadAddon().addon!.cpuInfo().avx512f;
  it("silu and swiglu forward on AVX-512 give the AVX2 kernel's bits (LORAKIT_NO_AVX512=1, child process)", { skip: avx512 ? false : 'no AVX-512 here' }, () => {
    const env: NodeJS.ProcessEnv = { ...process.env, LORAKIT_NO_AVX512: '1' };
    delete env.NODE_TEST_CONTEXT;
    const child = fileURLToPath(new URL('./kernels-silu.js', import.meta.url));
    const r = spawnSync(process.execPath, [child], { env, encoding: 'utf8', timeout: 60_000 });
    const line = r.stdout.split('\n').find((l) => l.startsWith('SILU '));
    assert.ok(line, `the child printed no outputs (status ${r.status}):\n${r.stderr}`);
    assert.ok(line.slice(5) === siluOutputs(nat), 'the AVX-512 and AVX2 outputs differ');
  });
}
