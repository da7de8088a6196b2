import assert from 'node:assert/strict';
import { it } from 'node:test';
import * as lorakit from '../../src/index.js';

it('the single public entry exposes each layer', () => {
  const expected = [
    'Tensor', 'getBackend', 'setBackend', 'Module', 'Linear', 'MultiHeadAttention', 'readSafetensors', 'writeSafetensors',
    'loadModelFolder', 'Tokenizer', 'loadModel', 'createModel', 'saveModel', 'getPeftModel', 'PeftModel', 'saveAdapter',
    'loadAdapter', 'countLoraParameters', 'train', 'createOptimizer', 'AdamW', 'makeSchedule', 'generate', 'streamGenerate',
    'loadDataset', 'BatchIterator', 'checkDataset', 'ropeInvFreq', 'ropeInvFreqForSpec', 'IGNORE_INDEX',
  ];
  const missing = expected.filter((n) => !(n in lorakit));
  assert.deepEqual(missing, []);
  assert.equal(lorakit.IGNORE_INDEX, -100);
});
