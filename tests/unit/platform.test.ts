// The core entry (src/core.ts, `lorakit/core`) builds for a browser: esbuild bundles it with
// platform 'browser', where a `node:` import (or a Node built-in a dependency needs) fails the
// build, and no Node-only file or built-in reaches the bundle. The core's own sources use no
// Node global (process, Buffer, __dirname, require) either: esbuild would leave those for the
// browser to fail on at run time. See docs/ARCHITECTURE.md §Platforms and entry points.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

describe('the core entry builds for a browser', () => {
  it('esbuild (platform browser) bundles src/core.ts with no Node built-in and no Node-only file', async () => {
    const r = await esbuild.build({
      absWorkingDir: ROOT,
      entryPoints: ['src/core.ts'],
      bundle: true,
      write: false,
      platform: 'browser',
      format: 'esm',
      metafile: true,
      logLevel: 'silent',
    });
    assert.deepEqual(r.errors, []);
    const inputs = Object.keys(r.metafile.inputs);
    assert.ok(inputs.includes('src/core.ts') && inputs.some((f) => f.startsWith('src/train/')), `unexpected inputs: ${inputs.slice(0, 5).join(', ')}`);
    assert.deepEqual(inputs.filter((f) => f.startsWith('node:') || /\.node\.ts$|^src\/backend\/native\/|^src\/(cli|serve|demo|corpus|tasks)\//.test(f)), []);
    const nodeGlobals: string[] = [];
    for (const f of inputs.filter((f) => f.startsWith('src/'))) {
      const code = fs.readFileSync(path.join(ROOT, f), 'utf8').replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/.*$/gm, '');
      for (const m of code.matchAll(/\b(process\.\w+|Buffer\.\w+|__dirname|__filename|require\(|(?<![.\w])setImmediate\()/g)) nodeGlobals.push(`${f}: ${m[1]}`);
    }
    assert.deepEqual(nodeGlobals, []);
  });

  it('the browser entry, its worker and the page (scripts/build-browser.mjs) build with no Node built-in and no Node-only file', async () => {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'lorakit-bundle-'));
    try {
      const { buildBrowser } = (await import(path.join(ROOT, 'scripts/build-browser.mjs'))) as { buildBrowser(out: string): Promise<esbuild.Metafile> };
      const meta = await buildBrowser(out);
      const inputs = Object.keys(meta.inputs);
      assert.ok(inputs.includes('src/browser.ts') && inputs.includes('src/web/worker.ts') && inputs.includes('src/web/page/app.ts'));
      assert.deepEqual(inputs.filter((f) => f.startsWith('node:') || /\.node\.ts$|^src\/backend\/native\/|^src\/(cli|serve|demo|corpus|tasks)\//.test(f)), []);
      assert.deepEqual(fs.readdirSync(out).filter((f) => !f.endsWith('.map')).sort(), ['app.js', 'index.html', 'lorakit.js', 'style.css', 'worker.js']);
    } finally {
      fs.rmSync(out, { recursive: true, force: true });
    }
  });

  it('a Node-only import in the core fails the browser build (the check can fail)', async () => {
    await assert.rejects(
      esbuild.build({ stdin: { contents: "import { readFileSync } from 'node:fs'; export const f = readFileSync;", resolveDir: ROOT }, bundle: true, write: false, platform: 'browser', logLevel: 'silent' }),
      /node:fs/,
    );
  });
});
