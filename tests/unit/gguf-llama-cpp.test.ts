// llama.cpp itself runs lorakit's GGUF exports: node-llama-cpp 3.21.1 (tests/llama-cpp, its
// prebuilt CPU build, no network) loads the bundled model exported as F32, Q8_0, Q4_0 and Q4_K, with
// and without the exported LoRA adapter, and its greedy tokens and per-token log-probabilities
// on fixed prompts are compared with lorakit running the same GGUF file (and the same adapter,
// as PEFT). docs/ARCHITECTURE.md §GGUF.
//
// Tolerances on |Δ log p| of each greedy token: llama.cpp keeps its KV cache in f16 (F32 file:
// 5e-3), and multiplies Q8_0 / Q4_K weights with activations quantized to 8 bits (5e-2).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { loadTokenizer } from '../../src/io/index.node.js';
import { getPeftModel, type PeftModel } from '../../src/lora/index.js';
import { loadPeftModel, saveAdapter } from '../../src/lora/index.node.js';
import type { DecoderLM } from '../../src/models/index.js';
import { loadModel } from '../../src/models/index.node.js';
import { Rng } from '../../src/tensor/rng.js';
import { tmpDir } from '../helpers/io-tmp.js';

const NLC = path.resolve('tests/llama-cpp/node_modules/node-llama-cpp/dist/index.js');
const BUNDLED = 'models/brown-llama';
const PROMPTS = ['The man said that', 'It was a', 'In the morning'];
const STEPS = 8;
const installed = fs.existsSync(NLC);
const why = 'node-llama-cpp is not installed (npm ci --prefix tests/llama-cpp --ignore-scripts installs it, ~730 MB): the llama.cpp round-trip tests are skipped';

interface Run {
  prompt: number[];
  tokens: number[];
  logprobs: number[];
}

/** lorakit's greedy tokens and their log-probabilities, recomputing the whole sequence each step. */
function lorakitGreedy(model: DecoderLM, prompt: number[]): Run {
  const ids = [...prompt];
  const run: Run = { prompt, tokens: [], logprobs: [] };
  for (let s = 0; s < STEPS; s++) {
    const T = ids.length;
    const logits = model.forward(Int32Array.from(ids), 1, T);
    const V = logits.length / T;
    const row = logits.subarray((T - 1) * V);
    let best = 0;
    for (let i = 1; i < V; i++) if (row[i]! > row[best]!) best = i;
    let sum = 0;
    for (let i = 0; i < V; i++) sum += Math.exp(row[i]! - row[best]!);
    run.tokens.push(best);
    run.logprobs.push(-Math.log(sum));
    ids.push(best);
  }
  return run;
}

/** The part of node-llama-cpp's API the test uses (it lives in tests/llama-cpp, outside lorakit's dependencies). */
interface NodeLlamaCpp {
  getLlama(opts: { gpu: false; build: 'never'; logLevel: 'error'; maxThreads: number }): Promise<{
    loadModel(opts: { modelPath: string }): Promise<{
      tokenize(text: string): number[];
      createContext(opts: { contextSize: number; threads: number; lora?: string }): Promise<{
        getSequence(): {
          evaluateWithMetadata(tokens: number[], meta: { confidence: true }, opts: { temperature: number }): AsyncIterable<{ token: number; confidence: number }>;
          dispose(): unknown;
        };
        dispose(): Promise<void>;
      }>;
      dispose(): Promise<void>;
    }>;
    dispose(): Promise<void>;
  }>;
}

function makeAdapter(dir: string): void {
  const model = loadModel(BUNDLED, { dtype: 'f32' });
  const peft = getPeftModel(model, { r: 4, lora_alpha: 8, target_modules: 'all-linear' });
  const rng = new Rng(23);
  for (const [, l] of peft.loraLayers) {
    const a = l.adapter('default');
    rng.fillNormalFast(a.A.value.f32, 0, 0.2);
    rng.fillNormalFast(a.B.value.f32, 0, 0.03);
  }
  saveAdapter(peft as PeftModel, dir);
}

