// The page's training speed (`npm run bench -- --only train --backend wasm --browser`):
// the same LoRA run, set up by the page's recipe (src/web/recipe.ts: the bundled model, r 8 on
// q_proj and v_proj, the part-of-speech demo data, batch 4, rows of at most 64 tokens), timed
// three ways in one run: in Node on the native backend, in Node on the browser's backend, and
// in Chromium in the page's worker (lorakit/browser through playwright-core). Each Node run is
// its own process. tokens/s per step from the trainer's own step rows (tokens over the time
// between two rows), median after the first step, with min–max.
//
// The page asks for `--backend` (wasm; without it, the page's 'auto': the first backend that
// loads, docs/ARCHITECTURE.md §Browser). Nothing waits forever: each Node run is killed after
// CHILD_TIMEOUT_S, the page must load within LOAD_TIMEOUT_S and report each step within
// STEP_TIMEOUT_S of the last (a watchdog fed by the page's progress), and the browser and the
// server are closed whatever happens; a failure says what it was waiting for.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { loadavg } from 'node:os';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Browser } from 'playwright-core';
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
  /** the backend's threads (the page: navigator.hardwareConcurrency, which its wasm pool uses) */
  threads?: number;
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
  const out: StepTiming = { steps: [], backend: getBackend().name, threads: getBackend().threads };
  await train({ model, optimizer: r.optimizer, data: { train: r.train, valid: null }, args: r.args, rngs: { lora: r.peft.rng }, callbacks: { onStep: (row) => void out.steps.push({ tokens: row.tokens, elapsed: row.elapsed }) } });
  return out;
}

function tokensPerSecond(name: string, t: StepTiming): ReturnType<typeof stat> {
  const rates: number[] = [];
  for (let i = 1; i < t.steps.length; i++) rates.push(t.steps[i]!.tokens / Math.max(1e-6, t.steps[i]!.elapsed - t.steps[i - 1]!.elapsed));
  return stat(name, 'tokens/s', rates);
}

/** a child that gives no answer in this long is killed and named (a hung wasm pool, a stuck load) */
const CHILD_TIMEOUT_S = 600;
/** the page: seconds to load (browser, page, worker, model), and the longest wait for the next training step */
const LOAD_TIMEOUT_S = 120;
const STEP_TIMEOUT_S = 300;

