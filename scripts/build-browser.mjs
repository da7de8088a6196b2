// Builds lorakit's browser bundle into dist/browser (docs/ARCHITECTURE.md §Browser):
//   lorakit.js  the library (`lorakit/browser`, src/browser.ts), ESM
//   worker.js   the training worker (src/web/worker.ts); lorakit.js starts it from next to itself
//   app.js, index.html, style.css   the page `lorakit web` serves (src/web/page/)
// Usage: node scripts/build-browser.mjs [outDir]   (esbuild, a devDependency)
import { copyFileSync, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** Builds the bundle; returns esbuild's metafile. */
export async function buildBrowser(outDir = join(ROOT, 'dist/browser')) {
  const esbuild = await import('esbuild');
  mkdirSync(outDir, { recursive: true });
  const r = await esbuild.build({
    absWorkingDir: ROOT,
    entryPoints: { lorakit: 'src/browser.ts', worker: 'src/web/worker.ts', app: 'src/web/page/app.ts' },
    outdir: outDir,
    bundle: true,
    splitting: false,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    sourcemap: 'linked',
    metafile: true,
    logLevel: 'warning',
    legalComments: 'none',
  });
  for (const f of ['index.html', 'style.css']) copyFileSync(join(ROOT, 'src/web/page', f), join(outDir, f));
  return r.metafile;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const out = resolve(process.argv[2] ?? join(ROOT, 'dist/browser'));
  const meta = await buildBrowser(out);
  const sizes = Object.entries(meta.outputs).filter(([f]) => f.endsWith('.js')).map(([f, o]) => `${f.replace(/^.*\//, '')} ${(o.bytes / 1024).toFixed(0)} KiB`);
  console.log(`browser bundle: ${out} (${sizes.join(', ')})`);
}
