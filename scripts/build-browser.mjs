// Builds lorakit's browser bundle into dist/browser (docs/ARCHITECTURE.md §Browser):
//   lorakit.js  the library (`lorakit/browser`, src/browser.ts), ESM
//   worker.js   the training worker (src/web/worker.ts, a classic worker: the wasm module's glue
//               loads with importScripts); lorakit.js starts it from next to itself
//   wasm/       the WebAssembly kernel module (native/wasm: glue, pthread worker, the two builds)
//   app.js, index.html, style.css   the page `lorakit web` serves (src/web/page/)
// Usage: node scripts/build-browser.mjs [outDir]   (esbuild, a devDependency)
import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** Builds the bundle; returns esbuild's metafile. */
export async function buildBrowser(outDir = join(ROOT, 'dist/browser')) {
  const esbuild = await import('esbuild');
  mkdirSync(outDir, { recursive: true });
  const common = { absWorkingDir: ROOT, outdir: outDir, bundle: true, platform: 'browser', target: 'es2022', sourcemap: 'linked', metafile: true, logLevel: 'warning', legalComments: 'none' };
  const lib = await esbuild.build({ ...common, entryPoints: { lorakit: 'src/browser.ts', app: 'src/web/page/app.ts' }, format: 'esm' });
  const worker = await esbuild.build({ ...common, entryPoints: { worker: 'src/web/worker.ts' }, format: 'iife' });
  const r = { metafile: { inputs: { ...lib.metafile.inputs, ...worker.metafile.inputs }, outputs: { ...lib.metafile.outputs, ...worker.metafile.outputs } } };
  const wasmDir = join(ROOT, 'native/wasm');
  if (existsSync(join(wasmDir, 'lorakit.js'))) {
    mkdirSync(join(outDir, 'wasm'), { recursive: true });
    for (const f of ['lorakit.js', 'lorakit.worker.js', 'lorakit.wasm', 'lorakit-relaxed.wasm']) copyFileSync(join(wasmDir, f), join(outDir, 'wasm', f));
  }
  for (const f of ['index.html', 'style.css']) copyFileSync(join(ROOT, 'src/web/page', f), join(outDir, f));
  return r.metafile;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const out = resolve(process.argv[2] ?? join(ROOT, 'dist/browser'));
  const meta = await buildBrowser(out);
  const sizes = Object.entries(meta.outputs).filter(([f]) => f.endsWith('.js')).map(([f, o]) => `${f.replace(/^.*\//, '')} ${(o.bytes / 1024).toFixed(0)} KiB`);
  console.log(`browser bundle: ${out} (${sizes.join(', ')})`);
}
