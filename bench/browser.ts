// The page's training speed (`npm run bench -- --only train --browser [--backend wasm]`):
// the same LoRA run, set up by the page's recipe (src/web/recipe.ts: the bundled model, r 8 on
// q_proj and v_proj, the part-of-speech demo data, batch 4, rows of at most 64 tokens), timed
// three ways in one run: in Node on the native backend, in Node on the browser's backend, and
// in Chromium in the page's worker (lorakit/browser through playwright-core). Each Node run is
// its own process. tokens/s per step from the trainer's own step rows (tokens over the time
// between two rows), median after the first step, with min–max.
//
// The browser's backend is the one its build registers for 'auto' (docs/ARCHITECTURE.md
// §Browser): the reference backend until the WebAssembly backend is registered there.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { getBackend } from '../src/backend/index.js';
import { BUNDLED_MODEL_DIR } from '../src/demo/demo.js';
import { webTasks } from '../src/demo/web-tasks.js';
import { loadTokenizer } from '../src/io/tokenizer.node.js';
import { loadModel } from '../src/models/load.node.js';
import { train } from '../src/train/trainer.js';
import { prepareLoraRun, type LoraSettings } from '../src/web/recipe.js';
import { startWebServer } from '../src/web/server.node.js';
import { stat } from './train.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const CHROMIUM = '/usr/bin/chromium';

export interface BrowserBenchOptions {
  steps?: number;
  /** the backend asked for in Node's second column and in the page ('wasm'; default: the page's 'auto') */
  backend?: string;
  log?: (line: string) => void;
}

interface StepTiming {
  /** tokens of each step and the trainer's elapsed seconds at its end */
  steps: { tokens: number; elapsed: number }[];
  backend: string;
}

function settings(steps: number): LoraSettings {
  return { rank: 8, targets: 'q_proj,v_proj', steps, lr: 1e-3, batchSize: 4, maxLength: 64, seed: 0 };
}

function demoJsonl(): string {
  return webTasks(256)[0]!.jsonl;
}

/** In this process: the recipe's run on the current backend. */
async function nodeRun(steps: number): Promise<StepTiming> {
  const model = loadModel(BUNDLED_MODEL_DIR);
  const tokenizer = loadTokenizer(BUNDLED_MODEL_DIR);
  const r = prepareLoraRun(model, tokenizer, demoJsonl(), 'pos.jsonl', settings(steps));
  const out: StepTiming = { steps: [], backend: getBackend().name };
  await train({ model, optimizer: r.optimizer, data: { train: r.train, valid: null }, args: r.args, rngs: { lora: r.peft.rng }, callbacks: { onStep: (row) => void out.steps.push({ tokens: row.tokens, elapsed: row.elapsed }) } });
  return out;
}

function tokensPerSecond(name: string, t: StepTiming): ReturnType<typeof stat> {
  const rates: number[] = [];
  for (let i = 1; i < t.steps.length; i++) rates.push(t.steps[i]!.tokens / Math.max(1e-6, t.steps[i]!.elapsed - t.steps[i - 1]!.elapsed));
  return stat(name, 'tokens/s', rates);
}

function child(backend: string, steps: number): StepTiming {
  const self = fileURLToPath(import.meta.url);
  // the Node platform chooses the backend from LORAKIT_BACKEND (native when unset)
  const env = { ...process.env, LORAKIT_BACKEND: backend === 'native' ? '' : backend };
  const r = spawnSync(process.execPath, ['--import', pathToFileURL(path.join(ROOT, 'dist/tests/helpers/node-platform.js')).href, self, '--child', backend, String(steps)], { encoding: 'utf8', maxBuffer: 1 << 24, env });
  if (r.status !== 0) throw new Error(`browser bench child (${backend}) failed: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as StepTiming;
}

async function chromiumRun(steps: number, backend: string): Promise<StepTiming> {
  const { buildBrowser } = (await import(path.join(ROOT, 'scripts/build-browser.mjs'))) as { buildBrowser(out: string): Promise<unknown> };
  const staticDir = path.join(ROOT, 'dist/browser');
  await buildBrowser(staticDir);
  const jsonl = demoJsonl();
  const server = await startWebServer({ staticDir, modelDir: BUNDLED_MODEL_DIR, modelName: 'brown-llama', datasets: () => [], port: 0 });
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  try {
    const page = await browser.newPage();
    page.setDefaultTimeout(600_000);
    await page.goto(server.url);
    await page.waitForSelector('body[data-ready="1"]');
    return await page.evaluate(
      async ({ jsonl, s, backend }) => {
        const lib = (await import(new URL('lorakit.js', location.href).href)) as typeof import('../src/browser.js');
        const lk = await lib.LorakitWorker.start({ url: new URL('worker.js', location.href), backend: backend as 'auto' });
        const info = (await (await fetch('api/info')).json()) as { model: { url: string; files: string[] } };
        await lk.loadModel({ url: info.model.url, names: info.model.files }, 'brown-llama');
        const out: { steps: { tokens: number; elapsed: number }[]; backend: string } = { steps: [], backend: lk.backend!.name };
        await lk.train(s, { text: jsonl, file: 'pos.jsonl' }, { onProgress: (e) => void out.steps.push({ tokens: e.tokens, elapsed: e.trainerElapsed }) });
        lk.terminate();
        return out;
      },
      { jsonl, s: settings(steps), backend },
    );
  } finally {
    await browser.close();
    await server.close();
  }
}

export async function runBrowserTrainBench(opts: BrowserBenchOptions = {}): Promise<void> {
  const log = opts.log ?? ((l: string) => console.log(l));
  const steps = opts.steps ?? 8;
  if (!fs.existsSync(CHROMIUM)) throw new Error(`--browser needs ${CHROMIUM} (apt-get install -y chromium)`);
  const want = opts.backend ?? 'auto';
  log(`train --browser: the page's run (bundled brown-llama, LoRA r=8 on q_proj,v_proj, part-of-speech demo data, batch 4, rows ≤ 64 tokens), ${steps} steps; tokens/s per step after the first`);
  const rows: [string, StepTiming][] = [];
  rows.push(['Node, native', child('native', steps)]);
  let browserBackend = want;
  if (want === 'wasm') {
    try {
      rows.push(['Node, wasm', child('wasm', steps)]);
    } catch (e) {
      log(`(the wasm backend is not available here: ${(e as Error).message.split('\n')[0]}; the browser columns use the page's default backend — wasm is pending)`);
      browserBackend = 'auto';
    }
  }
  const page = await chromiumRun(steps, browserBackend);
  if (!rows.some(([, t]) => t.backend === page.backend)) rows.push([`Node, ${page.backend}`, child(page.backend, steps)]);
  rows.push([`Chromium page (worker), ${page.backend}`, page]);
  for (const [name, t] of rows) {
    const s = tokensPerSecond(name, t);
    log(`${name.padEnd(36)} ${s.median.toFixed(1).padStart(8)} tokens/s (min ${s.min.toFixed(1)}, max ${s.max.toFixed(1)}, ${s.runs} steps)  [${t.backend}]`);
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href && process.argv[2] === '--child') {
  const [backend, steps] = [process.argv[3]!, Number(process.argv[4])];
  const name = getBackend().name;
  if (!name.startsWith(backend)) throw new Error(`asked for the ${backend} backend, got ${name}`);
  console.log(JSON.stringify(await nodeRun(steps)));
}
