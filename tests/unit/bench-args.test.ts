import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseCompareArgs } from '../../bench/compare-pytorch.js';
import { greedyEvidence, parseGenerateArgs } from '../../bench/generate.js';

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

describe('npm run bench -- --only generate flags', () => {
  it('reads --rounds, --threads, --types and --quick (defaults: 3 rounds, 2 threads, every type)', () => {
    assert.deepEqual(parseGenerateArgs(['--only', 'generate', '--rounds', '2', '--threads', '1', '--types', 'f16,q8_0']), { rounds: 2, threads: 1, types: ['f16', 'q8_0'], quick: false });
    assert.deepEqual(parseGenerateArgs(['--only', 'generate']), { rounds: 3, threads: 2, types: ['f32', 'bf16', 'f16', 'q8_0'], quick: false });
    assert.deepEqual(parseGenerateArgs(['--quick']).rounds, 1);
  });

  it('names the flag and the bad value', () => {
    assert.throws(() => parseGenerateArgs(['--rounds', '0']), /--rounds must be an integer ≥ 1, got "0"/);
    assert.throws(() => parseGenerateArgs(['--types', 'f32,q4_0']), /--types: "q4_0" is not one of f32, bf16, f16, q8_0/);
  });
});

describe('the generate bench\'s greedy-token evidence', () => {
  const st = (a: number, b: number, margin: number): { top: [number, number]; margin: number } => ({ top: [a, b], margin });
  it('all agree: one line, with the F32-KV-cache run\'s agreement', () => {
    const lk = { tokens: [5, 6], steps: [st(5, 1, 0.5), st(6, 1, 0.4)] };
    assert.deepEqual(greedyEvidence(lk, { ...lk, stepsKvF32: lk.steps }), ['greedy tokens: all 2 agree; llama.cpp with an F32 KV cache: all 2 agree']);
  });
  it('a swap of the top two within the margins\' spread on the agreeing steps is a near-tie; a different pair or a wide margin is not', () => {
    const lk = { tokens: [5, 6, 7], steps: [st(5, 1, 0.5), st(6, 1, 0.4), st(7, 8, 0.002)] };
    const lc = { tokens: [5, 6, 8], steps: [st(5, 1, 0.49), st(6, 1, 0.41), st(8, 7, 0.001)], stepsKvF32: [st(5, 1, 0.5), st(6, 1, 0.4), st(7, 8, 0.001)] };
    const lines = greedyEvidence(lk, lc);
    assert.equal(lines[0], 'greedy tokens: agree for the first 2 of 3 (lorakit 7… llama.cpp 8…); llama.cpp with an F32 KV cache: all 3 agree');
    assert.match(lines[1]!, /at step 3: lorakit's top two 7\/8 \(logit margin 2\.0e-3\), llama\.cpp's 8\/7 \(margin 1\.0e-3\); over the 2 agreeing steps the engines' margins differ by 1\.0e-2 \(median\), up to 1\.0e-2: a near-tie/);
    assert.match(greedyEvidence({ ...lk, steps: [...lk.steps.slice(0, 2), st(7, 8, 0.3)] }, lc)[1]!, /by more than the engines' rounding elsewhere: look for a real difference/);
    assert.match(greedyEvidence(lk, { ...lc, steps: [...lc.steps.slice(0, 2), st(8, 9, 0.001)] })[1]!, /NOT the same pair of tokens/);
  });
});
