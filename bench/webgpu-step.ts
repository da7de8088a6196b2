// One timed LoRA training run on the current backend, platform-neutral (the WebGPU bench runs
// it in Chromium's page and in Node on the native backend, bench/webgpu.ts): a random llama of
// the given shape, r 8 adapters on every projection, random token rows [B, T], AdamW, clipping.
// tokens/s per step from the trainer's step rows (tokens over the time between two rows).
import { getBackend } from '../src/backend/index.js';
import { BatchIterator, type Example } from '../src/data/index.js';
import { getPeftModel } from '../src/lora/peft-model.js';
import { createModel } from '../src/models/load.js';
import { createOptimizer } from '../src/train/optimizer.js';
import { train } from '../src/train/trainer.js';

export interface StepBenchArgs {
  hidden: number;
  layers: number;
  heads: number;
  kvHeads: number;
  vocab: number;
  B: number;
  T: number;
  steps: number;
}

export interface StepBenchResult {
  backend: string;
  /** tokens/s of each step after the first */
  tps: number[];
}

export async function runStepBench(a: StepBenchArgs): Promise<StepBenchResult> {
  const model = createModel(
    { model_type: 'llama', vocab_size: a.vocab, hidden_size: a.hidden, intermediate_size: 3 * a.hidden, num_hidden_layers: a.layers, num_attention_heads: a.heads, num_key_value_heads: a.kvHeads, max_position_embeddings: a.T, rms_norm_eps: 1e-6, tie_word_embeddings: false },
    { seed: 1 },
  );
  const peft = getPeftModel(model, { r: 8, lora_alpha: 16, target_modules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] });
  let s = 12345;
  const next = (): number => (s = (Math.imul(s, 1103515245) + 12345) >>> 0) % a.vocab;
  const rows: Example[] = Array.from({ length: a.B * 2 }, (_, i) => {
    const ids = Int32Array.from({ length: a.T }, next);
    const targetMask = new Uint8Array(a.T).fill(1);
    targetMask[0] = 0;
    return { ids, targetMask, file: 'random', line: i + 1, fullLength: a.T };
  });
  const tps: number[] = [];
  await train({
    model: peft.model,
    optimizer: createOptimizer(peft.model.trainableParameters(), { lr: 1e-3 }),
    data: { train: new BatchIterator(rows, { batchSize: a.B, seed: 1, order: 'shuffle' }) },
    args: { steps: a.steps, lr: 1e-3, progress: false },
    callbacks: {
      onStep: (row) => {
        if (row.step > 1) tps.push(row.tokensPerSecond);
      },
    },
  });
  return { backend: getBackend().name, tps };
}
