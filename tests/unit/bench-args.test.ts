import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseCompareArgs } from '../../bench/compare-pytorch.js';

describe('npm run bench -- --compare-pytorch flags', () => {
  it('reads --rounds, --steps, --models, --layers and --quick', () => {
    assert.deepEqual(parseCompareArgs(['--compare-pytorch', '--rounds', '4', '--steps', '5', '--models', 'gpt2', '--quick']), {
      quick: true,
      steps: 5,
      rounds: 4,
      models: ['gpt2'],
    });
    assert.deepEqual(parseCompareArgs(['--compare-pytorch']), { quick: false });
    assert.deepEqual(parseCompareArgs(['--models', 'qwen3', '--layers', '4']), { quick: false, models: ['qwen3'], layers: 4 });
  });

  it('names the flag and the bad value', () => {
    assert.throws(() => parseCompareArgs(['--rounds', '0']), /--rounds needs a positive whole number, got 0/);
    assert.throws(() => parseCompareArgs(['--steps']), /--steps needs a positive whole number, got nothing/);
    assert.throws(() => parseCompareArgs(['--layers', '1.5']), /--layers needs a positive whole number, got 1.5/);
    assert.throws(() => parseCompareArgs(['--models', 'llama,bert']), /--models: unknown model "bert" \(known: llama, gpt2, qwen3\)/);
  });
});
