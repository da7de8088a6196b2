// One LoRA training run, platform-neutral, on whatever backend is current: a tiny random
// llama (2 layers, GQA 4/2; its LM head widened ×25 as in train-fixture.ts), synthetic token
// data with a learnable structure, an adapter on every projection, AdamW with clipping.
// The WebGPU page runs it in Chromium and the Node side on the native backend; the test
// compares the two (tests/unit/webgpu.test.ts). Buffers are read back with memory.read, so
// it works on a device backend.
import { getBackend } from '../../src/backend/index.js';
import { BatchIterator, collate, type Example } from '../../src/data/index.js';
import { getPeftModel } from '../../src/lora/peft-model.js';
import { createModel } from '../../src/models/load.js';
import { createOptimizer } from '../../src/train/optimizer.js';
import { causalLmObjective, train } from '../../src/train/trainer.js';

export interface TrainCaseArgs {
  steps: number;
  seed: number;
  lr: number;
  batch?: number;
  gradAccum?: number;
}

export interface TrainCaseResult {
  backend: string;
  losses: number[];
  gradNorms: number[];
  skipped: number;
  /** loss on the held-out examples before and after training */
  before: number;
  after: number;
  /** the trained adapter's tensors by name */
  adapter: Record<string, number[]>;
}

const VOCAB = 48;

/** "a b c … " sequences: token t is followed by (3t + k) mod V for a per-example k in {1, 2} */
function examples(n: number, offset: number): Example[] {
  const out: Example[] = [];
  for (let i = 0; i < n; i++) {
    const len = 12 + ((i + offset) % 7);
    const k = 1 + ((i + offset) % 2);
    const ids = new Int32Array(len);
    ids[0] = 2 + ((i * 5 + offset) % (VOCAB - 2));
    for (let j = 1; j < len; j++) ids[j] = 2 + ((3 * ids[j - 1]! + k) % (VOCAB - 2));
    const targetMask = new Uint8Array(len).fill(1);
    targetMask[0] = 0;
    out.push({ ids, targetMask, file: 'synthetic', line: i + 1, fullLength: len });
  }
  return out;
}

export async function runTrainCase(a: TrainCaseArgs): Promise<TrainCaseResult> {
  const be = getBackend();
  const model = createModel(
    { model_type: 'llama', vocab_size: VOCAB, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 64, rms_norm_eps: 1e-6, tie_word_embeddings: false },
    { seed: a.seed },
  );
  const head = model.getModule('lm_head').ownParameters()[0]![1].data as Float32Array;
  be.scale(head, head, 25);
  const peft = getPeftModel(model, { r: 8, lora_alpha: 16, target_modules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] });
  const trainSet = examples(24, 0);
  const valid = collate(examples(6, 100), [[0], [1], [2], [3], [4], [5]]);
  const validLoss = async (): Promise<number> => {
    const acc = be.memory.allocAccumulator(1);
    const { count } = causalLmObjective(peft.model).evaluate(valid, acc);
    return (await be.memory.readAccumulator(acc))[0]! / count;
  };
  const before = await validLoss();
  const losses: number[] = [];
  const gradNorms: number[] = [];
  const res = await train({
    model: peft.model,
    optimizer: createOptimizer(peft.model.trainableParameters(), { lr: a.lr }),
    data: { train: new BatchIterator(trainSet, { batchSize: a.batch ?? 4, seed: a.seed, order: 'shuffle' }) },
    args: { steps: a.steps, lr: a.lr, schedule: 'cosine', warmupSteps: 2, gradAccum: a.gradAccum ?? 1, maxGradNorm: 1, progress: false },
    callbacks: {
      onStep: (row) => {
        losses.push(row.loss);
        gradNorms.push(row.gradNorm);
      },
    },
  });
  const after = await validLoss();
  const adapter: Record<string, number[]> = {};
  for (const [name, p] of peft.trainableParameters()) adapter[name] = [...(await be.memory.read(p.data as Float32Array))];
  return { backend: be.name, losses, gradNorms, skipped: res.skippedSteps ?? 0, before, after, adapter };
}
