// A training run in its own process, for the kill-and-resume tests.
// Usage: node train-worker.js RUN_DIR STEPS SAVE_EVERY [--resume | --resume-into DIR] [--kill-after-step N] [--kill-during-save N [--kill-chunk C]]
import { join } from 'node:path';
import './node-platform.js';
import { createOptimizer } from '../../src/train/optimizer.js';
import { train } from '../../src/train/trainer.node.js';
import { batches, makeFixture, validBatches } from './train-fixture.js';

const [runDir, stepsArg, saveArg, ...rest] = process.argv.slice(2);
const flag = (name: string): number | null => {
  const i = rest.indexOf(name);
  return i >= 0 ? Number(rest[i + 1]) : null;
};
const killAfter = flag('--kill-after-step');
const killDuringSave = flag('--kill-during-save');
const killChunk = flag('--kill-chunk') ?? 32;
const fx = makeFixture(join(runDir!, 'fixture'));
const params = fx.model.trainableParameters();
const optimizer = createOptimizer(params, { lr: 5e-3 });
let currentStep = 0;
await train({
  model: fx.model,
  optimizer,
  data: { train: batches(fx.train, 4, 7), valid: validBatches(fx.valid, 3) },
  args: {
    steps: Number(stepsArg),
    lr: 5e-3,
    schedule: 'cosine',
    warmupSteps: 2,
    saveEvery: Number(saveArg),
    evalEvery: 4,
    outDir: rest.includes('--resume-into') ? rest[rest.indexOf('--resume-into') + 1]! : join(runDir!, 'run'),
    progress: false,
    ...(rest.includes('--resume') ? { resume: join(runDir!, 'run') } : {}),
    // resume from the run's checkpoint at step 8 into another folder
    ...(rest.includes('--resume-into') ? { resume: join(runDir!, 'run', 'checkpoints', 'step-0000008') } : {}),
  },
  callbacks: {
    onStep(row) {
      currentStep = row.step;
      if (killAfter !== null && row.step === killAfter) process.kill(process.pid, 'SIGKILL');
    },
    exportFiles() {
      // a large extra file streamed in chunks, so a kill can land in the middle of the write
      async function* big(): AsyncGenerator<Uint8Array> {
        for (let i = 0; i < 64; i++) {
          if (killDuringSave !== null && currentStep === killDuringSave && i === killChunk) process.kill(process.pid, 'SIGKILL');
          yield new Uint8Array(64 * 1024).fill(i);
        }
      }
      return new Map([['padding.bin', big()]]);
    },
  },
});
