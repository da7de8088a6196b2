// Which task a command runs on a model folder: a causal LM (llama, gpt2, …) or classification
// (BERT, RoBERTa, ViT), told by --task or, when it is absent, by config.json's model_type.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ENCODER_FAMILIES, MODEL_FAMILIES } from '../models/registry.js';
import { UsageError } from './common.js';

export const TASKS = ['causal', 'classify'] as const;
export type Task = (typeof TASKS)[number];

/** config.json's model_type, or undefined when the file is missing or unreadable (the loader reports that). */
export function modelTypeOf(modelDir: string): unknown {
  const file = join(modelDir, 'config.json');
  if (!existsSync(file)) return undefined;
  try {
    const j = JSON.parse(readFileSync(file, 'utf8')) as unknown;
    return typeof j === 'object' && j !== null && !Array.isArray(j) ? (j as Record<string, unknown>)['model_type'] : undefined;
  } catch {
    return undefined;
  }
}

function encoderTypes(): string {
  return [...ENCODER_FAMILIES.keys()].join(', ');
}

function causalTypes(): string {
  return [...MODEL_FAMILIES.keys()].join(', ');
}

/**
 * The task for `--task` (or its absence) and the model folder: encoder model types default to
 * classify, everything else to causal. A task the model cannot do is a usage error naming the
 * model_type and the model types the task supports. A folder without a readable config.json
 * gives `task ?? 'causal'`; the loader then reports the folder.
 */
export function resolveTask(modelDir: string, task: Task | undefined, flag = '--task'): Task {
  const modelType = modelTypeOf(modelDir);
  if (modelType === undefined) return task ?? 'causal';
  const type = typeof modelType === 'string' ? modelType : '';
  const encoder = ENCODER_FAMILIES.has(type);
  if (task === undefined) return encoder ? 'classify' : 'causal';
  const shown = `model_type ${JSON.stringify(modelType)}`;
  if (task === 'classify' && !encoder) {
    const what = MODEL_FAMILIES.has(type) ? ' (a causal LM)' : '';
    throw new UsageError(`${flag} classify: model folder ${modelDir} has ${shown}${what}; classification needs an encoder model: ${encoderTypes()}`);
  }
  if (task === 'causal' && encoder) {
    throw new UsageError(`${flag} causal: model folder ${modelDir} has ${shown} (a classification model: use --task classify); causal LM model types: ${causalTypes()}`);
  }
  return task;
}

/** For commands that only classify (predict): the model must be an encoder. */
export function requireClassifier(modelDir: string, command: string): void {
  const modelType = modelTypeOf(modelDir);
  if (modelType === undefined) return;
  if (typeof modelType !== 'string' || !ENCODER_FAMILIES.has(modelType)) {
    const what = typeof modelType === 'string' && MODEL_FAMILIES.has(modelType) ? ' (a causal LM)' : '';
    throw new UsageError(`${command} needs a classification model: model folder ${modelDir} has model_type ${JSON.stringify(modelType)}${what}; supported model types: ${encoderTypes()}`);
  }
}
