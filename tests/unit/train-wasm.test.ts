// The training-loop tests (train-basics, train-loop, train-sink) again on the wasm backend:
// a child test run with LORAKIT_BACKEND=wasm, so the loop, checkpoints, resume and the
// sink run on the WebAssembly kernels (docs/ARCHITECTURE.md §Kernels on every platform).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadWasmBackend, wasmError } from '../../src/backend/native/select.js';

const wasm = await loadWasmBackend();
const files = ['train-basics', 'train-loop', 'train-sink'].map((f) => fileURLToPath(new URL(`./${f}.test.js`, import.meta.url)));

if (!wasm) {
  if (process.env.CI) it('wasm module loads (required under CI)', () => assert.fail(`the wasm module did not load: ${wasmError()}`));
  else it('training tests on wasm', { skip: `wasm module not loaded: ${wasmError()}` }, () => {});
} else {
  it('the training tests pass on the wasm backend (LORAKIT_BACKEND=wasm, child process)', () => {
    const env: NodeJS.ProcessEnv = { ...process.env, LORAKIT_BACKEND: 'wasm' };
    delete env.NODE_TEST_CONTEXT; // the child reports on its own
    const helper = fileURLToPath(new URL('../helpers/node-platform.js', import.meta.url));
    const r = spawnSync(process.execPath, ['--import', helper, '--test', '--test-reporter=tap', ...files], { env, encoding: 'utf8', timeout: 300_000 });
    const tail = `${r.stdout}\n${r.stderr}`.split('\n').filter((l) => /not ok|Error/.test(l)).slice(0, 30).join('\n');
    assert.equal(r.status, 0, `training tests on wasm failed (status ${r.status}, signal ${r.signal}):\n${tail}`);
    assert.match(r.stdout, /# pass [1-9]/);
    assert.match(r.stdout, /# fail 0/);
  });
}
