// Training: the loop, optimizers, schedules, clipping, progress and reports.
export { train, causalLmObjective, runReport } from './trainer.js';
export type { BatchCounts, BatchSource, Objective, Stateful, TrainArgs, TrainCallbacks, TrainOptions, TrainResult, StepRow, EvalRow, RunFolder, TrainHost } from './trainer.js';
export { AdamW } from './adamw.js';
export type { AdamWOptions, AdamWState } from './adamw.js';
export { SGD } from './sgd.js';
export type { SGDOptions } from './sgd.js';
export { createOptimizer, defaultNoDecay, flattenState, unflattenState } from './optimizer.js';
export type { Optimizer, OptimizerKind, OptimizerOptions, OptimizerState } from './optimizer.js';
export { makeSchedule, SCHEDULE_KINDS } from './schedule.js';
export type { ScheduleKind, ScheduleOptions } from './schedule.js';
export { clipGradNorm, globalGradNorm } from './clip.js';
export { lossCurveSvg, niceTicks } from './plot.js';
export type { Series, PlotOptions } from './plot.js';
export { formatEta, formatStep } from './progress.js';
export type { Progress, StepInfo } from './progress.js';
