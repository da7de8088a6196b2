// The eval command's flags (shared by eval.ts and eval-classify.ts).
import type { Task } from '../task.js';

export interface EvalFlags {
  config?: string;
  task?: Task;
  model?: string;
  adapter?: string[];
  adapterName?: string;
  data?: string;
  batchSize: number;
  maxLength: number;
  maskPrompt?: boolean;
  json: boolean;
  verbose: boolean;
}
