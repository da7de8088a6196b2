import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Parameter } from '../../src/nn/module.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { clipGradNorm, globalGradNorm } from '../../src/train/clip.js';
import { lossCurveSvg, niceTicks } from '../../src/train/plot.js';
import { makeSchedule } from '../../src/train/schedule.js';
import { SGD } from '../../src/train/sgd.js';

function param(values: number[], grad: number[]): Parameter {
  const p = new Parameter(Tensor.fromValues(values, [values.length]), true);
  p.grad!.set(grad);
  return p;
}

describe('schedules', () => {
  it('warm up linearly from 0 as Hugging Face does', () => {
    const f = makeSchedule({ kind: 'constant', lr: 1e-3, warmupSteps: 4 });
    assert.deepEqual([0, 1, 2, 3, 4, 100].map(f), [0, 2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3]);
  });
  it('decay linearly to 0 at the last step', () => {
    const f = makeSchedule({ kind: 'linear', lr: 1, warmupSteps: 2, totalSteps: 10 });
    assert.equal(f(2), 1);
    assert.equal(f(6), 0.5);
    assert.equal(f(10), 0);
  });
  it('follow half a cosine, with an optional floor', () => {
    const f = makeSchedule({ kind: 'cosine', lr: 2, totalSteps: 100 });
    assert.equal(f(0), 2);
    assert.ok(Math.abs(f(50) - 1) < 1e-12);
    assert.ok(Math.abs(f(100)) < 1e-12);
    const g = makeSchedule({ kind: 'cosine', lr: 1, totalSteps: 10, minLrRatio: 0.1 });
    assert.ok(Math.abs(g(10) - 0.1) < 1e-12);
  });
  it('reject bad options, all at once', () => {
    assert.throws(
      () => makeSchedule({ kind: 'cosine', lr: -1, warmupSteps: 1.5 }),
      /lr must be a positive number, got -1; warmup steps must be a non-negative integer, got 1.5; schedule "cosine" needs totalSteps > 0/,
    );
    assert.throws(() => makeSchedule({ kind: 'wavy' as 'linear', lr: 1, totalSteps: 3 }), /schedule "wavy" is not one of constant, linear, cosine/);
  });
});

describe('gradient clipping', () => {
  it('computes the global norm over every parameter', () => {
    assert.equal(globalGradNorm([param([0, 0], [3, 0]), param([0], [4])]), 5);
  });
  it('scales gradients down to the max norm and leaves small ones alone', () => {
    const a = param([0, 0], [3, 0]);
    const b = param([0], [4]);
    assert.equal(clipGradNorm([a, b], 1), 5);
    assert.ok(Math.abs(globalGradNorm([a, b]) - 1) < 1e-5);
    const c = param([0], [0.5]);
    clipGradNorm([c], 1);
    assert.equal(c.grad![0], 0.5);
  });
  it('reports a non-finite norm without touching the gradients', () => {
    const a = param([0, 0], [NaN, 1]);
    assert.ok(Number.isNaN(clipGradNorm([a], 1)));
    assert.equal(a.grad![1], 1);
  });
});

describe('SGD', () => {
  it('matches PyTorch momentum semantics step by step', () => {
    const p = param([1], [0.5]);
    const opt = new SGD([p], { lr: 0.1, momentum: 0.9, weightDecay: 0.01 });
    // step 1: d = 0.5 + 0.01·1 = 0.51, buf = 0.51, w = 1 − 0.051
    opt.step();
    assert.ok(Math.abs(p.data[0]! - 0.949) < 1e-7);
    // step 2: d = 0.5 + 0.01·0.949, buf = 0.9·0.51 + d, w −= 0.1·buf
    opt.step();
    const d2 = 0.5 + 0.01 * 0.949;
    assert.ok(Math.abs(p.data[0]! - (0.949 - 0.1 * (0.9 * 0.51 + d2))) < 1e-6);
  });
  it('saves and restores its momentum state', () => {
    const p = param([1, 2], [0.1, 0.2]);
    const opt = new SGD([p], { lr: 0.1, momentum: 0.5 });
    opt.step();
    const saved = opt.state();
    const q = param([...p.data], [0.1, 0.2]);
    const opt2 = new SGD([q], { lr: 0.1, momentum: 0.5 });
    opt2.loadState(saved);
    opt.step();
    opt2.step();
    assert.deepEqual([...q.data], [...p.data]);
  });
});

describe('loss curve', () => {
  it('draws one polyline per series with every finite point', () => {
    const svg = lossCurveSvg([
      { name: 'train', points: [[0, 3], [1, 2.5], [2, NaN], [3, 2]] },
      { name: 'valid <eval>', points: [[0, 3.1], [3, 2.2]] },
    ], { title: 'loss' });
    assert.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
    const lines = [...svg.matchAll(/<polyline[^>]*points="([^"]+)"/g)].map((m) => m[1]!.split(' ').length);
    assert.deepEqual(lines, [3, 2]);
    assert.match(svg, /valid &lt;eval&gt;/);
    assert.match(svg, /<\/svg>\n$/);
  });
  it('picks round tick values', () => {
    assert.deepEqual(niceTicks(0, 1), [0, 0.2, 0.4, 0.6, 0.8, 1]);
    assert.deepEqual(niceTicks(1.3, 4.9), [2, 3, 4]);
  });
});