function lorakit(args: string[]): void {
  const r = spawnSync(process.execPath, ['bin/lorakit.js', ...args], { encoding: 'utf8' });
  assert.equal(r.status, 0, `lorakit ${args.join(' ')}: ${r.stderr}`);
}

test('llama.cpp (node-llama-cpp 3.21.1) runs lorakit\'s GGUF exports as lorakit does', { skip: installed || process.env.CI === 'true' ? false : why }, async (t) => {
  assert.ok(installed, `${why}; under CI=true they must run (.ci/run installs them)`);
  const dir = tmpDir('lorakit-gguf-');
  const adapterDir = path.join(dir, 'adapter');
  makeAdapter(adapterDir);
  const files = { f32: path.join(dir, 'm-f32.gguf'), q8_0: path.join(dir, 'm-q8_0.gguf'), q4_0: path.join(dir, 'm-q4_0.gguf'), q4_k: path.join(dir, 'm-q4_k.gguf') };
  for (const [type, file] of Object.entries(files)) lorakit(['export', '--model', BUNDLED, '--type', type, '--out', file]);
  const adapterGguf = path.join(dir, 'adapter.gguf');
  lorakit(['export', '--model', BUNDLED, '--adapter', adapterDir, '--out', adapterGguf]);

  const { getLlama } = (await import(pathToFileURL(NLC).href)) as NodeLlamaCpp;
  const llama = await getLlama({ gpu: false, build: 'never', logLevel: 'error', maxThreads: 2 });
  const cases: [keyof typeof files, boolean, number][] = [['f32', false, 5e-3], ['f32', true, 5e-3], ['q8_0', false, 5e-2], ['q8_0', true, 5e-2], ['q4_0', false, 5e-2], ['q4_k', false, 5e-2]];
  for (const [type, withAdapter, tol] of cases) {
    await t.test(`${type}${withAdapter ? ' with the LoRA adapter' : ''}: same prompt ids, same ${STEPS} greedy tokens on ${PROMPTS.length} prompts, |Δ log p| ≤ ${tol}`, async () => {
      const file = files[type];
      let model = loadModel(file, { dtype: 'f32' });
      if (withAdapter) model = loadPeftModel(model, adapterDir).model;
      const tok = loadTokenizer(file);
      const ours = PROMPTS.map((p) => lorakitGreedy(model, tok.encode(p)));

      const lm = await llama.loadModel({ modelPath: file });
      // one copy of the adapter file per model: node-llama-cpp keeps an adapter loaded by path for the model it first served
      const lora = path.join(dir, `adapter-${type}.gguf`);
      if (withAdapter) fs.copyFileSync(adapterGguf, lora);
      const ctx = await lm.createContext({ contextSize: 64, threads: 2, ...(withAdapter ? { lora } : {}) });
      let worstAll = 0;
      try {
        for (const [i, p] of PROMPTS.entries()) {
          const ids = [...lm.tokenize(p)];
          assert.deepEqual(ids, ours[i]!.prompt, `prompt ids of ${JSON.stringify(p)}`);
          const seq = ctx.getSequence();
          const tokens: number[] = [];
          const logprobs: number[] = [];
          for await (const r of seq.evaluateWithMetadata(lm.tokenize(p), { confidence: true }, { temperature: 0 })) {
            tokens.push(r.token);
            logprobs.push(Math.log(r.confidence));
            if (tokens.length >= STEPS) break;
          }
          await seq.dispose();
          assert.deepEqual(tokens, ours[i]!.tokens, `greedy tokens after ${JSON.stringify(p)}`);
          const worst = Math.max(...logprobs.map((lp, k) => Math.abs(lp - ours[i]!.logprobs[k]!)));
          worstAll = Math.max(worstAll, worst);
          assert.ok(worst <= tol, `log-probs after ${JSON.stringify(p)} differ by ${worst} (llama.cpp ${logprobs.map((v) => v.toFixed(4))}, lorakit ${ours[i]!.logprobs.map((v) => v.toFixed(4))})`);
        }
        t.diagnostic(`${type}${withAdapter ? ' + adapter' : ''}: largest |Δ log p| ${worstAll.toExponential(2)}`);
      } finally {
        await ctx.dispose();
        await lm.dispose();
      }
    });
  }
  await llama.dispose();
});
