// A small served setup built by the tests themselves: a byte-level tokenizer with a ChatML
// template, a tiny random llama saved as a Hugging Face folder, and two LoRA adapters with
// random non-zero A and B (PEFT's init_lora_weights=False) on different layers and seeds, so
// base, A and B answer differently. Offline references come from generate() on separate
// model instances: the base alone, or loadPeftModel with one adapter active.
// makeBundledServeFixture (at the end) serves the bundled pretrained model with two trained adapters.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { BatchIterator, datasetFromJsonl, padIdFor } from '../../src/data/index.js';
import { generate, type GenerationResult } from '../../src/generate/index.js';
import { Tokenizer } from '../../src/io/tokenizer.js';
import { getPeftModel } from '../../src/lora/index.js';
import { loadPeftModel } from '../../src/lora/index.node.js';
import type { CausalLM } from '../../src/models/causal-lm.js';
import { loadModel, saveModel } from '../../src/models/index.node.js';
import { createOptimizer, train } from '../../src/train/index.js';
import { CHATML_TEMPLATE, writeByteLevelBpeTokenizer } from './tokenizers.js';
import { createTinyLlama } from './train-fixture.js';
import { loadTokenizer } from '../../src/io/tokenizer.node.js';
import { saveAdapter } from '../../src/lora/files.node.js';

export const WORDS = [' red', ' blue', ' green', ' cat', ' dog', ' bird', ' sits', ' runs', ' sings', ' the', ' and'];

export interface ServeFixture {
  root: string;
  modelDir: string;
  /** the folder run-time adapter loads must come from */
  adapterDir: string;
  /** adapter folders inside adapterDir */
  adapterA: string;
  adapterB: string;
  tokenizer: Tokenizer;
  /** offline greedy (or seeded) reference: model 'base' | 'A' | 'B' */
  offline(which: 'base' | 'A' | 'B', prompt: readonly number[], opts: { maxNewTokens: number; temperature?: number; topP?: number; seed?: number; stopStrings?: string[]; stopTokenIds?: number[] }): GenerationResult;
  cleanup(): void;
}

export async function makeServeFixture(opts: { hidden?: number; layers?: number } = {}): Promise<ServeFixture> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'lorakit-serve-'));
  const modelDir = path.join(root, 'tiny-llama');
  const tw = writeByteLevelBpeTokenizer(modelDir, {
    extraWords: WORDS,
    specialTokens: ['<|endoftext|>', '<|im_start|>', '<|im_end|>'],
    chatTemplate: CHATML_TEMPLATE,
  });
  fs.writeFileSync(path.join(modelDir, 'generation_config.json'), JSON.stringify({ eos_token_id: [tw.id('<|endoftext|>'), tw.id('<|im_end|>')] }));
  const tokenizer = loadTokenizer(modelDir);
  const model = createTinyLlama(tokenizer.vocabSize, { hidden: opts.hidden ?? 32, layers: opts.layers ?? 2, maxPositions: 256, seed: 7 });
  await saveModel(model, modelDir);

  const adapterDir = path.join(root, 'adapters');
  const adapterA = path.join(adapterDir, 'a');
  const adapterB = path.join(adapterDir, 'b');
  const specs: [string, string[], number][] = [
    [adapterA, ['q_proj', 'v_proj', 'o_proj'], 11],
    [adapterB, ['gate_proj', 'up_proj', 'down_proj'], 23],
  ];
  for (const [dir, targets, seed] of specs) {
    const m = loadModel(modelDir);
    const peft = getPeftModel(m, { r: 4, lora_alpha: 16, target_modules: targets, init_lora_weights: false }, 'default', { seed });
    saveAdapter(peft, dir, { baseModelNameOrPath: modelDir });
  }

  return {
    root,
    modelDir,
    adapterDir,
    adapterA,
    adapterB,
    tokenizer,
    offline: offlineReference(modelDir, adapterA, adapterB, tokenizer),
    cleanup() {
      fs.rmSync(root, { recursive: true, force: true });
    },
  };
}

