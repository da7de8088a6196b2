// The core entry (src/core.ts, `lorakit/core`) builds for a browser: esbuild bundles it with
// platform 'browser', where a `node:` import (or a Node built-in a dependency needs) fails the
// build, and no Node-only file or built-in reaches the bundle. The core's own sources use no
// Node global (process, Buffer, __dirname, require) either: esbuild would leave those for the
// browser to fail on at run time. See docs/ARCHITECTURE.md §Platforms and entry points.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
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
      for (const m of code.matchAll(/\b(process\.\w+|Buffer\.\w+|__dirname|__filename|require\()/g)) nodeGlobals.push(`${f}: ${m[1]}`);
    }
    assert.deepEqual(nodeGlobals, []);
  });

  it('a Node-only import in the core fails the browser build (the check can fail)', async () => {
    await assert.rejects(
      esbuild.build({ stdin: { contents: "import { readFileSync } from 'node:fs'; export const f = readFileSync;", resolveDir: ROOT }, bundle: true, write: false, platform: 'browser', logLevel: 'silent' }),
      /node:fs/,
    );
  });
});
