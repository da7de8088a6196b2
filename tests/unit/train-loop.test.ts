import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { BatchIterator, datasetFromJsonl } from '../../src/data/index.js';
import { readSafetensors } from '../../src/io/safetensors.node.js';
import { createOptimizer } from '../../src/train/optimizer.js';
import { causalLmObjective, type StepRow } from '../../src/train/trainer.js';
import { resolveCheckpoint, train } from '../../src/train/trainer.node.js';
import { batches, makeFixture, validBatches, writeJsonl } from '../helpers/train-fixture.js';

const tmp = mkdtempSync(join(tmpdir(), 'lorakit-train-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const worker = join(dirname(fileURLToPath(import.meta.url)), '..', 'helpers', 'train-worker.js');

function validLoss(fx: ReturnType<typeof makeFixture>): number {
  const obj = causalLmObjective(fx.model);
  let sum = 0;
  let n = 0;
  fx.model.eval();
  for (const b of validBatches(fx.valid, 3)) {
    const r = obj.evaluate(b);
    sum += r.lossSum;
    n += r.count;
  }
  fx.model.train();
  return sum / n;
}

describe('training loop', () => {
  it('trains a LoRA adapter on a tiny llama and the validation loss falls clearly', async () => {
    const fx = makeFixture(join(tmp, 'fall'));
    const before = validLoss(fx);
    const out = join(tmp, 'fall', 'run');
    const res = await train({
      model: fx.model,
      optimizer: createOptimizer(fx.model.trainableParameters(), { lr: 5e-2 }),
      data: { train: batches(fx.train, 4), valid: validBatches(fx.valid, 3) },
      args: { steps: 40, lr: 5e-2, schedule: 'cosine', warmupSteps: 3, evalEvery: 10, outDir: out, progress: false },
    });
    const afterLoss = validLoss(fx);
    assert.ok(afterLoss < 0.6 * before, `validation loss ${before.toFixed(3)} -> ${afterLoss.toFixed(3)}`);
    assert.equal(res.steps, 40);
    assert.ok(Math.abs(res.finalValidLoss! - afterLoss) < 1e-4);
    // run folder: metrics rows for every step and eval, the curve and the report
    const rows = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { type: string });
    assert.equal(rows.filter((r) => r.type === 'train').length, 40);
    assert.equal(rows.filter((r) => r.type === 'eval').length, 4);
    assert.match(readFileSync(join(out, 'loss.svg'), 'utf8'), /<polyline/);
    assert.match(readFileSync(join(out, 'report.md'), 'utf8'), /trainable parameters \| [\d,]+ \|/);
    assert.ok(existsSync(join(out, 'best', 'trainable.safetensors')));
  });

  it('fine-tunes every weight (or chosen ones) with the same loop', async () => {
    const fx = makeFixture(join(tmp, 'full-ft'));
    fx.peft.unload();
    fx.model.requiresGrad(true);
    const before = validLoss(fx);
    const all = fx.model.trainableParameters().length;
    assert.equal(all, fx.model.namedParameters().length);
    await train({
      model: fx.model,
      optimizer: createOptimizer(fx.model.trainableParameters(), { lr: 3e-3 }),
      data: { train: batches(fx.train, 4) },
      args: { steps: 20, lr: 3e-3, progress: false },
    });
    assert.ok(validLoss(fx) < 0.7 * before);
    // only the norms: everything else stays exactly as it was
    const fx2 = makeFixture(join(tmp, 'some-ft'));
    fx2.peft.unload();
    for (const [n, p] of fx2.model.namedParameters()) p.requiresGrad = n.endsWith('norm.weight');
    const frozen = fx2.model.namedParameters().filter(([n]) => !n.endsWith('norm.weight')).map(([n, p]) => [n, p.value.toF32Array(true)] as const);
    await train({
      model: fx2.model,
      optimizer: createOptimizer(fx2.model.trainableParameters(), { lr: 1e-2 }),
      data: { train: batches(fx2.train, 4) },
      args: { steps: 3, lr: 1e-2, progress: false },
    });
    const now = new Map(fx2.model.namedParameters());
    for (const [n, v] of frozen) assert.deepEqual([...now.get(n)!.value.toF32Array()], [...v], n);
    assert.ok(fx2.model.namedParameters().some(([n, p]) => n.endsWith('norm.weight') && p.data.some((x) => x !== 1)));
  });

  it('masks the prompt: only completion tokens are targets and the loss counts nothing else', () => {
    const fx = makeFixture(join(tmp, 'mask'), { format: 'completion' });
    const file = join(tmp, 'mask', 'train.jsonl');
    const unmasked = datasetFromJsonl(readFileSync(file, 'utf8'), file, fx.tokenizer, { maskPrompt: false, maxLength: 64 });
    const lines = readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { prompt: string; completion: string });
    fx.train.examples.forEach((ex, i) => {
      const promptLen = fx.tokenizer.encode(lines[i]!.prompt).length;
      for (let t = 0; t < ex.ids.length; t++) assert.equal(ex.targetMask[t], t >= promptLen ? 1 : 0, `example ${i} token ${t}`);
      assert.deepEqual([...ex.ids], [...unmasked.examples[i]!.ids]);
    });
    const rows = [[0], [1], [2]];
    const it1 = new BatchIterator(fx.train.examples.slice(0, 3), { batchSize: 3, order: 'sequential' });
    const it2 = new BatchIterator(unmasked.examples.slice(0, 3), { batchSize: 3, order: 'sequential' });
    const masked = it1.next();
    const full = it2.next();
    assert.equal(masked.rows.length, rows.length);
    const obj = causalLmObjective(fx.model);
    // per-position losses of the unmasked batch, summed over the completion positions only
    const perPos: number[] = [];
    for (let b = 0; b < full.B; b++) {
      for (let t = 0; t < full.T; t++) {
        const lab = new Int32Array(full.labels.length).fill(-100);
        lab[b * full.T + t] = full.labels[b * full.T + t]!;
        if (lab[b * full.T + t] === -100) continue;
        const r = obj.evaluate({ ...full, labels: lab, targets: 1 });
        if (masked.labels[b * masked.T + t] !== -100) perPos.push(r.lossSum);
      }
    }
    const m = obj.evaluate(masked);
    assert.equal(m.count, perPos.length);
    const expected = perPos.reduce((a, b) => a + b, 0);
    assert.ok(Math.abs(m.lossSum - expected) < 1e-4 * Math.max(1, expected), `${m.lossSum} vs ${expected}`);
    // and the gradient of the masked loss is that of the completion positions alone
    fx.model.zeroGrad();
    obj.forwardBackward(masked, 1);
    const gMasked = fx.model.trainableParameters().map(([, p]) => p.grad!.slice());
    fx.model.zeroGrad();
    const onlyCompletion = new Int32Array(full.labels);
    for (let i = 0; i < onlyCompletion.length; i++) if (masked.labels[i] === -100) onlyCompletion[i] = -100;
    obj.forwardBackward({ ...full, labels: onlyCompletion }, 1);
    const gRef = fx.model.trainableParameters().map(([, p]) => p.grad!);
    gMasked.forEach((g, i) => g.forEach((v, j) => assert.ok(Math.abs(v - gRef[i]![j]!) < 1e-6)));
    assert.ok(gMasked.some((g) => g.some((v) => v !== 0)), 'the completion gives a gradient');
  });

  it('packs short examples into one row with attention kept within each example', () => {
    const fx = makeFixture(join(tmp, 'pack'));
    const examples = fx.train.examples.slice(0, 5);
    const packed = new BatchIterator(examples, { batchSize: 1, order: 'sequential', pack: true, maxLength: 128 }).next();
    assert.ok(packed.rows[0]!.length >= 2, 'several examples share the row');
    const obj = causalLmObjective(fx.model);
    const together = obj.evaluate(packed);
    let alone = 0;
    let count = 0;
    for (const i of packed.rows.flat()) {
      const r = obj.evaluate(new BatchIterator([examples[i]!], { batchSize: 1, order: 'sequential' }).next());
      alone += r.lossSum;
      count += r.count;
    }
    assert.equal(together.count, count);
    assert.ok(Math.abs(together.lossSum - alone) < 1e-4 * alone, `${together.lossSum} vs ${alone}`);
  });

  it('accumulating k micro-batches gives the update of one batch k times larger', async () => {
    const run = async (batchSize: number, gradAccum: number): Promise<Float32Array[]> => {
      const fx = makeFixture(join(tmp, `acc-${batchSize}`));
      const examples = fx.train.examples.slice(0, 4);
      await train({
        model: fx.model,
        optimizer: createOptimizer(fx.model.trainableParameters(), { lr: 1e-2 }),
        data: { train: new BatchIterator(examples, { batchSize, order: 'sequential' }) },
        args: { steps: 2, lr: 1e-2, gradAccum, progress: false, maxGradNorm: 0 },
      });
      return fx.model.trainableParameters().map(([, p]) => p.data.slice());
    };
    const big = await run(4, 1);
    const small = await run(2, 2);
    let maxDiff = 0;
    big.forEach((a, i) => a.forEach((v, j) => (maxDiff = Math.max(maxDiff, Math.abs(v - small[i]![j]!)))));
    assert.ok(maxDiff < 1e-5, `max parameter difference ${maxDiff}`);
  });

  it('skips a step with a non-finite loss, says so, and stops after repeated failures', async () => {
    const fx = makeFixture(join(tmp, 'nan'));
    const logs: string[] = [];
    const base = causalLmObjective(fx.model);
    let calls = 0;
    const poisoned = {
      forwardBackward: (b: Parameters<typeof base.forwardBackward>[0], s: number) => {
        calls++;
        const r = base.forwardBackward(b, s);
        return calls === 2 || calls >= 4 ? { ...r, lossSum: NaN } : r;
      },
      evaluate: base.evaluate,
    };
    await assert.rejects(
      train({
        model: fx.model,
        optimizer: createOptimizer(fx.model.trainableParameters(), { lr: 1e-2 }),
        data: { train: batches(fx.train, 4) },
        args: { steps: 20, lr: 1e-2, progress: false, maxBadSteps: 3 },
        objective: poisoned,
        callbacks: { log: (l) => logs.push(l) },
      }),
      /3 steps in a row had a non-finite loss or gradient \(last at step 6\); stopping/,
    );
    assert.match(logs[0]!, /^step 2: non-finite loss \(NaN\); the update is skipped$/);
    assert.equal(logs.length, 4);
  });

  it('keeps the best checkpoint and stops early when validation stops improving', async () => {
    const fx = makeFixture(join(tmp, 'early'));
    const base = causalLmObjective(fx.model);
    const evalLosses = [3, 2, 2.5, 2.6, 2.7, 1];
    let evals = 0;
    const scripted = { forwardBackward: base.forwardBackward, evaluate: (b: Parameters<typeof base.evaluate>[0]) => ({ lossSum: evalLosses[Math.min(evals, evalLosses.length - 1)]! * base.evaluate(b).count, count: base.evaluate(b).count }) };
    const out = join(tmp, 'early', 'run');
    const res = await train({
      model: fx.model,
      optimizer: createOptimizer(fx.model.trainableParameters(), { lr: 1e-3 }),
      data: { train: batches(fx.train, 4), valid: validBatches(fx.valid, 100) },
      args: { steps: 30, lr: 1e-3, evalEvery: 2, earlyStoppingPatience: 3, outDir: out, progress: false },
      objective: scripted,
      callbacks: { onEval: () => void evals++, log: () => {} },
    });
    // evaluations at steps 2, 4, 6, 8, 10: best at step 4, then three without improvement
    assert.equal(res.stoppedEarly, true);
    assert.equal(res.steps, 10);
    assert.ok(Math.abs(res.bestValidLoss! - 2) < 1e-9);
    const best = JSON.parse(readFileSync(join(out, 'best', 'trainer_state.json'), 'utf8')) as { step: number };
    assert.equal(best.step, 4);
    assert.ok(existsSync(join(out, 'checkpoints', 'step-0000010')));
  });

  it('resumes a killed run so that the remaining losses equal an uninterrupted run', () => {
    const env = { ...process.env, LORAKIT_THREADS: '1' };
    const full = join(tmp, 'full');
    const killed = join(tmp, 'killed');
    const r1 = spawnSync(process.execPath, [worker, full, '12', '4'], { env, encoding: 'utf8' });
    assert.equal(r1.status, 0, r1.stderr);
    const r2 = spawnSync(process.execPath, [worker, killed, '12', '4', '--kill-after-step', '6'], { env, encoding: 'utf8' });
    assert.equal(r2.signal, 'SIGKILL', `the worker should have been killed: ${r2.stderr}`);
    assert.equal(resolveCheckpoint(join(killed, 'run')), join(killed, 'run', 'checkpoints', 'step-0000004'));
    const r3 = spawnSync(process.execPath, [worker, killed, '12', '4', '--resume'], { env, encoding: 'utf8' });
    assert.equal(r3.status, 0, r3.stderr);
    const losses = (dir: string): Map<number, number> =>
      new Map(
        readFileSync(join(dir, 'run', 'metrics.jsonl'), 'utf8')
          .trim()
          .split('\n')
          .map((l) => JSON.parse(l) as StepRow)
          .filter((r) => r.type === 'train')
          .map((r) => [r.step, r.loss]),
      );
    const a = losses(full);
    const b = losses(killed);
    assert.deepEqual([...b.keys()], [...a.keys()]);
    for (const [step, loss] of a) assert.equal(b.get(step), loss, `step ${step}`);
    // resuming into another folder carries the run's rows up to the checkpoint over
    const elsewhere = spawnSync(process.execPath, [worker, killed, '12', '4', '--resume-into', join(tmp, 'elsewhere')], { env, encoding: 'utf8' });
    assert.equal(elsewhere.status, 0, elsewhere.stderr);
    const moved = readFileSync(join(tmp, 'elsewhere', 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as StepRow).filter((r) => r.type === 'train');
    assert.deepEqual(moved.map((r) => r.step), [...a.keys()]);
    for (const r of moved) assert.equal(r.loss, a.get(r.step), `moved step ${r.step}`);
    // the final adapters are identical too
    const wa = readSafetensors(join(full, 'run', 'checkpoints', 'step-0000012', 'trainable.safetensors')).tensors;
    const wb = readSafetensors(join(killed, 'run', 'checkpoints', 'step-0000012', 'trainable.safetensors')).tensors;
    for (const [name, t] of wa) assert.deepEqual([...wb.get(name)!.toF32Array()], [...t.toF32Array()], name);
  });

  it('a kill during a checkpoint write leaves the previous checkpoint intact and loadable', () => {
    const env = { ...process.env, LORAKIT_THREADS: '1' };
    const dir = join(tmp, 'killsave');
    const r = spawnSync(process.execPath, [worker, dir, '12', '4', '--kill-during-save', '8'], { env, encoding: 'utf8' });
    assert.equal(r.signal, 'SIGKILL', r.stderr);
    const ckdir = join(dir, 'run', 'checkpoints');
    assert.deepEqual(readdirSync(ckdir).filter((n) => !n.startsWith('.')), ['step-0000004']);
    assert.equal(resolveCheckpoint(join(dir, 'run')), join(ckdir, 'step-0000004'));
    const st = JSON.parse(readFileSync(join(ckdir, 'step-0000004', 'trainer_state.json'), 'utf8')) as { step: number };
    assert.equal(st.step, 4);
    const resumed = spawnSync(process.execPath, [worker, dir, '12', '4', '--resume'], { env, encoding: 'utf8' });
    assert.equal(resumed.status, 0, resumed.stderr);
    assert.ok(existsSync(join(ckdir, 'step-0000012', 'trainable.safetensors')));
  });

  it('reports bad data with file and line', () => {
    const fx = makeFixture(join(tmp, 'bad'));
    const file = join(tmp, 'bad', 'broken.jsonl');
    writeJsonl(file, [{ text: 'fine' }, { txt: 'oops' }]);
    assert.throws(() => datasetFromJsonl(readFileSync(file, 'utf8'), file, fx.tokenizer), new RegExp(`${file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}:2`));
  });
});