/**
 * Offline greedy (or seeded) generation with the base or adapter A or B: separate model
 * instances loaded from the saved files, as a user would, each loaded once.
 */
function offlineReference(modelDir: string, adapterA: string, adapterB: string, tokenizer: Tokenizer): ServeFixture['offline'] {
  const models = new Map<string, CausalLM>();
  const modelOf = (which: 'base' | 'A' | 'B'): CausalLM => {
    let m = models.get(which);
    if (!m) {
      m = which === 'base' ? loadModel(modelDir) : loadPeftModel(loadModel(modelDir), which === 'A' ? adapterA : adapterB).model;
      models.set(which, m);
    }
    return m;
  };
  return (which, prompt, o) => {
    const g: Parameters<typeof generate>[2] = { maxNewTokens: o.maxNewTokens, tokenizer, temperature: o.temperature ?? 0, topP: o.topP ?? 1, seed: o.seed ?? 0 };
    if (o.stopStrings) g.stopStrings = o.stopStrings;
    if (o.stopTokenIds) g.stopTokenIds = o.stopTokenIds;
    return generate(modelOf(which), [prompt], g)[0]!;
  };
}

/** Short prompts over the fixture's words (deterministic). */
export function prompts(count: number, seed = 1): string[] {
  const out: string[] = [];
  let s = seed;
  const next = (): number => (s = (Math.imul(s, 1103515245) + 12345) >>> 0) % 1000;
  for (let i = 0; i < count; i++) {
    const len = 1 + (next() % 7);
    let p = 'the';
    for (let j = 0; j < len; j++) p += WORDS[next() % WORDS.length];
    out.push(p);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// The bundled model (models/brown-llama, a pretrained llama with a ChatML template) served with
// two adapters trained here by lorakit's own train() for a few steps each on different tiny
// data sets: A on plain sea-story sentences (attention projections), B on a few ChatML cooking
// exchanges with the assistant turns as targets (MLP projections). The model is read in place
// from the repository (found from this file: dist/tests/helpers → the package root); only the
// adapters are written, to a temporary folder that cleanup() removes.

/** models/brown-llama in this repository. */
export const BUNDLED_MODEL_DIR = fileURLToPath(new URL('../../../models/brown-llama', import.meta.url));

export const SEA_TEXTS = [
  'The old ship sailed north across the cold grey sea, and the sailors sang of home.',
  'At dawn the harbor bells rang and the fishing boats went out past the lighthouse.',
  'The captain watched the storm clouds gather over the dark water.',
  'Gulls followed the boat all the way back to the quiet harbor.',
];

export const COOKING_CHATS: { user: string; assistant: string }[] = [
  { user: 'What should I cook tonight?', assistant: 'Make a pot of tomato soup with fresh basil and serve it with warm bread.' },
  { user: 'How long do I bake the bread?', assistant: 'Bake the bread for forty minutes, until the crust is golden brown.' },
  { user: 'What goes well with the soup?', assistant: 'A green salad with lemon and olive oil goes well with the soup.' },
];

export interface AdapterTraining {
  steps: number;
  seconds: number;
  /** the training loss (mean over the batch's targets) of the first step and of the last */
  firstLoss: number;
  finalLoss: number;
}

export interface BundledServeFixture extends ServeFixture {
  /** the name the server gives the base model (the folder's name) */
  baseName: string;
  training: { A: AdapterTraining; B: AdapterTraining };
}

async function trainBundledAdapter(
  modelDir: string,
  tokenizer: Tokenizer,
  jsonl: string,
  targets: string[],
  o: { steps: number; lr: number; seed: number; out: string },
): Promise<AdapterTraining> {
  const ds = datasetFromJsonl(jsonl, `${path.basename(o.out)}.jsonl`, tokenizer, { maxLength: 128 });
  const peft = getPeftModel(loadModel(modelDir), { r: 8, lora_alpha: 16, lora_dropout: 0, target_modules: targets }, 'default', { seed: o.seed });
  const data = new BatchIterator(ds.examples, { batchSize: ds.examples.length, order: 'shuffle', seed: o.seed, padId: padIdFor(tokenizer) });
  const optimizer = createOptimizer(peft.trainableParameters(), { lr: o.lr, weightDecay: 0 });
  const r = await train({ model: peft.model, optimizer, data: { train: data }, args: { steps: o.steps, lr: o.lr, progress: false } });
  peft.model.eval();
  saveAdapter(peft, o.out, { baseModelNameOrPath: modelDir });
  const losses = r.history.filter((h) => h.type === 'train').map((h) => h.loss);
  return { steps: r.steps, seconds: r.seconds, firstLoss: losses[0]!, finalLoss: losses[losses.length - 1]! };
}

export async function makeBundledServeFixture(opts: { steps?: number; lr?: number } = {}): Promise<BundledServeFixture> {
  const modelDir = BUNDLED_MODEL_DIR;
  const tokenizer = loadTokenizer(modelDir);
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'lorakit-serve-bundled-'));
  const adapterDir = path.join(root, 'adapters');
  const adapterA = path.join(adapterDir, 'sea');
  const adapterB = path.join(adapterDir, 'cooking');
  const steps = opts.steps ?? 60;
  const lr = opts.lr ?? 5e-3;
  const jsonl = (rows: unknown[]): string => rows.map((r) => JSON.stringify(r)).join('\n') + '\n';
  const trainingA = await trainBundledAdapter(modelDir, tokenizer, jsonl(SEA_TEXTS.map((text) => ({ text }))), ['q_proj', 'k_proj', 'v_proj', 'o_proj'], { steps, lr, seed: 1, out: adapterA });
  const trainingB = await trainBundledAdapter(
    modelDir,
    tokenizer,
    jsonl(COOKING_CHATS.map((c) => ({ messages: [{ role: 'user', content: c.user }, { role: 'assistant', content: c.assistant }] }))),
    ['gate_proj', 'up_proj', 'down_proj'],
    { steps, lr, seed: 2, out: adapterB },
  );

  return {
    root,
    modelDir,
    adapterDir,
    adapterA,
    adapterB,
    tokenizer,
    baseName: path.basename(modelDir),
    training: { A: trainingA, B: trainingB },
    offline: offlineReference(modelDir, adapterA, adapterB, tokenizer),
    cleanup() {
      fs.rmSync(root, { recursive: true, force: true });
    },
  };
}

