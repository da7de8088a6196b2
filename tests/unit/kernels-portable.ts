// Run by kernels.test.ts in a child process with LORAKIT_NO_AVX2=1: the same comparisons
// on the native addon's portable (non-AVX2) kernels. Not a *.test file: it is only
// meaningful with that environment variable set.
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { nativeBackend, nativeError } from '../../src/backend/native/select.js';
import { registerComparisons } from './kernels-compare.js';

const nat = nativeBackend();
if (!nat) throw new Error(`the native addon did not load: ${nativeError()}`);
it('the portable path is selected', () => {
  assert.equal(process.env.LORAKIT_NO_AVX2, '1');
  assert.equal(nat.avx2fma, false);
});
registerComparisons(nat, 'native (portable)');
