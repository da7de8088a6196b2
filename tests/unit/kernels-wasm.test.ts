// The wasm backend (native/wasm: the kernel sources built with emscripten, SIMD128 with
// relaxed FMA where the engine has it, threads over a SharedArrayBuffer) against the
// reference: every kernel comparison, on arrays outside its heap (copied in and out) and
// on arrays on its heap (read in place); where the relaxed build loads, the plain SIMD128
// build too, in a child process (LORAKIT_WASM_RELAXED=0). Under CI a missing module is a failure.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { refBackend as ref } from '../../src/backend/ref/index.js';
import { loadWasmBackend, wasmError, wasmVariant } from '../../src/backend/native/select.js';
import { wasmLoaded } from '../../src/backend/wasm/load.node.js';
import { registerComparisons } from './kernels-compare.js';
import { assertClose, randn, rng } from './kernels-util.js';

const wasm = await loadWasmBackend();
if (!wasm) {
  if (process.env.CI) it('wasm module loads (required under CI)', () => assert.fail(`the wasm module did not load: ${wasmError()}`));
  else it('wasm kernels', { skip: `wasm module not loaded: ${wasmError()}` }, () => {});
} else {
  const heap = wasmLoaded()!.heap!;
  describe('wasm backend', () => {
    it('implements every kernel (nothing falls back to ref) and runs on more than one thread', () => {
      assert.deepEqual(wasm.missing, []);
      assert.ok(wasm.threads >= 1);
      assert.match(heap.impl, /^simd128/);
    });
    it('reads arrays on its heap in place, aliased ones too', () => {
      const r = rng(3);
      const M = 37, N = 45, K = 29;
      const a = heap.allocF32(M * K), b = heap.allocF32(K * N), c = heap.allocF32(M * N);
      a.set(randn(r, M * K));
      b.set(randn(r, K * N));
      assert.ok(heap.holds(a) && !heap.holds(new Float32Array(4)));
      const want = new Float32Array(M * N);
      ref.gemm(want, a, b, { M, N, K });
      wasm.gemm(c, a, b, { M, N, K });
      assertClose(c, want, 'gemm on the heap', 1e-4, 1e-4);
      const sum = new Float32Array(M * N);
      ref.add(sum, c, c);
      wasm.add(c, c, c);
      assertClose(c, sum, 'add aliased on the heap', 0, 0);
      for (const x of [a, b, c]) heap.free(x);
    });
    it('throws the kernel glue TypeError for a wrong array kind', () => {
      assert.throws(() => wasm.add(new Float32Array(2), new Int32Array(2) as unknown as Float32Array, new Float32Array(2)), /add: argument a must be a Float32Array/);
    });
  });
  registerComparisons(wasm, `wasm (${wasmVariant()}, ${wasm.threads} threads)`);
  if (wasmVariant() === 'simd128-relaxed') {
    it('the plain SIMD128 build (LORAKIT_WASM_RELAXED=0, child process) passes the same tests', () => {
      const env: NodeJS.ProcessEnv = { ...process.env, LORAKIT_WASM_RELAXED: '0' };
      delete env.NODE_TEST_CONTEXT; // the child reports on its own
      const helper = fileURLToPath(new URL('../helpers/node-platform.js', import.meta.url));
      const r = spawnSync(process.execPath, ['--import', helper, '--test', '--test-reporter=tap', fileURLToPath(import.meta.url)], { env, encoding: 'utf8', timeout: 120_000 });
      const tail = `${r.stdout}\n${r.stderr}`.split('\n').filter((l) => /not ok|Error/.test(l)).slice(0, 20).join('\n');
      assert.equal(r.status, 0, `plain SIMD128 kernels failed (status ${r.status}):\n${tail}`);
      assert.match(r.stdout, /wasm \(simd128, /);
      assert.match(r.stdout, /# fail 0/);
    });
  }
}
