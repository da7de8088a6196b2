// One LoRA training run, platform-neutral, on whatever backend is current: a tiny random
// llama (2 layers, GQA 4/2; its LM head widened ×25 as in train-fixture.ts), synthetic token
// data with a learnable structure, an adapter on every projection, AdamW with clipping.
// The WebGPU page runs it in Chromium and the Node side on the native backend; the test
// compares the two (tests/unit/webgpu.test.ts). Buffers are read back with memory.read, so
// it works on a device backend.
import { getBackend } from '../../src/backend/index.js';
import { hostTensor, makeResident } from '../../src/backend/transfer.js';
import { streamGenerate } from '../../src/generate/generate.js';
import type { FileData } from '../../src/io/file-data.js';
import { deserializeSafetensors } from '../../src/io/safetensors.js';
import { ADAPTER_WEIGHTS_FILE, PEFT_PREFIX, readAdapterFiles } from '../../src/lora/files.js';
import { BatchIterator, collate, type Example } from '../../src/data/index.js';
import { getPeftModel } from '../../src/lora/peft-model.js';
import { createModel } from '../../src/models/load.js';
import { createOptimizer } from '../../src/train/optimizer.js';
import { causalLmObjective, train, type RunFolder } from '../../src/train/trainer.js';

export interface TrainCaseArgs {
  steps: number;
  seed: number;
  lr: number;
  batch?: number;
  gradAccum?: number;
  /**
   * where the frozen base weights live on a device backend: 'device' (made there, the default),
   * 'host' (read back to host arrays, as a model loaded from files has them: every kernel call
   * uploads them), 'resident' ('host', then makeResident: uploaded once)
   */
  weights?: 'device' | 'host' | 'resident';
  /** also save the adapter's PEFT files (readAdapterFiles) and a checkpoint at the last step (an in-memory run folder) */
  files?: boolean;
  /** then generate this many tokens greedily from a held-out prompt, with and without the KV cache (streamGenerate) */
  generate?: number;
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
  /** args.files: the tensors of adapter_model.safetensors and of the checkpoint's trainable.safetensors, by parameter name */
  adapterFile?: Record<string, number[]>;
  checkpoint?: Record<string, number[]>;
  /** args.files: the checkpoint's optimizer.safetensors tensors (AdamW's moments): how many, and whether all finite with some nonzero */
  optimizerTensors?: { count: number; finite: boolean; nonzero: boolean };
  /** args.generate: greedy tokens with the KV cache and without */
  generated?: number[];
  generatedNoCache?: number[];
  /** bytes uploaded to the device (WebGPU's counter) per training step, when the backend counts them */
  uploadBytesPerStep?: number;
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
  if (a.weights === 'host' || a.weights === 'resident') for (const p of model.parameters()) p.value = await hostTensor(p.value);
  if (a.weights === 'resident') makeResident(model.parameters());
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
  const checkpoints = new Map<string, Map<string, FileData>>();
  const stats = (be as { context?: { stats: { uploadBytes: number } } }).context?.stats;
  const uploaded0 = stats?.uploadBytes ?? 0;
  const res = await train({
    model: peft.model,
    optimizer: createOptimizer(peft.model.trainableParameters(), { lr: a.lr }),
    data: { train: new BatchIterator(trainSet, { batchSize: a.batch ?? 4, seed: a.seed, order: 'shuffle' }) },
    args: { steps: a.steps, lr: a.lr, schedule: 'cosine', warmupSteps: 2, gradAccum: a.gradAccum ?? 1, maxGradNorm: 1, progress: false, ...(a.files ? { outDir: 'memory', saveEvery: a.steps } : {}) },
    ...(a.files ? { host: { runFolder: memoryRunFolder(checkpoints) } } : {}),
    callbacks: {
      onStep: (row) => {
        losses.push(row.loss);
        gradNorms.push(row.gradNorm);
      },
    },
  });
  const uploadBytesPerStep = stats ? (stats.uploadBytes - uploaded0) / a.steps : undefined;
  const after = await validLoss();
  const adapter: Record<string, number[]> = {};
  for (const [name, p] of peft.trainableParameters()) adapter[name] = [...(await be.memory.read(p.data as Float32Array))];
  const out: TrainCaseResult = { backend: be.name, losses, gradNorms, skipped: res.skippedSteps ?? 0, before, after, adapter, ...(uploadBytesPerStep !== undefined ? { uploadBytesPerStep } : {}) };
  if (a.files) {
    // PEFT's keys name the module (base_model.model.<path>.lora_A.weight); the parameters add the adapter's name
    const byParam = (t: Map<string, { toF32Array(): Float32Array }>, peftKeys: boolean): Record<string, number[]> =>
      Object.fromEntries([...t].map(([k, v]) => [peftKeys ? k.slice(PEFT_PREFIX.length).replace(/\.(lora_[AB])\.weight$/, '.$1.default.weight') : k, [...v.toF32Array()]]));
    const weights = (await readAdapterFiles(peft, 'default')).get(ADAPTER_WEIGHTS_FILE) as Uint8Array;
    out.adapterFile = byParam(deserializeSafetensors(weights, ADAPTER_WEIGHTS_FILE).tensors, true);
    const ckpt = checkpoints.get(`checkpoints/step-${String(a.steps).padStart(7, '0')}`);
    if (!ckpt) throw new Error(`train case: no checkpoint at step ${a.steps} (written: ${[...checkpoints.keys()].join(', ')})`);
    out.checkpoint = byParam(deserializeSafetensors(ckpt.get('trainable.safetensors') as Uint8Array, 'trainable.safetensors').tensors, false);
    const opt = [...deserializeSafetensors(ckpt.get('optimizer.safetensors') as Uint8Array, 'optimizer.safetensors').tensors.values()].map((t) => t.toF32Array());
    out.optimizerTensors = { count: opt.length, finite: opt.every((v) => v.every(Number.isFinite)), nonzero: opt.some((v) => v.some((x) => x !== 0)) };
  }
  const n = a.generate;
  if (n) {
    const prompt = [...examples(1, 200)[0]!.ids.slice(0, 6)];
    const run = async (useCache: boolean): Promise<number[]> => {
      const tokens: number[] = [];
      for await (const ev of streamGenerate(peft.model, [prompt], { maxNewTokens: n, useCache, stopTokenIds: [] })) tokens.push(ev.token);
      return tokens;
    };
    out.generated = await run(true);
    out.generatedNoCache = await run(false);
  }
  return out;
}

/** A run folder in memory: the checkpoints' files by folder name (the rest is dropped). */
function memoryRunFolder(checkpoints: Map<string, Map<string, FileData>>): RunFolder {
  return {
    path: 'memory',
    start() {},
    resumeMetrics: () => [],
    appendMetric() {},
    writeCheckpoint: async (name, files) => void checkpoints.set(name, files),
    pruneCheckpoints() {},
    writeFile() {},
  };
}
