// lorakit in the browser, end to end (docs/ARCHITECTURE.md §Browser): Debian's chromium, driven
// by playwright-core, opens the page `lorakit web` serves (the bundled model preloaded), pauses,
// resumes and cancels a run, trains a small adapter on an uploaded JSONL (the loss falls, the
// chart draws), generates with the base model and the adapter, and downloads the adapter, which
// must equal bit for bit the one `lorakit train` writes with the same backend (wasm, else ref), data, flags
// and seed, and give the same loss in `lorakit eval`. Then the page's WebGPU choice (SwiftShader
// here, a fallback adapter that 'auto' passes over) trains the same run, generates, and downloads
// an adapter close to the CPU one. Any console error fails the test.
// Screenshots at desktop and phone widths go to a temporary folder, or to docs/ with
// LORAKIT_SCREENSHOTS=1 (README: "In the browser").
// Without /usr/bin/chromium the test skips, saying so; under CI=true that is a failure.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { unzipSync } from 'fflate';
import type { Page } from 'playwright-core';
import { deserializeSafetensors } from '../../src/io/safetensors.js';
import { BUNDLED_MODEL_DIR } from '../../src/demo/demo.js';
import { webTasks } from '../../src/demo/web-tasks.js';
import { startWebServer, type WebServer } from '../../src/web/server.node.js';
import { lorakit } from '../helpers/cli-fixture.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const CHROMIUM = '/usr/bin/chromium';
const haveChromium = fs.existsSync(CHROMIUM);
if (!haveChromium && process.env.CI === 'true') throw new Error(`browser test: ${CHROMIUM} is missing under CI=true (.ci/run installs it with apt-get install -y chromium)`);
const skip = haveChromium ? false : `no ${CHROMIUM} (apt-get install -y chromium); the browser test is skipped`;
if (skip) console.log(`# ${skip}`);

// the run both sides train: 4 part-of-speech lines in one batch of 4, so every step sees the same batch
const FLAGS = { rank: 4, targets: 'q_proj,v_proj', steps: 3, lr: 0.01, batch: 4, maxlen: 32, seed: 3 };

