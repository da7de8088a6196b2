// The train command's flags and the trainer arguments they give (shared by the causal and
// classify paths, train.ts and train-classify.ts).
import type { InitLoraWeights } from '../../lora/index.js';
import type { ScheduleKind } from '../../train/schedule.js';
import type { TrainArgs } from '../../train/trainer.js';
import type { Task } from '../task.js';

/** The trainer's arguments from the train flags (shared by the causal and classify paths). */
export function trainArgsFromFlags(o: TrainOpts, outDir: string, config: Record<string, unknown>, steps: number | undefined, epochs: number | undefined): TrainArgs {
  return {
    lr: o.lr,
    gradAccum: o.gradAccum,
    schedule: o.schedule,
    warmupSteps: o.warmup,
    maxGradNorm: o.maxGradNorm,
    outDir,
    progress: o.progress,
    config,
    ...(steps !== undefined ? { steps } : {}),
    ...(epochs !== undefined ? { epochs } : {}),
    ...(o.evalEvery !== undefined ? { evalEvery: o.evalEvery } : {}),
    ...(o.saveEvery !== undefined ? { saveEvery: o.saveEvery } : {}),
    ...(o.resume !== undefined ? { resume: o.resume } : {}),
  };
}

export interface TrainOpts {
  config?: string;
  task?: Task;
  model?: string;
  data?: string;
  valid?: string;
  validSplit?: number;
  out?: string;
  rank: number;
  alpha?: number;
  dropout: number;
  targets?: string;
  rslora: boolean;
  dora: boolean;
  init: InitLoraWeights;
  full: boolean;
  epochs?: number;
  steps?: number;
  batchSize: number;
  gradAccum: number;
  lr: number;
  schedule: ScheduleKind;
  warmup: number;
  weightDecay?: number;
  maxLength: number;
  pack: boolean;
  maskPrompt: boolean;
  seed: number;
  evalEvery?: number;
  saveEvery?: number;
  gradCheckpoint: boolean;
  maxGradNorm: number;
  resume?: string;
  progress: boolean;
}
