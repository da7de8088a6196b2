// The WebGPU backend (issue 22) in headless Chromium: one browser launch runs a page with
// every kernel comparison against the reference backend and the training tests
// (tests/browser/webgpu-page.ts, bundled here with esbuild). Chromium gives a WebGPU adapter
// with --enable-unsafe-webgpu: on a machine without a GPU that is SwiftShader, a CPU
// emulation, so this checks correctness, not speed. Each test of the page is reported as a
// subtest. Without /usr/bin/chromium, or without an adapter, it skips saying so; under
// CI=true that is a failure.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { launchWebGpuPage } from '../helpers/webgpu-page.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const CHROMIUM = '/usr/bin/chromium';
const haveChromium = fs.existsSync(CHROMIUM);
if (!haveChromium && process.env.CI === 'true') throw new Error(`webgpu test: ${CHROMIUM} is missing under CI=true (.ci/run installs it with apt-get install -y chromium)`);
const skip = haveChromium ? false : `no ${CHROMIUM} (apt-get install -y chromium); the WebGPU tests are skipped`;

it('webgpu backend in chromium: kernels match ref, training matches', { skip }, async (t) => {
  const page = await launchWebGpuPage(path.join(ROOT, 'tests/browser/webgpu-page.ts'), CHROMIUM);
  try {
    const info = await page.info();
    if (info.error) {
      if (process.env.CI === 'true') assert.fail(`no WebGPU adapter in chromium: ${info.error}`);
      t.skip(`no WebGPU adapter in chromium: ${info.error}`);
      return;
    }
    console.log(`# adapter: ${info.adapter}${info.fallback ? ' (fallback adapter: correctness only)' : ''}`);
    const results = await page.run(process.env.LORAKIT_WEBGPU_FILTER ?? '');
    assert.ok(results.length > 0, 'the page registered no tests');
    for (const r of results) {
      await t.test(r.name, r.skip ? { skip: r.skip } : {}, () => {
        if (!r.ok) assert.fail(r.error);
      });
    }
    assert.deepEqual(page.errors, [], 'console errors in the page');
  } finally {
    await page.close();
  }
});
