// The platform-neutral loop (train/trainer.ts) writes its run through the sink it is given
// (TrainOptions.host): here an in-memory run folder, no files. A run resumed from a checkpoint
// the sink holds continues with the losses of the uninterrupted run.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { FileData } from '../../src/io/file-data.js';
import { createOptimizer } from '../../src/train/optimizer.js';
import { train, type RunFolder, type StepRow, type TrainHost } from '../../src/train/trainer.js';
import { batches, makeFixture } from '../helpers/train-fixture.js';

const tmp = mkdtempSync(join(tmpdir(), 'lorakit-train-sink-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

async function bytesOf(d: FileData): Promise<Uint8Array> {
  if (typeof d === 'string') return new TextEncoder().encode(d);
  if (d instanceof Uint8Array) return d;
  const chunks: Uint8Array[] = [];
  for await (const c of d as AsyncIterable<Uint8Array>) chunks.push(c);
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let o = 0;
  for (const c of chunks) {
    out.set(c, o);
    o += c.length;
  }
  return out;
}

class MemoryRunFolder implements RunFolder {
  readonly path = 'memory:run';
  metrics: string[] = [];
  readonly checkpoints = new Map<string, Map<string, Uint8Array>>();
  readonly files = new Map<string, string>();
  start(): void {
    this.metrics = [];
  }
  resumeMetrics(_checkpoint: string, step: number): string[] {
    this.metrics = this.metrics.filter((l) => (JSON.parse(l) as { step: number }).step <= step);
    return [...this.metrics];
  }
  appendMetric(line: string): void {
    this.metrics.push(line);
  }
  async writeCheckpoint(name: string, files: Map<string, FileData>): Promise<void> {
    const m = new Map<string, Uint8Array>();
    for (const [k, v] of files) m.set(k, await bytesOf(v));
    this.checkpoints.set(name, m);
  }
  pruneCheckpoints(keep: number): void {
    const steps = [...this.checkpoints.keys()].filter((n) => n.startsWith('checkpoints/')).sort();
    for (const old of steps.slice(0, Math.max(0, steps.length - keep))) this.checkpoints.delete(old);
  }
  writeFile(name: string, text: string): void {
    this.files.set(name, text);
  }
}

async function run(folder: MemoryRunFolder, host: TrainHost, resume?: string): Promise<StepRow[]> {
  const fx = makeFixture(join(tmp, resume ? 'resumed' : 'full'));
  const res = await train({
    model: fx.model,
    optimizer: createOptimizer(fx.model.trainableParameters(), { lr: 5e-3 }),
    data: { train: batches(fx.train, 4, 7) },
    args: { steps: 8, lr: 5e-3, schedule: 'cosine', warmupSteps: 2, saveEvery: 2, outDir: 'unused: the host holds the run', progress: false, ...(resume ? { resume } : {}) },
    host: { ...host, runFolder: folder },
  });
  assert.equal(res.outDir, 'memory:run');
  return res.history.filter((h): h is StepRow => h.type === 'train');
}

describe('the training loop with an in-memory run folder', () => {
  it('writes metrics, checkpoints and the report through the sink, and resumes from it exactly', async () => {
    const full = new MemoryRunFolder();
    const rows = await run(full, {});
    assert.equal(full.metrics.length, 8);
    assert.deepEqual([...full.checkpoints.keys()].sort(), ['checkpoints/step-0000006', 'checkpoints/step-0000008']);
    for (const ck of full.checkpoints.values()) assert.deepEqual([...ck.keys()].sort(), ['optimizer.safetensors', 'trainable.safetensors', 'trainer_state.json']);
    assert.deepEqual([...full.files.keys()].sort(), ['loss.svg', 'report.json', 'report.md']);

    const resumed = new MemoryRunFolder();
    resumed.metrics = full.metrics.slice(0, 6);
    const name = 'checkpoints/step-0000006';
    const after6 = await run(resumed, { readCheckpoint: (p) => ({ dir: p, files: full.checkpoints.get(p)! }) }, name);
    assert.deepEqual(after6.map((r) => r.step), [1, 2, 3, 4, 5, 6, 7, 8]);
    assert.deepEqual(after6.slice(6).map((r) => r.loss), rows.slice(6).map((r) => r.loss));
  });

  it('an outDir or a resume without the sink to serve it is a clear error', async () => {
    const fx = makeFixture(join(tmp, 'no-sink'));
    const opts = { model: fx.model, optimizer: createOptimizer(fx.model.trainableParameters(), { lr: 1e-3 }), data: { train: batches(fx.train, 4) } };
    await assert.rejects(train({ ...opts, args: { steps: 1, lr: 1e-3, outDir: 'x', progress: false } }), /outDir needs a run folder/);
    await assert.rejects(train({ ...opts, args: { steps: 1, lr: 1e-3, resume: 'x', progress: false } }), /resume needs a checkpoint reader/);
  });
});
