// The messages between the page (client.ts) and the training worker (worker.ts).
// A request carries an id; the worker answers it with one 'done' or 'error' message of that id
// and, meanwhile, 'progress', 'eval', 'token' and 'log' events. See docs/ARCHITECTURE.md §Browser.
import type { ModelSource } from './model-files.js';
import type { LoraSettings } from './recipe.js';

export type BackendChoice = 'auto' | 'ref' | 'wasm' | 'webgpu';

export type Request =
  /** allowFallbackAdapter: 'auto' may take a fallback (software) WebGPU adapter (web/backend.ts) */
  | { type: 'init'; backend: BackendChoice; allowFallbackAdapter?: boolean }
  | { type: 'loadModel'; source: ModelSource; name: string }
  | { type: 'train'; settings: LoraSettings; data: { text: string; file: string } }
  | { type: 'generate'; prompt: string; adapter: boolean; maxNewTokens: number; temperature: number; seed: number }
  | { type: 'exportAdapter' }
  | { type: 'loadAdapter'; files: { name: string; bytes: Uint8Array }[] };

/** Sent without an answer: they act on the training run in flight. */
export type Control = { type: 'pause' } | { type: 'resume' } | { type: 'cancel' };

export interface ProgressEvent {
  step: number;
  totalSteps: number;
  loss: number;
  lr: number;
  /** over the last ~10 s */
  tokensPerSecond: number;
  /** seconds, from the mean step time so far */
  eta: number;
  elapsed: number;
  /** this step's input tokens and the trainer's own clock at its end (seconds), for exact rates */
  tokens: number;
  trainerElapsed: number;
  skipped: boolean;
}

export interface EvalEvent {
  step: number;
  loss: number;
  perplexity: number;
}

export interface BackendInfo {
  name: string;
  why: string;
  crossOriginIsolated: boolean;
  /** WebGPU's adapter (vendor, architecture, description; marked when a fallback one) */
  adapter?: string;
  /** one line: which backend and why (the worker logs it) */
  notice: string;
}

export interface ModelInfo {
  name: string;
  modelType: string;
  layers: number;
  hidden: number;
  vocab: number;
  params: number;
  dtype: string;
  bytes: number;
}

export interface TrainSummary {
  steps: number;
  finalLoss: number;
  firstLoss: number;
  finalValidLoss: number | null;
  seconds: number;
  tokensPerSecond: number;
  trainableParams: number;
  examples: number;
  validExamples: number;
  truncated: number;
  format: string;
  targets: string[];
}

export interface GenerateSummary {
  text: string;
  tokens: number;
  seconds: number;
  finishReason: string;
}

export type WorkerMessage =
  | { type: 'done'; id: number; value: unknown }
  | { type: 'error'; id: number; message: string; cancelled?: boolean }
  | { type: 'progress'; id: number; event: ProgressEvent }
  | { type: 'eval'; id: number; event: EvalEvent }
  | { type: 'token'; id: number; text: string }
  /** the run stopped after `step` for a pause, or goes on */
  | { type: 'state'; id: number; state: 'paused' | 'running'; step: number }
  | { type: 'log'; line: string };
