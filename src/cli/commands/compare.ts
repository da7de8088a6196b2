// lorakit compare: full fine-tuning vs LoRA on one model, measured here in one run (trainable
// parameters, optimizer state, step time, peak memory, checkpoint size, merged vs unmerged
// inference), each mode in its own process.
import { Command } from 'commander';
import { BUNDLED_MODEL_DIR } from '../../demo/demo.js';
import { compareFineTuning, compareTable } from '../compare.js';
import { parsePositiveInt, parsePositiveNumber, parseTargets, requireFile, requireModelFolder } from '../common.js';

interface CompareOpts {
  model?: string;
  data?: string;
  steps: number;
  warmup: number;
  rank: number;
  alpha?: number;
  targets?: string;
  batchSize: number;
  seqLen: number;
  lr: number;
  seed: number;
  json: boolean;
}

export function compareCommand(): Command {
  return new Command('compare')
    .description('full fine-tuning vs LoRA measured on this machine: trainable parameters, optimizer state, step time, peak memory, checkpoint size, merged vs unmerged inference')
    .option('--model <dir>', 'model folder (default: the bundled models/brown-llama)')
    .option('--data <file>', 'JSONL training data (default: a few held-out Brown documents)')
    .option('--steps <n>', 'timed training steps per mode', parsePositiveInt, 10)
    .option('--warmup <n>', 'untimed steps before them', parsePositiveInt, 3)
    .option('--rank <r>', 'LoRA rank', parsePositiveInt, 8)
    .option('--alpha <a>', 'LoRA alpha (default 2 × rank)', parsePositiveNumber)
    .option('--targets <list>', "LoRA target modules (default: the model family's default)")
    .option('--batch-size <n>', 'rows per step', parsePositiveInt, 4)
    .option('--seq-len <n>', 'tokens per row (examples are packed)', parsePositiveInt, 128)
    .option('--lr <x>', 'AdamW learning rate', parsePositiveNumber, 1e-3)
    .option('--seed <n>', 'random seed of the LoRA initialisation', parsePositiveInt, 1)
    .option('--json', 'the measurements as JSON', false)
    .action(async (o: CompareOpts) => {
      const model = o.model ?? BUNDLED_MODEL_DIR;
      requireModelFolder(model);
      if (o.data !== undefined) requireFile(o.data, 'data file');
      const r = await compareFineTuning({
        model,
        steps: o.steps,
        warmup: o.warmup,
        rank: o.rank,
        batchSize: o.batchSize,
        seqLen: o.seqLen,
        lr: o.lr,
        seed: o.seed,
        ...(o.data !== undefined ? { data: o.data } : {}),
        ...(o.alpha !== undefined ? { alpha: o.alpha } : {}),
        ...(o.targets !== undefined ? { targets: parseTargets(o.targets) } : {}),
        ...(o.json ? {} : { log: (l: string) => process.stderr.write(`${l}\n`) }),
      });
      if (o.json) process.stdout.write(JSON.stringify(r, null, 2) + '\n');
      else process.stdout.write(compareTable(r).join('\n') + '\n');
    });
}