describe('lorakit web in chromium', { skip }, () => {
  let server: WebServer;
  let tmp: string;
  let jsonl: string;

  before(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lorakit-browser-'));
    const { buildBrowser } = (await import(path.join(ROOT, 'scripts/build-browser.mjs'))) as { buildBrowser(out: string): Promise<unknown> };
    await buildBrowser(path.join(ROOT, 'dist/browser'));
    const tasks = webTasks(64);
    jsonl = tasks[0]!.jsonl.split('\n').slice(0, 4).join('\n') + '\n';
    fs.writeFileSync(path.join(tmp, 'pos4.jsonl'), jsonl);
    server = await startWebServer({ staticDir: path.join(ROOT, 'dist/browser'), modelDir: BUNDLED_MODEL_DIR, modelName: 'brown-llama', datasets: () => tasks, port: 0 });
  });

  after(async () => {
    await server?.close();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('trains, generates and downloads an adapter equal to the CLI\'s, with no console error', async () => {
    const { chromium } = await import('playwright-core');
    // WebGPU on: without a GPU Chromium's adapter is SwiftShader, a fallback one, which 'auto'
    // passes over (the run to compare with the CLI is on wasm) and the page offers by name
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--enable-unsafe-webgpu'] });
    const errors: string[] = [];
    let backend = '';
    const pageDir = path.join(tmp, 'page-adapter');
    const T0 = Date.now();
    const mark = (what: string): void => console.log(`# ${what} ${((Date.now() - T0) / 1000).toFixed(1)} s`);
    try {
      const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
      context.setDefaultTimeout(120_000); // the machine may be shared; no step is timed
      const page = await context.newPage();
      page.on('console', (m) => {
        if (m.type() === 'error') errors.push(`console: ${m.text()}`);
      });
      page.on('pageerror', (e) => errors.push(`page error: ${e.message}`));
      await page.goto(server.url);
      await page.waitForSelector('body[data-ready="1"]');
      const footer = (await page.textContent('#backend'))!;
      assert.match(footer, /cross-origin isolated: yes/);
      // the WebAssembly backend when its module loads (dist/browser/wasm), else the reference backend
      backend = /^backend: (\w+)/.exec(footer)![1]!;
      assert.ok(['wasm', 'ref'].includes(backend), footer);
      console.log(`# ${footer}`);
      assert.match((await page.textContent('#data-info'))!, /^pos\.jsonl: 64 lines/);

      mark('ready');
      // pause, resume and cancel a run of the demo data
      await page.fill('#steps', '1000');
      await page.fill('#batch', '1');
      await page.fill('#maxlen', '24');
      await page.click('#train');
      await page.waitForFunction(() => /^[1-9]/.test(document.getElementById('s-step')!.textContent ?? ''));
      await page.click('#pause');
      const paused = Number(await (await page.waitForSelector('#chart[data-paused-step]')).getAttribute('data-paused-step'));
      assert.equal(await page.textContent('#s-step'), `${paused} / 1000`);
      assert.equal(await page.textContent('#pause'), 'Resume');
      await page.click('#pause');
      await page.waitForFunction((p) => Number.parseInt(document.getElementById('s-step')!.textContent ?? '0') > p, paused);
      await page.click('#cancel');
      await page.waitForFunction(() => /cancelled/.test(document.getElementById('status')!.textContent ?? ''));
      assert.equal(await page.isDisabled('#download'), true, 'a cancelled run leaves no adapter');

      mark('pause/cancel');
      // the run to compare: the uploaded JSONL, the flags the CLI gets below
      await page.setInputFiles('#upload', { name: 'pos4.jsonl', mimeType: 'application/jsonl', buffer: Buffer.from(jsonl) });
      await page.waitForFunction(() => /^pos4\.jsonl: 4 lines/.test(document.getElementById('data-info')!.textContent ?? ''));
      for (const [id, v] of Object.entries({ rank: FLAGS.rank, steps: FLAGS.steps, lr: FLAGS.lr, batch: FLAGS.batch, maxlen: FLAGS.maxlen, seed: FLAGS.seed })) await page.fill(`#${id}`, String(v));
      await page.selectOption('#targets', FLAGS.targets);
      await page.click('#train');
      await page.waitForFunction(() => /^trained /.test(document.getElementById('status')!.textContent ?? ''));
      const losses = JSON.parse((await page.getAttribute('#chart', 'data-losses'))!) as number[];
      assert.equal(losses.length, FLAGS.steps);
      for (let i = 1; i < losses.length; i++) assert.ok(losses[i]! < losses[i - 1]!, `the loss falls on a repeated batch: ${losses.join(', ')}`);
      const points = (await page.getAttribute('#chart svg polyline', 'points'))!.trim().split(/\s+/);
      assert.equal(points.length, FLAGS.steps, 'the chart draws one point per step');

      mark('trained');
      // base and adapter side by side, streamed
      await page.fill('#maxnew', '6');
      await page.click('#generate');
      await page.waitForSelector('#out-adapter[data-done="1"]');
      const base = (await page.textContent('#out-base'))!;
      const adapted = (await page.textContent('#out-adapter'))!;
      assert.ok(base.length > 0 && adapted.length > 0, `both generate text: ${JSON.stringify([base, adapted])}`);

      mark('generated');
      // screenshots, desktop and phone
      const shots = process.env.LORAKIT_SCREENSHOTS ? path.join(ROOT, 'docs') : tmp;
      await page.screenshot({ path: path.join(shots, 'browser-desktop.png'), fullPage: true });
      await page.setViewportSize({ width: 390, height: 844 });
      await page.screenshot({ path: path.join(shots, 'browser-phone.png'), fullPage: true });
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 0, `nothing wider than a phone screen (overflow ${overflow}px)`);
      await page.setViewportSize({ width: 1280, height: 900 });

      mark('screenshots');
      // the download: a zip of the PEFT files
      const [download] = await Promise.all([page.waitForEvent('download'), page.click('#download')]);
      assert.equal(download.suggestedFilename(), 'adapter.zip');
      const zipFile = path.join(tmp, 'adapter.zip');
      await download.saveAs(zipFile);
      fs.mkdirSync(pageDir);
      for (const [name, bytes] of Object.entries(unzipSync(fs.readFileSync(zipFile)))) fs.writeFileSync(path.join(pageDir, name), bytes);

      mark('downloaded');
      // and loaded back: generation with it equals the trained adapter's
      await page.setInputFiles('#load-adapter', zipFile);
      await page.waitForFunction(() => /^loaded adapter\.zip: rank 4/.test(document.getElementById('adapter-info')!.textContent ?? ''));
      await page.click('#generate');
      await page.waitForFunction((prev) => document.getElementById('out-adapter')!.dataset['done'] === '1' && document.getElementById('out-adapter')!.textContent === prev, adapted);

      mark('loaded back');
      await trainOnWebGpu(page, footer, losses, pageDir, tmp);
      mark('webgpu');
      await context.close();
    } finally {
      await browser.close();
    }
    assert.deepEqual(errors, []);

    mark('browser done');
    // the same run in Node, on the same backend
    const nodeRun = path.join(tmp, 'node-run');
    const data = path.join(tmp, 'pos4.jsonl');
    const args = ['train', '--model', BUNDLED_MODEL_DIR, '--data', data, '--out', nodeRun, '--rank', String(FLAGS.rank), '--targets', FLAGS.targets, '--steps', String(FLAGS.steps), '--lr', String(FLAGS.lr), '--batch-size', String(FLAGS.batch), '--max-length', String(FLAGS.maxlen), '--seed', String(FLAGS.seed), '--no-progress'];
    const r = lorakitOn(backend, args);
    assert.equal(r.status, 0, r.stderr);
    const nodeDir = path.join(nodeRun, 'adapter');
    const mine = deserializeSafetensors(fs.readFileSync(path.join(pageDir, 'adapter_model.safetensors')), 'page');
    const theirs = deserializeSafetensors(fs.readFileSync(path.join(nodeDir, 'adapter_model.safetensors')), 'node');
    assert.deepEqual([...mine.tensors.keys()].sort(), [...theirs.tensors.keys()].sort());
    for (const [name, t] of theirs.tensors) {
      const m = mine.tensors.get(name)!;
      assert.deepEqual(m.shape, t.shape, name);
      assert.ok(Buffer.from(m.data.buffer, m.data.byteOffset, m.data.byteLength).equals(Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength)), `${name} is bit-identical`);
    }
    const cfg = (dir: string): Record<string, unknown> => {
      const c = JSON.parse(fs.readFileSync(path.join(dir, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
      delete c['base_model_name_or_path'];
      return c;
    };
    assert.deepEqual(cfg(pageDir), cfg(nodeDir));

    mark('node trained');
    // both load in lorakit eval with the same loss
    const evalLoss = (dir: string): number => {
      const e = lorakit(['eval', '--model', BUNDLED_MODEL_DIR, '--adapter', dir, '--data', data, '--json']);
      assert.equal(e.status, 0, e.stderr);
      return (JSON.parse(e.stdout) as { loss: number }).loss;
    };
    assert.equal(evalLoss(pageDir), evalLoss(nodeDir));
  });
});

/**
 * The page's WebGPU choice (issue 22), offered when the browser has an adapter: the worker
 * restarts on it, the same run (data, flags, seed) trains there, its losses follow the CPU
 * run's (1e-3 relative), it generates (KV cache, logits read back per token) and its adapter
 * download matches the CPU run's within 5e-3 of each tensor's largest entry: the sums run in
 * other orders, and AdamW's first steps from B = 0 turn last-bit differences of tiny gradients
 * into differences of a step's size.
 */
async function trainOnWebGpu(page: Page, cpuFooter: string, cpuLosses: number[], cpuAdapterDir: string, tmp: string): Promise<void> {
  const option = await page.$('#backend-choice option[value="webgpu"]');
  if (!option) {
    if (process.env.CI === 'true') assert.fail('chromium with --enable-unsafe-webgpu offered no WebGPU adapter');
    console.log('# no WebGPU adapter in chromium: the page\'s WebGPU run is skipped');
    return;
  }
  const label = (await option.textContent())!;
  console.log(`# the page offers ${label}`);
  if (/fallback/.test(label)) assert.match(cpuFooter, /fallback: webgpu: WebGPU: only a fallback adapter/, "'auto' passed over the fallback adapter, saying so");
  await page.selectOption('#backend-choice', 'webgpu');
  await page.waitForSelector('body[data-ready="1"]');
  const footer = (await page.textContent('#backend'))!;
  assert.match(footer, /^backend: webgpu on .+ \(asked for webgpu\)/);
  await page.click('#train');
  await page.waitForFunction(() => /^trained /.test(document.getElementById('status')!.textContent ?? ''));
  const losses = JSON.parse((await page.getAttribute('#chart', 'data-losses'))!) as number[];
  assert.equal(losses.length, cpuLosses.length);
  losses.forEach((l, i) => assert.ok(Number.isFinite(l) && Math.abs(l - cpuLosses[i]!) <= 1e-3 * cpuLosses[i]!, `step ${i + 1}: loss ${l} on webgpu, ${cpuLosses[i]} on the CPU`));
  for (let i = 1; i < losses.length; i++) assert.ok(losses[i]! < losses[i - 1]!, `the loss falls on webgpu too: ${losses.join(', ')}`);
  await page.click('#generate');
  await page.waitForSelector('#out-adapter[data-done="1"]');
  assert.ok((await page.textContent('#out-adapter'))!.length > 0, 'generation with the adapter on webgpu');
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#download')]);
  const zip = path.join(tmp, 'adapter-webgpu.zip');
  await download.saveAs(zip);
  const gpu = deserializeSafetensors(unzipSync(fs.readFileSync(zip))['adapter_model.safetensors']!, 'webgpu').tensors;
  const cpu = deserializeSafetensors(fs.readFileSync(path.join(cpuAdapterDir, 'adapter_model.safetensors')), 'cpu').tensors;
  assert.deepEqual([...gpu.keys()].sort(), [...cpu.keys()].sort());
  let worst = 0;
  for (const [name, t] of cpu) {
    const w = t.toF32Array();
    const g = gpu.get(name)!.toF32Array();
    const scale = Math.max(...w.map(Math.abs));
    const diff = Math.max(...w.map((x, i) => Math.abs(x - g[i]!)));
    worst = Math.max(worst, diff / scale);
    assert.ok(diff <= 5e-3 * scale, `${name}: the webgpu adapter differs by ${diff} (largest entry ${scale})`);
  }
  console.log(`# webgpu run: losses ${losses.map((l) => l.toFixed(5)).join(', ')} (CPU ${cpuLosses.map((l) => l.toFixed(5)).join(', ')}); adapters differ by at most ${worst.toExponential(2)} of each tensor's largest entry`);
}

/**
 * `lorakit …` on the backend the page trained with. The wasm module runs one thread per core in
 * both (the page: navigator.hardwareConcurrency; Node: availableParallelism), so LORAKIT_THREADS
 * is left unset for it.
 */
function lorakitOn(backend: string, args: string[]): { status: number | null; stdout: string; stderr: string } {
  const prev = { backend: process.env.LORAKIT_BACKEND, threads: process.env.LORAKIT_THREADS };
  process.env.LORAKIT_BACKEND = backend;
  if (backend === 'wasm') process.env.LORAKIT_THREADS = '';
  try {
    return lorakit(args);
  } finally {
    for (const [k, v] of [['LORAKIT_BACKEND', prev.backend], ['LORAKIT_THREADS', prev.threads]] as const) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}