/** A `lorakit serve` child process started by a test, once it has printed its address. */
export interface ServedCli {
  child: ChildProcess;
  /** http://127.0.0.1:PORT (without /v1) */
  url: string;
  /** everything the server wrote to stderr so far */
  stderr(): string;
  /** sends SIGTERM and resolves with the exit code */
  stop(): Promise<number | null>;
}

/**
 * Starts `node BIN serve ARGS --port 0 --quiet` and waits (30 s at most) for its
 * "serving … at http://127.0.0.1:PORT/v1" line; rejects with its stderr if it exits first.
 */
export async function startServer(bin: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<ServedCli> {
  const child = spawn(process.execPath, [bin, 'serve', ...args, '--port', '0', '--quiet'], { stdio: ['ignore', 'pipe', 'pipe'], env });
  let stderr = '';
  const exited = new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no "serving" line within 30 s: ${stderr}`)), 30_000);
    child.stderr!.on('data', (d: Buffer) => {
      stderr += d.toString();
      const m = /serving .* at (http:\/\/127\.0\.0\.1:\d+)\/v1/.exec(stderr);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    child.on('exit', (code) => reject(new Error(`serve exited with ${code}: ${stderr}`)));
  });
  return {
    child,
    url,
    stderr: () => stderr,
    stop: () => {
      child.kill('SIGTERM');
      return exited;
    },
  };
}
