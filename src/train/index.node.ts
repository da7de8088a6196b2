// The train layer's Node-only public API (files on disk); index.ts holds the platform-neutral rest.
export { train, resolveCheckpoint, readCheckpoint, runFolder, nodeTrainHost, writeRunReport, previousRun } from './trainer.node.js';
export { createProgress } from './progress.node.js';
export type { ProgressOptions } from './progress.node.js';
export { onInterrupt } from './signals.node.js';
export type { Interrupt } from './signals.node.js';