function child(backend: string, steps: number): StepTiming {
  const self = fileURLToPath(import.meta.url);
  // the Node platform chooses the backend from LORAKIT_BACKEND (native when unset)
  const env = { ...process.env, LORAKIT_BACKEND: backend === 'native' ? '' : backend };
  const r = spawnSync(process.execPath, ['--import', pathToFileURL(path.join(ROOT, 'dist/tests/helpers/node-platform.js')).href, self, '--child', backend, String(steps)], {
    encoding: 'utf8',
    maxBuffer: 1 << 24,
    env,
    timeout: CHILD_TIMEOUT_S * 1000,
    killSignal: 'SIGKILL',
  });
  if (r.error && (r.error as NodeJS.ErrnoException).code === 'ETIMEDOUT') throw new Error(`browser bench: the Node run on ${backend} gave no answer in ${CHILD_TIMEOUT_S} s and was killed; its output so far:\n${r.stderr}`);
  if (r.status !== 0) throw new Error(`browser bench child (${backend}) failed (${r.signal ?? `exit ${r.status}`}): ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as StepTiming;
}

/**
 * A watchdog: `expired` rejects with `what()` once `touch(seconds)` has not been called again
 * within its seconds; `stop()` ends it.
 */
function watchdog(what: () => string): { expired: Promise<never>; touch(seconds: number): void; stop(): void } {
  let timer: NodeJS.Timeout | undefined;
  let fail: (e: Error) => void = () => {};
  const expired = new Promise<never>((_, reject) => (fail = reject));
  expired.catch(() => {}); // one that never fires must not leave an unhandled rejection
  return {
    expired,
    touch(seconds) {
      clearTimeout(timer);
      timer = setTimeout(() => fail(new Error(what())), seconds * 1000);
    },
    stop: () => clearTimeout(timer),
  };
}

/** resolves when `p` settles or after `seconds` (cleanup that must not hang the bench) */
async function atMost(p: Promise<unknown>, seconds: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([p.catch(() => {}), new Promise<void>((resolve) => (timer = setTimeout(resolve, seconds * 1000)))]);
  clearTimeout(timer);
}

async function chromiumRun(steps: number, backend: string, log: (line: string) => void): Promise<StepTiming> {
  const { buildBrowser } = (await import(path.join(ROOT, 'scripts/build-browser.mjs'))) as { buildBrowser(out: string): Promise<unknown> };
  const staticDir = path.join(ROOT, 'dist/browser');
  await buildBrowser(staticDir);
  const jsonl = demoJsonl();
  const server = await startWebServer({ staticDir, modelDir: BUNDLED_MODEL_DIR, modelName: 'brown-llama', datasets: () => [], port: 0 });
  const { chromium } = await import('playwright-core');
  // the page's errors, shown with any failure (a worker that dies says why here)
  const errors: string[] = [];
  let phase = 'starting chromium';
  let wait = LOAD_TIMEOUT_S;
  const dog = watchdog(() => `browser bench: no progress in chromium for ${wait} s while ${phase}; stopped${errors.length ? `; page errors: ${errors.join(' | ')}` : ''}`);
  const held: { browser?: Browser } = {};
  try {
    dog.touch(wait);
    const run = async (): Promise<StepTiming> => {
      held.browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'], timeout: LOAD_TIMEOUT_S * 1000 });
      const page = await held.browser.newPage();
      page.setDefaultTimeout(LOAD_TIMEOUT_S * 1000);
      page.on('console', (m) => {
        if (m.type() === 'error') errors.push(`console: ${m.text()}`);
      });
      page.on('pageerror', (e) => errors.push(`page error: ${e.message}`));
      page.on('crash', () => errors.push('the page crashed'));
      // the run reports each step as it happens: it feeds the watchdog and the log
      await page.exposeFunction('lkBenchStep', (step: number, loss: number) => {
        phase = `training, waiting for step ${step + 1} of ${steps}`;
        wait = STEP_TIMEOUT_S;
        dog.touch(wait);
        log(step === 0 ? '  page: model loaded, training' : `  page: step ${step}/${steps}, loss ${loss.toFixed(4)}`);
      });
      phase = 'loading the page';
      await page.goto(server.url);
      await page.waitForSelector('body[data-ready="1"]');
      phase = 'starting the worker and loading the model';
      return await page.evaluate(
        async ({ jsonl, s, backend }) => {
          const lib = (await import(new URL('lorakit.js', location.href).href)) as typeof import('../src/browser.js');
          const report = (globalThis as unknown as { lkBenchStep(step: number, loss: number): Promise<void> }).lkBenchStep;
          const lk = await lib.LorakitWorker.start({ url: new URL('worker.js', location.href), backend: backend as 'auto' });
          try {
            const info = (await (await fetch('api/info')).json()) as { model: { url: string; files: string[] } };
            await lk.loadModel({ url: info.model.url, names: info.model.files }, 'brown-llama');
            const out = { steps: [] as { tokens: number; elapsed: number }[], backend: lk.backend!.name, threads: navigator.hardwareConcurrency };
            await report(0, 0);
            await lk.train(s, { text: jsonl, file: 'pos.jsonl' }, {
              onProgress: (e) => {
                out.steps.push({ tokens: e.tokens, elapsed: e.trainerElapsed });
                void report(e.step, e.loss);
              },
            });
            return out;
          } finally {
            lk.terminate();
          }
        },
        { jsonl, s: settings(steps), backend },
      );
    };
    const out = await Promise.race([run(), dog.expired]);
    if (errors.length) throw new Error(`browser bench: the page reported errors: ${errors.join(' | ')}`);
    return out;
  } finally {
    dog.stop();
    // always close: a browser left behind keeps the bench (and its cores) busy
    if (held.browser) await atMost(held.browser.close(), 20);
    await atMost(server.close(), 10);
  }
}

export async function runBrowserTrainBench(opts: BrowserBenchOptions = {}): Promise<void> {
  const log = opts.log ?? ((l: string) => console.log(l));
  const steps = opts.steps ?? 8;
  if (!fs.existsSync(CHROMIUM)) throw new Error(`--browser needs ${CHROMIUM} (apt-get install -y chromium)`);
  const want = opts.backend ?? 'auto';
  log(`train --browser: the page's run (bundled brown-llama, LoRA r=8 on q_proj,v_proj, part-of-speech demo data, batch 4, rows ≤ 64 tokens), ${steps} steps; tokens/s per step after the first`);
  log(`load average at start: ${loadavg().map((x) => x.toFixed(2)).join(' ')} (a shared machine lowers every figure; compare the ratios)`);
  const rows: [string, StepTiming][] = [];
  rows.push(['Node, native', child('native', steps)]);
  if (want === 'wasm') rows.push(['Node, wasm', child('wasm', steps)]);
  const page = await chromiumRun(steps, want, log);
  if (want !== 'auto' && page.backend !== want) throw new Error(`browser bench: the page runs on ${page.backend}, not ${want}`);
  if (!rows.some(([, t]) => t.backend === page.backend)) rows.push([`Node, ${page.backend}`, child(page.backend, steps)]);
  rows.push([`Chromium page (worker), ${page.backend}`, page]);
  const native = tokensPerSecond('', rows[0]![1]).median;
  for (const [name, t] of rows) {
    const s = tokensPerSecond(name, t);
    log(`${name.padEnd(36)} ${s.median.toFixed(1).padStart(8)} tokens/s (min ${s.min.toFixed(1)}, max ${s.max.toFixed(1)}, ${s.runs} steps)  ${(s.median / native).toFixed(2)}× native  [${t.backend}${t.threads ? `, ${t.threads} threads` : ''}]`);
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href && process.argv[2] === '--child') {
  const [backend, steps] = [process.argv[3]!, Number(process.argv[4])];
  const name = getBackend().name;
  if (!name.startsWith(backend)) throw new Error(`asked for the ${backend} backend, got ${name}`);
  console.log(JSON.stringify(await nodeRun(steps)));
}
