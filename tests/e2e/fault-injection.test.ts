// Fault injection: a training run SIGKILLed again and again at seeded random points (after a
// step, in the middle of a checkpoint's file, or by the clock from outside, which can land
// anywhere: a rename, an fsync, the metrics append), each time resumed from what is on disk,
// must end bit-identical to a run never killed: the same final weights, the same loss at every
// step, every checkpoint loadable, no leftovers (docs/RELIABILITY.md records the figures).
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import { readSafetensors } from '../../src/io/safetensors.node.js';
import { Rng } from '../../src/tensor/rng.js';
import { resolveCheckpoint } from '../../src/train/trainer.node.js';
import type { StepRow } from '../../src/train/trainer.js';

const worker = join(dirname(fileURLToPath(import.meta.url)), '..', 'helpers', 'train-worker.js');
const tmp = mkdtempSync(join(tmpdir(), 'lorakit-faults-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const env = { ...process.env, LORAKIT_THREADS: '1' };
const STEPS = 12;
const SAVE_EVERY = 2;
/** faults to inject (the run then goes to the end); the seed fixes where they land */
const FAULTS = Number(process.env.LORAKIT_FAULTS ?? 6); // a longer campaign: LORAKIT_FAULTS=30
const SEED = 25;

function losses(run: string): Map<number, number> {
  const rows = readFileSync(join(run, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as StepRow);
  return new Map(rows.filter((r) => r.type === 'train').map((r) => [r.step, r.loss]));
}

/** Runs the worker; `killAfterMs` kills it from outside. Resolves to how it ended. */
function runWorker(dir: string, extra: string[], killAfterMs: number | null): Promise<{ code: number | null; signal: string | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [worker, dir, String(STEPS), String(SAVE_EVERY), ...extra], { env });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = killAfterMs === null ? null : setTimeout(() => child.kill('SIGKILL'), killAfterMs);
    child.on('exit', (code, signal) => {
      if (timer) clearTimeout(timer);
      resolve({ code, signal, stderr });
    });
  });
}

describe('fault injection: SIGKILL at random points, then resume', () => {
  it(`${FAULTS} kills (after steps, inside checkpoint writes, by the clock) end bit-identical to an unkilled run`, async () => {
    const clean = join(tmp, 'clean');
    const t0 = Date.now();
    const ref = spawnSync(process.execPath, [worker, clean, String(STEPS), String(SAVE_EVERY)], { env, encoding: 'utf8' });
    assert.equal(ref.status, 0, ref.stderr);
    const runMs = Date.now() - t0;

    const rng = new Rng(SEED);
    const injected: string[] = [];
    let starts = 0;
    let rounds = 0;
    // rounds of kill-and-resume until FAULTS kills have landed (a clock kill can miss a short
    // resumed run: that round then ends, is checked, and the next starts afresh)
    while (injected.length < FAULTS) {
      const run = join(tmp, `faulty-${rounds++}`, 'run');
      for (;;) {
        starts++;
        assert.ok(starts < 60, `no end after ${starts} starts: ${injected.join('; ')}`);
        let resumeFrom = 0;
        try {
          resumeFrom = Number(/step-(\d+)$/.exec(resolveCheckpoint(run))![1]);
        } catch {
          resumeFrom = 0; // killed before the first checkpoint: start again
        }
        const extra = resumeFrom > 0 ? ['--resume'] : [];
        let kill: string | null = null;
        let killMs: number | null = null;
        // (a clock kill after the last checkpoint leaves nothing to train: that start just finishes)
        if (injected.length < FAULTS && resumeFrom < STEPS) {
          const kind = starts % 3; // the three kinds in turn, each at a seeded random point
          const step = resumeFrom + 1 + rng.nextInt(STEPS - resumeFrom);
          if (kind === 0) {
            kill = `after step ${step}`;
            extra.push('--kill-after-step', String(step));
          } else if (kind === 1) {
            // a step with a checkpoint write (every SAVE_EVERY steps; evaluation every 4 rewrites best/)
            const saveStep = Math.min(STEPS, Math.ceil(step / SAVE_EVERY) * SAVE_EVERY);
            const chunk = rng.nextInt(64);
            kill = `inside the checkpoint write of step ${saveStep} (chunk ${chunk} of 64)`;
            extra.push('--kill-during-save', String(saveStep), '--kill-chunk', String(chunk));
          } else {
            killMs = Math.round(rng.uniform(0.3, 1) * runMs);
            kill = `by the clock at ${killMs} ms`;
          }
        }
        const r = await runWorker(dirname(run), extra, killMs);
        if (process.env.LORAKIT_FAULT_DEBUG) console.log(starts, run, extra.join(' '), killMs, r.code, r.signal, r.stderr.slice(-300));
        if (r.signal === 'SIGKILL') {
          injected.push(`${kill} (resumed from step ${resumeFrom})`);
          // what a kill leaves is loadable: the latest checkpoint reads back whole
          let ck: string | null = null;
          try {
            ck = resolveCheckpoint(run);
          } catch (e) {
            if (!/holds no checkpoints|is not a checkpoint/.test((e as Error).message)) throw e;
          }
          if (ck) {
            for (const f of ['trainable.safetensors', 'optimizer.safetensors']) readSafetensors(join(ck, f));
            JSON.parse(readFileSync(join(ck, 'trainer_state.json'), 'utf8'));
          }
          continue;
        }
        assert.equal(r.code, 0, r.stderr);
        if (resolveCheckpoint(run).endsWith(`step-${String(STEPS).padStart(7, '0')}`)) break;
      }
      // nothing lost: the same loss at every step, the same final weights and optimizer state, bit for bit
      const a = losses(join(clean, 'run'));
      const b = losses(run);
      assert.deepEqual([...b.keys()], [...a.keys()]);
      for (const [step, loss] of a) assert.equal(b.get(step), loss, `step ${step}`);
      const last = `step-${String(STEPS).padStart(7, '0')}`;
      for (const f of ['trainable.safetensors', 'optimizer.safetensors']) {
        assert.deepEqual(readFileSync(join(run, 'checkpoints', last, f)), readFileSync(join(clean, 'run', 'checkpoints', last, f)), f);
      }
      // no hidden leftovers of the kills
      assert.deepEqual(readdirSync(join(run, 'checkpoints')).filter((n) => n.startsWith('.')), []);
      assert.deepEqual(readdirSync(run).filter((n) => n.startsWith('.')), []);
    }
    assert.equal(injected.length, FAULTS);
    console.log(`fault injection: ${injected.length} SIGKILLs over ${starts} starts in ${rounds} round(s), each round bit-identical at step ${STEPS}:\n  ${injected.join('\n  ')}`);
  });
});
